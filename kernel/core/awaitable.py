"""`f.aio(*args)`: every bound native function (Go or C++) can be awaited.

The call runs in a thread of the event loop's default executor, so the loop
keeps serving other tasks while native code runs (Go and C++ calls release
the GIL by default; in worker mode each calling thread has its own connection to
the worker, so awaited calls overlap there too). Cancelling the awaiting task ends the wait at once; the
native call itself cannot be stopped from Python and runs to completion in
its thread, its result discarded.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Callable


def awaitable_form(function: Callable) -> Callable:
    """The `aio` of a function: a coroutine function that runs it in a thread."""

    @functools.wraps(function)
    async def aio(*args, **kwargs):
        return await asyncio.to_thread(function, *args, **kwargs)

    aio.__qualname__ = aio.__name__ = f"{getattr(function, '__name__', 'function')}.aio"
    return aio


def with_awaitable_forms(bind: dict[str, Any]) -> dict[str, Any]:
    """The names a native cell binds, each function given its `aio` form (classes
    and values unchanged)."""
    return {name: _with_aio(value) for name, value in bind.items()}


def _with_aio(value: Any) -> Any:
    """Native functions are wrapped once, by travel's NativeFunction (which carries
    `aio`): builtins (C++'s) and the worker's function proxies (whose attributes
    live in the worker) are wrapped here; functions made in Python without a
    known build (Go's) take the attribute;
    anything else (classes, values) is left as it is."""
    from .travel import NativeFunction  # travel's wrapper takes `aio` from here

    if isinstance(value, NativeFunction):
        return value
    if inspect.isbuiltin(value) or _is_worker_function(value):
        return NativeFunction(value)
    if inspect.isfunction(value) or isinstance(value, functools.partial):
        value.aio = awaitable_form(value)
    return value


def _is_worker_function(value: Any) -> bool:
    """A proxy of a function that runs in the native worker (kernel/worker_proxies.py),
    recognised from its own __dict__ without a trip to the worker."""
    info = getattr(value, "__dict__", {}).get("_info")
    return getattr(info, "kind", None) == "function"

"""Go channels that a Go function returned, received from in Python.

A Go function whose result is a channel (`chan T` or `<-chan T`) returns a
GoChannel: `for value in channel` receives until Go closes it, `async for`
does the same without blocking the event loop, and `receive()` is Go's
`value, ok := <-channel`. Go keeps the channel for Python until the GoChannel
is garbage-collected (runtime/ipgrt/channels.go).

In worker mode the channel stays in the worker and the kernel holds a proxy
(kernel/worker_proxies.py) whose `receive()` asks the worker; both share the
iteration of `ChannelReceiver`, so they behave alike.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any


@dataclass
class PendingReceive:
    """A receive an async reader was cancelled in: the next `areceive` takes its value."""

    future: asyncio.Future | None = None


class ChannelReceiver:
    """Iteration, async iteration and `areceive` over a `receive()` that subclasses define."""

    _pending: PendingReceive

    def receive(self) -> tuple[Any, bool]:
        raise NotImplementedError

    def __iter__(self):
        while True:
            value, received = self.receive()
            if not received:
                return
            yield value

    async def areceive(self) -> tuple[Any, bool]:
        """`receive()` awaited in a thread. If the awaiting task is cancelled, the
        receive goes on in its thread and the next `areceive` gets its value: none is lost."""
        pending = self._pending
        if pending.future is None:
            pending.future = asyncio.ensure_future(asyncio.to_thread(self.receive))
        result = await asyncio.shield(pending.future)
        pending.future = None
        return result

    async def __aiter__(self):
        while True:
            value, received = await self.areceive()
            if not received:
                return
            yield value


class GoChannel(ChannelReceiver):
    """A Go channel Python receives from; waiting for a value releases the GIL."""

    def __init__(self, library, handle: int, go_type: str):
        self._library = library
        self._handle = handle
        self._go_type = go_type
        self._pending = PendingReceive()
        weakref.finalize(self, library.lib.ipg_chan_release, handle)

    def receive(self) -> tuple[Any, bool]:
        """The next value and True, or the zero value and False once Go closed the channel."""
        value, received = self._library.receive(self._handle)
        return value, received

    def __repr__(self) -> str:
        return f"<Go {self._go_type} #{self._handle}>"

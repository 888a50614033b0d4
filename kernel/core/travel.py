"""Native functions that travel to other processes as references to their build.

A build is named by its content address (its cache key), so a bound Go or C++
function pickles as a small reference: the build's key, the build unit that
produced it (enough to build it again) and the function's name. Unpickled in
another process (a `spawn` multiprocessing pool, a ProcessPoolExecutor, a
Dask worker on this machine or another), the build is loaded from that
process's cache, or rebuilt there from the unit when the cache lacks it.

Everything in a reference is plain data (dicts, lists, strings): it crosses
any pickler unchanged, including the native worker's, which copies plain data
and keeps everything else behind handles.

This module is the one place that loads a build by reference in another
process; the backends supply `open_build(unit, key, cache)`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any

from .awaitable import awaitable_form
from .native_signature import annotated_signature

# language -> module with `open_build(unit: dict, key: str, cache) -> dict[str, object]`
OPENERS = {"go": "ipolyglot.go_bridge.travel", "cpp": "ipolyglot.cpp_ext.travel"}


def build_reference(language: str, key: str, unit: dict) -> dict:
    """What names one build anywhere: its language, content address and build unit."""
    return {"language": language, "key": key, "unit": unit}


@dataclass
class LoadedBuilds:
    """The builds this process has opened by reference, each once.

    A Go library's runtime can never be unloaded, so opening the same build
    twice would load a second runtime; the namespace of each build is kept.
    """

    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    made: dict[tuple, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)  # opening a build binds (and remembers) it

    def namespace(self, build: dict) -> dict[str, Any]:
        with self.lock:
            found = self.namespaces.get(build["key"])
            if found is None:
                from .cache import BuildCache

                opener = importlib.import_module(OPENERS[build["language"]])
                found = opener.open_build(build["unit"], build["key"], BuildCache())
                self.namespaces[build["key"]] = found
            return found

    def remember(self, build: dict, namespace: dict[str, Any]) -> None:
        """A build this process bound itself: a reference to it resolves to these objects."""
        with self.lock:
            self.namespaces[build["key"]] = namespace

    def memo(self, key: tuple, make):
        """One object per key in this process (e.g. a struct class rebuilt without its build)."""
        with self.lock:
            made = self.made.get(key)
            if made is None:
                made = self.made[key] = make()
            return made


# One per process, by necessity: see LoadedBuilds.
LOADED_BUILDS = LoadedBuilds()


def resolve(build: dict, name: str):
    """The object `name` of a build, loaded (or rebuilt) in this process: the unpickling side."""
    namespace = LOADED_BUILDS.namespace(build)
    try:
        return namespace[name]
    except KeyError:
        raise LookupError(f"the {build['language']} build {build['key'][:12]} has no {name!r}") from None


class NativeFunction(functools.partial):
    """A bound Go or C++ function, wrapped once: `aio`, its annotated signature, a
    readable repr, and pickling as a reference to its build.

    Plain Python functions always pickle by qualified name, which another
    process cannot import, and a C++ builtin takes no attributes; this callable
    costs one C-level indirection per call, pickles as `resolve(build, name)`
    when its build is known, and carries `aio` and `__signature__` (Go's own,
    or the one a C++ builtin's typed docstring line spells).
    """

    def __new__(cls, function, build: dict | None = None, name: str | None = None, language: str | None = None):
        self = super().__new__(cls, function)
        self._build = build
        self._name = name or getattr(function, "__name__", "function")
        self._language = language or (build["language"] if build else _language_of(function))
        if build is not None and hasattr(function, "__dict__"):  # Dask tokenizes a partial by its function
            function.__dask_tokenize__ = functools.partial(tuple, ("ipolyglot", build["key"], name))
        for attribute in ("__name__", "__qualname__", "__doc__", "__module__", "__text_signature__"):
            value = getattr(function, attribute, None)
            if value is not None:
                setattr(self, attribute, value)
        if _own_attribute(function, "_go_library") is not None:
            self._go_library = _own_attribute(function, "_go_library")
        self.aio = awaitable_form(function)
        signature = _signature_of(function)
        if signature is not None:
            self.__signature__ = signature
        return self

    def __reduce__(self):
        if self._build is None:  # a worker's proxy, or a function of no known build: it travels as itself
            return self.func.__reduce__()
        return arriving_function, (self._build, self._name)

    def __repr__(self) -> str:
        if self._language is None:  # a worker's proxy: the worker's wrapper names it
            return repr(self.func)
        signature = getattr(self, "__signature__", None)
        shown = f"{self._name}{signature}" if signature is not None else self._name
        return f"<{_LANGUAGE_NAMES.get(self._language, 'native')} function {shown}>"


_LANGUAGE_NAMES = {"go": "Go", "cpp": "C++"}


def _language_of(function) -> str | None:
    """Go's functions are made in Python (and name their library); C++'s are builtins."""
    if _own_attribute(function, "_go_library") is not None or inspect.isfunction(function):
        return "go"
    if inspect.isbuiltin(function):
        return "cpp"
    return None


def _own_attribute(function, name: str):
    """An attribute the object itself holds: a worker's proxy would ask the worker for any other."""
    return getattr(function, "__dict__", {}).get(name)


def _signature_of(function) -> inspect.Signature | None:
    """Go's own `__signature__`, the annotated one of a C++ builtin, or a proxy's."""
    if inspect.isbuiltin(function):
        return annotated_signature(function)
    signature = getattr(function, "__signature__", None)
    if signature is None and inspect.isfunction(function):
        signature = inspect.signature(function)
    return signature if isinstance(signature, inspect.Signature) else None


def traveling(function, build: dict | None, name: str):
    """`function` made to travel by reference, when its build is known."""
    if build is None or isinstance(function, NativeFunction):
        return function
    return NativeFunction(function, build, name)


def arriving_function(build: dict, name: str):
    """A function unpickled here: loaded now, or, when that fails, a callable that raises why.

    A multiprocessing pool cannot report an error raised while it unpickles a
    task (its worker dies and the map waits forever), so the error waits for
    the call, whose exception does travel back to the caller.
    """
    try:
        return resolve(build, name)
    except Exception as error:  # noqa: BLE001 - raised again by every call
        return UnavailableFunction(build, name, error)


@dataclass
class UnavailableFunction:
    """A travelled function this process could neither load nor rebuild."""

    build: dict
    name: str
    error: Exception

    def __call__(self, *args, **kwargs):
        raise self.error

    def __reduce__(self):
        return arriving_function, (self.build, self.name)

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
import threading
from dataclasses import dataclass, field
from typing import Any

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
    """A bound Go or C++ function that pickles as a reference to its build.

    Plain Python functions always pickle by qualified name, which another
    process cannot import; this callable costs one C-level indirection per
    call and pickles as `resolve(build, name)` instead.
    """

    def __new__(cls, function, build: dict, name: str):
        self = super().__new__(cls, function)
        self._build = build
        self._name = name
        if hasattr(function, "__dict__"):  # Dask tokenizes a partial by its function: name it by its build
            function.__dask_tokenize__ = functools.partial(tuple, ("ipolyglot", build["key"], name))
        for attribute in ("__name__", "__qualname__", "__doc__", "__module__", "_go_library"):
            value = getattr(function, attribute, None)
            if value is not None:
                setattr(self, attribute, value)
        return self

    def __reduce__(self):
        return arriving_function, (self._build, self._name)

    def __repr__(self) -> str:
        return repr(self.func)


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

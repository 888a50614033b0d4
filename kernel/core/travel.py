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

Classes a build binds (C++ classes and enums, Go struct classes) travel the
same way: by reference, also through cloudpickle (what Dask uses for lambdas),
which would otherwise copy a class defined in `__main__` by value.

This module is the one place that loads a build by reference in another
process; the backends supply `open_build(unit, key, cache)`.
"""

from __future__ import annotations

import copyreg
import ctypes
import functools
import importlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import threading
import weakref
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
        for name, value in namespace.items():
            if isinstance(value, type):
                travel_by_reference(value, build, name)

    def memo(self, key: tuple, make):
        """One object per key in this process (e.g. a struct class rebuilt without its build)."""
        with self.lock:
            made = self.made.get(key)
            if made is None:
                made = self.made[key] = make()
            return made


# One per process, by necessity: see LoadedBuilds.
LOADED_BUILDS = LoadedBuilds()


def loaded(build: dict) -> bool:
    """Whether this process has the build's namespace already (bound it, or opened it)."""
    return build["key"] in LOADED_BUILDS.namespaces


def known_in_main(name: str, accept) -> Any:
    """`__main__.name` when `accept` takes it, else None.

    A kernel in worker mode binds copies of a build's classes (Go structs, C++
    enums) in `__main__` without loading the build: a value arriving there from
    another process becomes an instance of that copy instead of loading native
    code into the kernel.
    """
    found = getattr(sys.modules.get("__main__"), name, None)
    return found if found is not None and accept(found) else None


def resolve(build: dict, name: str):
    """The object `name` of a build, loaded (or rebuilt) in this process: the unpickling side."""
    namespace = LOADED_BUILDS.namespace(build)
    try:
        return namespace[name]
    except KeyError:
        raise LookupError(f"the {build['language']} build {build['key'][:12]} has no {name!r}") from None


class NativeFunction(functools.partial):
    """A Go or C++ function of this session; `f.aio(*args)` is its awaitable form."""

    # (The docstring above is what `f?` shows a user as the class docstring.) A bound
    # function wrapped once: `aio`, its annotated signature, a readable repr, and
    # pickling as a reference to its build. Plain Python functions always pickle by
    # qualified name, which another process cannot import, and a C++ builtin takes no
    # attributes; this callable costs one C-level indirection per call (vectorcall: see
    # `_restore_vectorcall`), pickles as `arriving_function(build, name)` when its build
    # is known, and carries `aio` and `__signature__` (Go's own, or the one a C++
    # builtin's typed docstring line spells).

    def __new__(cls, function, build: dict | None = None, name: str | None = None, language: str | None = None):
        compiled = getattr(type(function), "_compiled_caller", None)  # a worker's proxy may have a faster way in
        self = super().__new__(cls, (compiled and compiled(function)) or function)
        self.target = function  # what `func` calls (itself, or through its compiled caller)
        self._build = build
        self._name = name or getattr(function, "__name__", "function")
        self._language = language or (build["language"] if build else _language_of(function))
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

    def travel_reference(self) -> tuple[dict, str] | None:
        """(build, name) naming this function anywhere, or None when it has no known build.

        A worker's proxy asks the worker (once: Dask tokenizes the function for
        every element of a map), where the function was bound with its build.
        """
        if self._build is not None:
            return self._build, self._name
        if _own_attribute(self.target, "_info") is None:  # not a worker's proxy
            return None
        known = self.__dict__.get("_proxy_reference")
        if known is None:
            try:
                _, known = self.target.__reduce__()
            except (TypeError, ValueError):
                return None
            self._proxy_reference = known
        return known

    def __reduce__(self):
        reference = self.travel_reference()
        if reference is None:  # a function of no known build: it travels as itself (or says why not)
            return self.target.__reduce__()
        return arriving_function, reference

    def __dask_tokenize__(self):
        """The same token for the same build in every process, another for another build."""
        reference = self.travel_reference()
        if reference is None:
            return ("ipolyglot", "unbuilt", self._name, id(self.target))
        build, name = reference
        return ("ipolyglot", build["language"], build["key"], name)

    def __repr__(self) -> str:
        if self._language is None:  # a worker's proxy: the worker's wrapper names it
            return repr(self.target)
        signature = getattr(self, "__signature__", None)
        shown = f"{self._name}{signature}" if signature is not None else self._name
        return f"<{_LANGUAGE_NAMES.get(self._language, 'native')} function {shown}>"


_Py_TPFLAGS_HAVE_VECTORCALL = 1 << 11
_TP_FLAGS_WORD, _TP_BASICSIZE_WORD, _TP_VECTORCALL_OFFSET_WORD = 21, 4, 7  # PyTypeObject's fields, in words


def _restore_vectorcall(cls: type, base: type) -> bool:
    """Let a Python subclass of a vectorcall type be called through vectorcall, as its base is.

    CPython 3.11 does not pass Py_TPFLAGS_HAVE_VECTORCALL on to subclasses
    defined in Python (3.12 does, when `__call__` is not overridden), so every
    call of a NativeFunction took partial's tuple-and-dict path: about 35 ns a
    call, a third of a scalar call's whole cost (benchmarks/). The instance's
    vectorcall pointer is set by partial itself; only the type's flag is
    missing. The flag is set only when the type object's layout reads back
    exactly as Python reports it (flags, basic size) and the base's vectorcall
    offset is the subclass's: otherwise nothing changes.
    """
    if cls.__flags__ & _Py_TPFLAGS_HAVE_VECTORCALL or not base.__flags__ & _Py_TPFLAGS_HAVE_VECTORCALL:
        return bool(cls.__flags__ & _Py_TPFLAGS_HAVE_VECTORCALL)
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12) or "__call__" in cls.__dict__:
        return False

    def word(of: type, index: int) -> ctypes.c_ssize_t:
        return ctypes.c_ssize_t.from_address(id(of) + index * ctypes.sizeof(ctypes.c_void_p))

    flags = word(cls, _TP_FLAGS_WORD)
    laid_out_as_reported = (
        flags.value == cls.__flags__ and word(cls, _TP_BASICSIZE_WORD).value == cls.__basicsize__
        and word(base, _TP_FLAGS_WORD).value == base.__flags__
    )
    offset = word(cls, _TP_VECTORCALL_OFFSET_WORD).value
    if not laid_out_as_reported or offset <= 0 or offset != word(base, _TP_VECTORCALL_OFFSET_WORD).value:
        return False
    flags.value |= _Py_TPFLAGS_HAVE_VECTORCALL
    return bool(cls.__flags__ & _Py_TPFLAGS_HAVE_VECTORCALL)


_restore_vectorcall(NativeFunction, functools.partial)


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


# -- classes --------------------------------------------------------------------------

# class -> (build, name): the classes builds bound in this process, pickled by reference.
CLASS_REFERENCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Metaclasses whose classes all travel by reference through their own copyreg reducer (Go's).
BY_REFERENCE_METACLASSES: set[type] = set()


def travel_by_reference(cls: type, build: dict, name: str) -> None:
    """Pickle `cls` as a reference to its build (its metaclass's copyreg entry is ours,
    unless a backend registered its own, as Go does for its struct classes)."""
    try:
        CLASS_REFERENCES[cls] = (build, name)
    except TypeError:  # a class that takes no weak references is left as it is
        return
    metaclass = type(cls)
    if metaclass is not type and metaclass not in copyreg.dispatch_table:
        copyreg.pickle(metaclass, _reduce_class)


def _reduce_class(cls: type):
    """A bound class as `resolve(build, name)`; any other class of that metaclass by its
    qualified name, as pickle itself would."""
    reference = CLASS_REFERENCES.get(cls)
    if reference is None:
        return cls.__qualname__
    return resolve, reference


def travels_by_reference(cls: type) -> bool:
    return cls in CLASS_REFERENCES or type(cls) in BY_REFERENCE_METACLASSES


# -- cloudpickle and Dask, taught when (and if) they are imported --------------------

def _teach_cloudpickle(module) -> None:
    """cloudpickle copies a class by value when its module is `__main__` or not importable
    (a cell's class is both), which cannot work for a class whose methods call native
    code: such a class goes to the pickler's ordinary path, i.e. its copyreg reducer."""
    class_reduce = getattr(module, "_class_reduce", None)
    if class_reduce is None or getattr(class_reduce, "_ipolyglot_", False):
        return

    def _class_reduce(obj):
        if travels_by_reference(obj):
            return NotImplemented
        return class_reduce(obj)

    _class_reduce._ipolyglot_ = True
    module._class_reduce = _class_reduce


def _register_dask_tokenizer(module) -> None:
    """Dask tokenizes a partial by its function, which for C++ is a builtin bound to a
    capsule (a random token every time): a NativeFunction is tokenized by its build."""
    normalize_token = getattr(module, "normalize_token", None)
    if normalize_token is not None:
        normalize_token.register(NativeFunction)(NativeFunction.__dask_tokenize__)


class _WhenImported(importlib.abc.MetaPathFinder):
    """Calls `then(module)` once `name` has been imported, without importing it."""

    def __init__(self, name: str, then):
        self.name, self.then = name, then

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenLoader(spec.loader, self.then)
        return spec


class _ThenLoader(importlib.abc.Loader):
    def __init__(self, loader, then):
        self.loader, self.then = loader, then

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.then(module)

    def __getattr__(self, name):  # get_source, get_filename, …: the real loader's
        return getattr(self.loader, name)


def _when_imported(name: str, then) -> None:
    module = sys.modules.get(name)
    if module is not None:
        then(module)
    else:
        sys.meta_path.insert(0, _WhenImported(name, then))


_when_imported("cloudpickle.cloudpickle", _teach_cloudpickle)
_when_imported("dask.base", _register_dask_tokenizer)  # dask imports it first; it holds normalize_token

"""The wire between the kernel and its native worker: framed pickle-5 messages on a socket.

Both ends speak the same two messages. A `Request` asks the other side to do
something (the kernel asks the worker to run a cell or call a function; the
worker asks the kernel to run a Python callback or to look a variable up);
a `Reply` answers one request by id. While a side waits for its reply it
serves the requests that arrive meanwhile, so callbacks nest to any depth.

A frame is a header (length of the pickle, number of out-of-band buffers),
the pickle, then each buffer: numpy arrays and other large buffers travel as
raw bytes next to the pickle, never re-encoded inside it.
"""

from __future__ import annotations

import pickle
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

_HEADER = struct.Struct("!QIQ?")  # pickle length, buffer count, message id, is it a request
PROTOCOL_MODULE = __name__  # its dataclasses are pickled as themselves, never by reference
_BUFFER_LENGTH = struct.Struct("!Q")


# Modules both processes have: their classes and functions cross by name (exception classes,
# copyreg's and numpy's reconstructors, ufuncs), never as handles or callbacks.
_IMPORTABLE_BY_NAME = ("builtins", "copyreg", "collections", "functools", "numpy", "enum", "datetime", "decimal",
                       "fractions", "ipolyglot.kernel", "ipolyglot.go_bridge.errors", "ipolyglot.go_bridge.marshal")


def crosses_by_name(obj) -> bool:
    """A class or function the other side imports by its qualified name."""
    import inspect

    module = getattr(obj, "__module__", None)
    return bool(module) and str(module).startswith(_IMPORTABLE_BY_NAME) and (isinstance(obj, type) or inspect.isroutine(obj))


def importable_by_name(obj) -> bool:
    """A function or class of a real module (not __main__) that its module and name lead back to."""
    import sys

    module_name = getattr(obj, "__module__", None)
    module = sys.modules.get(module_name) if isinstance(module_name, str) and module_name != "__main__" else None
    if module is None:
        return False
    found = module
    for part in str(getattr(obj, "__qualname__", "")).split("."):
        found = getattr(found, part, None)
        if found is None or part == "<locals>":
            return False
    return found is obj


class NativeCrash(RuntimeError):
    """The worker process that runs native code died during a call; the kernel survived it."""


class WorkerGone(EOFError):
    """The other end of the channel closed (the worker died, or the kernel went away)."""


@dataclass
class Request:
    id: int
    op: str
    args: tuple = ()
    parent: int | None = None  # the request being served when this one was made (nesting)
    released: list[int] = field(default_factory=list)  # handles the sender no longer uses


@dataclass
class Reply:
    id: int
    value: Any = None
    error: BaseException | None = None
    released: list[int] = field(default_factory=list)


class UndecodableMessage(Exception):
    """A frame whose pickle could not be loaded here (a value this process cannot rebuild)."""

    def __init__(self, message_id: int, is_request: bool, error: Exception):
        super().__init__(f"a value could not be copied across the process boundary: {type(error).__name__}: {error}")
        self.message_id = message_id
        self.is_request = is_request


class RemoteError(Exception):
    """An exception raised on the other side that could not be copied as itself."""


def send_message(sock: socket.socket, message, pickler_factory: Callable) -> None:
    """Pickle `message` with out-of-band buffers and write it as one frame."""
    import io

    buffers: list[pickle.PickleBuffer] = []
    stream = io.BytesIO()
    pickler_factory(stream, buffers.append).dump(message)
    body = stream.getbuffer()
    raws = [buffer.raw() for buffer in buffers]
    header = _HEADER.pack(len(body), len(raws), message.id, isinstance(message, Request))
    if not raws and len(body) < 65536:
        sock.sendall(header + bytes(body))
        return
    sock.sendall(header)
    sock.sendall(body)
    for raw in raws:
        sock.sendall(_BUFFER_LENGTH.pack(raw.nbytes))
        sock.sendall(raw)


def _receive_exactly(sock: socket.socket, size: int) -> bytearray:
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if count == 0:
            raise WorkerGone("the channel closed")
        got += count
    return data


def receive_message(sock: socket.socket, unpickler_factory: Callable):
    """Read one frame and unpickle it; raises WorkerGone at end of stream."""
    import io

    body_length, buffer_count, message_id, is_request = _HEADER.unpack(_receive_exactly(sock, _HEADER.size))
    body = _receive_exactly(sock, body_length)
    buffers = []
    for _ in range(buffer_count):
        (length,) = _BUFFER_LENGTH.unpack(_receive_exactly(sock, _BUFFER_LENGTH.size))
        buffers.append(_receive_exactly(sock, length))
    try:
        return unpickler_factory(io.BytesIO(body), buffers).load()
    except Exception as error:  # noqa: BLE001 - the frame is consumed: answer it instead of losing the stream
        raise UndecodableMessage(message_id, is_request, error) from error


def rebuild_exception(cls: type, args: tuple, state: dict) -> BaseException:
    """An exception copied without calling its __init__ (many take other arguments than their args)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


def reduce_exception(obj):
    """Pickler.reducer_override: exceptions cross with their args and attributes, whatever their __init__."""
    if isinstance(obj, BaseException):
        state = {k: v for k, v in vars(obj).items() if k != "__traceback__"}
        return rebuild_exception, (type(obj), obj.args, state)
    return NotImplemented


class CodecPickler(pickle.Pickler):
    """Pickle protocol 5 with a side's persistent references and exceptions copied by their state."""

    def __init__(self, stream, buffer_callback, persistent_id: Callable):
        super().__init__(stream, protocol=5, buffer_callback=buffer_callback)
        self._persistent_id = persistent_id

    def persistent_id(self, obj):
        return self._persistent_id(obj)

    def reducer_override(self, obj):
        if type(obj) is memoryview:  # a buffer argument arrives as its bytes, or as an array of its items
            if obj.format in ("B", "b", "c"):
                return bytes, (obj.tobytes(),)
            import numpy

            return numpy.array(obj).__reduce_ex__(5)
        return reduce_exception(obj)


class PersistentCodec:
    """A side's picklers and unpicklers: its own references go through its
    `persistent_id` / `persistent_load`, everything else is pickled by value."""

    def persistent_id(self, obj):
        raise NotImplementedError

    def persistent_load(self, pid):
        raise NotImplementedError

    def pickler(self, stream, buffer_callback):
        return CodecPickler(stream, buffer_callback, self.persistent_id)

    def unpickler(self, stream, buffers):
        unpickler = pickle.Unpickler(stream, buffers=buffers)
        unpickler.persistent_load = self.persistent_load
        return unpickler


def portable_exception(error: BaseException, pickler_factory: Callable) -> BaseException:
    """The exception itself when it survives a pickle round trip, else a RemoteError with its text."""
    import io

    try:
        stream = io.BytesIO()
        pickler_factory(stream, lambda buffer: None).dump(error)
        return error
    except Exception:  # noqa: BLE001 - anything that cannot cross becomes text
        return RemoteError(f"{type(error).__name__}: {error}")


# ---- what crosses by reference or by description ------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One parameter of a remote callable's signature (its default shown by repr)."""

    name: str
    kind: int  # inspect.Parameter kind, as an int
    default_repr: str | None  # None: no default


@dataclass(frozen=True)
class HandleInfo:
    """An object that stays in the worker: what the kernel needs to build its proxy."""

    id: int
    kind: str  # "function", "class" or "object"
    name: str
    doc: str | None
    parameters: tuple[Parameter, ...] | None  # None: signature unknown
    signature_text: str | None = None  # `(a: int) -> int`: the annotations, rebuilt kernel-side


@dataclass(frozen=True)
class StructKey:
    """Identifies a Go struct class across the boundary: its name, fields and field types."""

    name: str
    fields: tuple[str, ...]
    types: tuple[str, ...]


@dataclass(frozen=True)
class StructDescription:
    """A Go struct class as the kernel rebuilds it: a copy class whose methods run in the worker."""

    key: StructKey
    zero: bytes
    doc: str | None
    methods: tuple[tuple[str, str | None, tuple[Parameter, ...] | None], ...]  # name, doc, parameters


@dataclass(frozen=True)
class EnumDescription:
    """A C++ enum (a Python enum class in the worker), rebuilt as an equal enum in the kernel."""

    name: str
    base: str  # "Enum" or "IntEnum"
    members: tuple[tuple[str, Any], ...]


@dataclass
class CellOutcome:
    """What a cell run in the worker changed: names to bind (handles and copies) and to unbind."""

    bind: dict
    unbind: list
    cache_hit: bool | None
    path: str | None  # the artifact (the names match the cache's BuildReport, which -v reads)
    build_seconds: float | None
    declarations_changed: bool
    live_cells: tuple[str, ...] = ()  # labels of the cells the language's live declarations come from
    go_runtimes: int = 0  # Go runtimes loaded in the worker so far

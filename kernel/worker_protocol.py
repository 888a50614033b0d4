"""The wire between the kernel and its native worker: framed pickle-5 messages on a socket.

Both ends speak the same two messages. A `Request` asks the other side to do
something (the kernel asks the worker to run a cell or call a function; the
worker asks the kernel to run a Python callback or to look a variable up);
a `Reply` answers one request by id. While a side waits for its reply it
serves the requests that arrive meanwhile, so callbacks nest to any depth.

A frame is a header (length of the body, number of out-of-band buffers, the
message id and its kind), the body, then each buffer. Two kinds are compact:
a call of a remote function with plain scalar arguments, and a reply holding a
plain scalar, are plain pickles of a tuple (no persistent references, no
dataclass), which is most of a scalar call's cost otherwise. Out-of-band
buffers (numpy arrays, and bytes, bytearray and str of 256 KiB or more) are
never re-encoded inside the pickle: a small one follows it on the socket; a
large one is written once into a fresh memfd whose descriptor crosses with the
frame (SCM_RIGHTS), and the receiver maps it as its own copy. Nothing is left in
/dev/shm: a memfd vanishes when its last mapping and descriptor go, a dead
process's included.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import pickle
import select
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

INTERRUPT_CHECK_MS = 100  # how often a kernel thread blocked on the worker lets Python see a pending interrupt
_HEADER = struct.Struct("!QIQB")  # body length, buffer count, message id, kind
PROTOCOL_MODULE = __name__  # its dataclasses are pickled as themselves, never by reference
_BUFFER_RECORD = struct.Struct("!QBQ")  # length, where (one of the four below), offset in the arena
INLINE, IN_MEMFD, IN_ARENA, IN_NEW_ARENA = range(4)  # the last two: the sender's arena (new: its memfd comes along)
ARENA_KEPT = 0x80  # in a reply's kind: views of the arena outlived the request, so the sender must not refill it
ARENA_LIMIT = 1 << 30  # larger arguments go through memfds of their own
KIND_REPLY, KIND_REQUEST, KIND_CALL, KIND_VALUE, KIND_SCALAR_CALL, KIND_SCALAR_VALUE = range(6)
# KIND_CALL and KIND_VALUE: compact (pickled tuples); KIND_SCALAR_*: fixed binary layouts, no pickle (see ScalarFrames)
STDERR_PENDING = 0x40  # in a reply's kind: the worker's stderr pipe held unread bytes when it replied
_KIND_FLAGS = ARENA_KEPT | STDERR_PENDING
CALL_HANDLE = "call_handle"  # the op of a call by handle: args (handle, positional arguments)
SHARED_MEMORY_THRESHOLD = 256 * 1024  # buffers from this size cross through a memfd
_COMPACT_TYPES = frozenset((float, int, bool, type(None), complex, str, bytes))
_COMPACT_TEXT_LIMIT = 4096
_WRITE_CHUNK = 1 << 30  # a write(2) moves at most 2 GiB - 4 KiB at once


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
    concurrent: bool = False  # made by a thread native code started: served on a thread of its own


@dataclass
class Reply:
    id: int
    value: Any = None
    error: BaseException | None = None
    released: list[int] = field(default_factory=list)
    arena_kept: bool = False  # the replier still holds views of the arena the request came in (see Arena)
    stderr_pending: bool = False  # output to the worker's stderr came before this reply (see ScalarFrames)


@dataclass
class ProfiledResult:
    """A call's result and the phases its instrumented entry point measured in the worker."""

    value: Any
    phases: Any  # core.profiling.RecordedCall


class UndecodableMessage(Exception):
    """A frame whose pickle could not be loaded here (a value this process cannot rebuild)."""

    def __init__(self, message_id: int, is_request: bool, error: Exception):
        super().__init__(f"a value could not be copied across the process boundary: {type(error).__name__}: {error}")
        self.message_id = message_id
        self.is_request = is_request


class RemoteError(Exception):
    """An exception raised on the other side that could not be copied as itself."""


def _is_compact(value) -> bool:
    kind = type(value)
    return kind in _COMPACT_TYPES and (kind not in (str, bytes) or len(value) <= _COMPACT_TEXT_LIMIT)


def _compact_frame(message) -> bytes | None:
    """The frame of a scalar call or reply, pickled as a plain tuple; None when the message needs the codec."""
    if message.released:
        return None
    if type(message) is Reply:
        if message.error is None and _is_compact(message.value):
            body = pickle.dumps(message.value, 5)
            return _HEADER.pack(len(body), 0, message.id, KIND_VALUE | _reply_flags(message)) + body
    elif message.op == CALL_HANDLE and all(map(_is_compact, message.args[1])):
        body = pickle.dumps((message.parent, message.args[0], message.args[1]), 5)
        return _HEADER.pack(len(body), 0, message.id, KIND_CALL) + body
    return None


class ScalarFrames:
    """The binary frames of the commonest crossing: a call by handle whose arguments are all float,
    int or bool, and a reply holding a float, int, bool or None.

    Each is the usual header, whose buffer-count field (no buffers follow) names the layout,
    then fixed 8-byte fields packed by one precompiled struct: neither side pickles, builds a
    message object or reads a type code byte by byte. A call's layout number spells its
    argument count and types (base 3: float, int, bool), its body the handle and the values;
    a value's layout number is its type, its body the value. A value that does not fit (an int
    beyond int64, more than MAX_ARGUMENTS arguments) takes the pickled path.
    """

    CODES = "dq?"  # the digits of a layout number, in base 3
    DIGITS = {float: 0, int: 1, bool: 2}
    MAX_ARGUMENTS = 16  # 3**16 * 32 fits the 32-bit field
    VALUE_FLOAT, VALUE_INT, VALUE_BOOL, VALUE_NONE = range(4)
    _VALUE_FLOAT = struct.Struct(_HEADER.format + "d")
    _VALUE_INT = struct.Struct(_HEADER.format + "q")
    _FLOAT = struct.Struct("!d")
    _INT = struct.Struct("!q")

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def call_layout(types: tuple) -> tuple[struct.Struct, int] | None:
        """The struct of a whole call frame for these argument types, and its layout number; None when not scalar."""
        if len(types) > ScalarFrames.MAX_ARGUMENTS or not all(kind in ScalarFrames.DIGITS for kind in types):
            return None
        number = 0
        for kind in reversed(types):
            number = number * 3 + ScalarFrames.DIGITS[kind]
        codes = "".join(ScalarFrames.CODES[ScalarFrames.DIGITS[kind]] for kind in types)
        return struct.Struct(f"{_HEADER.format}Q{codes}"), number * 32 + len(types)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def arguments_layout(number: int) -> struct.Struct:
        """The struct of a call's body (handle, then the arguments) for its layout number."""
        count, digits = number % 32, number // 32
        codes = []
        for _ in range(count):
            digits, digit = divmod(digits, 3)
            codes.append(ScalarFrames.CODES[digit])
        return struct.Struct("!Q" + "".join(codes))

    @classmethod
    def call_frame(cls, request_id: int, handle: int, args: tuple) -> bytes | None:
        layout = cls.call_layout(tuple(map(type, args)))
        if layout is None:
            return None
        frame, number = layout
        try:
            return frame.pack(frame.size - _HEADER.size, number, request_id, KIND_SCALAR_CALL, handle, *args)
        except struct.error:  # an int beyond int64
            return None

    @classmethod
    def call_of(cls, number: int, body) -> tuple[int, tuple]:
        """(handle, arguments) of a call frame's body."""
        handle, *args = cls.arguments_layout(number).unpack_from(body)
        return handle, tuple(args)

    @classmethod
    def value_frame(cls, request_id: int, value, flags: int) -> bytes | None:
        kind = type(value)
        if kind is float:
            return cls._VALUE_FLOAT.pack(8, cls.VALUE_FLOAT, request_id, KIND_SCALAR_VALUE | flags, value)
        if kind is int and -(1 << 63) <= value < (1 << 63):
            return cls._VALUE_INT.pack(8, cls.VALUE_INT, request_id, KIND_SCALAR_VALUE | flags, value)
        if kind is bool:
            return cls._VALUE_INT.pack(8, cls.VALUE_BOOL, request_id, KIND_SCALAR_VALUE | flags, value)
        if value is None:
            return cls._VALUE_INT.pack(8, cls.VALUE_NONE, request_id, KIND_SCALAR_VALUE | flags, 0)
        return None

    @classmethod
    def value_of(cls, number: int, body):
        """The value of a value frame's body (8 bytes), of the type its layout number says."""
        if number == cls.VALUE_FLOAT:
            return cls._FLOAT.unpack_from(body)[0]
        value = cls._INT.unpack_from(body)[0]
        return value if number == cls.VALUE_INT else bool(value) if number == cls.VALUE_BOOL else None


def _reply_flags(reply: Reply) -> int:
    return (ARENA_KEPT if reply.arena_kept else 0) | (STDERR_PENDING if reply.stderr_pending else 0)


def send_message(sock: socket.socket, message, pickler_factory: Callable, arena: "Arena | None" = None) -> None:
    """Write `message` as one frame: compact when it can be, else pickled with out-of-band buffers.

    A request's large buffers go into `arena` when it is free, else each into a memfd of its own.
    """
    import io

    frame = _compact_frame(message)
    if frame is not None:
        sock.sendall(frame)
        return
    buffers: list[pickle.PickleBuffer] = []
    stream = io.BytesIO()
    pickler_factory(stream, buffers.append).dump(message)
    body = stream.getbuffer()
    raws = [buffer.raw() for buffer in buffers]
    kind = KIND_REQUEST if isinstance(message, Request) else KIND_REPLY | _reply_flags(message)
    header = _HEADER.pack(len(body), len(raws), message.id, kind)
    if not raws and len(body) < 65536:
        sock.sendall(header + bytes(body))
        return
    large = [raw for raw in raws if raw.nbytes >= SHARED_MEMORY_THRESHOLD and hasattr(os, "memfd_create")]
    placed = arena.place(large, message.id) if arena is not None and large else {}
    sock.sendall(header)
    sock.sendall(body)
    for raw in raws:
        if id(raw) in placed:
            offset, new_fd = placed.pop(id(raw))
            where = IN_ARENA if new_fd is None else IN_NEW_ARENA
            record = _BUFFER_RECORD.pack(raw.nbytes, where, offset)
            if new_fd is None:
                sock.sendall(record)
            else:
                _send_with_fd(sock, record, new_fd)
        elif raw.nbytes >= SHARED_MEMORY_THRESHOLD and hasattr(os, "memfd_create"):
            _send_shared(sock, raw)
        else:
            sock.sendall(_BUFFER_RECORD.pack(raw.nbytes, INLINE, 0))
            sock.sendall(raw)


class Arena:
    """A memfd the kernel keeps mapped and refills with the large buffers of one request at a time.

    The worker maps it once and reads the arguments in place, so a large argument costs one copy
    and no page faults once the arena has grown to its size. It is free again when the reply to
    the request that filled it arrives, unless the worker kept views of it past the call (then the
    reply says so and the next request gets a new arena). It grows to the largest request's buffers.
    """

    ALIGNMENT = 64

    def __init__(self) -> None:
        self.fd: int | None = None
        self.map: mmap.mmap | None = None
        self.size = 0
        self.request_id: int | None = None  # the request whose buffers it holds

    def place(self, raws: list[memoryview], request_id: int) -> dict[int, tuple[int, int | None]]:
        """Copy `raws` in: id(raw) -> (offset, the new memfd to send with the first record or None); {} when busy."""
        total = sum(-(-raw.nbytes // self.ALIGNMENT) * self.ALIGNMENT for raw in raws)
        if self.request_id is not None or total > ARENA_LIMIT:
            return {}
        new_fd = self._grow(total) if total > self.size else None
        placed, offset, view = {}, 0, memoryview(self.map)
        for raw in raws:
            view[offset:offset + raw.nbytes] = raw  # PickleBuffer.raw(): one-dimensional bytes
            placed[id(raw)] = (offset, new_fd)
            new_fd = None
            offset += -(-raw.nbytes // self.ALIGNMENT) * self.ALIGNMENT
        view.release()
        self.request_id = request_id
        return placed

    def _grow(self, needed: int) -> int:
        self.close()
        self.size = max(needed, 1 << 20)
        self.fd = os.memfd_create("ipolyglot-arena", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size, flags=mmap.MAP_SHARED)
        return self.fd

    def replied(self, request_id: int, kept: bool) -> None:
        """The reply to `request_id` arrived: the arena is free, or (kept) given up to the worker's views."""
        if request_id == self.request_id:
            self.request_id = None
            if kept:
                self.close()

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.map, self.size, self.request_id = None, None, 0, None


def _send_shared(sock: socket.socket, raw: memoryview) -> None:
    """One copy of `raw` into a fresh memfd; its descriptor crosses with the record, then this side closes it."""
    fd = os.memfd_create("ipolyglot-buffer", os.MFD_CLOEXEC)
    try:
        written = 0
        while written < raw.nbytes:
            written += os.write(fd, raw[written:written + _WRITE_CHUNK])
        _send_with_fd(sock, _BUFFER_RECORD.pack(raw.nbytes, IN_MEMFD, 0), fd)
    finally:
        os.close(fd)


_ANCILLARY_SPACE = socket.CMSG_SPACE(64 * 4) if hasattr(socket, "CMSG_SPACE") else 0


class PipeConnection:
    """The main connection: a pipe each way, and beside them a socket that carries only descriptors.

    Measured here, a small message's round trip through two pipes takes about half the time and
    CPU of one through a socketpair, and most messages are small calls. A memfd cannot cross a
    pipe: the sender passes it over the socket just before writing the record that names it
    (both under the sender's lock), so the receiver finds it there when it reads that record.
    It offers the few socket methods the channel uses.
    """

    def __init__(self, read_fd: int, write_fd: int, descriptors: socket.socket):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.descriptors = descriptors

    @classmethod
    def from_argument(cls, text: str) -> "PipeConnection":
        """The connection whose descriptors `argument()` spelled in the parent: read, write, socket."""
        read_fd, write_fd, socket_fd = map(int, text.split(","))
        return cls(read_fd, write_fd, socket.socket(fileno=socket_fd))

    def argument(self) -> str:
        return f"{self.read_fd},{self.write_fd},{self.descriptors.fileno()}"

    def fileno(self) -> int:
        return self.read_fd  # select waits for what arrives

    def sendall(self, data) -> None:
        written = os.write(self.write_fd, data)
        if written < len(data):  # a write cut short by a signal, or larger than 2 GiB
            view = memoryview(data).cast("B")
            while written < len(view):
                written += os.write(self.write_fd, view[written:written + _WRITE_CHUNK])

    def recvmsg_into(self, buffers, ancillary_size: int = 0):
        return os.readv(self.read_fd, buffers), [], 0, None

    def send_with_fd(self, data: bytes, fd: int) -> None:
        socket.send_fds(self.descriptors, [b"\0"], [fd])
        self.sendall(data)

    def receive_fds(self) -> list[int]:
        _, fds, _, _ = socket.recv_fds(self.descriptors, 1, 8)
        if not fds:
            raise WorkerGone("the channel closed")
        return fds

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.descriptors.close()
        self.read_fd = self.write_fd = -1


def pipe_connection_pair() -> tuple[PipeConnection, PipeConnection]:
    """Two ends of a PipeConnection: one for this process, one whose descriptors a child inherits."""
    to_child_read, to_child_write = os.pipe()
    to_parent_read, to_parent_write = os.pipe()
    mine, theirs = socket.socketpair()
    return (PipeConnection(to_parent_read, to_child_write, mine),
            PipeConnection(to_child_read, to_parent_write, theirs))


def _send_with_fd(sock, data: bytes, fd: int) -> None:
    if isinstance(sock, PipeConnection):
        sock.send_with_fd(data, fd)
    else:
        socket.send_fds(sock, [data], [fd])


class FrameReader:
    """Reads one socket's frames through a buffer of its own.

    A small frame (header and body) usually arrives in one recvmsg. Bytes read before an
    interrupt stay here for the next read, so a read cut short never puts the stream out of
    step. Every read takes ancillary data, so the memfds that come with large buffers are
    kept in order wherever a read happens to end.
    """

    def __init__(self, sock: socket.socket, size: int = 65536):
        self.sock = sock
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)  # never resized: moves within it keep its length
        self.whole = [self.view]  # os.readv's list, made once
        self.pipe_fd = sock.read_fd if isinstance(sock, PipeConnection) else None
        self.poller = select.poll()
        if self.pipe_fd is not None:
            self.poller.register(self.pipe_fd, select.POLLIN)
        self.start = 0
        self.end = 0
        self.fds: list[int] = []
        self.arena: mmap.mmap | None = None  # the sender's arena, mapped once
        self.arena_request: int | None = None  # the request whose buffers are in the arena

    @property
    def buffered(self) -> int:
        return self.end - self.start

    def _receive(self, view: memoryview) -> int:
        if self.pipe_fd is not None:  # descriptors come on their own socket (PipeConnection.receive_fds)
            count = os.readv(self.pipe_fd, [view])
            if count == 0:
                raise WorkerGone("the channel closed")
            return count
        count, ancillary, _, _ = self.sock.recvmsg_into([view], _ANCILLARY_SPACE)
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                self.fds.extend(struct.unpack(f"{len(data) // 4}i", data[:len(data) - len(data) % 4]))
        if count == 0:
            raise WorkerGone("the channel closed")
        return count

    def receive_scalar(self, kind: int, interruptible: bool = False) -> tuple[int, int, int, memoryview] | None:
        """With nothing buffered: one read, and when it brought a whole scalar frame of `kind` first,
        that frame taken as (message id, flags, layout number, body). Otherwise None, and what was
        read stays buffered for receive_message: a caller that gets None reads on the general way.

        `interruptible`: wait in poll with a timeout first, so that Python's handler runs for a
        SIGINT the kernel delivered to another of its threads (Go's or Python's): such a signal
        does not end a read the main thread is blocked in."""
        if interruptible and self.pipe_fd is not None:
            while not self.poller.poll(INTERRUPT_CHECK_MS):
                pass  # each turn runs Python's pending signal handlers
        self.end = os.readv(self.pipe_fd, self.whole) if self.pipe_fd is not None else self._receive(self.view)
        if self.end < _HEADER.size:
            if self.end == 0:
                raise WorkerGone("the channel closed")
            return None
        body_length, layout, message_id, flagged_kind = _HEADER.unpack_from(self.buffer)
        end = _HEADER.size + body_length
        if flagged_kind & ~_KIND_FLAGS != kind or end > self.end:
            return None
        body = self.view[_HEADER.size:end]
        self.start = end
        if self.start == self.end:
            self.start = self.end = 0
        return message_id, flagged_kind & _KIND_FLAGS, layout, body

    def take(self, size: int) -> memoryview | bytearray:
        """The next `size` bytes: a view of the buffer (valid until the next take), or a bytearray of their own."""
        if size > len(self.buffer):
            return self._take_large(size)
        if self.start + size > len(self.buffer):  # move what is buffered to the front
            self.buffer[:self.buffered] = self.buffer[self.start:self.end]
            self.start, self.end = 0, self.buffered
        view = self.view
        while self.end - self.start < size:
            self.end += self._receive(view[self.end:])
        data = view[self.start:self.start + size]
        self.start += size
        if self.start == self.end:
            self.start = self.end = 0
        return data

    def _take_large(self, size: int) -> bytearray:
        data = bytearray(size)
        view = memoryview(data)
        got = min(size, self.buffered)
        view[:got] = self.buffer[self.start:self.start + got]
        self.start += got
        if self.start == self.end:
            self.start = self.end = 0
        while got < size:
            got += self._receive(view[got:])
        return data

    def buffer_of(self, length: int, where: int, offset: int, message_id: int):
        """An out-of-band buffer: its bytes, a mapping of the memfd that came with its record, or a view of the arena."""
        if where == INLINE:
            return bytearray(self.take(length))
        if where in (IN_MEMFD, IN_NEW_ARENA):
            if not self.fds and isinstance(self.sock, PipeConnection):
                self.fds.extend(self.sock.receive_fds())
            if not self.fds:
                raise WorkerGone("a shared buffer arrived without its memfd")
            fd = self.fds.pop(0)
            try:
                mapping = mmap.mmap(fd, 0 if where == IN_NEW_ARENA else length,
                                    flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
            finally:
                os.close(fd)  # the mapping keeps the memory: it goes when the value that owns it does
            if where == IN_MEMFD:
                return mapping
            self.arena = mapping  # views of an older arena keep that one alive as long as they live
        self.arena_request = message_id
        return memoryview(self.arena)[offset:offset + length]

    def arena_kept(self, request_id: int) -> bool:
        """After the request that filled the arena: whether views of it outlived it (then the arena is given up).

        Every view of the arena, whatever wraps it (numpy wraps it in a memoryview of its own),
        holds the arena's mmap through a buffer export: only this reader refers to it otherwise.
        """
        if request_id != self.arena_request:
            return False
        self.arena_request = None
        kept = self.arena is not None and sys.getrefcount(self.arena) > 2  # this attribute and the argument
        if kept:
            self.arena = None
        return kept

    def close_fds(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


def receive_message(reader: FrameReader, unpickler_factory: Callable):
    """Read one frame and decode it; raises WorkerGone at end of stream."""
    import io

    body_length, buffer_count, message_id, kind = _HEADER.unpack(reader.take(_HEADER.size))
    arena_kept, stderr_pending, kind = bool(kind & ARENA_KEPT), bool(kind & STDERR_PENDING), kind & ~_KIND_FLAGS
    body = reader.take(body_length)
    if kind == KIND_SCALAR_VALUE:
        return Reply(message_id, ScalarFrames.value_of(buffer_count, body), stderr_pending=stderr_pending)
    if kind == KIND_SCALAR_CALL:
        handle, args = ScalarFrames.call_of(buffer_count, body)
        return Request(message_id, CALL_HANDLE, (handle, args))
    if kind == KIND_VALUE:
        return Reply(message_id, pickle.loads(body), arena_kept=arena_kept, stderr_pending=stderr_pending)
    if kind == KIND_CALL:
        parent, handle, args = pickle.loads(body)
        return Request(message_id, CALL_HANDLE, (handle, args), parent)
    body = bytes(body)  # the buffer's view would change under the records read next
    buffers = [reader.buffer_of(*_BUFFER_RECORD.unpack(reader.take(_BUFFER_RECORD.size)), message_id)
               for _ in range(buffer_count)]
    try:
        message = unpickler_factory(io.BytesIO(body), buffers).load()
    except Exception as error:  # noqa: BLE001 - the frame is consumed: answer it instead of losing the stream
        raise UndecodableMessage(message_id, kind != KIND_REPLY, error) from error
    if arena_kept:
        message.arena_kept = True
    if stderr_pending:
        message.stderr_pending = True
    return message


def rebuild_exception(cls: type, args: tuple, state: dict) -> BaseException:
    """An exception copied by its args and attributes.

    A custom __init__ is not called (many take other arguments than their args); a builtin one
    is, because builtins such as UnicodeError keep their fields (what str() shows) only through it.
    """
    error = cls.__new__(cls, *args)
    if _init_is_builtin(cls):
        with contextlib.suppress(Exception):
            error.__init__(*args)
    error.args = args
    error.__dict__.update(state)
    return error


def _init_is_builtin(cls: type) -> bool:
    """Whether the __init__ that `cls` uses is a builtin exception's, not one written in Python."""
    defining = next(klass for klass in cls.__mro__ if "__init__" in vars(klass))
    return defining.__module__ == "builtins"


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
        kind = type(obj)
        if kind in _LARGE_TEXT_TYPES and len(obj) >= SHARED_MEMORY_THRESHOLD:
            return large_text_reference(obj)
        return self._persistent_id(obj)

    def reducer_override(self, obj):
        if type(obj) is memoryview:  # a buffer argument arrives as its bytes, or as an array of its items
            if obj.format in ("B", "b", "c"):
                return bytes, (obj.tobytes(),)
            import numpy

            return numpy.array(obj).__reduce_ex__(5)
        return reduce_exception(obj)


_LARGE_TEXT_TYPES = (bytes, bytearray, str)
_LARGE_TEXT_TAG = "large_text"


def large_text_reference(obj) -> tuple:
    """A large bytes, bytearray or str as an out-of-band buffer (pickle would copy it into the body)."""
    data = obj.encode("utf-8", "surrogatepass") if type(obj) is str else obj
    return (_LARGE_TEXT_TAG, type(obj).__name__, pickle.PickleBuffer(data))


def load_large_text(type_name: str, buffer):
    """The receiver's own copy, out of the buffer the frame brought."""
    if type_name == "str":
        return str(buffer, "utf-8", "surrogatepass")
    return bytes(buffer) if type_name == "bytes" else bytearray(buffer)


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
        unpickler.persistent_load = self._load_reference
        return unpickler

    def _load_reference(self, pid):
        if pid[0] == _LARGE_TEXT_TAG:
            return load_large_text(pid[1], pid[2])
        return self.persistent_load(pid)


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
    kind: str  # "function", "class", "channel" (a Go channel) or "object"
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
    methods: tuple[tuple[str, str | None, tuple[Parameter, ...] | None, str | None], ...]  # name, doc, parameters, signature text


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
    declared_in: dict = field(default_factory=dict)  # each live declaration's name -> the label of its cell

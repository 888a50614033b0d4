"""The native worker: a spawned Python process that builds, loads and runs the session's native code.

Started by the kernel's supervisor as `python -m ipolyglot.kernel.worker_main MAIN KERNEL_PID LISTENER IDLE PAGE`
with MAIN the descriptors of the kernel main thread's connection (a PipeConnection), LISTENER a
listening socket where the kernel's other threads connect, and IDLE a socket where this process
asks the kernel while none of its threads waits on us; it dies with the kernel (parent-death signal). It runs the same backends as the kernel
does in-process; what they bind stays here and the kernel gets proxies (by
handle) or copies (Go structs, enums, plain values). A reader thread routes
what arrives: replies to the thread waiting for them, nested requests to the
thread whose callback is being served, everything else to the main thread.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import ctypes
import enum
import faulthandler
import fcntl
import inspect
import itertools
import os
import pickle
import queue
import signal
import socket
import sys
import termios
import threading
import time
import weakref
from collections.abc import Mapping
from types import SimpleNamespace

from .core.profiling import PROFILER
from .fast_channel import worker_lane
from .worker_protocol import (
    KIND_SCALAR_CALL, STDERR_PENDING, FrameReader, PipeConnection, PersistentCodec, ProfiledResult, ScalarFrames,
    CellOutcome, EnumDescription, HandleInfo, Parameter, Reply, Request, StructDescription, StructKey, WorkerGone,
    PROTOCOL_MODULE, RemoteError, UndecodableMessage, crosses_by_name, rebuild_exception, portable_exception, receive_message, send_message,
)

# Modules whose objects the kernel gets as copies (a build error's diagnostics).
_COPIED_INSTANCES_OF = ("ipolyglot.kernel.core.diagnostics",)
_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset, range, slice,
                pickle.PickleBuffer)


def describe_parameters(obj) -> tuple[Parameter, ...] | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return tuple(
        Parameter(p.name, int(p.kind), None if p.default is inspect.Parameter.empty else repr(p.default))
        for p in signature.parameters.values()
    )


def signature_text(obj) -> str | None:
    """The signature as text, annotations included: annotations are objects that
    need not pickle, so the kernel rebuilds them from their names."""
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return None


def handle_kind(obj) -> str:
    """What kind of proxy the kernel builds for an object that stays here (HandleInfo.kind)."""
    from ipolyglot.go_bridge.channels import GoChannel

    if isinstance(obj, GoChannel):
        return "channel"
    return "class" if isinstance(obj, type) else "function" if callable(obj) else "object"


class WorkerCodec(PersistentCodec):
    """Decides, in the worker, what crosses by copy and what stays behind a handle."""

    def __init__(self, channel: "WorkerChannel"):
        self.channel = channel  # the kernel's main connection
        self.idle_channel: WorkerChannel | None = None  # where callbacks go while the main connection serves no call
        self.local = threading.local()  # .channel: the connection whose call this thread runs
        self.released: list[int] = []  # kernel callbacks this side dropped, sent with the next message
        self.handles: dict[int, object] = {}
        self.handle_of: dict[int, int] = {}  # id(obj) -> handle, while the kernel holds it
        self.next_handle = itertools.count(1)
        self.struct_classes: dict[StructKey, type] = {}
        self.enum_classes: dict[EnumDescription, type] = {}
        self.enum_description_of: dict[type, EnumDescription] = {}
        self.callbacks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self.lock = threading.Lock()

    # -- worker -> kernel -------------------------------------------------------------
    def persistent_id(self, obj):
        kind = type(obj)
        if isinstance(obj, BaseException) and hasattr(obj, "_kernel_exception_id"):
            # the kernel's own object again, with the notes added here (a C++ thread that it ended, say)
            return ("kernel_exception", obj._kernel_exception_id, f"{kind.__name__}: {obj}", tuple(getattr(obj, "__notes__", ())))
        if kind in _PLAIN_TYPES or isinstance(obj, BaseException) or kind.__module__ == PROTOCOL_MODULE:
            return None
        module = getattr(kind, "__module__", "") or ""
        if module.startswith("numpy"):
            return None
        from ipolyglot.go_bridge.marshal import GoStruct

        if isinstance(obj, GoStruct):
            return ("gostruct", self._struct_key(kind), obj._asdict())
        if isinstance(obj, type) and issubclass(obj, GoStruct) and obj is not GoStruct:
            return ("gostruct_class", self._struct_description(obj))
        if isinstance(obj, enum.Enum):
            return ("enum", self._enum_description(kind), obj.name)
        if isinstance(obj, type) and issubclass(obj, enum.Enum):
            return ("enum_class", self._enum_description(obj))
        if crosses_by_name(obj) or kind.__module__ in _COPIED_INSTANCES_OF:
            return None  # importable classes and functions by name; diagnostics by value
        return ("handle", self._handle(obj))

    def _handle(self, obj) -> HandleInfo:
        with self.lock:
            handle = self.handle_of.get(id(obj))
            if handle is None:
                handle = next(self.next_handle)
                self.handles[handle] = obj
                self.handle_of[id(obj)] = handle
        kind = handle_kind(obj)
        name = getattr(obj, "__name__", None) or getattr(obj, "__qualname__", None) or type(obj).__name__
        parameters = describe_parameters(obj) if kind != "object" else None
        return HandleInfo(handle, kind, str(name), getattr(obj, "__doc__", None) if kind != "object" else None, parameters,
                          signature_text(obj) if parameters is not None else None)

    def release(self, handles: list[int]) -> None:
        with self.lock:
            for handle in handles:
                obj = self.handles.pop(handle, None)
                if obj is not None:
                    self.handle_of.pop(id(obj), None)

    def _struct_key(self, cls: type) -> StructKey:
        key = StructKey(cls._go_name_, tuple(cls._go_fields_), tuple(cls._go_types_))
        self.struct_classes[key] = cls
        return key

    def _struct_description(self, cls: type) -> StructDescription:
        methods = []
        for name in sorted(getattr(cls, "_go_methods_", ()) or ()):
            method = getattr(cls, name)
            methods.append((name, method.__doc__, describe_parameters(method), signature_text(method)))
        return StructDescription(self._struct_key(cls), bytes(cls._go_zero_ or b""), cls.__doc__, tuple(methods))

    def _enum_description(self, cls: type) -> EnumDescription:
        description = self.enum_description_of.get(cls)
        if description is None:
            base = "IntEnum" if issubclass(cls, int) else "Enum"
            description = EnumDescription(cls.__name__, base, tuple((m.name, m.value) for m in cls))
            self.enum_description_of[cls] = description
            self.enum_classes[description] = cls
        return description

    # -- kernel -> worker ---------------------------------------------------------------
    def persistent_load(self, pid):
        tag = pid[0]
        if tag == "handle":
            try:
                return self.handles[pid[1]]
            except KeyError:
                raise pickle.UnpicklingError(f"native object #{pid[1]} was already released") from None
        if tag == "gostruct":
            cls = self.struct_classes.get(pid[1])
            if cls is None:
                return dict(pid[2])  # a struct the worker no longer has: its fields cross as a dict
            obj = cls.__new__(cls)
            for name, value in pid[2].items():
                setattr(obj, name, value)
            return obj
        if tag == "enum":
            return self.enum_classes[pid[1]][pid[2]]
        if tag == "callback":
            return self._callback(pid[1])
        if tag == "kernel_exception":
            _, exception_id, type_name, text, cls, args = pid
            error = rebuild_exception(cls, args, {}) if cls is not None else RemoteError(f"{type_name}: {text}")
            error._kernel_exception_id = exception_id
            return error
        raise pickle.UnpicklingError(f"unknown reference {tag!r}")

    def _callback(self, callback_id: int):
        existing = self.callbacks.get(callback_id)
        if existing is not None:
            return existing
        def call_into_kernel(*args, **kwargs):
            return self.call_kernel("callback", callback_id, args, kwargs)

        proxy = _KernelCallable(call_into_kernel)
        weakref.finalize(proxy, self.released.append, callback_id)
        self.callbacks[callback_id] = proxy
        return proxy

    def current_channel(self) -> "WorkerChannel":
        """The connection of the kernel thread whose call this thread serves (else the main one)."""
        return getattr(self.local, "channel", None) or self.channel

    def call_kernel(self, op: str, *args):
        """Ask the kernel from any thread: over the connection whose call this thread serves; from a
        thread native code started (a goroutine, a std::thread), over the main connection while
        the kernel's main thread waits on it for a call (it serves the request in the call, in
        order with the call's output), else over the idle connection, which a thread of the
        kernel serves at any time (a Go server calling Python handlers between cells)."""
        channel = getattr(self.local, "channel", None)
        if channel is not None or self.idle_channel is None or threading.get_ident() == _MAIN_THREAD:
            return (channel or self.channel).request(op, *args)
        answer = self.channel.request_while_serving(op, *args)
        if answer is _NOT_SERVING:
            return self.idle_channel.request(op, *args)
        return answer



class _KernelCallable:
    """A Python callable of the kernel, as native code in the worker sees it."""

    def __init__(self, call):
        self._call = call

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)


class InterruptGate:
    """SIGINT on the worker's main thread: KeyboardInterrupt where it runs code, but never inside
    the channel, where it could lose a message read halfway. One that arrives there is raised
    when the channel hands the main thread a reply (the call waiting for it stops), and dropped
    when it hands it a new request (the call it was meant for has ended)."""

    def __init__(self) -> None:
        self.in_channel = 0
        self.pending = False

    def handle(self, signum, frame) -> None:
        if self.in_channel:
            self.pending = True
            return
        raise KeyboardInterrupt

    def leaving_with(self, message) -> None:
        if self.pending and message is not _CLOSED:
            self.pending = False
            if isinstance(message, Reply):
                raise KeyboardInterrupt


INTERRUPT_GATE = InterruptGate()


@contextlib.contextmanager
def _interrupts_held_while_reading():
    previous = signal.signal(signal.SIGINT, INTERRUPT_GATE.handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_MAIN_THREAD = threading.main_thread().ident
_YOUR_TURN = object()  # in an inbox: the reader left, try to read yourself
_CLOSED = object()  # in an inbox: the connection ended
_NOT_SERVING = object()  # request_while_serving: the connection serves no call of the kernel's now
IDLE = None  # the inbox of the thread that serves the connection's new requests


class WorkerChannel:
    """One connection to the kernel; safe to use from any thread (goroutines call back).

    No thread of its own reads it. A thread that waits for a message (its reply, or the
    next request when it serves the connection) reads the socket itself while no other
    thread does, and puts what belongs to another waiter into that waiter's inbox
    (leader/follower). A call thus costs two wake-ups, one per process, as a bare pipe
    round trip does: the thread that runs the call reads it, and the kernel's thread that
    made it reads the reply.

    The first connection's calls run on the main thread (an interrupt reaches them there);
    each further connection is one kernel thread's, and its calls run on a thread of its own,
    so calls from different kernel threads run at the same time.
    """

    def __init__(self, sock: socket.socket, codec: WorkerCodec | None = None, handlers: dict | None = None,
                 when_closed=lambda: os._exit(0)):
        self.sock = sock
        self.reader = FrameReader(sock)
        self.codec = codec or WorkerCodec(self)
        self.send_lock = threading.Lock()
        self.read_lock = threading.Lock()
        self.inboxes: dict[int | None, queue.SimpleQueue] = {IDLE: queue.SimpleQueue()}
        self.waiting: set[int | None] = set()  # keys of threads blocked on their inbox
        self.closed = False
        self.when_closed = when_closed  # the main connection: the kernel is gone, nothing left to serve
        self.ids = itertools.count(1)
        self.handlers = handlers if handlers is not None else {}
        self.outermost: int | None = None  # the kernel's request this connection runs now, not nested in one of ours
        self.lane = None  # the main connection's shared-memory lane (kernel/fast_channel.py), served by serve_forever

    def send(self, message) -> None:
        with self.send_lock:
            self._send_locked(message)

    def _send_locked(self, message) -> None:
        released = self.codec.released
        if released:
            message.released, released[:] = list(released), []
        send_message(self.sock, message, self.codec.pickler)
        if type(message) is Reply:
            self._replied(message.id)

    def _replied(self, request_id: int) -> None:
        """With the send lock held: the reply to `request_id` went out."""
        if request_id == self.outermost:
            self.outermost = None  # from now on the kernel no longer reads this connection
            if self.lane is not None:
                self.lane.replied()  # a call posted in the lane and answered here: no thread may add to it now

    def serve_forever(self) -> None:
        """Run the requests that start here (not nested in a call of ours) until the connection ends."""
        while True:
            if self.lane is not None and self.reader.buffered == 0 and self._serve_lane():
                continue
            if self.reader.buffered == 0 and self._serve_scalar_call():
                continue
            request = self._next_message(IDLE)
            if request is _CLOSED:
                return
            self.outermost = request.id
            self.execute(request)
            del request  # its arguments (shared buffers among them) go now, not with the next request

    def _next_message(self, key):
        """The next message for `key` (a request id of ours, or IDLE): routed here, or read here."""
        if threading.get_ident() != _MAIN_THREAD:
            return self._wait_for(key)
        INTERRUPT_GATE.in_channel += 1
        try:
            message = self._wait_for(key)
        finally:
            INTERRUPT_GATE.in_channel -= 1
        INTERRUPT_GATE.leaving_with(message)
        return message

    def _serve_lane(self) -> bool:
        """Serve the calls the kernel posts in the shared-memory lane while it keeps posting (the loop
        is C's, with the GIL released while it spins). True when a call came back here to be
        answered on the pipe (it was answered); False when the pipe is to be read now."""
        INTERRUPT_GATE.in_channel += 1
        try:
            work = self.lane.serve(self.codec.handles, PROFILER.take_last, self.reader.pipe_fd)
        except Exception as error:  # noqa: BLE001 - e.g. no memory for the arguments: the call's error
            work = ("failed", self.lane.request_id, error)
        finally:
            INTERRUPT_GATE.in_channel -= 1
        if work is None:
            INTERRUPT_GATE.pending = False  # it came between calls
            return False
        kind, request_id, *rest = work
        with self.send_lock:
            self.lane.divert()  # the kernel reads the pipe for this reply (it may have started to already)
            self.outermost = request_id
        if kind == "call":
            self._call_and_reply(request_id, *rest)
        elif kind == "failed":
            self.reply_failure(request_id, rest[0])
        else:
            self.reply(request_id, ProfiledResult(*rest) if kind == "profiled" else rest[0])
        return True

    def _call_and_reply(self, request_id: int, handle: int, args: tuple) -> None:
        """Run a call by handle and send its result or its error."""
        try:
            result = self.handlers["call_handle"](handle, args)
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the kernel
            self.reply_failure(request_id, error)
            return
        self.reply(request_id, result)

    def _serve_scalar_call(self) -> bool:
        """Read the next frame here and, when it is a scalar call (ScalarFrames), run it and reply
        without message objects or pickles. False when nothing was run: what was read stays in
        the reader for the general path (another thread may be leading, or the frame is another)."""
        if not self.inboxes[IDLE].empty() or not self.read_lock.acquire(blocking=False):
            return False
        on_main = threading.get_ident() == _MAIN_THREAD
        try:
            if on_main:
                INTERRUPT_GATE.in_channel += 1
            try:
                received = self.reader.receive_scalar(KIND_SCALAR_CALL)
            finally:
                if on_main:
                    INTERRUPT_GATE.in_channel -= 1
        except (WorkerGone, OSError):
            received = None  # the general path reads the end of stream again and closes
        finally:
            self._give_up_lead()
        if received is None:
            return False
        if on_main:
            INTERRUPT_GATE.pending = False  # it was meant for a call that has ended
        request_id, _, layout, body = received
        self.outermost = request_id
        handle, args = ScalarFrames.call_of(layout, body)
        del body  # a view of the reader's buffer
        self._call_and_reply(request_id, handle, args)
        return True

    def _give_up_lead(self) -> None:
        """Stop reading the socket; one of the threads waiting for a message reads next."""
        self.read_lock.release()
        for other in list(self.waiting):
            box = self.inboxes.get(other)
            if box is not None:
                box.put(_YOUR_TURN)

    def _wait_for(self, key):
        inbox = self.inboxes[key]
        while True:
            while not inbox.empty():
                item = inbox.get()
                if item is not _YOUR_TURN:
                    return item
            if self.closed:
                return _CLOSED
            self.waiting.add(key)
            try:
                leading = self.read_lock.acquire(blocking=False)
                if not leading:
                    item = inbox.get()
                    if item is _YOUR_TURN:
                        continue
                    return item
            finally:
                self.waiting.discard(key)
            try:
                return self._read_until(key, inbox)
            finally:
                self._give_up_lead()

    def _read_until(self, key, inbox: queue.SimpleQueue):
        while True:
            if not inbox.empty():  # routed here before this thread took the lead
                item = inbox.get()
                if item is not _YOUR_TURN:
                    return item
            message = self._read()
            if message is _CLOSED:
                return _CLOSED
            owner = self._owner(message)
            if owner == key:
                return message
            box = self.inboxes.get(owner)
            if box is not None:
                box.put(message)

    def _owner(self, message):
        """Who gets a message: a reply its waiter, a nested request the waiter of its parent, else IDLE."""
        if isinstance(message, Reply):
            return message.id
        return message.parent if message.parent in self.inboxes else IDLE

    def _read(self):
        while True:
            try:
                message = receive_message(self.reader, self.codec.unpickler)
            except UndecodableMessage as undecodable:
                message = self._answer_undecodable(undecodable)
                if message is None:
                    continue
            except (WorkerGone, OSError):
                self._close()
                return _CLOSED
            if message.released:
                self.codec.release(message.released)
            return message

    def _close(self) -> None:
        self.closed = True
        for box in list(self.inboxes.values()):
            box.put(_CLOSED)
        self.when_closed()

    def _answer_undecodable(self, undecodable: UndecodableMessage):
        """A request is answered with the error; a reply becomes an error reply for its waiter."""
        error = TypeError(str(undecodable))
        if undecodable.is_request:
            self.send(Reply(undecodable.message_id, error=error))
            return None
        return Reply(undecodable.message_id, error=error)

    def request(self, op: str, *args):
        """Ask the kernel; while waiting, serve what the kernel asks in turn (nested calls)."""
        request_id = next(self.ids)
        self.inboxes[request_id] = queue.SimpleQueue()
        try:
            if self.lane is not None and threading.get_ident() == _MAIN_THREAD:
                self.lane.divert()  # a call from the lane asks the kernel: the kernel reads the pipe from now on
            self.send(Request(request_id, op, args))
            return self._await_reply(request_id)
        finally:
            del self.inboxes[request_id]

    def request_while_serving(self, op: str, *args):
        """As `request`, when the kernel is reading this connection for a call it made (the request
        then reaches the kernel before the call's reply can); else _NOT_SERVING, nothing sent.
        A call running from the shared-memory lane is answered on the pipe from then on."""
        request_id = next(self.ids)
        self.inboxes[request_id] = queue.SimpleQueue()
        try:
            with self.send_lock:
                if self.outermost is None:
                    if self.lane is None or not self.lane.divert():
                        return _NOT_SERVING
                    self.outermost = self.lane.request_id
                self._send_locked(Request(request_id, op, args, concurrent=True))
            return self._await_reply(request_id)
        finally:
            del self.inboxes[request_id]

    def _await_reply(self, request_id: int):
        while True:
            message = self._next_message(request_id)
            if message is _CLOSED:
                raise WorkerGone("the kernel closed the connection")
            if isinstance(message, Reply):
                if message.error is not None:
                    raise message.error
                return message.value
            self.execute(message)

    def execute(self, request: Request) -> None:
        try:
            value = self.handlers[request.op](*request.args)
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the kernel
            request.args = ()
            PROFILER.take_last()  # a record it left belongs to no call the kernel times
            self.reply_failure(request.id, error)
            return
        PROFILER.take_last()  # a record it left belongs to no call the kernel times
        request.args = ()  # arguments in the kernel's arena go now: the kernel may refill it once it has the reply
        self.reply(request.id, value)

    def reply(self, request_id: int, value) -> None:
        """Send a request's result: in a scalar frame when it is one, else pickled."""
        arena_kept = self.reader.arena_kept(request_id)
        flags = STDERR_PENDING if flush_native_output() else 0
        frame = None if self.codec.released or arena_kept else ScalarFrames.value_frame(request_id, value, flags)
        if frame is not None:
            with self.send_lock:
                self.sock.sendall(frame)
                self._replied(request_id)
            return
        reply = Reply(request_id, value, arena_kept=arena_kept, stderr_pending=bool(flags))
        try:
            self.send(reply)
        except Exception as error:  # noqa: BLE001 - a result that cannot be copied
            self.send(Reply(request_id, error=TypeError(f"the result cannot be copied to the kernel: {error}")))

    def reply_failure(self, request_id: int, error: BaseException) -> None:
        if os.environ.get("IPOLYGLOT_WORKER_DEBUG"):
            import traceback

            traceback.print_exc()
        reply = Reply(request_id, error=portable_exception(error.with_traceback(None), self.codec.pickler))
        reply.arena_kept = self.reader.arena_kept(request_id)
        reply.stderr_pending = flush_native_output()
        self.send(reply)


_libc = ctypes.CDLL(None)
_libc.fflush.argtypes = [ctypes.c_void_p]


def flush_native_output() -> bool:
    """Push C stdio buffers into fds 1 and 2 before replying, so output precedes the reply.

    True when the stderr pipe still holds bytes the kernel's tee has not read: the kernel
    then copies them out before it returns the reply (one ioctl here saves the kernel a
    poll of the pipe on every call)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    _libc.fflush(None)
    return _stderr_unread() > 0


def _stderr_unread() -> int:
    """Bytes waiting in the stderr pipe (any end of a Linux pipe answers FIONREAD); 0 when it is no pipe."""
    count = array.array("i", (0,))
    try:
        fcntl.ioctl(2, termios.FIONREAD, count, True)
    except OSError:
        return 0
    return count[0]


def profiled_call(function, args: tuple, kwargs: dict):
    """The function's result; with the phases it measured when it was built with profiling, so the
    kernel's profiler can show them beside the process crossing. (What other requests record,
    a Go method's call for one, they drop when they end: see WorkerChannel.execute.)"""
    result = function(*args, **kwargs)
    phases = PROFILER.take_last()
    return result if phases is None else ProfiledResult(result, phases)


class KernelNamespace(Mapping):
    """The kernel's user namespace, read on demand (for `-i`): values arrive as copies."""

    def __init__(self, channel: WorkerChannel):
        self._channel = channel

    def __getitem__(self, name):
        found, value = self._channel.request("user_ns_get", name)
        if not found:
            raise KeyError(name)
        return value

    def __contains__(self, name) -> bool:
        return self._channel.request("user_ns_has", name)

    def __iter__(self):
        return iter(self._channel.request("user_ns_keys"))

    def __len__(self) -> int:
        return len(self._channel.request("user_ns_keys"))


class Worker:
    """The operations the kernel can ask for, over the session's backends."""

    def __init__(self, channel: WorkerChannel):
        from .core.cells import CellRegistry
        from .core.pipeline import InProcessLoader, Pipeline

        self.channel = channel
        self.backends: dict = {}
        self.cache = None
        self.cells = CellRegistry()
        self.pipeline = Pipeline(InProcessLoader())
        self.session_context = None  # the last cell's context: rm and reset build with its cache and messages
        channel.handlers.update(
            run_cell=self.run_cell, command=self.command, call=self.call, call_handle=self.call_handle,
            getattr=getattr, setattr=setattr,
            repr=repr, eq=lambda a, b: a == b, dir=dir, gomethod=self.gomethod, info=self.info, ping=lambda: os.getpid(),
            completion_session=self.completion_session,
            package_values=self.package_values, restore_package_values=self.restore_package_values,
        )
        channel.handlers.update(proxy_handlers())
        channel.handlers.update(go_profiler_handlers(self))

    def backend(self, language: str):
        if language not in self.backends:
            import importlib

            from .magics import BACKENDS

            module_name, class_name = BACKENDS[language]
            self.backends[language] = getattr(importlib.import_module(module_name), class_name)()
        return self.backends[language]

    def run_cell(self, language: str, line: str, cell: str, label: str, profile_always: bool) -> CellOutcome:
        from .core.backend import CellContext
        from .core.cache import BuildCache
        from .core.options import make_parser, parse_line

        if self.cache is None:
            self.cache = BuildCache()
        backend = self.backend(language)
        options = parse_line(make_parser(language, backend), line)
        channel = self.channel.codec.current_channel()  # the connection of the kernel thread that asked

        @contextlib.contextmanager
        def building(what: str):
            channel.request("building_enter", what)
            feedback = SimpleNamespace(outcome="built")
            ok = False
            try:
                yield feedback
                ok = True
            finally:
                channel.request("building_exit", feedback.outcome, ok)

        ctx = CellContext(
            cell_label=label,
            cache=self.cache,
            cells=self.cells,
            toolchain=backend.find_toolchain,
            verbose=lambda message: channel.request("verbose", message),
            warn=lambda message: channel.request("warn", message),
            building=building,
            profile=options.profile or profile_always,
            force=options.force,
        )
        self.session_context = ctx
        before = backend.declarations.table()
        result = self.pipeline.run_cell(backend, cell, options, KernelNamespace(channel), ctx)
        report = result.report
        table = backend.declarations.table()
        return CellOutcome(
            dict(result.bind), list(result.unbind),
            report.cache_hit if report else None, str(report.path) if report else None,
            report.build_seconds if report else None, table != before,
            tuple(sorted({cell for _, _, cell in table})), self.go_runtimes(),
            {name: cell for name, _, cell in table},
        )

    def completion_session(self, language: str):
        """The session's declarations as its completer reads them (plain data), for the kernel's completion."""
        import importlib

        from .core.completion import COMPLETERS

        module_name, class_name = COMPLETERS[language]
        completer = getattr(importlib.import_module(module_name), class_name)
        return completer.snapshot_of(self.backend(language))

    def package_values(self) -> dict:
        """The Go package variables that can be copied, to carry into a replacing worker."""
        go = self.backends.get("go")
        return go.package_values() if go is not None else {}

    def restore_package_values(self, values: dict) -> list[str]:
        go = self.backends.get("go")
        return go.restore_package_values(values) if go is not None and values else []

    def go_runtimes(self) -> int:
        go = self.backends.get("go")
        return len(getattr(go, "_libraries", ()))

    def command(self, language: str, words: list[str]):
        backend = self.backend(language)
        if not words:
            return backend.declarations.table()
        if self.session_context is None:  # no cell ran in this worker: nothing to remove
            if words[0] == "rm":
                raise KeyError(f"no declaration named {words[1]!r} in this session")
            return CellOutcome({}, [], None, None, None, False)
        ctx = dataclasses.replace(self.session_context, profile=False, force=False)
        if words[0] == "rm":
            result = self.pipeline.remove(backend, words[1], ctx)
        else:
            result = self.pipeline.reset(backend, ctx)
        return CellOutcome(dict(result.bind), list(result.unbind), None, None, None, True)

    @staticmethod
    def call(function, args: tuple, kwargs: dict):
        return profiled_call(function, args, kwargs)

    def call_handle(self, handle: int, args: tuple):
        """A call whose function comes by handle (the compact call frame)."""
        try:
            function = self.channel.codec.handles[handle]
        except KeyError:
            raise RuntimeError(f"native object #{handle} was already released") from None
        return profiled_call(function, args, {})

    @staticmethod
    def gomethod(instance, name: str, args: tuple, kwargs: dict):
        """A Go method on a copy sent by the kernel; the copy comes back (pointer receivers change it)."""
        try:
            return getattr(instance, name)(*args, **kwargs), None, instance
        except Exception as error:  # noqa: BLE001 - a pointer receiver's fields are copied back before raising
            return None, error, instance

    def info(self) -> dict[str, str]:
        rows = {"worker pid": str(os.getpid())}
        try:
            with open(f"/proc/{os.getpid()}/status") as status:
                facts = dict(line.split(":", 1) for line in status if ":" in line)
            rows["worker memory"] = f"{int(facts['VmRSS'].split()[0]) / 1024:.1f} MiB RSS"
            rows["worker threads"] = facts["Threads"].strip()
        except (OSError, KeyError, ValueError):
            pass
        for backend in self.backends.values():
            rows.update(backend.info())
        return rows


def receive_from_channel(channel):
    """One receive from a Go channel a call returned (its proxy's `receive()`)."""
    return channel.receive()


def proxy_handlers() -> dict:
    """Requests that proxies of worker objects make beyond calls and attributes."""
    return {"channel_receive": receive_from_channel}


def go_profiler_handlers(worker: "Worker") -> dict:
    """`%go_pprof` in worker mode (go_bridge/pprof_view.py): the kernel runs the statement, a Go runtime here is profiled."""
    from ipolyglot.go_bridge.pprof_view import ProfiledRuntime  # neither numpy nor cffi: cheap at the worker's start

    runtime = ProfiledRuntime(lambda: worker.backend("go"))
    return {"go_pprof_choose": runtime.choose, "go_pprof_start": runtime.start, "go_pprof_stop": runtime.stop}


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_kernel(kernel_pid: int) -> None:
    """Have the OS kill this process with SIGKILL when its kernel dies, whatever this process is doing.

    A thread that polls for orphanhood needs the GIL, which a native endless loop may hold;
    the parent-death signal needs nothing from us. It is set first and the parent checked
    after, so a kernel that died before the signal was armed is noticed too.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # SIGKILL
    if os.getppid() != kernel_pid:
        os._exit(0)


def exit_when_orphaned(parent: int) -> None:
    """Where there is no parent-death signal (macOS), notice the kernel's death by polling."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def import_backends() -> None:
    """Import what running a cell needs while no cell waits for it (a spare worker waits for a crash)."""
    import importlib

    from .magics import BACKENDS

    for module_name, _ in BACKENDS.values():
        with contextlib.suppress(Exception):
            importlib.import_module(module_name)


def serve_thread_connection(sock: socket.socket, main_channel: WorkerChannel) -> None:
    """One kernel thread's connection: its calls run here, one at a time, beside other threads' calls."""
    channel = WorkerChannel(sock, main_channel.codec, main_channel.handlers, when_closed=lambda: None)
    main_channel.codec.local.channel = channel
    channel.serve_forever()
    sock.close()


def connected_by(sock: socket.socket, kernel_pid: int) -> bool:
    """Whether the kernel process made this connection (an abstract address is reachable by anyone)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True  # elsewhere the address is a file in a directory only the kernel's user enters
    import struct

    pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid == kernel_pid


def accept_thread_connections(listener: socket.socket, main_channel: WorkerChannel, kernel_pid: int) -> None:
    """Kernel threads other than the main one connect here, each once per worker."""
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        if not connected_by(sock, kernel_pid):
            sock.close()
            continue
        threading.Thread(target=serve_thread_connection, args=(sock, main_channel),
                         name="ipolyglot-worker-call", daemon=True).start()


def install_native_crash_handler() -> bool:
    """A fatal signal writes the native backtrace to the report file the kernel passed (kernel/native_backtrace.py)."""
    from .native_backtrace import REPORT_FD_VARIABLE, install_crash_handler

    fd = os.environ.pop(REPORT_FD_VARIABLE, None)
    return fd is not None and install_crash_handler(int(fd))


def main(argv: list[str]) -> None:
    """argv: the main connection's fd, the kernel's pid, the listener's fd, the idle connection's fd,
    the shared-memory lane's page fd ("-" for none)."""
    kernel_pid = int(argv[1]) if len(argv) > 1 else os.getppid()
    die_with_kernel(kernel_pid)
    if not install_native_crash_handler():
        faulthandler.enable(all_threads=True)  # no native handler (no compiler): Python's frames at least
    channel = WorkerChannel(PipeConnection.from_argument(argv[0]))
    if len(argv) > 4 and argv[4] != "-":
        channel.lane = worker_lane(int(argv[4]))
    Worker(channel)
    if len(argv) > 3:
        channel.codec.idle_channel = WorkerChannel(socket.socket(fileno=int(argv[3])), channel.codec, channel.handlers,
                                                   when_closed=lambda: None)
    if len(argv) > 2:
        listener = socket.socket(fileno=int(argv[2]))
        threading.Thread(target=accept_thread_connections, args=(listener, channel, kernel_pid),
                         name="ipolyglot-worker-accept", daemon=True).start()
    threading.Thread(target=exit_when_orphaned, args=(kernel_pid,), name="ipolyglot-worker-orphan", daemon=True).start()
    threading.Thread(target=import_backends, name="ipolyglot-worker-imports", daemon=True).start()
    with _interrupts_held_while_reading():
        while True:
            try:
                channel.serve_forever()
            except KeyboardInterrupt:
                continue  # an interrupt that arrived between calls


if __name__ == "__main__":
    main(sys.argv[1:])

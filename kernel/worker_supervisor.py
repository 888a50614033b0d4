"""The kernel's side of worker mode: start the worker, talk to it, survive its death, interrupt it.

Every request waits for its reply while serving what the worker asks meanwhile
(Python callbacks, build feedback, `-i` lookups). End of stream during a
request means the worker died: the call raises `NativeCrash` with the cause
(signal or exit code, and what the worker wrote to stderr during the call:
Go's fatal error and traceback, C++'s terminate reason, the fatal-signal
backtrace), a fresh worker is started and the session's declaration cells are
replayed into it (cache hits, no rebuild). An interrupt asks the worker to stop
(SIGINT) and replaces it if the call has not returned within the grace.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import queue
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .core.cells import CellRegistry
from .core.diagnostics import CompileError, Diagnostic
from .native_backtrace import REPORT_FD_VARIABLE, crash_details
from .core.profiling import PROFILER
from .fast_channel import create_page, kernel_lane
from .worker_protocol import (
    CALL_HANDLE, KIND_SCALAR_VALUE, STDERR_PENDING, Arena, FrameReader, NativeCrash, PipeConnection, ProfiledResult, Reply,
    Request, ScalarFrames, UndecodableMessage, WorkerGone, pipe_connection_pair, portable_exception, receive_message,
    send_message,
)
from .worker_proxies import KernelCodec

DEFAULT_GRACE_SECONDS = 2.0
RECYCLE_AFTER_RUNTIMES = 8
_DISPLAY_NAMES = {"go": "Go", "cpp": "C++"}
STDERR_TAIL_BYTES = 64 * 1024
CRASH_TEXT_LINES = 60


@dataclass
class CellHooks:
    """How the worker reaches the kernel while it runs a cell."""

    verbose: Callable[[str], None]
    warn: Callable[[str], None]
    building: Callable[[str], Any]
    user_ns: Any


@dataclass
class ReplayStep:
    """A step that changed the worker's declarations, repeated in a fresh worker."""

    language: str
    line: str = ""
    cell: str = ""
    label: str = ""
    command: list[str] = field(default_factory=list)  # `%polyglot go rm NAME` / `reset`; empty for a cell


try:
    from _signal import signal as _set_signal_handler  # signal.signal's enum conversions cost ~20x the call
except ImportError:  # another Python than CPython
    _set_signal_handler = signal.signal

_MAIN_THREAD_ID = threading.main_thread().ident
_DECLINED = object()  # the scalar path did not send the call: the general path makes it

_QUIET_HOOKS = CellHooks(lambda message: None, lambda message: None, lambda what: contextlib.nullcontext(), {})


# Lines with which the Go runtime (or a signal handler) starts a crash dump: from one of these on,
# the worker's stderr is held back; the NativeCrash message shows the cause and a folded backtrace.
CRASH_DUMP_HEADERS = (
    b"fatal error: ", b"panic: ", b"runtime: goroutine stack exceeds", b"runtime: out of memory",
    b"SIGSEGV: ", b"SIGBUS: ", b"SIGILL: ", b"SIGFPE: ", b"SIGTRAP: ", b"SIGABRT: ", b"SIGQUIT: ",
    b"unexpected signal", b"fatal: morestack",
)
CRASH_DUMP_RELEASE_SECONDS = 1.0  # held text with no death this long after its last byte was not a crash


@dataclass
class CrashDumpFilter:
    """Splits the worker's stderr into what is shown now and what is held as a possible crash dump.

    Held text is dropped when the worker dies (the NativeCrash message says it better) and
    released unchanged when the worker lives on or the call returns, so no print of the user's is lost.
    """

    held: bytearray = field(default_factory=bytearray)
    at_line_start: bool = True
    last_held_at: float = 0.0

    def feed(self, data: bytes, now: float) -> bytes:
        """The part of `data` to show now; the rest is held."""
        if self.held:
            return self._hold(data, now)
        shown = bytearray()
        for line in data.splitlines(keepends=True):
            if self.at_line_start and self._may_start_dump(line):
                return bytes(shown) + self._hold(data[len(shown):], now)
            shown += line
            self.at_line_start = line.endswith(b"\n")
        return bytes(shown)

    def release(self) -> bytes:
        text, self.held = bytes(self.held), bytearray()
        self.at_line_start = not text or text.endswith(b"\n")
        return text

    def stale(self, now: float) -> bool:
        return bool(self.held) and now - self.last_held_at >= CRASH_DUMP_RELEASE_SECONDS

    def _hold(self, data: bytes, now: float) -> bytes:
        self.held += data
        self.last_held_at = now
        return b""

    @staticmethod
    def _may_start_dump(line: bytes) -> bool:
        """A crash header, or the start of one not yet complete (a partial last line)."""
        if line.startswith(CRASH_DUMP_HEADERS):
            return True
        return not line.endswith(b"\n") and any(header.startswith(line) for header in CRASH_DUMP_HEADERS)


class _StderrTee:
    """Copies the worker's stderr into the kernel's (so it shows in the cell) and keeps a tail.

    A crash dump (Go's goroutine stacks) is held back rather than copied: the NativeCrash
    message carries its cause and the folded backtrace; the tail keeps every byte for it.
    """

    def __init__(self, fd: int):
        self.fd = fd
        os.set_blocking(fd, False)
        self.lock = threading.Lock()
        self.tail = bytearray()
        self.total = 0  # bytes seen so far: marks where a call's text begins
        self.closed = False
        self.dump = CrashDumpFilter()
        self.thread = threading.Thread(target=self._watch, name="ipolyglot-worker-stderr", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.closed:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
            except (OSError, ValueError):
                return
            if ready:
                self.drain()
            elif self.dump.stale(time.monotonic()):
                self.release_held()

    def drain(self) -> None:
        with self.lock:
            while not self.closed:
                try:
                    data = os.read(self.fd, 65536)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if not data:
                    self.closed = True
                    self.dump.held.clear()  # the worker ended: its crash dump is the NativeCrash message's
                    os.close(self.fd)
                    return
                self.total += len(data)
                self.tail += data
                del self.tail[:-STDERR_TAIL_BYTES]
                _write_stderr(self.dump.feed(data, time.monotonic()))

    def release_held(self) -> None:
        """Show held text: the worker lived on (or answered), so it was not a crash dump."""
        with self.lock:
            if not self.closed:
                _write_stderr(self.dump.release())

    def settle(self) -> None:
        """At a call's reply: what it wrote to stderr goes out, before Python prints again."""
        self.drain()
        if self.dump.held:
            self.release_held()

    def since(self, mark: int) -> str:
        with self.lock:
            wanted = min(self.total - mark, len(self.tail))
            return bytes(self.tail[len(self.tail) - wanted:]).decode("utf-8", "replace")

    def wait_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.drain()
            time.sleep(0.02)


def _write_stderr(data: bytes) -> None:
    if data:
        try:
            os.write(2, data)
        except OSError:
            pass


def spawn_from_lasting_thread(spawn: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """Run `spawn` on the main thread or on a thread that lives as long as the kernel.

    The worker's parent-death signal fires when the *thread* that started it ends, not the
    process: a worker started from a short-lived Python thread would be killed with that thread.
    """
    if threading.current_thread() is threading.main_thread():
        return spawn()
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["process"] = spawn()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = error
        done.set()

    _spawner_queue().put(run)
    done.wait()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["process"]


@functools.lru_cache(maxsize=None)
def _spawner_queue() -> "queue.SimpleQueue[Callable[[], None]]":
    """The queue of one daemon thread that never ends before the kernel does (started on first use)."""
    jobs: queue.SimpleQueue = queue.SimpleQueue()

    def serve() -> None:
        while True:
            jobs.get()()

    threading.Thread(target=serve, name="ipolyglot-worker-spawner", daemon=True).start()
    return jobs


def _kill_at_exit(process: subprocess.Popen) -> None:
    """A kernel that exits normally takes its worker with it (the parent-death signal covers SIGKILL)."""
    import atexit
    import weakref

    reference = weakref.ref(process)

    def kill() -> None:
        alive = reference()
        if alive is not None and alive.poll() is None:
            alive.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                alive.wait(timeout=5)

    atexit.register(kill)


@dataclass
class Connection:
    """One kernel thread's socket to the worker, and the worker requests it is serving (innermost last)."""

    sock: socket.socket
    generation: int
    serving: list[int] = field(default_factory=list)
    reader: FrameReader | None = None
    arena: Arena = field(default_factory=Arena)  # where its requests' large buffers go
    send_lock: threading.Lock = field(default_factory=threading.Lock)  # callbacks served on their own threads reply too

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = FrameReader(self.sock)


class SpareWorker:
    """A started worker process that is not the active one: what `_launch` sets for one worker."""

    PER_WORKER = ("process", "sock", "address", "stderr", "crash_report", "lane")

    @classmethod
    def take(cls, supervisor: "WorkerSupervisor") -> "SpareWorker":
        spare = cls()
        for name in cls.PER_WORKER:
            setattr(spare, name, getattr(supervisor, name))
        return spare

    def discard(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.sock.close()  # its stderr tee ends at the end of the pipe, as the active worker's does
        if self.lane is not None:
            self.lane.close()
        if self.crash_report is not None:
            self.crash_report.close()
        if self.address is not None and not self.address.startswith("\0"):
            import shutil

            shutil.rmtree(os.path.dirname(self.address), ignore_errors=True)


class WorkerSupervisor:
    """One worker process at a time, replaced after a crash or an interrupt it did not survive."""

    def __init__(self, rebind: Callable[[Any], None], grace_seconds: float = DEFAULT_GRACE_SECONDS,
                 recycle_after_runtimes: int = RECYCLE_AFTER_RUNTIMES):
        self.rebind = rebind  # applies a replayed cell's bindings to the user namespace
        self.grace_seconds = grace_seconds
        self.recycle_after_runtimes = recycle_after_runtimes  # Go runtimes beyond the live cells' ones
        self.codec = KernelCodec(self)
        self.generation = 0
        self.process: subprocess.Popen | None = None
        self.sock: PipeConnection | None = None  # the main thread's connection
        self.main_connection: Connection | None = None  # its reader and serving stack
        self.spare: SpareWorker | None = None  # started, backends imported, waiting to replace the active worker
        self.address: str | None = None  # where the kernel's other threads connect, one connection each
        self.local = threading.local()  # .connection: this (non-main) thread's Connection
        self.stderr: _StderrTee | None = None
        self.lane = None  # the shared-memory lane beside the main connection (kernel/fast_channel.py), if any
        self.crash_report = None  # the file the worker's fatal-signal handler writes its backtrace to
        self.cells = CellRegistry()  # the cells run in the worker: Go's tracebacks name them by id
        self.cpp_definers: dict[str, str] = {}  # name a %%cpp cell bound -> its label: C++ backtraces without -g
        self.replay_log: list[ReplayStep] = []
        self.hooks: CellHooks = _QUIET_HOOKS
        self.ids = itertools.count(1)
        self.lock = threading.RLock()
        self.serving: list[int] = []  # worker requests being served, innermost last
        self.interrupted = False
        self.building_stack: list[tuple[Any, Any]] = []
        self.replaying = False
        self.last_replayed: dict[str, Any] = {}  # the latest outcome replayed per language
        self.served = {
            "callback": self._callback,
            "verbose": lambda message: self.hooks.verbose(message),
            "warn": lambda message: self.hooks.warn(message),
            "building_enter": self._building_enter,
            "building_exit": self._building_exit,
            "user_ns_get": self._user_ns_get,
            "user_ns_has": lambda name: name in self.hooks.user_ns,
            "user_ns_keys": lambda: [k for k in self.hooks.user_ns if isinstance(k, str) and not k.startswith("_")],
        }

    # -- the process -------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.alive else None

    def _start(self) -> None:
        """Make a worker the active one: the warm spare when there is one, and start the next spare.

        Most of a fresh worker's start is importing the backends (numpy, cffi, the bridges): a
        spare that did it in advance turns a restart after a crash or an interrupt into a reload
        of the session's builds from the cache.
        """
        spare, self.spare = self.spare, None
        if spare is not None and spare.process.poll() is None:
            self._adopt(spare)
        else:
            if spare is not None:
                spare.discard()
            self._launch()
        self.codec.reset()
        self._start_spare()

    def _start_spare(self) -> None:
        active = SpareWorker.take(self)
        try:
            self._launch()
            self.spare = SpareWorker.take(self)
        finally:
            self._adopt(active)

    def _adopt(self, worker: "SpareWorker") -> None:
        for name, value in vars(worker).items():
            setattr(self, name, value)

    def _launch(self) -> None:
        """Spawn a worker process and make it the active one."""
        kernel_end, worker_end = pipe_connection_pair()
        idle_kernel_end, idle_worker_end = socket.socketpair()
        read_end, write_end = os.pipe()
        listener = self._thread_listener()
        self.crash_report = tempfile.TemporaryFile(prefix="ipolyglot-crash-")  # the worker's fatal-signal handler writes here
        report_fd = self.crash_report.fileno()
        page_fd = create_page()
        try:
            self.process = spawn_from_lasting_thread(lambda: subprocess.Popen(
                [sys.executable, "-m", "ipolyglot.kernel.worker_main", worker_end.argument(), str(os.getpid()),
                 str(listener.fileno()), str(idle_worker_end.fileno()), "-" if page_fd is None else str(page_fd)],
                pass_fds=(worker_end.read_fd, worker_end.write_fd, worker_end.descriptors.fileno(), listener.fileno(),
                          idle_worker_end.fileno(), report_fd, *(() if page_fd is None else (page_fd,))),
                stdin=subprocess.DEVNULL, stderr=write_end,
                start_new_session=True,  # terminal Ctrl-C reaches the kernel, which decides
                # unbuffered: what Python code in the worker prints is out before the call's reply
                env={**os.environ, REPORT_FD_VARIABLE: str(report_fd), "PYTHONUNBUFFERED": "1"},
            ))
        except BaseException:
            kernel_end.close()
            idle_kernel_end.close()
            raise
        finally:
            worker_end.close()
            idle_worker_end.close()
            listener.close()
            os.close(write_end)
            self.lane = None if page_fd is None else kernel_lane(page_fd)  # the mapping outlives the descriptor
            if page_fd is not None:
                os.close(page_fd)
        threading.Thread(target=self._serve_idle_connection, args=(idle_kernel_end,),
                         name="ipolyglot-worker-idle-callbacks", daemon=True).start()
        _kill_at_exit(self.process)
        self.sock = kernel_end
        self.stderr = _StderrTee(read_end)
        if self.lane is not None:
            self.lane.attach(self._finish_lane_call, self.codec.released, self.stderr)

    def _thread_listener(self) -> socket.socket:
        """A Unix socket where the worker accepts threads' connections.

        On Linux an abstract address (no file left behind by a killed kernel; the worker accepts
        only this process, by its peer credentials); elsewhere a file in a directory only this user enters.
        """
        import secrets
        import tempfile

        if sys.platform.startswith("linux"):
            self.address = f"\0ipolyglot-worker-{os.getpid()}-{secrets.token_hex(16)}"
        else:
            self.address = os.path.join(tempfile.mkdtemp(prefix="ipolyglot-worker-"), "calls")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(64)
        return listener

    def _thread_connection(self) -> Connection:
        """This thread's own connection to the current worker (made on its first call to that worker)."""
        connection = getattr(self.local, "connection", None)
        if connection is not None and connection.generation == self.generation and self.alive:
            return connection
        if connection is not None:
            connection.arena.close()
        if not self.alive:
            with self.lock:
                self._ensure_started()
        generation = self.generation
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # closed: the next read reports the death
        connection = Connection(sock, generation)
        self.local.connection = connection
        return connection

    def _main_connection(self) -> Connection:
        if self.main_connection is None or self.main_connection.sock is not self.sock:
            if self.main_connection is not None:
                self.main_connection.reader.close_fds()  # memfds of a frame the old worker did not finish
                self.main_connection.arena.close()
            self.main_connection = Connection(self.sock, self.generation, self.serving)
        return self.main_connection

    def _ensure_started(self) -> None:
        if self.alive:
            return
        if self.process is not None:  # it died between calls: start over as after a crash
            self._discard()
        self._start()
        self._replay()

    def _discard(self) -> None:
        """Forget the current worker: its handles are stale from now on."""
        self.generation += 1
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.sock is not None:
            self.sock.close()
        if self.lane is not None:
            self.lane.close()  # its callers take their proxies' path, which says the worker ended
        if self.address is not None and not self.address.startswith("\0"):
            import shutil

            shutil.rmtree(os.path.dirname(self.address), ignore_errors=True)
        self.process = self.sock = self.address = self.lane = None
        if self.crash_report is not None:
            self.crash_report.close()
            self.crash_report = None
        self.codec.reset()
        self.building_stack.clear()

    def _replay(self) -> None:
        """Load the session's declarations into a fresh worker, from the build cache."""
        self.replaying = True
        try:
            self._replay_steps()
        finally:
            self.replaying = False

    def _replay_steps(self) -> None:
        for step in list(self.replay_log):
            if step.command:
                try:
                    outcome = self._request_once("command", step.language, step.command, describe="reloading the session")
                except KeyError:  # an `rm` of a name whose cells are no longer replayed: already gone, as it asked
                    continue
            else:
                outcome = self._request_once(
                    "run_cell", step.language, _replay_line(step.line), step.cell, step.label, False,
                    describe=f"reloading {step.label}", hooks=_QUIET_HOOKS,
                )
            self.rebind(outcome)
            self.last_replayed[step.language] = outcome

    def shutdown(self) -> None:
        if self.process is not None:
            self._discard()
        if self.spare is not None:
            self.spare.discard()
            self.spare = None

    def restart(self) -> None:
        """Replace the worker as after a crash: the spare takes over and reloads the session from the cache."""
        self._discard()
        with self.lock:
            self._ensure_started()

    # -- requests ------------------------------------------------------------------------------
    def run_cell(self, language: str, line: str, cell: str, label: str, profile_always: bool, hooks: CellHooks):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        self.cells.register(cell, label)
        try:
            outcome = self.request("run_cell", language, line, cell, label, profile_always,
                                   describe=f"the %%{language} cell {label}", hooks=hooks)
        except NativeCrash as crash:
            if not getattr(crash, "while_loading", False):
                raise
            # e.g. a panic in a Go init(): the new build cannot be loaded, the previous one stays
            raise CompileError(_DISPLAY_NAMES.get(language, language), [Diagnostic(
                "loading the new build ended the worker process; the session keeps its previous build.\n" + str(crash)
            )]) from None
        if outcome.declarations_changed:
            if language == "cpp":
                self.cpp_definers = definers_by_name(outcome.declared_in)
            self.replay_log.append(ReplayStep(language, line, cell, label))
            self._forget_replaced_cells(language, set(outcome.live_cells))
        if outcome.go_runtimes > self.recycle_after_runtimes + self._live_go_cells():
            with self.lock:
                self._recycle(hooks)
            fresh = self.last_replayed.get(language)
            if fresh is not None:  # the names this cell bound, now from the new worker
                outcome.bind = {**outcome.bind, **fresh.bind}
                outcome.unbind = [name for name in outcome.unbind if name not in fresh.bind]
        return outcome

    def _forget_replaced_cells(self, language: str, live: set[str]) -> None:
        """A cell whose every declaration a later cell replaced needs no replay."""
        self.replay_log = [
            step for step in self.replay_log
            if step.language != language or step.command or step.label in live
        ]

    def _live_go_cells(self) -> int:
        return sum(1 for step in self.replay_log if step.language == "go" and not step.command)

    def _recycle(self, hooks: CellHooks) -> None:
        """Go runtimes cannot be unloaded: a fresh worker loads only the live builds, from the cache,
        and gets the Go package variables that can be copied, as a rebuild carries them."""
        before = self.pid
        values = self._request_once("package_values", describe="reading Go package variables")
        self._discard()
        note = self._start_and_replay_quietly()
        carried = self._carry_package_values(values)
        hooks.verbose(
            f"replaced the native worker (pid {before}) to free its Go runtimes{note.rstrip('.')} "
            f"(Go package variables carried: {', '.join(carried) or 'none'}; the others start from their initializers)"
        )

    def _carry_package_values(self, values: dict) -> list[str]:
        if not values or not self.alive:
            return []
        try:
            return self._request_once("restore_package_values", values, describe="restoring Go package variables")
        except NativeCrash:
            return []

    def command(self, language: str, words: list[str]):
        result = self.request("command", language, words, describe=f"%polyglot {language} {' '.join(words)}")
        if words:
            self.replay_log.append(ReplayStep(language, command=list(words)))
        return result

    def completion_session(self, language: str):
        """The worker's declarations of a language for completion; None when no worker runs."""
        if not self.alive:
            return None
        return self.request("completion_session", language, describe="completion")

    def info(self) -> dict[str, str]:
        if not self.alive:
            return {"worker": "not running (starts with the first native cell)"}
        rows = self.request("info", describe="%polyglot info")
        rows["worker call lane"] = (
            "none: calls cross the pipe (one CPU, or no C compiler)" if self.lane is None else
            f"shared memory, each side spinning up to {self.lane.spin_ns / 1000:g} µs; "
            f"{self.lane.answered} calls answered through it"
        )
        return rows

    def call(self, function, args: tuple, kwargs: dict):
        """Call a native function that lives in the worker (a RemoteObject).

        Scalar arguments and results cross in fixed binary frames (`_scalar_call`); other
        positional arguments go by the function's handle in a compact frame. A function
        built with profiling sends its phases back with the result; they are recorded here
        with the kernel's wall time, whose part beyond the worker's is the process crossing.
        """
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        started = time.perf_counter_ns()
        result = _DECLINED
        if not kwargs and function._generation == self.generation:
            result = self._scalar_call(function, args)
            if result is _DECLINED:
                result = self.request(CALL_HANDLE, function._info.id, args, describe=f"{function._info.name}()")
        if result is _DECLINED:
            result = self.request("call", function, args, kwargs, describe=f"{function._info.name}()")
        return _recorded(result, started)

    def _scalar_call(self, function, args: tuple):
        """A call of the main thread with float, int and bool arguments: one write, then one blocking
        read that usually brings the scalar reply (waiting in poll with a timeout, so that an interrupt
        delivered to another thread is seen). No SIGINT handler is swapped in: an interrupt raises
        KeyboardInterrupt in the wait, and anything other than the
        reply (a callback to serve, a pickled result, an error, the worker's death) continues on
        the general path, which reads what this read left buffered. _DECLINED when not sent."""
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        connection = self.main_connection
        if (connection is None or connection.sock is not self.sock or connection.serving or connection.reader.buffered
                or self.replaying or self.codec.released or threading.get_ident() != _MAIN_THREAD_ID):
            return _DECLINED
        request_id = next(self.ids)
        frame = ScalarFrames.call_frame(request_id, function._info.id, args)
        if frame is None:
            return _DECLINED
        with self.lock:
            stderr = self.stderr
            mark = stderr.total if stderr else 0
            interrupted = sent = False
            try:
                with connection.send_lock:
                    connection.sock.sendall(frame)
                sent = True  # set before any Python function runs, where an interrupt could be raised
                if self.lane is not None:
                    self.lane.ring()
                received = connection.reader.receive_scalar(KIND_SCALAR_VALUE, interruptible=True)
            except KeyboardInterrupt:
                if not sent:  # a pipe write of one frame is atomic: the worker never saw this call
                    raise KeyboardInterrupt(f"interrupted before {function._info.name}() was sent; native state was kept") from None
                received, interrupted = None, True
            except (OSError, WorkerGone):
                received = None  # the general path finds the end of stream again and reports the death
            if received is not None and received[0] == request_id:
                _, flags, layout, body = received
                if stderr is not None and (flags & STDERR_PENDING or stderr.lock.locked() or stderr.dump.held):
                    stderr.settle()  # what the call wrote to stderr goes out before Python prints again
                return ScalarFrames.value_of(layout, body)
            return self._finish_generally(connection, request_id, f"{function._info.name}()", mark, interrupted)

    def _finish_lane_call(self, function, request_id: int, mark: int, interrupted: bool, started_ns: int):
        """A call posted in the lane whose reply comes on the pipe (see kernel/fast_channel.py): the
        kernel stopped spinning, the worker needed the pipe, or an interrupt came."""
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        with self.lock:
            result = self._finish_generally(self._main_connection(), request_id, f"{function._info.name}()", mark, interrupted)
        return _recorded(result, started_ns)

    def lane_caller(self, function):
        """A compiled caller of a function proxy through the lane of its worker, or None."""
        if self.lane is None or function._generation != self.generation:
            return None
        return self.lane.caller(function._info.id, function)

    def _finish_generally(self, connection: Connection, request_id: int, describe: str, mark: int, interrupted: bool):
        """Wait for a call's reply on the general path, as an outermost request does."""
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        previous_handler = _set_signal_handler(signal.SIGINT, self._note_interrupt)
        self.interrupted = interrupted
        try:
            return self._await_reply(connection, request_id, describe, mark, outermost=True)
        finally:
            _set_signal_handler(signal.SIGINT, previous_handler)

    def request(self, op: str, *args, describe: str, hooks: CellHooks | None = None):
        """Ask the worker; the main thread over the main connection, every other thread over its own."""
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        if threading.current_thread() is not threading.main_thread() and not self.replaying:
            return self._request_once(op, *args, describe=describe, hooks=hooks, connection=self._thread_connection())
        with self.lock:
            self._ensure_started()
            return self._request_once(op, *args, describe=describe, hooks=hooks)

    def _request_once(self, op: str, *args, describe: str, hooks: CellHooks | None = None,
                      connection: Connection | None = None):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        connection = connection or self._main_connection()
        outermost = (not connection.serving and connection.sock is self.sock
                     and threading.current_thread() is threading.main_thread())
        saved_hooks = self.hooks
        if hooks is not None:
            self.hooks = hooks
        previous_handler = None
        if outermost:
            self.interrupted = False
            previous_handler = _set_signal_handler(signal.SIGINT, self._note_interrupt)
        mark = self.stderr.total if self.stderr else 0
        try:
            request_id = next(self.ids)
            released, self.codec.released[:] = list(self.codec.released), []
            message = Request(request_id, op, args, connection.serving[-1] if connection.serving else None, released)
            try:
                with connection.send_lock:
                    send_message(connection.sock, message, self.codec.pickler, connection.arena)
            except OSError:
                self._connection_lost(connection, describe, mark)
            if outermost and self.lane is not None:
                self.lane.ring()
            return self._await_reply(connection, request_id, describe, mark, outermost)
        finally:
            self.hooks = saved_hooks
            if outermost:
                _set_signal_handler(signal.SIGINT, previous_handler)

    def _note_interrupt(self, signum, frame) -> None:
        self.interrupted = True

    def _await_reply(self, connection: Connection, request_id: int, describe: str, mark: int, outermost: bool):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        deadline = None
        stderr_fd = self.stderr.fd if self.stderr and not self.stderr.closed else None
        watched = [connection.sock] if stderr_fd is None else [connection.sock, stderr_fd]
        stderr_written = False  # by the worker during the call: drained before its reply is returned
        while True:
            if outermost and self.interrupted and deadline is None:
                deadline = time.monotonic() + self.grace_seconds
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGINT)
            if connection.reader.buffered:
                stderr_written = True  # no select to say: look
            else:
                timeout = 0.1 if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    ready, _, _ = select.select(watched, [], [], timeout)
                except (OSError, ValueError):  # the stderr tee closed its pipe at end of stream: the worker is ending
                    stderr_fd, watched = None, [connection.sock]
                    continue
                if stderr_fd is not None and stderr_fd in ready:
                    stderr_written = True
                if connection.sock not in ready:
                    if stderr_written and self.stderr:
                        self.stderr.drain()
                    if deadline is not None and time.monotonic() >= deadline:
                        self._discard()
                        self._start_and_replay_quietly()
                        raise KeyboardInterrupt(
                            f"interrupted: {describe} did not stop within {self.grace_seconds:g} s, so its worker "
                            "process was replaced: native state was reset (C++ globals and objects, Go package "
                            "variables and goroutines); the session's functions were reloaded"
                        )
                    continue
            try:
                message = receive_message(connection.reader, self.codec.unpickler)
            except UndecodableMessage as undecodable:
                if undecodable.is_request:
                    self._send_reply(connection.sock, connection.send_lock, Reply(undecodable.message_id, error=TypeError(str(undecodable))))
                    continue
                message = Reply(undecodable.message_id, error=TypeError(str(undecodable)))
            except (WorkerGone, OSError):
                self._connection_lost(connection, describe, mark)
            if message.released:
                self.codec.release_callbacks(message.released)
            if isinstance(message, Reply):
                connection.arena.replied(message.id, message.arena_kept)
                if message.id != request_id:
                    continue  # a reply to a request abandoned by an interrupt
                if self.stderr and (stderr_written or self.stderr.dump.held):
                    self.stderr.settle()  # what the call wrote to stderr goes out before Python prints again
                if deadline is not None:
                    raise KeyboardInterrupt(f"interrupted: {describe} stopped; native state was kept")
                if message.error is not None:
                    raise message.error
                return message.value
            if message.concurrent:  # from a goroutine or thread of the call: it runs at the same time as others, as in-process
                threading.Thread(target=self._serve_on_own_thread, args=(connection.sock, connection.send_lock, message),
                                 name="ipolyglot-call-callback", daemon=True).start()
                continue
            self._serve(connection, message)

    def _serve(self, connection: Connection, request: Request) -> None:
        connection.serving.append(request.id)
        try:
            reply = Reply(request.id, self.served[request.op](*request.args))
        except BaseException as error:  # noqa: BLE001 - carried back to the native caller
            reply = Reply(request.id, error=portable_exception(error, self.codec.pickler))
        finally:
            connection.serving.pop()
        reply.released, self.codec.released[:] = list(self.codec.released), []
        self._send_reply(connection.sock, connection.send_lock, reply)

    # -- what the worker asks --------------------------------------------------------------------
    def _serve_idle_connection(self, sock: socket.socket) -> None:
        """Serve what the worker asks while no kernel thread waits on it: Python callables that native
        code calls between cells (a Go server's handlers), each on a thread of its own, so several
        goroutines are served at once. The thread waits in recv without the GIL; a callable takes
        the GIL only to run. It ends with the worker (end of stream) and closes the socket."""
        reader = FrameReader(sock)
        send_lock = threading.Lock()
        try:
            while True:
                try:
                    request = receive_message(reader, self.codec.unpickler)
                except UndecodableMessage as undecodable:
                    self._send_reply(sock, send_lock, Reply(undecodable.message_id, error=TypeError(str(undecodable))))
                    continue
                except (WorkerGone, OSError):
                    return
                if request.released:
                    self.codec.release_callbacks(request.released)
                if isinstance(request, Request):
                    threading.Thread(target=self._serve_on_own_thread, args=(sock, send_lock, request),
                                     name="ipolyglot-idle-callback", daemon=True).start()
        finally:
            reader.close_fds()
            sock.close()

    def _serve_on_own_thread(self, sock, send_lock: threading.Lock, request: Request) -> None:
        """Serve a request on this thread (one of its own) and reply under the connection's send lock."""
        try:
            reply = Reply(request.id, self.served[request.op](*request.args))
        except BaseException as error:  # noqa: BLE001 - carried back to the native caller
            reply = Reply(request.id, error=portable_exception(error, self.codec.pickler))
        del request
        self._send_reply(sock, send_lock, reply)

    def _send_reply(self, sock, send_lock: threading.Lock, reply: Reply) -> None:
        with send_lock:
            try:
                send_message(sock, reply, self.codec.pickler)
            except OSError:
                pass  # the worker ended meanwhile: a read says so
            except Exception as error:  # noqa: BLE001 - a value that cannot be copied
                send_message(sock, Reply(reply.id, error=TypeError(f"cannot be copied to the worker: {error}")),
                             self.codec.pickler)

    def _callback(self, callback_id: int, args: tuple, kwargs: dict):
        return self.codec.callbacks[callback_id](*args, **kwargs)

    def _building_enter(self, what: str) -> None:
        manager = self.hooks.building(what)
        self.building_stack.append((manager, manager.__enter__()))

    def _building_exit(self, outcome: str, ok: bool) -> None:
        manager, feedback = self.building_stack.pop()
        if feedback is not None and hasattr(feedback, "outcome"):
            feedback.outcome = outcome
        if ok:
            manager.__exit__(None, None, None)
        else:
            failure = RuntimeError("build failed")
            manager.__exit__(RuntimeError, failure, None)

    def _user_ns_get(self, name: str):
        if name in self.hooks.user_ns:
            return True, self.hooks.user_ns[name]
        return False, None

    # -- death -------------------------------------------------------------------------------------
    def _connection_lost(self, connection: Connection, describe: str, mark: int):
        """The main thread handles the death; another thread does too unless someone already did."""
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        if connection.sock is self.sock:
            self._crashed(describe, mark)
        with contextlib.suppress(OSError):
            connection.sock.close()
        connection.arena.close()
        with self.lock:
            if connection.generation == self.generation:
                self._crashed(describe, mark)
        raise NativeCrash(
            f"the native worker process died during {describe} (a call on another thread ended it). "
            "The kernel and its Python variables are intact. Native state (C++ globals and objects, "
            "Go package variables and goroutines) was reset; a new worker reloaded the session's functions."
        )

    def _crashed(self, describe: str, mark: int):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        process = self.process
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            returncode = process.wait()
        if self.stderr:
            self.stderr.wait_closed(2.0)
        text = self.stderr.since(mark) if self.stderr else ""
        report = self._read_crash_report()
        while_loading = bool(self.building_stack)
        while self.building_stack:  # end the live build line of the cell that was loading
            with contextlib.suppress(Exception):
                self._building_exit("", False)
        self._discard()
        message = f"the native worker process died during {describe}: {_describe_exit(returncode)}"
        lines = crash_details(text, report, self.cells.labels(), self.cpp_definers).rstrip().splitlines()
        if lines:
            shown = lines if len(lines) <= CRASH_TEXT_LINES else lines[:CRASH_TEXT_LINES] + [f"… ({len(lines) - CRASH_TEXT_LINES} more lines)"]
            message += "\n\n" + "\n".join(shown)
        message += (
            "\n\nThe kernel and its Python variables are intact. Native state (C++ globals and objects, "
            "Go package variables and goroutines) was reset"
        )
        if not self.replaying:  # a reload that fails ends here: no endless restarts
            message += self._start_and_replay_quietly()
        crash = NativeCrash(message)
        crash.while_loading = while_loading
        raise crash

    def _read_crash_report(self) -> str:
        """What the worker's fatal-signal handler wrote: raw addresses and its memory map (empty otherwise)."""
        if self.crash_report is None:
            return ""
        self.crash_report.seek(0)
        return self.crash_report.read(1 << 20).decode("utf-8", "replace")

    def _start_and_replay_quietly(self) -> str:
        try:
            self._start()
            self._replay()
        except NativeCrash as crash:
            self._discard()
            return f"; reloading the session failed as well ({str(crash).splitlines()[0]})."
        return "; a new worker reloaded the session's functions from the build cache."


def _recorded(result, started_ns: int):
    """A call's value; a profiled call's phases recorded first, with the kernel's wall time since
    `started_ns`, whose part beyond the worker's own is the process crossing."""
    if type(result) is ProfiledResult:
        PROFILER.record_crossing(result.phases, time.perf_counter_ns() - started_ns)
        return result.value
    return result


def definers_by_name(declared_in: dict[str, str]) -> dict[str, str]:
    """The cell of each C++ declaration, keyed as a backtrace's function is looked up: a cell's
    private `f` (declared as "f (private to In [3])") as `f`."""
    return {name.split(" (private to ", 1)[0]: cell for name, cell in declared_in.items()}


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name} ({signal.strsignal(number)})"
    return f"it exited with code {returncode}"


def _replay_line(line: str) -> str:
    """The options of a replayed cell, without those that would force a rebuild or print."""
    try:
        words = shlex.split(line)
    except ValueError:
        return line
    return shlex.join(w for w in words if w not in ("-f", "--force", "-v", "--verbose", "--worker", "--in-process"))

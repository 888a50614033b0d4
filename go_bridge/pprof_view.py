"""`%go_pprof`: run Python code with Go's profiler on, show the top functions and a flame graph.

The profile comes from the Go runtime serving the Go functions in the user
namespace: in the kernel in-process, in the worker process in worker mode. SIGPROF has one handler per process, and a Go runtime counts a
profiling signal that lands on another runtime's thread as outside Go, so one
runtime is profiled at a time: the one serving the most bound names.
"""

from __future__ import annotations

import linecache
import shlex
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Callable

from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.charts import flame_graph_svg, format_seconds, html_table, text_table

from . import pprof

# Allocation sampling during `--heap`: one sample per this many bytes
# (Go's default, 512 KiB, misses most allocations of a short statement).
HEAP_SAMPLE_BYTES = 4096
DEFAULT_TOP = 15

STATEMENT_FILE = "<go_pprof statement>"  # the profiled code's frames name it, and show its lines

USAGE = "usage: %go_pprof [--heap] [--top N] <python statement>   (or %%go_pprof [--heap] [--top N] with a block of Python)"


class PprofUsageError(LookupError):
    """Nothing to profile, or a line that cannot be understood (shown as one short error)."""

    usage = True  # tells the magic this is not an error of the profiled code


@dataclass
class PprofRequest:
    heap: bool
    top: int
    code: str


def parse(line: str, cell: str | None) -> PprofRequest:
    """Leading --heap / --top N options, then the statement (line form) or the cell (block form)."""
    heap, top = False, DEFAULT_TOP
    rest = line.strip()
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--heap":
            heap, rest = True, after.strip()
        elif word == "--top" or word.startswith("--top="):
            if "=" in word:
                value, rest = word.split("=", 1)[1], after.strip()
            else:
                value, _, rest = after.strip().partition(" ")
                rest = rest.strip()
            try:
                top = int(value)
            except ValueError:
                raise PprofUsageError(f"--top expects a number, got {value!r}\n{USAGE}") from None
        else:
            raise PprofUsageError(f"unknown option {word}\n{USAGE}")
    code = cell if cell is not None else rest
    if cell is not None and rest:
        raise PprofUsageError(f"the cell form takes only options on its first line, got {shlex.quote(rest)}\n{USAGE}")
    if not code or not code.strip():
        raise PprofUsageError(USAGE)
    return PprofRequest(heap, max(1, top), code)


def in_process_libraries(user_ns: dict) -> tuple[Counter, dict]:
    """How many of the namespace's Go functions each library loaded in this process serves (by id), and the libraries."""
    counts: Counter = Counter()
    libraries = {}
    for value in list(user_ns.values()):
        # From the object's own __dict__ (a NativeFunction copies it there): a worker's proxy would ask its worker.
        lib = getattr(value, "__dict__", {}).get("_go_library")
        if lib is not None and callable(value):
            counts[id(lib)] += 1
            libraries[id(lib)] = lib
    return counts, libraries


@dataclass(frozen=True)
class ProfiledPlace:
    """Which process's Go runtime `%go_pprof` profiles, and what it leaves out."""

    worker: bool
    left_out: str = ""  # said under the table when Go functions of the namespace also run in the other place


def profiled_place(user_ns: dict, supervisor, session_mode: str) -> ProfiledPlace:
    """The place that serves the namespace's Go functions (cells built with `--worker` in an
    in-process session, or `--in-process` in a worker session); the session's mode when both do."""
    in_worker = bool(supervisor is not None and supervisor.alive and worker_functions(user_ns, supervisor))
    in_process = bool(in_process_libraries(user_ns)[0])
    if in_worker and in_process:
        if session_mode == "worker":
            return ProfiledPlace(True, "the Go functions loaded in the kernel (--in-process) were not profiled")
        return ProfiledPlace(False, "the Go functions that run in the native worker (--worker) were not profiled")
    return ProfiledPlace(in_worker or (not in_process and session_mode == "worker"))


def serving_library(user_ns: dict, fallback):
    """The loaded library behind most Go functions bound in the namespace (and how many others serve any)."""
    counts, libraries = in_process_libraries(user_ns)
    if not counts:
        if fallback is None:
            raise PprofUsageError("no Go function is loaded: run a %%go cell before %go_pprof")
        return fallback, 0
    best = max(counts, key=lambda k: (counts[k], k == id(fallback)))
    return libraries[best], len(counts) - 1


class WorkerRuntime:
    """The kernel's handle on the worker's Go runtime that `%go_pprof` profiles in worker mode.

    The statement runs in the kernel and its Go calls run in the worker, so the profiler
    runs there, in the runtime serving most of the namespace's Go functions (the worker
    chooses it from their proxies, as serving_library does in-process).
    """

    def __init__(self, supervisor, others: int):
        self.supervisor = supervisor
        self.others = others  # older runtimes that also serve names: not profiled

    @classmethod
    def serving(cls, user_ns: dict, supervisor) -> "WorkerRuntime":
        functions = worker_functions(user_ns, supervisor) if supervisor is not None and supervisor.alive else []
        if not functions:
            raise PprofUsageError("no Go function is loaded: run a %%go cell before %go_pprof")
        return cls(supervisor, supervisor.request("go_pprof_choose", functions, describe="%go_pprof"))

    def pprof_start(self, heap: bool, sample_bytes: int) -> bytes:
        return self.supervisor.request("go_pprof_start", heap, sample_bytes, describe="%go_pprof")

    def pprof_stop(self) -> bytes:
        return self.supervisor.request("go_pprof_stop", describe="%go_pprof")


def worker_functions(user_ns: dict, supervisor) -> list:
    """The proxies of the functions the current worker bound in the namespace (Go's and C++'s: the worker tells)."""
    from ipolyglot.kernel.core.travel import NativeFunction
    from ipolyglot.kernel.worker_proxies import RemoteObject

    found = []
    for value in list(user_ns.values()):
        # Only a NativeFunction is unwrapped: any other attribute read on a proxy would ask
        # its worker, and a proxy from a worker that ended raises StaleNativeObject.
        target = value.target if isinstance(value, NativeFunction) else value
        if isinstance(target, RemoteObject) and target._info.kind == "function" and target._generation == supervisor.generation:
            found.append(target)
    return found


class ProfiledRuntime:
    """The worker's side of `%go_pprof` in worker mode: the runtime chosen for a statement, profiled from start to stop."""

    def __init__(self, go_backend: Callable):
        self.go_backend = go_backend  # the worker's Go backend, made when first asked for
        self.library = None

    def choose(self, functions: list) -> int:
        """The runtime serving most of `functions`; how many other runtimes serve some of them."""
        self.library, others = serving_library(dict(enumerate(functions)), self.go_backend()._current)
        return others

    def start(self, heap: bool, sample_bytes: int) -> bytes:
        return self.library.pprof_start(heap, sample_bytes)

    def stop(self) -> bytes:
        """The profile; empty when no runtime was profiled (a worker that replaced one that ended meanwhile)."""
        library, self.library = self.library, None
        return b"" if library is None else library.pprof_stop()


def profile(request: PprofRequest, lib, run: Callable[[str], object], cells: CellRegistry, others: int,
            left_out: str = "") -> list[dict]:
    """Run the code with the profiler on in `lib`'s runtime (a library in-process, a WorkerRuntime in
    worker mode); the display bundles to show."""
    code = compile_statement(request.code)
    baseline = lib.pprof_start(request.heap, HEAP_SAMPLE_BYTES)
    started = time.perf_counter()
    try:
        run_statement(code, run)
    finally:
        elapsed = time.perf_counter() - started
        data = lib.pprof_stop()
    prof = pprof.parse(data)
    if request.heap:
        prof = pprof.subtract(prof, pprof.parse(baseline))
        index, fmt = prof.index_of("alloc_space"), _bytes
    else:
        index, fmt = prof.index_of("cpu"), lambda ns: format_seconds(ns / 1e9)

    def where(frame: pprof.Frame, with_line: bool = True) -> str:
        cell = pprof.cell_of(frame)
        label = cells.label(cell, None) if cell else None
        if label is None:
            return ""
        return f"{label}:{frame.line}" if with_line else label

    costs, totals = pprof.top_functions(prof, index)
    total = totals.go
    summary = _summary(request.heap, totals, elapsed, fmt)
    if others:
        summary += f"; {others} older Go runtime(s) also serve names in the namespace and were not profiled"
    if left_out:
        summary += f"; {left_out}"
    if not costs:
        return [{"text/plain": f"{summary}: no samples (the Go code ran too briefly to be sampled)"}]
    headers = ["flat", "flat%", "cum", "cum%", "function", "where"]
    rows = []
    for cost in costs[: request.top]:
        file, line = cost.hottest()
        rows.append([
            fmt(cost.flat), f"{100 * cost.flat / total:.1f}%", fmt(cost.cum), f"{100 * cost.cum / total:.1f}%",
            cost.function, where(pprof.Frame(cost.function, file, line)),
        ])
    stacks = pprof.folded_stacks(prof, index, lambda f: f"({where(f, False)})" if where(f) else "")
    scale = 1.0 if request.heap else 1e-6
    svg = flame_graph_svg([(frames, value * scale) for frames, value in stacks], "bytes" if request.heap else "ms",
                          f"Go {'allocations' if request.heap else 'CPU'} flame graph")
    table = text_table(headers, rows)
    reading = HEAP_READING if request.heap else CPU_READING
    return [
        {"text/plain": f"{summary}\n{table}\n{reading}",
         "text/html": f"<p>{summary}</p>{html_table(headers, rows)}<p><small>{reading}</small></p>"},
        {"text/plain": f"<flame graph: {len(stacks)} stacks>", "image/svg+xml": svg},
    ]


def compile_statement(text: str):
    """The profiled code, compiled under a name whose lines a traceback can show;
    a SyntaxError is the user's own (ExpressionFailed)."""
    from ipolyglot.kernel.core.compare import ExpressionFailed  # imports numpy: not at the worker's start

    linecache.cache[STATEMENT_FILE] = (len(text), None, text.splitlines(True) or ["\n"], STATEMENT_FILE)
    try:
        return compile(text, STATEMENT_FILE, "exec")
    except SyntaxError as error:
        raise ExpressionFailed(error, None) from None


def run_statement(code, run: Callable) -> None:
    """Run the profiled code; what it raises is the user's own error, handed over as
    ExpressionFailed with the frames from the statement on (the magic shows it as a
    cell running the statement would, without the magic's own frames)."""
    from ipolyglot.kernel.core.compare import ExpressionFailed

    try:
        run(code)
    except Exception as error:  # noqa: BLE001 - the user's, shown as theirs
        raise ExpressionFailed(error, _statement_frames(error.__traceback__)) from None


def _statement_frames(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_frame.f_code.co_filename != STATEMENT_FILE:
        tb = tb.tb_next
    return tb


CPU_READING = (
    "flat: CPU time with the function itself running; cum: with it anywhere on the stack; "
    "% of the Go CPU time above; where: the cell line that took most of it."
)
HEAP_READING = (
    "flat: bytes allocated by the function itself; cum: by it and what it called; "
    "% of the bytes above; where: the cell line that allocated most."
)


def _summary(heap: bool, totals: pprof.Totals, elapsed: float, fmt) -> str:
    """The first line: what was measured, against the statement's wall time.

    CPU samples come from every thread; those of threads that were not running
    Go code (the Python interpreter, C code, the process's other threads) are
    not Go's and are reported apart, never mixed into the Go figures.
    """
    wall = format_seconds(elapsed)
    if heap:
        return f"{fmt(totals.go)} allocated by Go code while the statement ran for {wall}"
    text = (f"{fmt(totals.go)} of CPU time in Go code (summed over the threads that ran it; sampled at 100 Hz) "
            f"while the statement ran for {wall} of wall time")
    if totals.not_go:
        text += f"; threads not running Go code (Python, C, the process's other threads) used another {fmt(totals.not_go)}, not in the table"
    return text


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"

"""The boundary profiler: what each crossing between Python and native code costs.

Backends that build a function with profiling on generate an instrumented
entry point that records, once per call, the wall time of the whole call and
three phases measured inside it (copy in, native code, copy out); the rest is
call overhead. Functions built with profiling off take an uninstrumented path
and never touch this module. IPython-free, so backends may import it.

The first call of a function pays one-time costs (loading and initialising
code, first-touch page faults, lazy imports) that later calls do not: it is
kept apart, so the per-call figures describe the steady state.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field


@dataclass
class CallPhases:
    """Wall time of calls and of the phases measured inside them (nanoseconds, summed)."""

    total_ns: int = 0  # the whole call, from the instrumented entry point's start to its end
    copy_in_ns: int = 0  # converting and copying arguments into native memory
    native_ns: int = 0  # the user's own native code
    copy_out_ns: int = 0  # converting and copying results back into Python objects
    crossing_ns: int = 0  # worker mode: to the worker process and back (the kernel's wall time minus the worker's)

    @property
    def overhead_ns(self) -> int:
        """The rest of the wall time: dispatch, GIL release and acquire, the language transition."""
        return max(0, self.total_ns - self.copy_in_ns - self.native_ns - self.copy_out_ns - self.crossing_ns)

    def add(self, other: CallPhases) -> None:
        self.total_ns += other.total_ns
        self.copy_in_ns += other.copy_in_ns
        self.native_ns += other.native_ns
        self.copy_out_ns += other.copy_out_ns
        self.crossing_ns += other.crossing_ns


@dataclass
class RecordedCall:
    """One call as an instrumented entry point recorded it: what a worker sends back to the kernel."""

    language: str
    name: str
    total_ns: int
    copy_in_ns: int
    native_ns: int
    copy_out_ns: int


@dataclass
class FunctionStats:
    language: str  # "go" or "cpp"
    name: str
    calls: int = 0  # every call, the first included
    first: CallPhases = field(default_factory=CallPhases)  # the first call alone (one-time costs)
    later: CallPhases = field(default_factory=CallPhases)  # every later call, summed

    @property
    def steady(self) -> CallPhases:
        """The calls that describe the steady state: all but the first (the first when it is the only one)."""
        return self.later if self.calls > 1 else self.first

    @property
    def steady_calls(self) -> int:
        return max(1, self.calls - 1)

    @property
    def all_calls_ns(self) -> int:
        return self.first.total_ns + self.later.total_ns

    # The steady-state phases, summed over the steady calls.
    total_ns = property(lambda self: self.steady.total_ns)
    copy_in_ns = property(lambda self: self.steady.copy_in_ns)
    native_ns = property(lambda self: self.steady.native_ns)
    copy_out_ns = property(lambda self: self.steady.copy_out_ns)
    crossing_ns = property(lambda self: self.steady.crossing_ns)
    overhead_ns = property(lambda self: self.steady.overhead_ns)


class BoundaryProfiler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], FunctionStats] = {}
        self.always = False  # `%polyglot profile on`: instrument every function built from now on
        self._last = threading.local()  # .call: this thread's latest RecordedCall, until taken

    def record(self, language: str, name: str, total_ns: int, copy_in_ns: int, native_ns: int, copy_out_ns: int,
               crossing_ns: int = 0) -> None:
        """One call: its wall time, the three phases measured inside it and, in worker mode, the crossing."""
        self._last.call = RecordedCall(language, name, total_ns, copy_in_ns, native_ns, copy_out_ns)
        phases = CallPhases(total_ns, copy_in_ns, native_ns, copy_out_ns, crossing_ns)
        with self._lock:
            stats = self._stats.get((language, name))
            if stats is None:
                stats = self._stats[(language, name)] = FunctionStats(language, name)
            stats.calls += 1
            (stats.first if stats.calls == 1 else stats.later).add(phases)

    def take_last(self) -> RecordedCall | None:
        """The call this thread recorded last, once (the worker sends it with the call's result)."""
        call = getattr(self._last, "call", None)
        if call is not None:
            self._last.call = None
        return call

    def record_crossing(self, call: RecordedCall, kernel_total_ns: int) -> None:
        """A worker-mode call, timed by the kernel: the worker's phases, and the rest of the kernel's
        wall time beyond the worker's own as the process crossing."""
        self.record(call.language, call.name, kernel_total_ns, call.copy_in_ns, call.native_ns, call.copy_out_ns,
                    crossing_ns=max(0, kernel_total_ns - call.total_ns))

    def timed_entry(self, function, language: str, name: str, read_phases):
        """`function` wrapped so that a call's wall time is measured as Python sees it.

        For native entry points that cannot time the whole call themselves (a
        pybind11 function is entered through pybind11's dispatcher): they keep
        the phases they measured, and `read_phases()` hands them over (or None)
        after the clock has stopped, so handing them over costs the call nothing.
        A call that raised records nothing.
        """
        clock = time.perf_counter_ns

        @functools.wraps(function)
        def entry(*args, **kwargs):
            started = clock()
            result = function(*args, **kwargs)
            total = clock() - started
            phases = read_phases()
            if phases is not None:
                self.record(language, name, total, *phases)
            return result

        entry._ipolyglot_timed = True
        return entry

    def stats(self) -> list[FunctionStats]:
        """Per-function figures, the most expensive (over all calls) first."""
        with self._lock:
            rows = [
                FunctionStats(s.language, s.name, s.calls, CallPhases(**vars(s.first)), CallPhases(**vars(s.later)))
                for s in self._stats.values()
            ]
        return sorted(rows, key=lambda s: s.all_calls_ns, reverse=True)

    def reset(self) -> None:
        with self._lock:
            self._stats.clear()


PROFILER = BoundaryProfiler()

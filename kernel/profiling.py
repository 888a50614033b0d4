"""The boundary profiler: what each crossing between Python and native code costs.

Backends that build a function with profiling on generate an instrumented
entry point that calls `PROFILER.record(...)` once per call with the four
phases it measured; functions built with profiling off take an uninstrumented
path and never touch this module. IPython-free, so backends may import it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class FunctionStats:
    language: str  # "go" or "cpp"
    name: str
    calls: int = 0
    total_ns: int = 0  # wall time of the whole call, as Python sees it
    copy_in_ns: int = 0  # converting and copying arguments into native memory
    native_ns: int = 0  # the user's own native code
    copy_out_ns: int = 0  # converting and copying results back into Python objects

    @property
    def overhead_ns(self) -> int:
        """The rest: Python-side call machinery, GIL release/acquire, dispatch."""
        return max(0, self.total_ns - self.copy_in_ns - self.native_ns - self.copy_out_ns)


class BoundaryProfiler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], FunctionStats] = {}
        self.always = False  # `%polyglot profile on`: instrument every function built from now on

    def record(self, language: str, name: str, total_ns: int, copy_in_ns: int, native_ns: int, copy_out_ns: int) -> None:
        with self._lock:
            stats = self._stats.get((language, name))
            if stats is None:
                stats = self._stats[(language, name)] = FunctionStats(language, name)
            stats.calls += 1
            stats.total_ns += total_ns
            stats.copy_in_ns += copy_in_ns
            stats.native_ns += native_ns
            stats.copy_out_ns += copy_out_ns

    def stats(self) -> list[FunctionStats]:
        """Per-function totals, the most expensive first."""
        with self._lock:
            rows = [FunctionStats(**vars(s)) for s in self._stats.values()]
        return sorted(rows, key=lambda s: s.total_ns, reverse=True)

    def reset(self) -> None:
        with self._lock:
            self._stats.clear()


PROFILER = BoundaryProfiler()

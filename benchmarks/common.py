"""Measurement helpers shared by the benchmark scripts.

Every figure is reported against a baseline measured in the same run, as a
ratio, with min/median/max over repetitions: absolute numbers vary between
machines, ratios much less.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable


@dataclass
class Stats:
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, samples: list[float]) -> "Stats":
        return cls(min(samples), statistics.median(samples), max(samples))


def per_call(fn: Callable[[], object], *, number: int, repeat: int) -> Stats:
    """Seconds per call of fn(), over `repeat` runs of `number` calls each."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return Stats.of(samples)


def once(fn: Callable[[], object], *, repeat: int) -> Stats:
    """Seconds of single runs of fn() (builds, bulk copies)."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Stats.of(samples)


@dataclass
class Row:
    """One measured figure and the baseline it is compared with."""

    group: str
    name: str
    stats: Stats
    unit: str  # "s/call", "s", "GB/s"
    baseline: str
    baseline_stats: Stats
    goal: str = ""  # e.g. "≤ 2×", "≥ 0.5×"
    higher_is_better: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.stats.median / self.baseline_stats.median if self.baseline_stats.median else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def throughput(nbytes: int, seconds: Stats) -> Stats:
    """GB/s from seconds (min time gives max throughput)."""
    return Stats(nbytes / seconds.max / 1e9, nbytes / seconds.median / 1e9, nbytes / seconds.min / 1e9)


def _fmt(value: float, unit: str) -> str:
    if unit.startswith("s"):
        for name, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
            if value >= scale or name == "ns":
                return f"{value / scale:.3g} {name}{unit[1:]}"
    return f"{value:.3g} {unit}"


def table(rows: list[Row]) -> str:
    headers = ["group", "figure", "median [min–max]", "baseline (same run)", "baseline median", "ratio", "goal"]
    lines = [[r.group, r.name, f"{_fmt(r.stats.median, r.unit)} [{_fmt(r.stats.min, r.unit)}–{_fmt(r.stats.max, r.unit)}]",
              r.baseline, _fmt(r.baseline_stats.median, r.unit), f"{r.ratio:.2f}×", r.goal] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *lines)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([fmt(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines)])


def interactive_shell():
    """An in-process IPython shell with the ipolyglot extension: the magics' own path."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("ipolyglot.kernel")
    return shell


def run_cell(shell, code: str) -> None:
    result = shell.run_cell(code, silent=True)
    if not result.success:
        raise RuntimeError(f"benchmark cell failed: {result.error_in_exec or result.error_before_exec}\n{code}")

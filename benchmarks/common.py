"""Measurement helpers shared by the benchmark scripts.

Every figure is compared with a baseline measured in the same process and the
same run, interleaved with it (measured, baseline, measured, baseline, ...):
each pair gives one ratio, and a row reports the median of those per-pair
ratios with their min and max. Load from other work on the machine, or a
drifting clock, then hits both sides of a pair alike instead of biasing one.
"""

from __future__ import annotations

import re
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

    @classmethod
    def fixed(cls, value: float) -> "Stats":
        return cls(value, value, value)


def seconds_per_call(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of fn(), over `number` calls in a row."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


@dataclass
class Pairs:
    """Interleaved samples (seconds per call): measured[i] and baseline[i] ran back to back."""

    measured: list[float]
    baseline: list[float]


def interleaved(measured: Callable[[], object], baseline: Callable[[], object], *, pairs: int, number: int = 1,
                warmup: bool = True) -> Pairs:
    """Run measured and baseline alternately, `number` calls each per sample, `pairs` times."""
    if warmup:
        measured(), baseline()
    out = Pairs([], [])
    for _ in range(pairs):
        out.measured.append(seconds_per_call(measured, number))
        out.baseline.append(seconds_per_call(baseline, number))
    return out


def against_fixed(measured: Callable[[], object], seconds: float, *, repeat: int) -> Pairs:
    """A figure against a fixed goal (e.g. 50 ms): the 'baseline' is that constant."""
    samples = [seconds_per_call(measured, 1) for _ in range(repeat)]
    return Pairs(samples, [seconds] * len(samples))


GOAL = re.compile(r"([≤≥])\s*([0-9.]+)×")


@dataclass
class Row:
    """One measured figure, the baseline it is compared with, and the per-pair ratios.

    `speed` rows compare speed (baseline time / measured time: higher is better,
    e.g. bandwidth against np.copy or the speed-up of two threads); other rows
    compare time (measured / baseline: lower is better).
    """

    group: str
    name: str
    stats: Stats  # measured, seconds (per call)
    unit: str  # "s/call" or "s"
    baseline: str
    baseline_stats: Stats
    ratio_stats: Stats
    goal: str = ""  # "≤ 1.5×" or "≥ 0.5×", on the ratio column
    speed: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def paired(cls, group: str, name: str, pairs: Pairs, baseline: str, *, unit: str = "s", goal: str = "",
               speed: bool = False, **extra) -> "Row":
        ratios = [(b / m if speed else m / b) for m, b in zip(pairs.measured, pairs.baseline)]
        return cls(group, name, Stats.of(pairs.measured), unit, baseline, Stats.of(pairs.baseline), Stats.of(ratios),
                   goal, speed, extra)

    @property
    def ratio(self) -> float:
        return self.ratio_stats.median

    @property
    def verdict(self) -> str:
        """'yes' / 'no' when the goal is a bound on the ratio, else ''."""
        match = GOAL.search(self.goal)
        if not match:
            return ""
        bound = float(match.group(2))
        met = self.ratio <= bound if match.group(1) == "≤" else self.ratio >= bound
        return "yes" if met else "no"

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "goal_met": self.verdict}


def fmt_duration(value: float, unit: str) -> str:
    for name, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if value >= scale or name == "ns":
            return f"{value / scale:.3g} {name}{unit[1:]}"
    return f"{value:.3g} {unit}"


def fmt_ratio(stats: Stats, speed: bool) -> str:
    word = " speed" if speed else ""
    return f"{stats.median:.2f}×{word} [{stats.min:.2f}–{stats.max:.2f}]"


def table(rows: list[Row]) -> str:
    headers = ["group", "figure", "median [min–max]", "baseline (same run, interleaved)", "baseline median",
               "ratio: median of pairs [min–max]", "goal", "met"]
    lines = [[r.group, r.name,
              f"{fmt_duration(r.stats.median, r.unit)} [{fmt_duration(r.stats.min, r.unit)}–{fmt_duration(r.stats.max, r.unit)}]",
              r.baseline, fmt_duration(r.baseline_stats.median, r.unit), fmt_ratio(r.ratio_stats, r.speed), r.goal, r.verdict]
             for r in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *lines)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([fmt(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines)])


def interactive_shell(mode: str = "in-process"):
    """An in-process IPython shell with the ipolyglot extension: the magics' own path.

    Native code runs in `mode`: in-process unless a script measures worker mode,
    which is the extension's default, so that in-process rows never time a worker."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("ipolyglot.kernel")
    shell.run_line_magic("polyglot", f"mode {mode}")
    return shell


def run_cell(shell, code: str) -> None:
    result = shell.run_cell(code, silent=True)
    if not result.success:
        raise RuntimeError(f"benchmark cell failed: {result.error_in_exec or result.error_before_exec}\n{code}")



def run_in_process(backend, cache, cell: str, line: str = "", label: str = "In [1]") -> dict:
    """Run one cell body through the kernel's pipeline without a kernel: the names it binds
    (so a benchmark times the build and load alone)."""
    from ipolyglot.kernel.core.pipeline import run_without_kernel

    return run_without_kernel(backend, cache, cell, line, label)

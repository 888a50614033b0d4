"""Rendering the boundary profile and comparisons as a table plus an inline SVG chart."""

from __future__ import annotations

from .core.charts import format_ratio, format_seconds, html_table, log_bars_svg, stacked_bars_svg, text_table
from .core.profiling import FunctionStats

PHASES = ["copy in", "native code", "copy out", "call overhead"]
CROSSING = "process crossing"  # worker mode: shown beside the other phases when a call crossed to the worker

PROFILE_READING = (
    "How to read it: each phase is the mean per call over every call but the first, with its share of the call; "
    "the first call pays one-time costs (loading code, lazy initialisation, first-touch page faults) and is shown apart. "
    "copy in/out: converting arguments and results between Python objects and native memory; "
    "native code: your function alone; call overhead: the rest of the wall time "
    "(the Python entry point, cffi or pybind11 dispatch, GIL release, the C-to-Go transition, freeing result memory)."
)
CROSSING_READING = (
    " process crossing (worker mode): the call's trip to the worker process and back, the arguments and the "
    "result included, as the kernel's wall time beyond the worker's own."
)

COMPARE_READING = (
    "best: the fastest repeat, per evaluation; ratio: best time over the first expression's "
    "(the baseline); the chart's scale is logarithmic (one gridline per factor of 10)."
)


def _phases_per_call(s: FunctionStats, with_crossing: bool = False) -> list[float]:
    steady = s.steady
    phases = [steady.copy_in_ns, steady.native_ns, steady.copy_out_ns, steady.overhead_ns]
    if with_crossing:
        phases.append(steady.crossing_ns)
    return [ns / 1e9 / s.steady_calls for ns in phases]


def _share(part: float, whole: float) -> str:
    return f"{format_seconds(part)} ({100 * part / whole:.0f}%)" if whole else format_seconds(part)


def render(stats: list[FunctionStats]) -> list[dict]:
    """Two display bundles: the table with its reading line, then the stacked-bar chart (SVG) of a mean call."""
    crossed = any(s.first.crossing_ns or s.later.crossing_ns for s in stats)
    phases = [*PHASES, CROSSING] if crossed else PHASES
    reading = PROFILE_READING + (CROSSING_READING if crossed else "")
    headers = ["function", "calls", "total", "per call", *phases, "first call"]
    rows = []
    for s in stats:
        per_call = s.steady.total_ns / 1e9 / s.steady_calls
        first = "(the only call)" if s.calls == 1 else format_seconds(s.first.total_ns / 1e9)
        rows.append([
            f"{s.name} ({s.language})", str(s.calls), format_seconds(s.all_calls_ns / 1e9), format_seconds(per_call),
            *(_share(p, per_call) for p in _phases_per_call(s, crossed)), first,
        ])
    svg = stacked_bars_svg([f"{s.name} ({s.language})" for s in stats], phases,
                           [_phases_per_call(s, crossed) for s in stats], format_seconds)
    return [
        {"text/plain": f"{text_table(headers, rows)}\n{reading}",
         "text/html": f"{html_table(headers, rows)}<p><small>{reading}</small></p>"},
        {"text/plain": "<stacked bar chart: time per phase of a mean call>", "image/svg+xml": svg},
    ]


def speed_up(ratio: float) -> str:
    """A ratio to the baseline in words: 0.0172 reads "58× faster", 3 reads "3× slower"."""
    if ratio <= 0:
        return ""
    if abs(ratio - 1) < 0.005:
        return "same"
    return f"{format_ratio(1 / ratio)} faster" if ratio < 1 else f"{format_ratio(ratio)} slower"


def render_comparison(timings) -> list[dict]:
    first = timings[0].best
    headers = ["expression", "best", "median", "ratio to first", "speed-up", "loops × repeats"]
    ratios = [t.best / first if first else 0.0 for t in timings]
    notes = ["(baseline)" if i == 0 else f"({speed_up(r)})" if r else "" for i, r in enumerate(ratios)]
    rows = [[t.expression, format_seconds(t.best), format_seconds(t.median), format_ratio(r) if first else "-",
             "baseline" if i == 0 else speed_up(r) or "-", f"{t.loops} × {t.repeats}"]
            for i, (t, r) in enumerate(zip(timings, ratios))]
    svg = log_bars_svg([t.expression for t in timings], [t.best for t in timings], notes, format_seconds)
    return [
        {"text/plain": f"{text_table(headers, rows)}\n{COMPARE_READING}",
         "text/html": f"{html_table(headers, rows)}<p><small>{COMPARE_READING}</small></p>"},
        {"text/plain": "<bar chart, log scale: best time per evaluation>", "image/svg+xml": svg},
    ]

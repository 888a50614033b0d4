"""Rendering the boundary profile and comparisons as a table plus an inline SVG chart."""

from __future__ import annotations

from .charts import format_seconds, html_table, stacked_bars_svg, text_table
from .profiling import FunctionStats

PHASES = ["copy in", "native code", "copy out", "Python-side overhead"]


def _phases(s: FunctionStats) -> list[int]:
    return [s.copy_in_ns, s.native_ns, s.copy_out_ns, s.overhead_ns]


def render(stats: list[FunctionStats]) -> list[dict]:
    """Two display bundles: the table, then the stacked-bar chart (SVG), sorted by total time."""
    headers = ["function", "calls", "total", "per call", *PHASES]
    rows = []
    for s in stats:
        per_phase = [f"{format_seconds(ns / 1e9)} ({100 * ns / s.total_ns:.0f}%)" if s.total_ns else "0" for ns in _phases(s)]
        rows.append([f"{s.name} ({s.language})", str(s.calls), format_seconds(s.total_ns / 1e9),
                     format_seconds(s.total_ns / 1e9 / max(1, s.calls)), *per_phase])
    svg = stacked_bars_svg(
        [f"{s.name} ({s.language})" for s in stats], PHASES,
        [[ns / 1e6 for ns in _phases(s)] for s in stats], "ms",
    )
    return [
        {"text/plain": text_table(headers, rows), "text/html": html_table(headers, rows)},
        {"text/plain": "<stacked bar chart: time per phase>", "image/svg+xml": svg},
    ]


def render_comparison(timings) -> list[dict]:
    first = timings[0].best
    headers = ["expression", "best", "median", "ratio to first", "loops × repeats"]
    rows = [[t.expression, format_seconds(t.best), format_seconds(t.median),
             f"{t.best / first:.3g}×" if first else "-", f"{t.loops} × {t.repeats}"] for t in timings]
    svg = stacked_bars_svg([t.expression for t in timings], ["best time per evaluation"],
                           [[t.best * 1e6] for t in timings], "µs")
    return [
        {"text/plain": text_table(headers, rows), "text/html": html_table(headers, rows)},
        {"text/plain": "<bar chart: best time per evaluation>", "image/svg+xml": svg},
    ]

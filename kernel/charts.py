"""Small, dependency-free SVG charts and HTML tables for the profiler and comparisons.

Rendered inline in the notebook as image/svg+xml, with a text/plain table for
terminals such as `jupyter console`.
"""

from __future__ import annotations

import html

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:{'left' if i == 0 else 'right'}'>{html.escape(str(c))}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def stacked_bars_svg(labels: list[str], segments: list[str], values: list[list[float]], unit_label: str) -> str:
    """Horizontal stacked bars: one bar per label, one coloured segment per series."""
    width, label_w, bar_h, gap, top = 640, 170, 22, 8, 30
    height = top + len(labels) * (bar_h + gap) + 20
    longest = max((sum(v) for v in values), default=0) or 1.0
    scale = (width - label_w - 90) / longest
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">']
    x = label_w
    for i, name in enumerate(segments):  # legend
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 16}" y="16">{html.escape(name)}</text>')
        x += 16 + 7 * len(name) + 18
    for row, (label, vals) in enumerate(zip(labels, values)):
        y = top + row * (bar_h + gap)
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{html.escape(label)}</text>')
        x = float(label_w)
        for i, v in enumerate(vals):
            w = v * scale
            if w > 0:
                parts.append(
                    f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar_h}" fill="{PALETTE[i % len(PALETTE)]}">'
                    f"<title>{html.escape(segments[i])}: {v:.4g} {unit_label}</title></rect>"
                )
            x += w
        parts.append(f'<text x="{x + 4:.2f}" y="{y + bar_h * 0.7:.1f}">{sum(vals):.3g} {unit_label}</text>')
    parts.append("</svg>")
    return "".join(parts)

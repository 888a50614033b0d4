"""Small, dependency-free SVG charts and HTML tables for the profiler and comparisons.

Rendered inline in the notebook as image/svg+xml, with a text/plain table for
terminals such as `jupyter console`.
"""

from __future__ import annotations

import html
import math

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]


def format_seconds(seconds: float) -> str:
    """A duration in 3 significant digits and the unit that suits it: the one formatter of tables and charts."""
    rounded = float(f"{seconds:.3g}")  # 999.96 µs reads 1 ms, not 1e+03 µs
    if rounded >= 1000:
        return f"{rounded:,.0f} s"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if rounded >= scale or unit == "ns":
            return f"{rounded / scale:.3g} {unit}"
    return f"{rounded:.3g} s"


def format_ratio(ratio: float) -> str:
    """A factor in 3 significant digits, never in e-notation: 44,300×, 58.3×, 0.0000316×."""
    rounded = float(f"{ratio:.3g}")
    if rounded == 0:
        return "0×"
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:,.{decimals}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "×"


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


CHAR_W = 7.0  # approximate width of a 12px sans-serif character: labels get the room they need


def _label_width(labels: list[str]) -> float:
    return 12 + CHAR_W * max((len(label) for label in labels), default=0)


def stacked_bars_svg(labels: list[str], segments: list[str], values: list[list[float]], format_value) -> str:
    """Horizontal stacked bars on a linear scale: one bar per label, one coloured segment per series.

    `format_value` writes a value the way the table beside the chart does.
    """
    bar_area, bar_h, gap, top = 420, 22, 8, 30
    label_w = _label_width(labels)
    value_w = 12 + CHAR_W * max((len(format_value(sum(v))) for v in values), default=0)
    legend_w = sum(34 + CHAR_W * len(name) for name in segments)
    width = int(max(label_w + bar_area + value_w, label_w + legend_w))
    height = top + len(labels) * (bar_h + gap) + 20
    longest = max((sum(v) for v in values), default=0) or 1.0
    scale = bar_area / longest
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">']
    x = label_w
    for i, name in enumerate(segments):  # legend
        parts.append(f'<rect x="{x:.1f}" y="6" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 16:.1f}" y="16">{html.escape(name)}</text>')
        x += 34 + CHAR_W * len(name)
    for row, (label, vals) in enumerate(zip(labels, values)):
        y = top + row * (bar_h + gap)
        parts.append(f'<text x="{label_w - 6:.1f}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{html.escape(label)}</text>')
        x = float(label_w)
        for i, v in enumerate(vals):
            w = v * scale
            if w > 0:
                parts.append(
                    f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar_h}" fill="{PALETTE[i % len(PALETTE)]}">'
                    f"<title>{html.escape(segments[i])}: {html.escape(format_value(v))}</title></rect>"
                )
            x += w
        parts.append(f'<text x="{x + 4:.2f}" y="{y + bar_h * 0.7:.1f}">{html.escape(format_value(sum(vals)))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def log_bars_svg(labels: list[str], values: list[float], notes: list[str], format_value) -> str:
    """Horizontal bars on a log scale, with a gridline per decade, for values that span orders of magnitude.

    A bar starts one decade below the smallest value, so the smallest is still
    visible; each bar ends in its value (written by `format_value`) and its note.
    """
    bar_area, bar_h, gap, top, axis_h = 420, 22, 8, 8, 22
    label_w = _label_width(labels)
    texts = [f"{format_value(v)} {note}".strip() for v, note in zip(values, notes)]
    width = int(label_w + bar_area + 12 + CHAR_W * max((len(t) for t in texts), default=0))
    positive = [v for v in values if v > 0] or [1.0]
    low = math.floor(math.log10(min(positive))) - 1
    high = max(math.ceil(math.log10(max(positive))), low + 1)
    scale = bar_area / (high - low)
    height = top + len(labels) * (bar_h + gap) + axis_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">']
    bottom = top + len(labels) * (bar_h + gap)
    for decade in range(low, high + 1):  # gridlines and the axis labels (log scale)
        x = label_w + (decade - low) * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#666" font-size="10">{html.escape(format_value(10.0 ** decade))}</text>')
    for row, (label, value, text) in enumerate(zip(labels, values, texts)):
        y = top + row * (bar_h + gap)
        w = max(0.0, math.log10(value) - low) * scale if value > 0 else 0.0
        parts.append(f'<text x="{label_w - 6:.1f}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{html.escape(label)}</text>')
        parts.append(
            f'<rect x="{label_w:.1f}" y="{y}" width="{w:.2f}" height="{bar_h}" fill="{PALETTE[0]}">'
            f"<title>{html.escape(label)}: {html.escape(text)}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 4:.2f}" y="{y + bar_h * 0.7:.1f}">{html.escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def flame_graph_svg(stacks: list[tuple[list[str], float]], unit_label: str, title: str = "") -> str:
    """A flame graph: root at the bottom, each frame as wide as the time (or bytes) under it.

    `stacks` holds root-first lists of frame names with the value of each stack;
    frames of the same name under the same parent merge into one box.
    """
    tree: dict = {"value": 0.0, "children": {}}
    for frames, value in stacks:
        node = tree
        node["value"] += value
        for name in frames:
            node = node["children"].setdefault(name, {"value": 0.0, "children": {}})
            node["value"] += value

    def depth(node: dict) -> int:
        return 1 + max((depth(child) for child in node["children"].values()), default=0)

    width, row_h, top = 900, 18, 24 if title else 4
    levels = depth(tree)  # the root row ("all") plus one row per stack depth
    height = top + levels * row_h + 4
    total = tree["value"] or 1.0
    scale = (width - 2) / total
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">']
    if title:
        parts.append(f'<text x="{width / 2}" y="15" text-anchor="middle" font-family="sans-serif" font-size="13">{html.escape(title)}</text>')

    def box(name: str, value: float, x: float, level: int) -> None:
        y = top + (levels - 1 - level) * row_h
        w = value * scale
        if w < 0.5:
            return
        hue = 10 + (sum(map(ord, name)) * 7) % 45  # warm colours, stable per name
        tip = f"{name}: {value:.4g} {unit_label} ({100 * value / total:.1f}%)"
        parts.append(
            f'<g><title>{html.escape(tip)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row_h - 1}" '
            f'fill="hsl({hue},85%,{58 + level % 3 * 6}%)" rx="2"/>'
        )
        chars = int((w - 6) / 6.6)
        if chars >= 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            parts.append(f'<text x="{x + 3:.2f}" y="{y + row_h - 5}">{html.escape(text)}</text>')
        parts.append("</g>")

    def draw(node: dict, name: str, x: float, level: int) -> None:
        box(name, node["value"], x, level)
        for child_name, child in sorted(node["children"].items()):
            draw(child, child_name, x, level + 1)
            x += child["value"] * scale

    draw(tree, f"all ({tree['value']:.4g} {unit_label})", 1.0, 0)
    parts.append("</svg>")
    return "".join(parts)

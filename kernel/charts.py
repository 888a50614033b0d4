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

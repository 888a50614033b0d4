"""Bracket depth of C-like source (Go, C++), skipping strings and comments.

Completion needs to know whether the cursor sits at a cell's top level or
inside a body, without a full parser: the cell is being typed and rarely
parses.
"""

from __future__ import annotations

from dataclasses import dataclass

OPENING = "{(["
CLOSING = "})]"


@dataclass(frozen=True)
class TopLevel:
    """Where the cursor is, seen from the cell's top level."""

    depth: int  # open brackets around the cursor (0: at the top level)
    brace_depth: int  # open braces only
    statement_start: int  # start of the top-level statement the cursor is in


def scan(text: str, cursor: int, raw_strings: str = "`") -> TopLevel:
    """Scan text up to the cursor. A top-level statement ends at ';', at a '}'
    that returns to the top level, or at a newline at the top level."""
    cursor = min(cursor, len(text))
    depth = brace_depth = 0
    statement_start = 0
    i = 0
    while i < cursor:
        ch = text[i]
        two = text[i:i + 2]
        if two == "//":
            end = text.find("\n", i)
            i = cursor if end < 0 or end >= cursor else end
            continue
        if two == "/*":
            end = text.find("*/", i + 2)
            i = cursor if end < 0 or end + 2 > cursor else end + 2
            continue
        if ch in "\"'" or ch in raw_strings:
            i = _string_end(text, i, cursor, raw=ch in raw_strings)
            continue
        if ch in OPENING:
            depth += 1
            brace_depth += ch == "{"
        elif ch in CLOSING:
            depth = max(depth - 1, 0)
            if ch == "}":
                brace_depth = max(brace_depth - 1, 0)
                if depth == 0:
                    statement_start = i + 1
        elif depth == 0 and ch in ";\n":
            statement_start = i + 1
        i += 1
    return TopLevel(depth, brace_depth, statement_start)


def _string_end(text: str, start: int, limit: int, raw: bool) -> int:
    quote = text[start]
    i = start + 1
    while i < limit:
        ch = text[i]
        if ch == quote:
            return i + 1
        if not raw and ch == "\\":
            i += 2
            continue
        if ch == "\n" and not raw:
            return i  # an unterminated literal ends at the line
        i += 1
    return limit

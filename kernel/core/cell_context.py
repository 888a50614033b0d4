"""Where the cursor of a complete or inspect request is: in a %%go/%%cpp cell body, or in Python.

Front ends send the whole cell and a cursor offset (in code points); a cell
magic's body is what a language completer sees, so offsets are translated
between the two here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MAGIC_LINE = re.compile(r"\A(?P<lead>[ \t]*\n)*[ \t]*%%(?P<language>go|cpp)(?![\w-])[^\n]*(?:\n|\Z)")
_IDENTIFIER_CHAR = re.compile(r"\w")


@dataclass(frozen=True)
class MagicCell:
    """A cell magic's body and the cursor inside it."""

    language: str  # "go" or "cpp": the magic's name
    body: str  # the text after the %%magic line
    body_offset: int  # where the body starts in the whole cell
    cursor: int  # the cursor, as an offset into body

    def to_cell(self, body_position: int) -> int:
        """A body offset as an offset into the whole cell."""
        return self.body_offset + body_position


def magic_cell_at(code: str, cursor_pos: int | None) -> MagicCell | None:
    """The %%go or %%cpp cell the cursor is in, or None (Python, or the magic line itself)."""
    match = _MAGIC_LINE.match(code)
    if match is None:
        return None
    cursor = len(code) if cursor_pos is None else cursor_pos
    body_offset = match.end()
    if cursor < body_offset or (cursor == body_offset and not code[:body_offset].endswith("\n")):
        return None  # on the %%magic line: Python's completer knows the magics
    return MagicCell(match.group("language"), code[body_offset:], body_offset, cursor - body_offset)


def identifier_start(text: str, cursor: int) -> int:
    """Where the identifier that ends at the cursor begins (the cursor if there is none)."""
    start = cursor
    while start > 0 and _IDENTIFIER_CHAR.match(text[start - 1]):
        start -= 1
    return start


def identifier_end(text: str, cursor: int) -> int:
    """Where the identifier under the cursor ends."""
    end = cursor
    while end < len(text) and _IDENTIFIER_CHAR.match(text[end]):
        end += 1
    return end

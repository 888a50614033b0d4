"""Compile errors in the user's own line numbers, shared by both backends.

A backend generates code around the user's cells with line directives naming
each cell by its id (`//line cell-…:N`, `#line N "cell-…"`), so a compiler
message names a cell line; `cell_diagnostic` turns that into the user's terms
for both backends. `CompileError` is rendered by the magic as one short error,
with no traceback through ipolyglot.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cells import CellRegistry

MAX_SHOWN = 5


@dataclass
class Diagnostic:
    """One compiler message, already mapped to a cell line where possible."""

    message: str
    line: int | None = None  # in the cell, counting the %%magic line as line 1
    column: int | None = None
    source_line: str | None = None  # the offending line of the cell
    cell: str | None = None  # e.g. "In [3]" when the line is in another cell than the one run
    severity: str = "error"

    def render(self) -> str:
        where = ""
        if self.line is not None:
            where = f"{self.cell + ', ' if self.cell else ''}line {self.line}"
            if self.column is not None:
                where += f", column {self.column}"
            where += ": "
        text = f"{where}{self.severity}: {self.message}" if self.severity != "error" else f"{where}{self.message}"
        if self.source_line is not None:
            text += f"\n    {self.source_line.rstrip()}"
            if self.column is not None and self.column > 0:
                prefix = self.source_line[: self.column - 1]
                pad = "".join(ch if ch == "\t" else " " for ch in prefix)
                text += f"\n    {pad}^"
        return text


class CompileError(Exception):
    """A cell did not build. Shown as one short error; the session is unchanged."""

    def __init__(self, language: str, diagnostics: list[Diagnostic], raw_output: str = ""):
        self.language = language
        self.diagnostics = diagnostics
        self.raw_output = raw_output
        super().__init__(self.render())

    def render(self) -> str:
        shown = self.diagnostics[:MAX_SHOWN]
        lines = [d.render() for d in shown]
        if len(self.diagnostics) > MAX_SHOWN:
            lines.append(f"... and {len(self.diagnostics) - MAX_SHOWN} more")
        if not lines:
            lines = [self.raw_output.strip() or "the build failed without a message"]
        return "\n".join(lines)


def cell_diagnostic(
    cells: CellRegistry, current: str, file: str, line: int, column: int | None, message: str
) -> Diagnostic | None:
    """A compiler message at `file:line` in the user's terms, or None when `file` is no cell.

    `file` is a cell id (the line directives' file name), `line` counts the
    %%magic line as line 1, as every message shown to the user does. A line in
    another cell than the one run (`current`) is named by that cell's label.
    """
    cell = cells.get(file)
    if cell is None:
        return None
    text = cell.line(line)
    shown = text if text is not None and text.strip() else None
    if text is not None and shown is None:
        column = None  # a caret under a blank line points at nothing
    return Diagnostic(message, line, column, shown, None if file == current else cell.label)

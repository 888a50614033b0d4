"""Compile errors in the user's own line numbers, shared by both backends.

A backend generates code around the user's cells; `SourceMap` remembers which
generated lines came from which cell line so compiler messages can be told in
the user's terms. `CompileError` is rendered by the magic as one short error,
with no traceback through ipolyglot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class Segment:
    """A run of generated lines copied from a cell."""

    generated_start: int  # 1-based line in the generated file of the segment's first line
    length: int
    cell_first_line: int  # the cell line the segment starts at (the %%magic line is line 1)
    cell: str | None  # label of the cell, None for the cell being run
    cell_lines: list[str]


@dataclass
class SourceMap:
    """Maps generated-file lines back to cell lines, per generated file."""

    files: dict[str, list[Segment]] = field(default_factory=dict)

    def add(self, filename: str, generated_start: int, cell_lines: list[str], cell_first_line: int, cell: str | None) -> None:
        self.files.setdefault(filename, []).append(
            Segment(generated_start, len(cell_lines), cell_first_line, cell, cell_lines)
        )

    def lookup(self, filename: str, line: int) -> tuple[int, str | None, str] | None:
        """(cell line, cell label, source text) for a generated line, or None if generated."""
        for seg in self.files.get(filename, []):
            if seg.generated_start <= line < seg.generated_start + seg.length:
                offset = line - seg.generated_start
                return seg.cell_first_line + offset, seg.cell, seg.cell_lines[offset]
        return None

"""Cells: the running cell's label, whether its text is text, and the registry of cells run.

IPython-free on purpose: it reads only a shell's history lists, so it can be
tested without a kernel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CELL_ID_DIGITS = 12  # hex digits of the text's SHA-256 in a cell id


class CellTextError(ValueError):
    """A cell holds something that is not text (a lone surrogate); shown as one line."""


def cell_number(shell) -> int:
    """The number of the running cell, as the front end's prompt shows it.

    IPython stores a cell's input before running it, so the last entry of `In`
    is the running cell: `len(In) - 1` is its prompt number in every front end
    and every IPython version, and also what the execute_reply carries.
    `shell.execution_count` is not: IPython 9 increments it before the cell
    runs. A silent execution is not stored; it gets the number of the cell the
    front end showed last, as ipykernel's reply does.
    """
    return len(shell.history_manager.input_hist_parsed) - 1


def cell_label(shell) -> str:
    """The running cell as build messages, stacks and listings name it: "In [3]"."""
    return f"In [{cell_number(shell)}]"


def check_text(text: str) -> None:
    """Refuse text that cannot be written as UTF-8, naming the line and column where it is.

    Lone surrogates reach a cell when a client sends text that was not valid
    UTF-8; every compiler, file and hash downstream needs UTF-8. Lines count
    from the cell's first line (for a cell magic, its %%magic line), as
    compile errors do.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        before = text[: exc.start]
        line = 1 + before.count("\n")
        column = exc.start - (before.rfind("\n") + 1) + 1
        raise CellTextError(
            f"line {line}, column {column}: U+{ord(text[exc.start]):04X} is not a character "
            "(a lone surrogate, left by text that was not valid UTF-8): remove or retype it"
        ) from None


def cell_id(text: str) -> str:
    """How generated code and the cache name a cell: by its text, so a re-run is the same build.

    Generated files say `//line cell-…:N` / `#line N "cell-…"` with this id, and
    compiler messages are mapped back through it (kernel/core/diagnostics.py).
    """
    return "cell-" + hashlib.sha256(text.encode()).hexdigest()[:CELL_ID_DIGITS]


@dataclass(frozen=True)
class Cell:
    """One run of a native cell: its id (from its text), its label, its text (after the %%magic line)."""

    id: str
    label: str
    text: str

    def line(self, number: int) -> str | None:
        """The text of a line numbered as diagnostics number them (the %%magic line is line 1)."""
        lines = self.text.split("\n")
        return lines[number - 2] if 2 <= number <= len(lines) + 1 else None


class CellRegistry:
    """Every native cell this session ran, by id: the one place labels are kept.

    A cell run again (the same text) keeps its id and takes its newest label,
    so a message about a line in another cell names the cell as the notebook
    shows it now.
    """

    def __init__(self) -> None:
        self._cells: dict[str, Cell] = {}

    def register(self, text: str, label: str) -> Cell:
        cell = Cell(cell_id(text), label, text)
        self._cells[cell.id] = cell
        return cell

    def get(self, identifier: str) -> Cell | None:
        return self._cells.get(identifier)

    def __contains__(self, identifier: str) -> bool:
        return identifier in self._cells

    def label(self, identifier: str, default: str = "a cell") -> str:
        cell = self._cells.get(identifier)
        return cell.label if cell else default

    def labels(self) -> dict[str, str]:
        return {i: c.label for i, c in self._cells.items()}

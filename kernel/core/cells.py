"""What the magics need to know about the cell being run: its label and whether its text is text.

IPython-free on purpose: it reads only a shell's history lists, so it can be
tested without a kernel.
"""

from __future__ import annotations


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

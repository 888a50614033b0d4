"""Reading a %%go cell into the session's terms: declarations with the cell's id and
label, syntax errors and reserved names as diagnostics in the cell's lines."""

from __future__ import annotations

import re

from ipolyglot.kernel.core.backend import Declaration
from ipolyglot.kernel.core.cells import Cell
from ipolyglot.kernel.core.diagnostics import Diagnostic

from .inspector import GoDetail, Inspection, SyntaxProblem

# A cell's top-level names the generated package uses itself.
RESERVED_PREFIXES = ("ipolyglot", "ipg_", "ipgcell")
MAIN_IS_RESERVED = (
    "a %%go cell holds declarations (built into a library for Python) or statements (run at once); "
    "`func main` is reserved, since the library has no entry point: put main's statements in a %%go cell "
    "of their own, or rename it"
)
PACKAGE_CLAUSE = (
    "a %%go cell holds declarations (built into a library for Python) or statements (run at once), "
    "without a package clause: ipolyglot puts the session's cells in a package of its own; remove this line"
)
_PACKAGE_CLAUSE_ERROR = re.compile(r"^expected (declaration|statement), found 'package'$")


def declaration(detail: GoDetail, index: int, cell: Cell) -> Declaration[GoDetail]:
    name = detail.names[0] if detail.names else "_"
    if name in ("_", "init"):
        name = f"{name} ({cell.id} #{index + 1})"  # replaced only by a re-run of its cell
    return Declaration(name, detail.kind, detail.text, cell.label, detail.line + 1, cell.id, detail)


def syntax_diagnostics(found: Inspection, text: str) -> list[Diagnostic]:
    clause = next((e for e in found.errors if _PACKAGE_CLAUSE_ERROR.match(e.msg)), None)
    if clause is not None:  # what follows it is misread: the clause is the one thing to say
        diagnostic = _syntax_diagnostic(SyntaxProblem(clause.line, clause.col, PACKAGE_CLAUSE), text)
        diagnostic.column = None
        return [diagnostic]
    return [_syntax_diagnostic(e, text) for e in found.errors]


def _syntax_diagnostic(error: SyntaxProblem, text: str) -> Diagnostic:
    lines = text.splitlines() or [""]
    line = min(max(error.line, 1), len(lines))
    col = error.col if error.line == line else None
    return Diagnostic(error.msg, line + 1, col, lines[line - 1])


def reserved_name_diagnostics(decls: tuple[GoDetail, ...], source: str) -> list[Diagnostic]:
    """Top-level names of a cell that would clash with the generated package's own."""
    lines = source.splitlines()
    found = []
    for decl in decls:
        for name in decl.names:
            if name == "main":
                message = MAIN_IS_RESERVED
            elif name.lower().startswith(RESERVED_PREFIXES):
                message = (
                    f"{name}: top-level names starting with {', '.join(RESERVED_PREFIXES[:-1])} or {RESERVED_PREFIXES[-1]} "
                    "(in any case) are reserved for the code ipolyglot generates; rename it"
                )
            else:
                continue
            line = _line_declaring(name, decl)
            found.append(Diagnostic(message, line + 1, None, lines[line - 1] if 0 < line <= len(lines) else None))
    return found


def _line_declaring(name: str, decl: GoDetail) -> int:
    """The cell-body line (1-based) where a declaration names `name` (its first line if not found)."""
    first = decl.line
    for offset, text in enumerate(decl.text.splitlines()):
        if re.search(rf"\b{re.escape(name)}\b", text) and not text.lstrip().startswith("//"):
            return first + offset
    return first

"""Reading a %%cpp cell: the checks that need no parser, then libclang's reading
(declarations or statements), remembered by cell text in the build cache.

A cell is read as declarations on its own, then after the session's
declarations, then with the standard headers a statement cell gets; only when
none of those parses is it read as statements. What libclang cannot read at all
is left for g++ to judge, with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from ipolyglot.kernel.core.backend import CellContext, Declaration
from ipolyglot.kernel.core.diagnostics import CompileError, Diagnostic

from . import parser, session, unit
from .flags import Flags, python_includes, session_include_dirs
from .records import ParsedCell, Piece

# A whole extension module in a cell: ipolyglot makes the module itself.
_CUSTOM_BIND = re.compile(rf"\b{session.CUSTOM_BIND}\s*\(")
PYBIND11_GIVEN = "#include <pybind11/pybind11.h>\n"
_MODULE_MACRO = re.compile(r"^\s*(PYBIND11_MODULE|PyMODINIT_FUNC)\b", re.M)
# Parse results are remembered by cell text; a change to how cells are read forgets them.
PARSE_FORMAT = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (parser, unit, session)) + Path(__file__).read_bytes()).hexdigest()[:16]
MAIN_IS_RESERVED = (
    "a %%cpp cell holds declarations (built into a Python extension module) or statements (run at once); "
    "`main` is reserved, since the module has no entry point (and C++ forbids calling main): put main's "
    "statements in a %%cpp cell of their own, or rename it"
)


@dataclass
class Reading:
    """What a cell is read with: the session before it and the cell's options."""

    context: list[Piece]  # the session's pieces, in order
    flags: Flags
    compiler: Callable[[], str]  # whose builtin headers libclang reads (libclang from PyPI has none); asked only
    # when a cell is really parsed, so a cell read before starts no compiler process
    inputs: dict[str, str]  # -i name -> C++ type
    outputs: list[str]  # -o names

    def args(self) -> list[str]:
        include_dirs = [*self.flags.include_dirs, *python_includes()[1::2]]
        return parser.parse_args(self.flags.std, include_dirs, self.flags.defines(), parser.gcc_builtin_include(self.compiler()))


def read_cell(source: str, reading: Reading, ctx: CellContext) -> ParsedCell:
    """The cell checked and parsed; raises CompileError at the cell's lines."""
    refuse_module_of_its_own(source)
    check_braces(source)
    context_text = unit.declarations_text(reading.context)
    key_parts = {
        "format": PARSE_FORMAT,
        "cell": source,
        "context": context_text,
        "flags": json.dumps([reading.flags.std, list(reading.flags.include_dirs), reading.flags.defines()]),
        "inputs": json.dumps(reading.inputs, sort_keys=True),
        "outputs": json.dumps(reading.outputs),
        "libclang": _libclang_version(),
    }

    def parse() -> dict:
        started = time.perf_counter()
        try:
            parsed = _parse(source, reading, context_text)
        except parser.ParseFailure as exc:
            raise CompileError("C++", [Diagnostic(str(exc))]) from None
        ctx.verbose(f"parsed the cell with libclang in {time.perf_counter() - started:.2f} s ({parsed.mode})")
        return parsed.to_json()

    parsed = ParsedCell.from_json(ctx.cache.remembered(key_parts, parse))
    if parsed.mode == "statement":
        if parsed.errors:
            in_cell = parsed.statement is None
            raise CompileError("C++", [Diagnostic(e.message, e.line and e.line + 1 if in_cell else None, e.column if in_cell else None) for e in parsed.errors])
    else:
        refuse_main(parsed, source)
    return parsed


def _given_headers(source: str) -> str:
    """What the build includes for the cell that libclang must see too: pybind11 for a
    cell with its own `ipolyglot_bind` (pybind11 is included for it)."""
    return PYBIND11_GIVEN if _CUSTOM_BIND.search(source) else ""


def _parse(source: str, reading: Reading, context_text: str) -> ParsedCell:
    args = reading.args()
    given = _given_headers(source)
    statement_context = context_text + unit.STATEMENT_HEADERS
    if reading.inputs or reading.outputs:
        return parser.parse_statement(source, statement_context, args, reading.inputs, reading.outputs)
    alone = parser.split_cell(source, given, args)
    if not alone.errors:
        return alone
    guessed = {p.name for p in alone.pieces}
    rest_text = given + unit.declarations_text([p for p in reading.context if not _redefined(p, guessed)])
    in_context = parser.split_cell(source, rest_text, args)
    if not in_context.errors:
        return in_context
    # Declarations that parse with the standard headers a statement cell gets
    # (a missing `#include <stdexcept>`, say) are still declarations: the
    # statement reading, which has those headers, must not take them for
    # statements and silently bind nothing. g++ then says what is missing.
    generous = parser.split_cell(source, unit.STATEMENT_HEADERS + rest_text, args)
    if not generous.errors:
        return generous
    statement = parser.parse_statement(source, statement_context, args, reading.inputs, reading.outputs)
    if not statement.errors:
        return statement
    # Neither reading parses cleanly with libclang: let g++ judge the declarations;
    # what libclang could not read is named in the warnings, not bound.
    first = generous.errors[0]
    where = f" (line {first.line + 1}: {first.message})" if first.line else ""
    generous.errors = []
    generous.warnings.append(f"libclang could not fully parse this cell{where}; bindings may be incomplete")
    return generous


def users_of(current: session.CppCandidate, going: set[str], compiler: Callable[[], str]) -> list[Declaration]:
    """The other declarations whose code refers to what `going` declares, as
    libclang resolves the references in the session's code, parsed whole."""
    pieces = session.session_pieces(current)
    owner = {id(p): d.name for d in current.declarations for p in session.detail(d).pieces}
    parts: dict[str, list[tuple[str, str | None]]] = {s: [] for s in unit.SECTIONS}
    for piece in pieces:
        for section, text, marked in unit.placements(piece, header=False, own=True):
            parts[section].append((unit.emit(piece, text, marked), owner.get(id(piece))))
    chunks = parts["preamble"] + [(unit.early_prototypes(pieces), None)] + parts["decl"] + parts["func"]
    flags = dataclasses.replace(current.flags, include_dirs=tuple(session_include_dirs(session.session_flags(current))))
    args = Reading([], flags, compiler, {}, []).args()
    try:
        names = parser.users_of(chunks, going, args)
    except parser.ParseFailure:
        return []  # the build still refuses a removal that does not build
    return [d for d in current.declarations if d.name in names]


def _redefined(piece: Piece, names: set[str]) -> bool:
    return piece.name in names or piece.name.split("::")[0] in names


def _libclang_version() -> str:
    try:
        return metadata.version("libclang")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- checks before any parser ----------------------------------------------------------------

def refuse_module_of_its_own(source: str) -> None:
    found = _MODULE_MACRO.search(source)
    if not found:
        return
    line = source[: found.start()].count("\n") + 2  # the %%cpp line is line 1
    raise CompileError("C++", [Diagnostic(
        f"{found.group(1)}: a %%cpp cell is not an extension module of its own. ipolyglot builds one module "
        "from the session's cells and binds what they declare (functions, structs, enums) by itself: "
        f"remove the {found.group(1)} block. To register bindings yourself, write them in "
        "`void ipolyglot_bind(pybind11::module_& m) { ... }` (pybind11 is included for you).",
        line, None, source.split("\n")[line - 2],
    )])


def refuse_main(parsed: ParsedCell, source: str) -> None:
    """A global `main`, as Go cells refuse `func main`."""
    lines = source.split("\n")
    found = [
        Diagnostic(MAIN_IS_RESERVED, p.first_line, None, lines[p.first_line - 2] if 0 <= p.first_line - 2 < len(lines) else None)
        for p in parsed.pieces
        if p.kind == "func" and p.name == "main" and not p.ns
    ]
    if found:
        raise CompileError("C++", found[:1])


def _brace_tokens(source: str):
    """(character, line, column) of each `{` and `}` of C++ code, outside comments,
    string and character literals and preprocessor lines (lines and columns of
    the cell body, 1-based)."""
    i, line, col, n = 0, 1, 1, len(source)
    at_line_start = True
    while i < n:
        ch = source[i]
        nxt = source[i + 1] if i + 1 < n else ""
        if ch == "\n":
            i, line, col, at_line_start = i + 1, line + 1, 1, True
            continue
        if at_line_start and ch == "#":  # a directive, with its continuation lines
            while i < n and not (source[i] == "\n" and source[i - 1] != "\\"):
                if source[i] == "\n":
                    line += 1
                i += 1
            continue
        if not ch.isspace():
            at_line_start = False
        if ch == "/" and nxt == "/":
            while i < n and source[i] != "\n":
                i += 1
            continue
        if ch == "/" and nxt == "*":
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += source.count("\n", i, end)
            col = 1 if "\n" in source[i:end] else col + (end - i)
            i = end
            continue
        raw = re.match(r'(?:u8|[uUL])?R"([^()\\\s]{0,16})\(', source[i:i + 20]) if ch in "uULR" and (i == 0 or not (source[i - 1].isalnum() or source[i - 1] == "_")) else None
        if raw:
            end = source.find(")" + raw.group(1) + '"', i + raw.end())
            end = n if end < 0 else end + len(raw.group(1)) + 2
            line += source.count("\n", i, end)
            i, col = end, col + 1
            continue
        before = re.search(r"\w*$", source[max(0, i - 3):i]).group(0)
        # A ' after a digit separates digits (1'000); after an encoding prefix (u'x') it opens a character.
        if ch == '"' or (ch == "'" and before in ("", "L", "u", "U", "u8")):
            j = i + 1
            while j < n and source[j] != ch and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            col += j + 1 - i
            i = j + 1
            continue
        if ch in "{}":
            yield ch, line, col
        i, col = i + 1, col + 1


def check_braces(source: str) -> None:
    """A `{` the cell never closes (or a `}` that closes nothing) is said as such,
    at its line, before the compiler reads the rest as something else."""
    if re.search(r"^\s*#\s*(if|ifdef|ifndef|elif|else)\b|^\s*#\s*define\b.*[{}]", source, re.M):
        return  # conditional branches may each open what one `}` closes; a macro may hold a brace
    lines = source.split("\n")
    opened: list[tuple[int, int]] = []
    for ch, line, col in _brace_tokens(source):
        if ch == "{":
            opened.append((line, col))
        elif opened:
            opened.pop()
        else:
            raise CompileError("C++", [Diagnostic("this ‘}’ closes no ‘{’", line + 1, col, lines[line - 1])])
    if opened:
        line, col = opened[-1]
        raise CompileError("C++", [Diagnostic(
            "expected ‘}’ at the end of the cell: the ‘{’ here is never closed", line + 1, col, lines[line - 1]
        )])



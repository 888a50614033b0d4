"""A %%cpp session: its declarations (each a group of typed pieces), the preamble
of #include lines and the like, the order names were first defined in, and each
cell's options. A cell's pieces become declarations here; the session in
order becomes the pieces a build unit is composed of (cpp_ext/unit.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from ipolyglot.kernel.core.backend import Candidate, Declaration, DeclarationStore

from .flags import Flags
from .records import Binding, ClassBinding, Function, ParsedCell, Piece

# A cell that includes these is compiled with pybind11 (and only that cell's unit).
_PYTHON_HEADER = re.compile(r"#\s*include\s*[<\"](?:pybind11/|Python\.h)")
_PYTHON_API = re.compile(r"\bpybind11\b|\bpy::|\bPy[A-Z_]\w*|Python\.h")
CUSTOM_BIND = "ipolyglot_bind"


@dataclass
class CppDetail:
    """What a C++ declaration is made of: its pieces (several for overloads, or
    for the declarators of one statement), and whether its cell declares
    something public (a cell's attached declarations live as long as that)."""

    pieces: list[Piece]
    cell_has_public: bool = True

    @property
    def attached(self) -> bool:
        """Belongs to its cell rather than to a name: private declarations (static,
        anonymous namespace) and the cell's own `ipolyglot_bind`."""
        return all(p.private or p.symbol for p in self.pieces)

    @property
    def custom_only(self) -> bool:
        return all(p.symbol for p in self.pieces)


@dataclass
class CppCandidate(Candidate):
    """The C++ session as it would be after a cell, a removal or a reset."""

    preamble: dict[str, Piece] = field(default_factory=dict)  # by text, in first-seen order
    order: dict[str, int] = field(default_factory=dict)  # where each name was first defined
    cell_flags: dict[str, Flags] = field(default_factory=dict)  # each cell's options, kept for rebuilds
    flags: Flags = field(default_factory=Flags)  # the latest declaration cell's options
    current: str = ""  # the id of the cell run ("" for a removal or reset)
    warnings: list[str] = field(default_factory=list)  # the parse's, said once the build loaded


def detail(decl: Declaration) -> CppDetail:
    return decl.detail


def declarations_of(parsed: ParsedCell, cell_id: str, label: str, keep_gil: bool) -> tuple[list[Declaration], list[Piece]]:
    """A cell's declarations (same-named pieces grouped) and its preamble pieces."""
    custom = any(p.name == CUSTOM_BIND for p in parsed.pieces)
    uses_python = custom or any(p.section == "preamble" and _PYTHON_HEADER.search(p.user_text) for p in parsed.pieces)
    by_name: dict[str, list[Piece]] = {}
    preamble: list[Piece] = []
    for piece in parsed.pieces:
        piece = _joined(piece, cell_id, keep_gil, uses_python, custom)
        if piece.section == "preamble":
            preamble.append(piece)
        elif piece.private:
            # Private to the cell: never replaces, nor is replaced by, another cell's name.
            by_name.setdefault(f"{piece.name} (private to {label})", []).append(piece)
        elif piece.name == CUSTOM_BIND:
            # Each cell's bindings are its own; they add to other cells' bindings.
            piece.symbol = f"{CUSTOM_BIND}_{cell_id.removeprefix('cell-')}"
            by_name.setdefault(f"{CUSTOM_BIND} ({label})", []).append(piece)
        else:
            by_name.setdefault(piece.name, []).append(piece)
    has_public = any(not CppDetail(pieces).attached for pieces in by_name.values())
    decls = [
        Declaration(
            name=name, kind=pieces[0].kind, source="\n".join(p.user_text for p in pieces), cell=label,
            first_line=pieces[0].first_line, cell_id=cell_id, detail=CppDetail(pieces, has_public),
        )
        for name, pieces in by_name.items()
    ]
    return decls, preamble


def left_to_custom_bind(parsed: ParsedCell) -> list[str]:
    """The warning for a cell with its own `ipolyglot_bind`: ipolyglot binds none of its
    other declarations (its registrations are the cell's whole interface, so a type is
    never registered twice); those it does not even mention would vanish unsaid
    (a helper it uses, or a `static` one, is the cell's own business)."""
    custom = [p for p in parsed.pieces if p.name == CUSTOM_BIND]
    if not custom:
        return []
    registrations = "\n".join(p.user_text for p in custom)
    left = sorted({
        p.name for p in parsed.pieces
        if p.binds and p.name != CUSTOM_BIND and not p.private and not re.search(rf"\b{re.escape(p.name.rsplit('.', 1)[-1])}\b", registrations)
    })
    if not left:
        return []
    return [
        f"not bound: {', '.join(left)}: a cell with its own ipolyglot_bind is bound only through it; "
        "register them there (m.def, py::class_), or declare them in a cell of their own"
    ]


def _joined(piece: Piece, cell_id: str, keep_gil: bool, uses_python: bool, custom: bool) -> Piece:
    """A parsed piece as it joins the session: with its cell, and what its cell's use of Python changes."""
    binds = piece.binds
    if keep_gil or uses_python:
        # A cell that reaches pybind11 may release the GIL itself (py::gil_scoped_release).
        binds = [_gil_kept(b, uses_python) for b in binds]
    return dataclasses.replace(
        piece,
        cell_id=cell_id,
        binds=[] if custom else binds,
        # Only this cell's unit (and the binding unit) is compiled with pybind11.
        python_only=uses_python and bool(_PYTHON_API.search(piece.header_text or piece.user_text)),
    )


def _gil_kept(record: Binding, uses_python: bool) -> Binding:
    """--keep-gil spares no release around a Python callable (its calls take the GIL
    anyway), and one called on a C++ thread would wait forever for the GIL the
    caller keeps; a cell that uses Python itself keeps it everywhere."""

    def kept(fn: Function) -> Function:
        return dataclasses.replace(fn, keep_gil=True) if uses_python or not _takes_callable(fn) else fn

    if isinstance(record, Function):
        return kept(record)
    if isinstance(record, ClassBinding):
        return dataclasses.replace(record, methods=[kept(m) for m in record.methods])
    return record


def _takes_callable(fn: Function) -> bool:
    return any("std::function<" in p.type for p in fn.params)


def with_cell(session: CppCandidate, decls: list[Declaration], preamble: list[Piece], cell_id: str) -> tuple[DeclarationStore, dict[str, Piece], dict[str, int]]:
    """The declarations, preamble and order once a cell's declarations are added."""
    store = session.declarations.with_cell(decls)
    _drop_stale_members(store, decls)
    drop_stale_private(store, cell_id, {d.name for d in decls})
    new_preamble = {**session.preamble, **{p.name: p for p in preamble if p.name not in session.preamble}}
    order = dict(session.order)
    for d in decls:
        order.setdefault(d.name, len(order))
    return store, new_preamble, order


def _drop_stale_members(store: DeclarationStore, decls: list[Declaration]) -> None:
    """Out-of-line member definitions of a class redefined elsewhere would not match it."""
    redefined = {d.name for d in decls if d.kind == "class"}
    fresh = {d.name for d in decls}
    for d in list(store):
        if d.kind == "member-def" and d.name not in fresh and d.name.split("::")[0] in redefined:
            store.remove(d.name)


def drop_stale_private(store: DeclarationStore, current_cell: str, fresh: set[str]) -> None:
    """A cell's attached declarations live as long as the cell has a public one
    (a cell whose only declaration is `ipolyglot_bind` keeps it until removed);
    re-running a cell replaces its own earlier ones."""
    public_cells = {d.cell_id for d in store if not detail(d).attached}
    for d in list(store):
        if not detail(d).attached:
            continue
        stale_copy = d.cell_id == current_cell and d.name not in fresh
        needs_public = detail(d).cell_has_public or not detail(d).custom_only
        if stale_copy or (needs_public and d.cell_id not in public_cells):
            store.remove(d.name)


def live_cells(session: CppCandidate) -> set[str]:
    return {d.cell_id for d in session.declarations} | {p.cell_id for p in session.preamble.values()}


def session_pieces(session: CppCandidate) -> list[Piece]:
    """Preamble first, then the declarations in session order: each name where it
    was first defined (so earlier cells' users still follow it after a
    redefinition), and within a cell never before what precedes it there: a
    name new to a cell moves up to just before the next older name of that cell."""
    by_cell: dict[str, list[tuple[int, Piece]]] = {}
    for d in session.declarations:
        slot = session.order.get(d.name, 1 << 30)
        for piece in detail(d).pieces:
            by_cell.setdefault(piece.cell_id, []).append((slot, piece))
    keyed = []
    for items in by_cell.values():
        items.sort(key=lambda item: (item[1].first_line, item[1].column))
        later_min = 1 << 31
        for slot, piece in reversed(items):
            later_min = min(later_min, slot)
            keyed.append(((later_min, piece.first_line, piece.column), piece))
    keyed.sort(key=lambda item: item[0])
    return list(session.preamble.values()) + [piece for _, piece in keyed]


def session_flags(session: CppCandidate) -> list[Flags]:
    return [*session.cell_flags.values(), session.flags]


def declaration_named(store: DeclarationStore, name: str) -> str:
    """The declaration `%polyglot cpp rm` means: namespace members are listed as
    ns.f, and may be named as C++ does (ns::f); `Cls::m` names an out-of-line member."""
    plain = name.strip().removeprefix("::")
    for candidate in (plain, plain.replace("::", ".")):
        if store.get(candidate) is not None:
            return candidate
    members = [d.name for d in store if d.kind == "member-def" and d.name.startswith(plain + "(")]
    if len(members) == 1:
        return members[0]
    hint = " (`%polyglot cpp` lists them: a namespace member is named ns.f or ns::f, an out-of-line member Cls::f)"
    raise KeyError(f"no declaration named {name!r} in this session{hint}")


def going_with(store: DeclarationStore, name: str) -> set[str]:
    """A declaration and what goes with it: a class's out-of-line members."""
    return {name} | {d.name for d in store if d.kind == "member-def" and d.name.startswith(name + "::")}

"""Composing a build: the session's pieces become the translation units and the
parts of their cache keys. No compiler runs here, so it is tested without one.

A build is one user unit per cell (the cells' code as written, compiled at the
cell's options) and one binding unit (the same declarations with bound function
bodies removed, plus the pybind11 registrations). `#line` directives name each
cell by its id (a hash of its text, so the same cell re-run is the same build),
and the compiler reports errors in the cell's own line numbers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sysconfig
from dataclasses import dataclass, field

from ipolyglot.kernel.core.backend import BuildUnit
from ipolyglot.kernel.core.cache import cache_key

from . import bindgen
from .bindgen import TEMPLATES
from .flags import Flags, python_includes, session_include_dirs, support_digest
from .records import ClassBinding, EnumBinding, Function, Param, Piece, Statement

SECTIONS = ("preamble", "decl", "func")
# Generated text after a cell's text is reported under this name, never as cell lines.
GENERATED_FILE = "ipolyglot-generated.cpp"
_BACK_TO_GENERATED = f'#line 1 "{GENERATED_FILE}"\n'
STATEMENT_HEADERS = "#include <complex>\n#include <cstdio>\n#include <iostream>\n#include <map>\n#include <set>\n#include <string>\n#include <vector>\n"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


@dataclass
class ObjectUnit:
    """One cell's user unit, compiled on its own and cached by its text and flags."""

    text: str
    flags: list[str]
    with_python: bool  # compiled with pybind11's headers (and the precompiled header)

    def key_parts(self, compiler: str) -> dict[str, str]:
        return {"kind": "cpp-object", "unit": self.text, "flags": json.dumps(self.flags), "custom": support_digest() if self.with_python else "", "compiler": compiler}


@dataclass
class BindingUnit:
    """The pybind11 registrations, cached by their text (declarations only)."""

    text: str
    flags: list[str]
    top_names: list[str] = field(default_factory=list)  # Python names the module offers
    registered: dict[int, str] = field(default_factory=dict)  # registration index -> declaration name
    fallbacks: dict[int, list[int]] = field(default_factory=dict)  # call-error registration -> its overloads' indices
    undefined: list[str] = field(default_factory=list)  # methods declared, defined by no cell yet: not bound
    generic: bool = False  # thunks for the precompiled generic caller instead of pybind11 registrations

    def key_parts(self, compiler: str) -> dict[str, str]:
        kind = "cpp-bind-generic" if self.generic else "cpp-bind"
        return {"kind": kind, "unit": self.text, "flags": json.dumps(self.flags), "compiler": compiler, "support": support_digest()}


@dataclass
class CppUnit(BuildUnit):
    """A session's module: the cells' objects, the binding object, how they link."""

    module_name: str = ""
    objects: dict[str, ObjectUnit] = field(default_factory=dict)  # cell id -> its unit
    bind: BindingUnit | None = None
    link_flags: list[str] = field(default_factory=list)
    compiler: str = ""  # the compiler's identity (in every key)
    current: str = ""  # the cell run: its errors are said without its label

    @property
    def file_name(self) -> str:
        return f"{self.module_name}{EXT_SUFFIX}"


# -- one piece in one unit ------------------------------------------------------------------

def emit(piece: Piece, text: str, marked: bool) -> str:
    """A piece in its namespace. Marked text carries `#line` directives naming its
    cell and lines (the generated text after it goes back to GENERATED_FILE);
    unmarked text (the binding unit's) carries none, so line shifts leave it unchanged."""
    if not text.strip():
        return ""
    if marked:
        body = ""
        if piece.prefix and text == piece.user_text:
            body += f'#line {piece.prefix_line} "{piece.cell_id}"\n' + " " * (piece.prefix_column - 1) + piece.prefix + "\n"
        body += f'#line {piece.first_line} "{piece.cell_id}"\n' + " " * (piece.column - 1) + text + "\n" + _BACK_TO_GENERATED
    else:
        body = text.strip() + "\n"
    if piece.symbol:
        # Each cell's `ipolyglot_bind` gets a name of its own, so several cells may define one.
        body = f"#define ipolyglot_bind {piece.symbol}\n{body}#undef ipolyglot_bind\n"
    if piece.ns:
        return "".join(f"namespace {n} {{ " for n in piece.ns) + "\n" + body + "}" * len(piece.ns) + "\n"
    return body


def placements(piece: Piece, header: bool, own: bool) -> list[tuple[str, str, bool]]:
    """(section, text, marked) for one piece in one unit.

    The binding unit (`header`) and other cells' units see declarations only; a
    cell's own unit holds its text as written, function bodies after every
    declaration. Everything but the preamble keeps the session's order, so a
    cell reads as written. Private pieces (internal linkage) exist only in their own unit."""
    if piece.python_only and not own and not header:
        return []  # other cells' units are compiled without pybind11
    if piece.section == "preamble":
        return [("preamble", piece.header_text if header else piece.user_text, not header)]
    if piece.private:
        return [("decl", piece.user_text, True)] if own and not header else []
    mine = own and not header
    if piece.kind == "member-def":
        return [("func", piece.user_text if mine else piece.header_text, mine)]
    if mine and piece.kind == "func" and piece.proto_text:
        # A body compiled here only: declared in place, defined after every declaration.
        return [("decl", piece.proto_text, True), ("func", piece.user_text, True)]
    if mine and piece.kind == "block" and piece.header_text != piece.user_text:
        return [("decl", piece.header_text, True), ("func", piece.user_text, True)]
    if mine:
        return [("decl", piece.user_text, True)]
    if piece.section == "type" and not header:
        # Types are whole in every user unit, with their cell's line numbers.
        return [("decl", piece.user_text, True)]
    return [("decl", piece.header_text, False)]


def sections(pieces: list[Piece], header: bool, own_cell: str | None = None) -> dict[str, str]:
    """The pieces by section, for the binding unit (`header`) or the user unit of `own_cell`."""
    out: dict[str, list[str]] = {name: [] for name in SECTIONS}
    for piece in pieces:
        own = own_cell is None or piece.cell_id == own_cell
        for section, text, marked in placements(piece, header, own):
            out[section].append(emit(piece, text, marked))
    return {k: "".join(v) for k, v in out.items()}


def declarations_text(pieces: list[Piece]) -> str:
    """The session as declarations only: what a cell is parsed after."""
    head = sections(pieces, header=True)
    return "".join(head[s] for s in SECTIONS)


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def early_prototypes(pieces: list[Piece]) -> str:
    """Prototypes whose signatures name no type of the session: they can precede
    the types and templates, so a template body can call any such function."""
    session_types = {p.name.rsplit(".", 1)[-1] for p in pieces if p.section == "type" or p.kind == "template"}
    lines = []
    for p in pieces:
        if p.proto_text and not (p.private or p.python_only or p.symbol) and not session_types & set(_IDENTIFIER.findall(p.proto_text)):
            lines.append("".join(f"namespace {n} {{ " for n in p.ns) + p.proto_text + (" " + "}" * len(p.ns) if p.ns else ""))
    return "\n".join(lines)


# -- a cell of statements -----------------------------------------------------------------

def statement_result(statement: Statement) -> str:
    return "void" if not statement.outputs else f"std::tuple<{', '.join(statement.outputs.values())}>"


def statement_code(statement: Statement, cell_id: str, body_lines: int, header: bool) -> tuple[str, str]:
    """(directives, function) for a statement cell; the header version has no body."""
    result = statement_result(statement)
    params = ", ".join(f"{t} {n}" for n, t in statement.inputs.items())
    if header:
        return STATEMENT_HEADERS + statement.directives.strip() + "\n", f"{result} ipolyglot_statement({params});"
    directives = STATEMENT_HEADERS + f'#line 2 "{cell_id}"\n' + statement.directives + "\n"
    body = f'#line 2 "{cell_id}"\n' + statement.statements
    if not statement.outputs:
        return directives, TEMPLATES.render("statement_void.cpp", params=params, body=body)
    outputs = ", ".join(statement.outputs)
    return directives, TEMPLATES.render("statement.cpp", result_type=result, params=params, body=body, after_line=body_lines + 2, cell=cell_id, outputs=outputs)


def statement_function(statement: Statement) -> Function:
    """The statement's function, bound as the parser's functions are."""
    params = [Param(n, t) for n, t in statement.inputs.items()]
    return Function("ipolyglot_statement", statement_result(statement), params, "::ipolyglot_statement", [])


# -- the units ------------------------------------------------------------------------

def user_unit(pieces: list[Piece], cell: str, statement: tuple[str, str] = ("", "")) -> str:
    parts = sections(pieces, header=False, own_cell=cell)
    keep = [f"[[gnu::used]] static auto keep_{i} = {expr};" for i, expr in enumerate(k for p in pieces if p.cell_id == cell for k in p.keep)]
    return TEMPLATES.render(
        "user_unit.cpp",
        preamble=parts["preamble"] + statement[0],
        early_prototypes=early_prototypes(pieces),
        declarations=parts["decl"],
        functions=parts["func"],
        statement=statement[1],
        generated_file=GENERATED_FILE,
        keep="\n".join(keep),
    )


def user_units(pieces: list[Piece], statement: Statement | None, statement_cell: str, body_lines: int) -> dict[str, str]:
    """cell id -> its user unit; a statement's cell first."""
    cells = list(dict.fromkeys(p.cell_id for p in pieces if p.section != "preamble"))
    units = {}
    if statement is not None:
        units[statement_cell] = user_unit(pieces, statement_cell, statement_code(statement, statement_cell, body_lines, header=False))
    units.update({c: user_unit(pieces, c) for c in cells if c not in units})
    return units


class _Registrations:
    """The binding unit's registration functions and the calls that run them, in order."""

    def __init__(self) -> None:
        self.code: list[str] = []
        self.calls: list[str] = []
        self.enum_casters: list[str] = []
        self.top: list[str] = []
        self.registered: dict[int, str] = {}
        self.fallbacks: dict[int, list[int]] = {}
        self.undefined: list[str] = []
        self._submodules: set[tuple[str, ...]] = set()

    def add(self, index: int, ns: list[str], body: str) -> None:
        for depth in range(1, len(ns) + 1):
            if tuple(ns[:depth]) not in self._submodules:
                self._submodules.add(tuple(ns[:depth]))
                self.calls.append(bindgen.submodule(ns[:depth]))
        if ns and ns[0] not in self.top:
            self.top.append(ns[0])
        self.code.append(bindgen.registration(index, ns, body))
        self.calls.append(bindgen.registration_call(index, ns))


def _function_overloads(pieces: list[Piece], skip: frozenset[int]) -> dict[str, list[tuple[int, Function]]]:
    """The bound free functions by qualified name: (registration index, record) of
    each overload, in registration order."""
    found: dict[str, list[tuple[int, Function]]] = {}
    for index, record in _numbered(pieces):
        if index not in skip and isinstance(record, Function):
            found.setdefault(record.qual, []).append((index, record))
    return found


def _numbered(pieces: list[Piece]) -> list[tuple[int, Function | ClassBinding | EnumBinding]]:
    """Every binding record with its registration index (1, 2, ...): stable whatever is left out."""
    return list(enumerate((record for piece in pieces for record in piece.binds), start=1))


def _defined_methods_only(info: ClassBinding, defined: set[str], undefined: list[str]) -> ClassBinding:
    """A class's bindings leave out methods it declares that no cell defines yet
    (binding one would need its symbol, and the module would not load)."""
    kept = [m for m in info.methods if not m.defined_as or m.defined_as in defined]
    if len(kept) == len(info.methods):
        return info
    undefined += [m.defined_as[:-1].replace("::", ".") for m in info.methods if m not in kept]
    return dataclasses.replace(info, methods=kept)


def _declaration_registrations(pieces: list[Piece], profile: bool, skip: frozenset[int]) -> _Registrations:
    regs = _Registrations()
    classes = {b.qual.lstrip(":") for p in pieces for b in p.binds if isinstance(b, ClassBinding)}
    defined = {p.name.split("(")[0] + "(" for p in pieces if p.kind == "member-def"}
    overloads = _function_overloads(pieces, skip)
    documented: set[str] = set()
    numbered = _numbered(pieces)
    for index, record in numbered:
        if index in skip:
            continue
        ns = record.ns
        regs.registered[index] = ".".join([*ns, record.name])
        if isinstance(record, EnumBinding):
            regs.enum_casters.append(f"IPOLYGLOT_ENUM_CASTER({record.qual})")
            body = bindgen.enum_code(record)
        elif isinstance(record, ClassBinding):
            body = bindgen.class_code(_defined_methods_only(record, defined, regs.undefined), classes, profile)
        else:
            overloaded = len(overloads[record.qual]) > 1
            body = bindgen.function_code(record, profile, bindgen.docstring(record, overloaded, record.qual not in documented))
            documented.add(record.qual)
        if not ns and record.name not in regs.top:
            regs.top.append(record.name)
        regs.add(index, ns, body)
    index = len(numbered)
    if not profile:
        # Registered after every overload: runs only when none fits the call.
        for group in overloads.values():
            index += 1
            regs.fallbacks[index] = [i for i, _ in group]
            regs.add(index, group[0][1].ns, bindgen.call_errors_code([r for _, r in group]))
    for n, piece in enumerate(p for p in pieces if p.symbol):
        # In the order the cells were first run; a later cell's names replace earlier ones.
        regs.calls.append(bindgen.custom_call(n, piece.symbol))
    return regs


def _statement_registrations(statement: Statement) -> _Registrations:
    regs = _Registrations()
    regs.add(0, [], bindgen.function_code(statement_function(statement), False))
    return regs


def generic_functions(pieces: list[Piece], profile: bool, statement: Statement | None, skip: frozenset[int]) -> list[tuple[int, Function]] | None:
    """The bound functions by registration index when the generic caller can bind all
    of them (bindgen.generic_callable: numbers, strings, vectors of numbers; none
    overloaded; no class, enum or pybind11 code in the session); None when the
    bindings need pybind11."""
    if statement is not None or profile or any(p.python_only or p.symbol for p in pieces):
        return None
    found = [(i, r) for i, r in _numbered(pieces) if i not in skip]
    if not all(isinstance(r, Function) and bindgen.generic_callable(r) for _, r in found):
        return None
    names = [r.qual for _, r in found]
    return found if len(names) == len(set(names)) else None


def _changes_library_abi(flags: list[Flags]) -> bool:
    """Options that may give std::string or std::vector another layout than the
    generic caller's (compiled once, without the cells' options) was built with."""
    return any(f.startswith(("-D_GLIBCXX", "-U_GLIBCXX", "-stdlib")) or f in ("-m32", "-mx32", "-m16") for cell in flags for f in cell.cflags)


def generic_binding_unit(pieces: list[Piece], flags: list[str], functions: list[tuple[int, Function]]) -> BindingUnit:
    """The binding unit of thunks and their table, compiled without pybind11."""
    head = sections(pieces, header=True)
    entries = "".join(bindgen.generic_entry(i, r) for i, r in functions)
    text = TEMPLATES.render(
        "generic_unit.cpp",
        preamble=head["preamble"],
        early_prototypes=early_prototypes(pieces),
        declarations=head["decl"],
        functions=head["func"],
        thunks="\n".join(bindgen.generic_thunk(i, r) for i, r in functions),
        tables="".join(bindgen.generic_params(i, r) for i, r in functions) + TEMPLATES.render("generic_list.cpp", entries=entries or "    {}"),
        count=len(functions),
    )
    registered = {i: r.name for i, r in functions}
    return BindingUnit(text, flags, [r.name for _, r in functions], registered, generic=True)


def binding_unit(pieces: list[Piece], flags: list[str], profile: bool, statement: Statement | None, skip: frozenset[int]) -> BindingUnit:
    """The binding unit; `skip` leaves out registrations whose signatures pybind11 cannot compile."""
    head = sections(pieces, header=True)
    regs = _statement_registrations(statement) if statement is not None else _declaration_registrations(pieces, profile, skip)
    statement_head = statement_code(statement, "", 0, header=True) if statement is not None else ("", "")
    casters = regs.enum_casters + bindgen.callback_casters([b for p in pieces for b in p.binds])
    text = TEMPLATES.render(
        "bind_unit.cpp",
        preamble=head["preamble"] + statement_head[0],
        early_prototypes=early_prototypes(pieces),
        declarations=head["decl"],
        functions=head["func"],
        statement=statement_head[1],
        enum_casters="\n".join(casters),
        registrations="\n\n".join(regs.code),
        calls="\n".join(regs.calls),
    )
    return BindingUnit(text, flags, regs.top, regs.registered, regs.fallbacks, regs.undefined)


@dataclass
class Composition:
    """What a build is composed of, besides its pieces: the options and the cell run."""

    cell_flags: dict[str, Flags]  # each cell's options
    flags: Flags  # the session's (for cells without options of their own, and the bindings)
    current: str  # the cell run
    compiler: str  # the compiler's identity
    profile: bool = False
    statement: Statement | None = None
    body_lines: int = 0  # the statement cell's lines
    debug_names: list[str] = field(default_factory=list)  # -fdebug-prefix-map flags naming cells by label


def compose(pieces: list[Piece], how: Composition, skip: frozenset[int] = frozenset()) -> CppUnit:
    """The units of a session's module, and the key parts that name it."""
    include_dirs = session_include_dirs([*how.cell_flags.values(), how.flags])
    python_cells = {p.cell_id for p in pieces if p.python_only or p.symbol}
    generic = None if _changes_library_abi([*how.cell_flags.values(), how.flags]) else generic_functions(pieces, how.profile, how.statement, skip)
    if generic is not None:
        bind = generic_binding_unit(pieces, how.flags.generic_bind_compile(include_dirs), generic)
    else:
        bind = binding_unit(pieces, how.flags.bind_compile(include_dirs), how.profile, how.statement, skip)
    objects: dict[str, ObjectUnit] = {}
    link_flags: list[str] = []
    for cell, text in user_units(pieces, how.statement, how.current, how.body_lines).items():
        flags = how.cell_flags.get(cell, how.flags)
        compile_flags = flags.user_compile(include_dirs) + (python_includes() if cell in python_cells else [])
        if flags.debug:  # gdb names cells as the notebook does; a debug object is rebuilt when labels change
            compile_flags += how.debug_names
        objects[cell] = ObjectUnit(text, compile_flags, cell in python_cells)
        link_flags += [f for f in flags.link() if f not in link_flags or f.startswith("-Wl")]
    return assembled(objects, bind, link_flags, how.compiler, how.current)


def assembled(objects: dict[str, ObjectUnit], bind: BindingUnit, link_flags: list[str], compiler: str, current: str = "") -> CppUnit:
    """The module of these units, named by them and the compiler: composing a session and
    rebuilding a travelled function (cpp_ext/travel.py) name a build the same way."""
    key_parts = {
        "kind": "cpp-module",
        "objects": " ".join(cache_key(o.key_parts(compiler)) for o in objects.values()),
        "bind": cache_key(bind.key_parts(compiler)),
        "link": json.dumps(link_flags),
        "compiler": compiler,
    }
    module_name = "ipolyglot_cpp_" + cache_key(key_parts)[:20]
    return CppUnit("", key_parts, {}, module_name, objects, bind, link_flags, compiler, current)

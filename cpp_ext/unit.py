"""Turning the session's declarations into the two translation units of a build.

The user unit holds the cells' code as written; the binding unit holds the
same declarations with bound function bodies removed, plus the pybind11
registrations. `#line` directives name each cell by a hash of its text (not by
its execution count, so the same cell re-run is the same build), and the
compiler reports errors in the cell's own line numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import bindgen
from .templating import render, snippet

SECTIONS = ("preamble", "decl", "func")
# Generated text after a cell's text is reported under this name, never as cell lines.
GENERATED_FILE = "ipolyglot-generated.cpp"
_BACK_TO_GENERATED = f'#line 1 "{GENERATED_FILE}"\n'


@dataclass
class Units:
    user: dict[str, str]  # cell id -> the text of that cell's user unit
    bind: str
    top_names: list[str] = field(default_factory=list)  # Python names the module offers
    registered: dict[int, str] = field(default_factory=dict)  # registration index -> declaration name
    fallbacks: dict[int, list[int]] = field(default_factory=dict)  # call-error registration -> its overloads' indices
    undefined: list[str] = field(default_factory=list)  # methods declared, defined by no cell yet: not bound


def _emit(piece: dict, text: str, marked: bool) -> str:
    """A piece in its namespace. Marked text carries `#line` directives naming its
    cell and lines (the generated text after it goes back to GENERATED_FILE);
    unmarked text (the binding unit's) carries none, so line shifts leave it unchanged."""
    if not text.strip():
        return ""
    ns = piece.get("ns") or []
    prefix = piece.get("prefix") or ""
    if marked:
        body = ""
        if prefix and text == piece["user_text"]:
            body += f'#line {piece["prefix_line"]} "{piece["cell_id"]}"\n' + " " * (piece["prefix_column"] - 1) + prefix + "\n"
        body += f'#line {piece["first_line"]} "{piece["cell_id"]}"\n' + " " * (piece["column"] - 1) + text + "\n" + _BACK_TO_GENERATED
    else:
        body = text.strip() + "\n"
    if piece.get("symbol"):
        # Each cell's `ipolyglot_bind` gets a name of its own, so several cells may define one.
        body = f"#define ipolyglot_bind {piece['symbol']}\n{body}#undef ipolyglot_bind\n"
    if ns:
        return "".join(f"namespace {n} {{ " for n in ns) + "\n" + body + "}" * len(ns) + "\n"
    return body


def section_of(piece: dict) -> str:
    """Everything but the preamble keeps the session's order (first definition, then
    source order within a cell), so a cell reads as written: a static helper before
    the global that calls it, a constant before the struct that uses it."""
    return "preamble" if piece["section"] == "preamble" else "decl"


def _placements(piece: dict, header: bool, own: bool) -> list[tuple[str, str, bool]]:
    """(section, text, marked) for one piece in one unit.

    The binding unit (`header`) and other cells' units see declarations only; a
    cell's own unit holds its text as written, function bodies after every
    declaration. Private pieces (internal linkage) exist only in their own unit."""
    if piece.get("python_only") and not own and not header:
        return []  # other cells' units are compiled without pybind11
    if piece["section"] == "preamble":
        return [("preamble", piece["header_text"] if header else piece["user_text"], not header)]
    if piece.get("private"):
        return [("decl", piece["user_text"], True)] if own and not header else []
    kind = piece["kind"]
    mine = own and not header
    if kind == "member-def":
        return [("func", piece["user_text"] if mine else piece["header_text"], mine)]
    if mine and kind == "func" and piece.get("proto_text"):
        # A body compiled here only: declared in place, defined after every declaration.
        return [("decl", piece["proto_text"], True), ("func", piece["user_text"], True)]
    if mine and kind == "block" and piece["header_text"] != piece["user_text"]:
        return [("decl", piece["header_text"], True), ("func", piece["user_text"], True)]
    if mine:
        return [("decl", piece["user_text"], True)]
    if piece["section"] == "type" and not header:
        # Types are whole in every user unit, with their cell's line numbers.
        return [("decl", piece["user_text"], True)]
    return [("decl", piece["header_text"], False)]


def _sections(pieces: list[dict], header: bool, own_cell: str | None = None) -> dict[str, str]:
    """The pieces by section, for the binding unit (`header`) or the user unit of `own_cell`."""
    out: dict[str, list[str]] = {name: [] for name in SECTIONS}
    for piece in pieces:
        own = own_cell is None or piece["cell_id"] == own_cell
        for section, text, marked in _placements(piece, header, own):
            out[section].append(_emit(piece, text, marked))
    return {k: "".join(v) for k, v in out.items()}


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _early_prototypes(pieces: list[dict]) -> str:
    """Prototypes whose signatures name no type of the session: they can precede
    the types and templates, so a template body can call any such function."""
    session_types = {p["name"].rsplit(".", 1)[-1] for p in pieces if p["section"] == "type" or p["kind"] == "template"}
    early = [
        p for p in pieces
        if p.get("proto_text") and not (p.get("private") or p.get("python_only") or p.get("symbol"))
        and not session_types & set(_IDENTIFIER.findall(p["proto_text"]))
    ]
    return _prototypes(early)


def _prototypes(pieces: list[dict]) -> str:
    lines = []
    for piece in pieces:
        proto = piece.get("proto_text")
        if proto:
            ns = piece.get("ns") or []
            if ns:
                lines.append("".join(f"namespace {n} {{ " for n in ns) + proto + " " + "}" * len(ns))
            else:
                lines.append(proto)
    return "\n".join(lines)


def statement_code(statement: dict, cell_id: str, body_lines: int, header: bool) -> tuple[str, str]:
    """(directives, function) for a statement cell; the header version has no body."""
    outputs = statement["outputs"]
    result = "void" if not outputs else f"std::tuple<{', '.join(outputs.values())}>"
    params = ", ".join(f"{t} {n}" for n, t in statement["inputs"].items())
    if header:
        return statement["directives"].strip() + "\n", f"{result} ipolyglot_statement({params});"
    directives = f'#line 2 "{cell_id}"\n' + statement["directives"] + "\n"
    body = f'#line 2 "{cell_id}"\n' + statement["statements"]
    if not outputs:
        return directives, f"void ipolyglot_statement({params}) {{\n{body}\n}}"
    return directives, render(
        "statement.cpp",
        result_type=result,
        params=params,
        body=body,
        after_line=body_lines + 2,
        cell=cell_id,
        outputs=", ".join(outputs),
    )


STATEMENT_HEADERS = "#include <complex>\n#include <cstdio>\n#include <iostream>\n#include <map>\n#include <set>\n#include <string>\n#include <vector>\n"


def _user_unit(pieces: list[dict], cell: str, statement_code: tuple[str, str] = ("", "")) -> str:
    sections = _sections(pieces, header=False, own_cell=cell)
    keep = [f"[[gnu::used]] static auto keep_{i} = {expr};" for i, expr in enumerate(k for p in pieces if p["cell_id"] == cell for k in p.get("keep", []))]
    return render(
        "user_unit.cpp",
        preamble=sections["preamble"] + statement_code[0],
        early_prototypes=_early_prototypes(pieces),
        declarations=sections["decl"],
        functions=sections["func"],
        statement=statement_code[1],
        generated_file=GENERATED_FILE,
        keep="\n".join(keep),
    )


def _function_overloads(pieces: list[dict], skip: frozenset[int]) -> dict[str, list[tuple[int, dict]]]:
    """The bound free functions by qualified name: (registration index, record) of
    each overload, in registration order."""
    found: dict[str, list[tuple[int, dict]]] = {}
    index = 0
    for piece in pieces:
        for record in piece.get("binds", []):
            index += 1
            if index not in skip and not record.get("enum") and not record.get("class"):
                found.setdefault(record["qual"], []).append((index, record))
    return found


def _defined_methods_only(info: dict, defined: set[str], undefined: list[str]) -> dict:
    """A class's bindings leave out methods it declares that no cell defines yet
    (binding one would need its symbol, and the module would not load)."""
    kept = [m for m in info["methods"] if not m.get("defined_as") or m["defined_as"] in defined]
    if len(kept) == len(info["methods"]):
        return info
    undefined += [f"{m['defined_as'][:-1].replace('::', '.')}" for m in info["methods"] if m not in kept]
    return {**info, "methods": kept}


def build_units(pieces: list[dict], profile: bool, statement: dict | None = None, statement_cell: str = "", body_lines: int = 0, custom: bool = False, skip: frozenset[int] = frozenset()) -> Units:
    """The user units and the binding unit; `skip` leaves out registrations
    whose signatures pybind11 cannot compile."""
    head = _sections(pieces, header=True)
    cells = list(dict.fromkeys(p["cell_id"] for p in pieces if p["section"] != "preamble"))
    stmt_head = ("", "")
    if statement is not None:
        stmt_user = statement_code(statement, statement_cell, body_lines, header=False)
        stmt_head = statement_code(statement, statement_cell, body_lines, header=True)
        stmt_user = (STATEMENT_HEADERS + stmt_user[0], stmt_user[1])
        stmt_head = (STATEMENT_HEADERS + stmt_head[0], stmt_head[1])
        user_units = {statement_cell: _user_unit(pieces, statement_cell, stmt_user)}
        user_units.update({c: _user_unit(pieces, c) for c in cells if c != statement_cell})
    else:
        user_units = {c: _user_unit(pieces, c) for c in cells}
    enum_casters, registrations, calls, top = [], [], [], []
    undefined: list[str] = []
    registered: dict[int, str] = {}
    fallbacks: dict[int, list[int]] = {}
    submodules: dict[tuple, str] = {}

    def module_for(ns: list[str]) -> str:
        for depth in range(1, len(ns) + 1):
            key = tuple(ns[:depth])
            if key not in submodules:
                parent = bindgen.module_var(list(key[:-1]))
                var = bindgen.module_var(list(key))
                submodules[key] = var
                calls.append(f'    pybind11::module_ {var} = {parent}.def_submodule("{key[-1]}");')
        if ns and ns[0] not in top:
            top.append(ns[0])
        return bindgen.module_var(ns)

    if statement is not None:
        record = {"name": "ipolyglot_statement", "qual": "::ipolyglot_statement", "ns": [], "ret": "void", "params": []}
        record["ret"] = "void" if not statement["outputs"] else f"std::tuple<{', '.join(statement['outputs'].values())}>"
        record["params"] = [{"name": n, "type": t, "default": None} for n, t in statement["inputs"].items()]
        registrations.append(bindgen.registration(0, [], bindgen.function_code(record, False)))
        calls.append("    ipolyglot_register_0(m);")
    else:
        classes = {b["qual"].lstrip(":") for p in pieces for b in p.get("binds", []) if b.get("class")}
        defined = {p["name"].split("(")[0] + "(" for p in pieces if p["kind"] == "member-def"}
        overloads = _function_overloads(pieces, skip)
        documented: set[str] = set()
        index = 0
        for piece in pieces:
            for record in piece.get("binds", []):
                index += 1
                if index in skip:
                    continue
                ns = record["ns"]
                registered[index] = ".".join([*ns, record["name"]])
                if record.get("enum"):
                    enum_casters.append(f"IPOLYGLOT_ENUM_CASTER({record['qual']})")
                    body = bindgen.enum_code(record)
                elif record.get("class"):
                    body = bindgen.class_code(_defined_methods_only(record, defined, undefined), classes, profile)
                else:
                    group = [r for _, r in overloads[record["qual"]]]
                    body = bindgen.function_code(record, profile, bindgen.docstring(record, len(group) > 1, record["qual"] not in documented))
                    documented.add(record["qual"])
                var = module_for(ns)
                if not ns and record["name"] not in top:
                    top.append(record["name"])
                registrations.append(bindgen.registration(index, ns, body))
                qual_fn = "::".join(["", *ns, f"ipolyglot_register_{index}"])
                calls.append(f"    {qual_fn}({var});")
        if not profile:
            # Registered after every overload: runs only when none fits the call.
            for group in overloads.values():
                index += 1
                fallbacks[index] = [i for i, _ in group]
                ns = group[0][1]["ns"]
                registrations.append(bindgen.registration(index, ns, bindgen.call_errors_code([r for _, r in group])))
                calls.append(f"    {'::'.join(['', *ns, f'ipolyglot_register_{index}'])}({module_for(ns)});")
        for n, piece in enumerate(p for p in pieces if p.get("symbol")):
            # In the order the cells were first run; a later cell's names replace earlier ones.
            calls.append(snippet("custom", index=n, symbol=piece["symbol"]))
    enum_casters += bindgen.callback_casters([b for p in pieces for b in p.get("binds", [])])
    bind_text = render(
        "bind_unit.cpp",
        preamble=head["preamble"] + stmt_head[0],
        early_prototypes=_early_prototypes(pieces),
        declarations=head["decl"],
        functions=head["func"],
        statement=stmt_head[1],
        enum_casters="\n".join(enum_casters),
        registrations="\n\n".join(registrations),
        calls="\n".join(calls),
    )
    return Units(user=user_units, bind=bind_text, top_names=top, registered=registered, fallbacks=fallbacks, undefined=undefined)

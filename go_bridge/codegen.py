"""The Go package for one build: every live declaration of the session.

Each cell's live declarations go into a file of their own, with that cell's
imports, behind `//line` directives, so compile errors and panic stacks name
the user's cell and line directly (the `%%go` line is line 1). A generated
glue file registers the exported functions and types with the bridge runtime
(runtime/ipgrt) and gives scalar-only functions a direct C entry point.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from ipolyglot.kernel.core.backend import Declaration

from .cell_packages import MODULE as MODULE_PATH
from .cell_packages import CellPackage, plan_packages

_PKG = Path(__file__).resolve().parent  # the package folder (works for editable installs too)
_TEMPLATES = _PKG / "templates"


def _template(name: str) -> Template:
    return Template((_TEMPLATES / name).read_text())


GO_MOD = _template("go.mod.tmpl")
GLUE = _template("glue.go.tmpl")
FAST_EXPORT = _template("fast_export.go.tmpl")
CELL = _template("cell.go.tmpl")
STATEMENTS = _template("statements.go.tmpl")
CONSTS = _template("consts.go.tmpl")
CELLS = _template("cells.go.tmpl")
CELL_VARS = _template("cell_vars.go.tmpl")

# Go scalar -> (cgo type, Go conversion from the cgo value) for fast entry points.
CGO_TYPES = {
    "bool": "C.bool", "int": "C.int64_t", "int8": "C.int8_t", "int16": "C.int16_t", "int32": "C.int32_t",
    "int64": "C.int64_t", "uint": "C.uint64_t", "uint8": "C.uint8_t", "uint16": "C.uint16_t",
    "uint32": "C.uint32_t", "uint64": "C.uint64_t", "uintptr": "C.uintptr_t", "float32": "C.float",
    "float64": "C.double", "byte": "C.uint8_t", "rune": "C.int32_t",
}

STATEMENTS_NAME = "(statements)"


def runtime_files() -> dict[str, str]:
    """The bridge runtime package, shipped as Go source in runtime/ipgrt."""
    folder = _PKG / "runtime" / "ipgrt"
    files = {entry.name: entry.read_text() for entry in folder.iterdir() if entry.name.endswith((".go", ".c", ".h"))}
    files["go.mod"] = (_TEMPLATES / "runtime.go.mod.tmpl").read_text()
    return files


RUNTIME_HASH = hashlib.sha256(
    b"".join(name.encode() + b"\0" + text.encode() + b"\0" for name, text in sorted(runtime_files().items()))
).hexdigest()


def write_runtime(directory: Path) -> None:
    """Write the runtime package into a build directory (the backend publishes it
    as a cache artifact keyed by RUNTIME_HASH: one fixed path, so Go caches its build)."""
    for name, text in runtime_files().items():
        (directory / name).write_text(text)


@dataclass
class Statements:
    cell_id: str  # names the cell in //line directives (stable across re-runs: a cache key part)
    body: str  # the cell body with imports blanked out (positions stay true)
    imports: list[dict]
    inputs: list[tuple[str, str]]  # (name, Go type)
    outputs: list[str]
    refs: list[str] = field(default_factory=list)  # package-level names the statements use
    spawns: bool = False  # the statements hold a go statement
    waits: bool = False  # ... or may wait for a goroutine (see codegen.reaching)


@dataclass
class Plan:
    """What a build contains and how Python reaches it."""

    files: dict[str, str]
    funcs: list[dict] = field(default_factory=list)  # id order: name, params, fast index/sig
    statements_id: int | None = None
    const_lines: dict[int, str] = field(default_factory=dict)  # line in consts.go -> constant
    var_texts: dict[str, str] = field(default_factory=dict)  # package-level var -> its declaration text
    var_cells: dict[str, str] = field(default_factory=dict)  # package-level var -> id of the cell declaring it
    docs: dict[str, str] = field(default_factory=dict)  # "F" or "T.M" -> the comment above its declaration


GO_MOD_REQUIRE = re.compile(r"^(?:require\s+|\t)(?P<module>[^\s()]+)\s+(?P<version>v[^\s]+)", re.M)


def module_requirements(go_mod: str) -> dict[str, str]:
    """The `require`d modules of a go.mod text (module -> version)."""
    return {m["module"]: m["version"] for m in GO_MOD_REQUIRE.finditer(go_mod)}


def is_exported(name: str) -> bool:
    return bool(name) and name[0].isupper()


def package_name(imp: dict) -> str:
    """The name an import is used by (explicit, or guessed from the path as goimports does)."""
    if imp.get("name"):
        return imp["name"]
    parts = imp["path"].split("/")
    last = parts[-1]
    if re.fullmatch(r"v\d+", last) and len(parts) > 1:
        last = parts[-2]
    last = last.removeprefix("go-").split(".")[0]
    return last.replace("-", "_")


def _directive(label: str, line: int, col: int) -> str:
    return f"//line {label}:{line}:{max(1, col)}"


def _imports_text(label: str, imports: list[dict]) -> str:
    lines = []
    for imp in imports:
        # The directive positions the generated `import` keyword; the path sits 7 columns on.
        preamble = _cgo_preamble(label, imp["preamble"], imp["preamble_line"]) if imp.get("preamble") else []
        name = f"{imp['name']} " if imp.get("name") else ""
        if imp["path"] == "C" and not preamble:
            # A comment directly above `import "C"` is cgo's preamble, C code, even a //line
            # directive: the block form, on the import's own line, is no comment above it.
            lines.append(f'/*line {label}:{imp["line"] + 1}:{max(1, imp["col"] - 7)}*/import {name}"C"')
            continue
        if imp["line"] + 1 - len(preamble) >= 1:  # else the import keeps a generated position
            lines.append(_directive(label, imp["line"] + 1 - len(preamble), imp["col"] - 7))
        lines += preamble
        lines.append(f'import {name}"{imp["path"]}"')
    return "\n".join(lines) + ("\n" if lines else "")


def _cgo_preamble(label: str, text: str, line: int) -> list[str]:
    """cgo's preamble as comment lines directly above `import "C"`, apart from the
    Go //line directive (a comment cgo would read as C), with a C #line directive
    so the C compiler names the cell and its lines."""
    c_lines = [f'#line {line + 1} "{label}"', *text.splitlines()]
    # `//line ` would start a Go directive: a space keeps such a C line plain C.
    return ["", *(f"// {c}" if c.startswith("line ") else f"//{c}" for c in c_lines)]


def _live_imports(decls: list[Declaration]) -> list[dict]:
    """A cell's imports, minus those only a since-replaced declaration used."""
    first = decls[0].extra
    imports = first["imports"]
    if len(decls) == first["cell_count"]:
        return imports
    used = set().union(*(d.extra["uses"] for d in decls))
    return [imp for imp in imports if imp.get("name") in ("_", ".") or package_name(imp) in used]


def reaching(decls: list[Declaration], flag: str, statements: Statements | None = None) -> tuple[set[str], bool]:
    """The declarations (by name; methods as "T.M") whose code, or the code of a declaration
    they refer to (transitively), has `flag` set by the inspector ("spawns": a go statement;
    "waits": a channel operation, a select, a Wait or Lock call), and whether the statements
    do. A reference to a type reaches its methods (a call x.M() names no method), so this
    errs towards yes. It decides which calls are supervised (runtime/ipgrt/supervise.go)."""
    by_name: dict[str, list[Declaration]] = {}
    for decl in decls:
        for name in (decl.extra.get("names") or [decl.name]) if decl.kind != "method" else [decl.name]:
            by_name.setdefault(name, []).append(decl)
        if decl.kind == "method" and "." in decl.name:
            by_name.setdefault(decl.name.split(".", 1)[0], []).append(decl)  # a type reaches its methods

    def reached(refs) -> list[Declaration]:
        return [target for ref in refs for target in by_name.get(ref, [])]

    found = {id(d) for d in decls if d.extra.get(flag)}
    changed = True
    while changed:
        changed = False
        for decl in decls:
            if id(decl) not in found and any(id(t) in found for t in reached(decl.extra.get("refs") or [])):
                found.add(id(decl))
                changed = True
    names = {decl.name for decl in decls if id(decl) in found}
    names |= {n for decl in decls if id(decl) in found and decl.kind != "method" for n in decl.extra.get("names") or []}
    in_statements = statements is not None and (
        bool(getattr(statements, flag)) or any(id(t) in found for t in reached(statements.refs))
    )
    return names, in_statements


def _supervision(name: str, spawns: set[str], waits: set[str]) -> str:
    """The Func/Type fields of glue.go that say when calls are supervised."""
    return (", Spawns: true" if name in spawns else "") + (", Waits: true" if name in waits else "")


def generate(
    decls: list[Declaration],
    *,
    runtime_dir: Path,
    go_version: str,
    requires: dict[str, str],
    profile: bool,
    statements: Statements | None = None,
    skip_consts: frozenset[str] = frozenset(),
    go_sum: str = "",
) -> Plan:
    """The package's files; `skip_consts` names constants Python cannot read (see backend);
    `go_sum` holds the checksums of modules fetched earlier in the session."""
    files: dict[str, str] = {}
    requires_text = "".join(f"require {mod} {ver}\n" for mod, ver in sorted(requires.items()))
    files["go.mod"] = GO_MOD.substitute(go_version=go_version, requires=requires_text, runtime_dir=runtime_dir)
    if go_sum:
        files["go.sum"] = go_sum

    # Files and //line directives name a cell by a hash of its text, not by its
    # execution label, so the same cell re-run (or run in a new kernel) is a cache hit.
    by_cell: dict[str, list[Declaration]] = {}
    for decl in decls:
        by_cell.setdefault(decl.extra["cell_id"], []).append(decl)
    packages = plan_packages(by_cell, set(statements.refs) if statements else set())
    for index, (label, cell_decls) in enumerate(by_cell.items()):
        body = "\n\n".join(
            f"{_directive(label, d.first_line, d.extra['col'])}\n{d.extra['text']}" for d in cell_decls
        )
        package = packages.get(label)
        files[f"{package.name}/cell.go" if package else f"cell{index:03d}.go"] = CELL.substitute(
            label=label, package=package.name if package else "main",
            imports=_imports_text(label, _live_imports(cell_decls)), decls=body,
        )
    if packages:
        files["cells.go"] = _cells_file(packages.values())
    owner = {name: package for package in packages.values() for name in package.names}
    glue_packages: set[str] = set()

    def qualified(name: str, used: set[str]) -> str:
        """How package main names a declaration (`pkg.Name` for a cell package's)."""
        if name in owner:
            used.add(owner[name].name)
            return f"{owner[name].name}.{name}"
        return name

    plan = Plan(files=files)
    func_lines, type_lines, fast_exports, var_lines, const_names = [], [], [], [], []
    var_index: dict[str, int] = {}  # cell package -> vars registered so far
    method_params: dict[str, dict[str, list[str]]] = {}  # receiver type -> method -> parameter names
    spawn_names, statements_spawn = reaching(decls, "spawns", statements)
    wait_names, statements_wait = reaching(decls, "waits", statements)
    for decl in decls:
        if decl.kind == "method" and "." in decl.name:
            receiver, method = decl.name.split(".", 1)
            method_params.setdefault(receiver, {})[method] = decl.extra.get("params") or []
    for decl in decls:
        extra = decl.extra
        if extra.get("doc") and decl.kind in ("func", "method"):
            plan.docs[decl.name] = extra["doc"]
        if decl.kind == "func" and is_exported(decl.name) and not extra.get("generic"):
            params = extra.get("params") or []
            entry = {"name": decl.name, "params": params, "id": len(plan.funcs), "fast": None, "cell_id": extra["cell_id"]}
            fast = extra.get("fast")
            spawns = decl.name in spawn_names
            if fast is not None and not profile and not spawns:  # a supervised call takes the generic path
                entry["fast"] = {"index": len(fast_exports), **fast}
                fast_exports.append(_fast_export(
                    len(fast_exports), qualified(decl.name, glue_packages), fast, decl.name in wait_names
                ))
            plan.funcs.append(entry)
            func_lines.append(
                f"\t\t{{Name: {_go_string(decl.name)}, Params: {_go_strings(params)}, Fn: {qualified(decl.name, glue_packages)}"
                f"{_supervision(decl.name, spawn_names, wait_names)}}},\n"
            )
        for spec in extra.get("types") or []:
            if is_exported(spec["name"]) and not spec["generic"] and not spec.get("constraint"):
                methods = "".join(
                    f"{_go_string(m)}: {_go_strings(p)}, " for m, p in sorted(method_params.get(spec["name"], {}).items())
                )
                # Methods (promoted ones too) follow the type and its own methods.
                def of_type(names: set[str], name: str = spec["name"]) -> set[str]:
                    return {name} if name in names or any(f"{name}.{m}" in names for m in method_params.get(name, {})) else set()

                type_lines.append(
                    f"\t\t{{Name: {_go_string(spec['name'])}, "
                    f"Type: ipolyglotreflect.TypeOf((*{qualified(spec['name'], glue_packages)})(nil)).Elem(), "
                    f"Methods: map[string][]string{{{methods}}}"
                    f"{_supervision(spec['name'], of_type(spawn_names), of_type(wait_names))}}},\n"
                )
        if decl.kind == "var":
            for name in extra.get("names") or []:
                if name != "_":
                    plan.var_texts[name] = decl.source
                    plan.var_cells[name] = extra["cell_id"]
                    var_lines.append(_var_line(name, owner.get(name), var_index, glue_packages))
        if decl.kind == "const":
            const_names += [n for n in extra.get("names") or [] if is_exported(n) and n not in skip_consts]
    if statements is not None:
        plan.statements_id = len(plan.funcs)
        names = [name for name, _ in statements.inputs]
        plan.funcs.append({"name": STATEMENTS_NAME, "params": names, "id": plan.statements_id, "fast": None})
        func_lines.append(
            f"\t\t{{Name: {_go_string(STATEMENTS_NAME)}, Params: {_go_strings(names)}, Fn: ipolyglotStatements"
            f"{', Spawns: true' if statements_spawn else ''}{', Waits: true' if statements_wait else ''}}},\n"
        )
        files["statements.go"] = STATEMENTS.substitute(
            label=statements.cell_id,
            imports=_imports_text(statements.cell_id, statements.imports),
            params=", ".join(f"{name} {go_type}" for name, go_type in statements.inputs),
            uses="; ".join(f"_ = {name}" for name in names),
            body=f"{_directive(statements.cell_id, 2, 1)}\n{statements.body}",
            outputs=f"[]any{{{', '.join(statements.outputs)}}}" if statements.outputs else "nil",
        )
    const_packages: set[str] = set()
    consts = "".join(f"\t{{Name: {_go_string(n)}, Value: {qualified(n, const_packages)}}},\n" for n in const_names)
    files["consts.go"] = CONSTS.substitute(
        consts=consts, cell_imports="".join(f'import {name} "{MODULE_PATH}/{name}"\n' for name in sorted(const_packages))
    )
    for number, line in enumerate(files["consts.go"].splitlines(), 1):
        if line.startswith("\t{Name: "):
            plan.const_lines[number] = const_names[len(plan.const_lines)]
    files["glue.go"] = GLUE.substitute(
        funcs="".join(func_lines),
        types="".join(type_lines),
        vars="".join(var_lines),
        profile="true" if profile else "false",
        fast_exports="".join(fast_exports),
        cell_imports="".join(f'\t{name} "{MODULE_PATH}/{name}"\n' for name in sorted(glue_packages)),
    )
    for cell, package in packages.items():
        cell_vars = [n for d in by_cell[cell] if d.kind == "var" for n in d.extra.get("names") or [] if n != "_"]
        if cell_vars:
            files[f"{package.name}/vars.go"] = CELL_VARS.substitute(
                label=cell, package=package.name,
                vars="".join(f"\t{{Name: {_go_string(n)}, Ptr: &{n}}},\n" for n in cell_vars),
            )
    return plan


def _var_line(name: str, package: CellPackage | None, var_index: dict[str, int], used: set[str]) -> str:
    """A variable's registration in glue.go; a cell package's come from its IpolyglotVars."""
    if package is None:
        return f"\t\t{{Name: {_go_string(name)}, Ptr: &{name}}},\n"
    used.add(package.name)
    index = var_index.setdefault(package.name, 0)
    var_index[package.name] = index + 1
    return f"\t\t{package.name}.IpolyglotVars[{index}],\n"


def _cells_file(packages) -> str:
    """cells.go: every cell package imported (so its init runs) and the names other cells use aliased."""
    imports, aliases = [], []
    for package in sorted(packages, key=lambda p: p.name):
        imports.append(f'\t_ "{package.path}"\n')
        if package.aliases:
            imports.append(f'\t{package.name} "{package.path}"\n')
        aliases += [f"{kind} {name} = {package.name}.{name}\n" for kind, name in package.aliases]
    return CELLS.substitute(imports="".join(imports), aliases="".join(aliases))


def _fast_export(index: int, name: str, sig: dict, waits: bool) -> str:
    params = ", ".join(f"a{i} {CGO_TYPES[t]}" for i, t in enumerate(sig["in"]))
    args = ", ".join(f"{t}(a{i})" for i, t in enumerate(sig["in"]))
    call = f"{name}({args})"
    if sig["out"]:
        result = f"(ipgResult {CGO_TYPES[sig['out']]})"  # named: Retry's bare return gives the zero value
        body = f"return {CGO_TYPES[sig['out']]}({call})"
    else:
        result = ""
        body = call
    # A function that may wait for a goroutine is supervised while cells' goroutines run:
    # the fast entry then runs nothing and asks for the generic one (runtime/ipgrt/supervise.go).
    retry = "if ipolyglotrt.Retry() {\n\t\treturn\n\t}\n\t" if waits else ""
    return FAST_EXPORT.substitute(index=index, params=params, result=result, body=body, retry=retry)


def _go_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_strings(items: list[str]) -> str:
    return "[]string{" + ", ".join(_go_string(i) for i in items) + "}"


_CONST_ERROR = re.compile(r"(?:^|/)consts\.go:(\d+):(?:\d+:)? (.*)$", re.M)


def failed_consts(go_output: str, plan: Plan) -> dict[str, str]:
    """Constants whose registration in consts.go did not compile (name -> Go's reason)."""
    return {plan.const_lines[int(m[1])]: m[2] for m in _CONST_ERROR.finditer(go_output) if int(m[1]) in plan.const_lines}

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

from ipolyglot.kernel.core.backend import Declaration

from . import fastcall
from .cell_packages import MODULE as MODULE_PATH
from .cell_packages import CellPackage, plan_packages
from .inspector import FastSignature, GoImport
from .templating import TEMPLATES

_PKG = Path(__file__).resolve().parent  # the package folder (works for editable installs too)

# Go scalar -> (cgo type, Go conversion from the cgo value) for fast entry points.
CGO_TYPES = {
    "bool": "C.bool", "int": "C.int64_t", "int8": "C.int8_t", "int16": "C.int16_t", "int32": "C.int32_t",
    "int64": "C.int64_t", "uint": "C.uint64_t", "uint8": "C.uint8_t", "uint16": "C.uint16_t",
    "uint32": "C.uint32_t", "uint64": "C.uint64_t", "uintptr": "C.uintptr_t", "float32": "C.float",
    "float64": "C.double", "byte": "C.uint8_t", "rune": "C.int32_t",
}

STATEMENTS_NAME = "(statements)"  # how glue.go registers a cell of statements (Go's describe names it so)


def runtime_files() -> dict[str, str]:
    """The bridge runtime package, shipped as Go source in runtime/ipgrt."""
    folder = _PKG / "runtime" / "ipgrt"
    files = {entry.name: entry.read_text() for entry in folder.iterdir() if entry.name.endswith((".go", ".c", ".h"))}
    files["go.mod"] = TEMPLATES.text("runtime.go.mod.tmpl")
    return files


RUNTIME_HASH = hashlib.sha256(
    b"".join(name.encode() + b"\0" + text.encode() + b"\0" for name, text in sorted(runtime_files().items()))
).hexdigest()


def write_runtime(directory: Path) -> None:
    """Write the runtime package into a build directory (the backend publishes it
    as a cache artifact keyed by RUNTIME_HASH: one fixed path, so Go caches its build)."""
    for name, text in runtime_files().items():
        (directory / name).write_text(text)


@dataclass(frozen=True)
class Statements:
    """A cell of statements, run once as a function of its -i inputs returning its -o outputs."""

    cell_id: str  # names the cell in //line directives (stable across re-runs: a cache key part)
    body: str  # the cell body with imports blanked out (positions stay true)
    imports: tuple[GoImport, ...]
    inputs: tuple[tuple[str, str], ...]  # (name, Go type)
    outputs: tuple[str, ...]
    refs: frozenset[str] = frozenset()  # package-level names the statements use
    spawns: bool = False  # the statements hold a go statement
    waits: bool = False  # ... or may wait for a goroutine (see codegen.reaching)


@dataclass(frozen=True)
class FastEntry:
    """A scalar-only function's direct C entry point: `ipg_slots_<index>` for the compiled
    caller (fastcall.py) when `slots`, else `ipg_fast_<index>` with C-typed parameters for cffi."""

    index: int
    signature: FastSignature
    slots: bool = False


@dataclass(frozen=True)
class FuncEntry:
    """A function glue.go registers: its id in the runtime's table and how Python calls it."""

    name: str
    params: tuple[str, ...]
    id: int
    cell_id: str = ""  # the cell declaring it ("" for a cell of statements)
    fast: FastEntry | None = None


@dataclass(frozen=True)
class GoModule:
    """The session's go.mod: its Go version and requirements (the runtime's folder is the machine's own)."""

    go_version: str
    requires: tuple[tuple[str, str], ...] = ()

    def render(self, runtime_dir: Path | str) -> str:
        requires = "".join(f"require {module} {version}\n" for module, version in sorted(self.requires))
        return TEMPLATES.render("go.mod.tmpl", go_version=self.go_version, requires=requires, runtime_dir=runtime_dir)


@dataclass
class Plan:
    """What a build contains and how Python reaches it."""

    files: dict[str, str]
    module: GoModule | None = None  # what go.mod says (rendered into files["go.mod"])
    funcs: list[FuncEntry] = field(default_factory=list)  # the exported functions, in id order
    statements: FuncEntry | None = None  # the cell of statements, registered after them
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


def package_name(imp: GoImport) -> str:
    """The name an import is used by (explicit, or guessed from the path as goimports does)."""
    if imp.name:
        return imp.name
    parts = imp.path.split("/")
    last = parts[-1]
    if re.fullmatch(r"v\d+", last) and len(parts) > 1:
        last = parts[-2]
    last = last.removeprefix("go-").split(".")[0]
    return last.replace("-", "_")


def _directive(label: str, line: int, col: int) -> str:
    return f"//line {label}:{line}:{max(1, col)}"


def _imports_text(label: str, imports: tuple[GoImport, ...] | list[GoImport]) -> str:
    lines = []
    for imp in imports:
        # The directive positions the generated `import` keyword; the path sits 7 columns on.
        preamble = _cgo_preamble(label, imp.preamble, imp.preamble_line) if imp.preamble else []
        name = f"{imp.name} " if imp.name else ""
        if imp.path == "C" and not preamble:
            # A comment directly above `import "C"` is cgo's preamble, C code, even a //line
            # directive: the block form, on the import's own line, is no comment above it.
            lines.append(f'/*line {label}:{imp.line + 1}:{max(1, imp.col - 7)}*/import {name}"C"')
            continue
        if imp.line + 1 - len(preamble) >= 1:  # else the import keeps a generated position
            lines.append(_directive(label, imp.line + 1 - len(preamble), imp.col - 7))
        lines += preamble
        lines.append(f'import {name}"{imp.path}"')
    return "\n".join(lines) + ("\n" if lines else "")


def _cgo_preamble(label: str, text: str, line: int) -> list[str]:
    """cgo's preamble as comment lines directly above `import "C"`, apart from the
    Go //line directive (a comment cgo would read as C), with a C #line directive
    so the C compiler names the cell and its lines."""
    c_lines = [f'#line {line + 1} "{label}"', *text.splitlines()]
    # `//line ` would start a Go directive: a space keeps such a C line plain C.
    return ["", *(f"// {c}" if c.startswith("line ") else f"//{c}" for c in c_lines)]


def _live_imports(decls: list[Declaration]) -> tuple[GoImport, ...]:
    """A cell's imports, minus those only a since-replaced declaration used."""
    first = decls[0].detail
    if len(decls) == first.cell_count:
        return first.imports
    used = set().union(*(d.detail.uses for d in decls))
    return tuple(imp for imp in first.imports if imp.name in ("_", ".") or package_name(imp) in used)


def reaching(decls: list[Declaration], flag: str, statements: Statements | None = None) -> tuple[set[str], bool]:
    """The declarations (by name; methods as "T.M") whose code, or the code of a declaration
    they refer to (transitively), has `flag` set by the inspector ("spawns": a go statement;
    "waits": a channel operation, a select, a Wait or Lock call), and whether the statements
    do. A reference to a type reaches its methods (a call x.M() names no method), so this
    errs towards yes. It decides which calls are supervised (runtime/ipgrt/supervise.go)."""
    by_name: dict[str, list[Declaration]] = {}
    for decl in decls:
        for name in (decl.detail.names or [decl.name]) if decl.kind != "method" else [decl.name]:
            by_name.setdefault(name, []).append(decl)
        if decl.kind == "method" and "." in decl.name:
            by_name.setdefault(decl.name.split(".", 1)[0], []).append(decl)  # a type reaches its methods

    def reached(refs) -> list[Declaration]:
        return [target for ref in refs for target in by_name.get(ref, [])]

    found = {id(d) for d in decls if getattr(d.detail, flag)}
    changed = True
    while changed:
        changed = False
        for decl in decls:
            if id(decl) not in found and any(id(t) in found for t in reached(sorted(decl.detail.refs))):
                found.add(id(decl))
                changed = True
    names = {decl.name for decl in decls if id(decl) in found}
    names |= {n for decl in decls if id(decl) in found and decl.kind != "method" for n in decl.detail.names}
    in_statements = statements is not None and (
        bool(getattr(statements, flag)) or any(id(t) in found for t in reached(sorted(statements.refs)))
    )
    return names, in_statements


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def _go_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_strings(items) -> str:
    return "[]string{" + ", ".join(_go_string(i) for i in items) + "}"


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
    slot_entries: bool = False,
) -> Plan:
    """The package's files; `skip_consts` names constants Python cannot read (left out of
    consts.go); `go_sum` holds the checksums of modules fetched earlier in the session;
    `slot_entries`: scalar functions get the compiled caller's entry points (fastcall.py
    could build it), else cffi's (one export each: every export costs build time)."""
    module = GoModule(go_version, tuple(sorted(requires.items())))
    plan = Plan(files={"go.mod": module.render(runtime_dir)}, module=module)
    if go_sum:
        plan.files["go.sum"] = go_sum
    # Files and //line directives name a cell by a hash of its text, not by its
    # execution label, so the same cell re-run (or run in a new kernel) is a cache hit.
    by_cell: dict[str, list[Declaration]] = {}
    for decl in decls:
        by_cell.setdefault(decl.cell_id, []).append(decl)
    packages = plan_packages(by_cell, set(statements.refs) if statements else set())
    _cell_files(plan, by_cell, packages)
    glue = _Glue(decls, packages, statements, slot_entries)
    for decl in decls:
        glue.add(plan, decl, profile, skip_consts)
    if statements is not None:
        glue.add_statements(plan, statements)
    glue.write(plan, profile)
    return plan


def _cell_files(plan: Plan, by_cell: dict[str, list[Declaration]], packages: dict[str, CellPackage]) -> None:
    """A file per cell (in its own package when it stands alone), declarations behind //line directives."""
    for index, (label, cell_decls) in enumerate(by_cell.items()):
        body = "\n\n".join(f"{_directive(label, d.first_line, d.detail.col)}\n{d.detail.text}" for d in cell_decls)
        package = packages.get(label)
        plan.files[f"{package.name}/cell.go" if package else f"cell{index:03d}.go"] = TEMPLATES.render(
            "cell.go.tmpl", label=label, package=package.name if package else "main",
            imports=_imports_text(label, _live_imports(cell_decls)), decls=body,
        )
        cell_vars = [n for d in cell_decls if d.kind == "var" for n in d.detail.names if n != "_"]
        if package and cell_vars:
            plan.files[f"{package.name}/vars.go"] = TEMPLATES.render(
                "cell_vars.go.tmpl", label=label, package=package.name,
                vars="".join(TEMPLATES.render("entry_cell_var.go.tmpl", name=_go_string(n), var=n) for n in cell_vars),
            )
    if packages:
        plan.files["cells.go"] = _cells_file(packages.values())


class _Glue:
    """The registrations glue.go and consts.go hand the bridge runtime, gathered declaration by declaration."""

    def __init__(self, decls: list[Declaration], packages: dict[str, CellPackage], statements: Statements | None,
                 slot_entries: bool):
        self.slot_entries = slot_entries
        self.owner = {name: package for package in packages.values() for name in package.names}
        self.spawns, self.statements_spawn = reaching(decls, "spawns", statements)
        self.waits, self.statements_wait = reaching(decls, "waits", statements)
        self.method_params: dict[str, dict[str, tuple[str, ...]]] = {}  # receiver type -> method -> parameter names
        for decl in decls:
            if decl.kind == "method" and "." in decl.name:
                receiver, method = decl.name.split(".", 1)
                self.method_params.setdefault(receiver, {})[method] = decl.detail.params
        self.funcs, self.types, self.vars, self.fast_exports = [], [], [], []
        self.consts: list[str] = []
        self.glue_packages: set[str] = set()
        self.var_index: dict[str, int] = {}  # cell package -> vars registered so far

    def qualified(self, name: str, used: set[str]) -> str:
        """How package main names a declaration (`pkg.Name` for a cell package's)."""
        if name in self.owner:
            used.add(self.owner[name].name)
            return f"{self.owner[name].name}.{name}"
        return name

    def add(self, plan: Plan, decl: Declaration, profile: bool, skip_consts: frozenset[str]) -> None:
        detail = decl.detail
        if detail.doc and decl.kind in ("func", "method", "type"):
            plan.docs[decl.name] = detail.doc
        if decl.kind == "func" and is_exported(decl.name) and not detail.generic:
            self._func(plan, decl, profile)
        for spec in detail.types:
            if is_exported(spec.name) and not spec.generic and not spec.constraint:
                self._type(spec.name)
        if decl.kind == "var":
            for name in detail.names:
                if name != "_":
                    plan.var_texts[name] = decl.source
                    plan.var_cells[name] = decl.cell_id
                    self._var(name)
        if decl.kind == "const":
            self.consts += [n for n in detail.names if is_exported(n) and n not in skip_consts]

    def _func(self, plan: Plan, decl: Declaration, profile: bool) -> None:
        fast = None
        fn = self.qualified(decl.name, self.glue_packages)
        if decl.detail.fast is not None and not profile and decl.name not in self.spawns:  # a supervised call takes the generic path
            slots = self.slot_entries and fastcall.takes(decl.detail.fast.ins)
            fast = FastEntry(len(self.fast_exports), decl.detail.fast, slots)
            self.fast_exports.append(_fast_export(fast, fn, decl.name in self.waits))
        plan.funcs.append(FuncEntry(decl.name, decl.detail.params, len(plan.funcs), decl.cell_id, fast))
        self.funcs.append(TEMPLATES.render(
            "entry_func.go.tmpl", name=_go_string(decl.name), params=_go_strings(decl.detail.params), fn=fn,
            spawns=_go_bool(decl.name in self.spawns), waits=_go_bool(decl.name in self.waits),
        ))

    def _type(self, name: str) -> None:
        methods = self.method_params.get(name, {})
        # Methods (promoted ones too) follow the type and its own methods.
        def of_type(names: set[str]) -> bool:
            return name in names or any(f"{name}.{m}" in names for m in methods)

        self.types.append(TEMPLATES.render(
            "entry_type.go.tmpl", name=_go_string(name), type=self.qualified(name, self.glue_packages),
            methods="".join(
                TEMPLATES.render("entry_method_params.go.tmpl", name=_go_string(m), params=_go_strings(p))
                for m, p in sorted(methods.items())
            ),
            spawns=_go_bool(of_type(self.spawns)), waits=_go_bool(of_type(self.waits)),
        ))

    def _var(self, name: str) -> None:
        """A variable's registration in glue.go; a cell package's come from its IpolyglotVars."""
        package = self.owner.get(name)
        if package is None:
            self.vars.append(TEMPLATES.render("entry_var.go.tmpl", name=_go_string(name), var=name))
            return
        self.glue_packages.add(package.name)
        index = self.var_index.get(package.name, 0)
        self.var_index[package.name] = index + 1
        self.vars.append(TEMPLATES.render("entry_package_var.go.tmpl", package=package.name, index=index))

    def add_statements(self, plan: Plan, statements: Statements) -> None:
        names = tuple(name for name, _ in statements.inputs)
        plan.statements = FuncEntry(STATEMENTS_NAME, names, len(plan.funcs))
        self.funcs.append(TEMPLATES.render(
            "entry_func.go.tmpl", name=_go_string(STATEMENTS_NAME), params=_go_strings(names), fn="ipolyglotStatements",
            spawns=_go_bool(self.statements_spawn), waits=_go_bool(self.statements_wait),
        ))
        plan.files["statements.go"] = TEMPLATES.render(
            "statements.go.tmpl",
            label=statements.cell_id,
            imports=_imports_text(statements.cell_id, statements.imports),
            params=", ".join(f"{name} {go_type}" for name, go_type in statements.inputs),
            uses="; ".join(f"_ = {name}" for name in names),
            body=f"{_directive(statements.cell_id, 2, 1)}\n{statements.body}",
            outputs=f"[]any{{{', '.join(statements.outputs)}}}" if statements.outputs else "nil",
        )

    def write(self, plan: Plan, profile: bool) -> None:
        const_packages: set[str] = set()
        consts = "".join(
            TEMPLATES.render("entry_const.go.tmpl", name=_go_string(n), value=self.qualified(n, const_packages))
            for n in self.consts
        )
        plan.files["consts.go"] = TEMPLATES.render("consts.go.tmpl", consts=consts, cell_imports="".join(
            TEMPLATES.render("entry_const_import.go.tmpl", package=name, path=f"{MODULE_PATH}/{name}")
            for name in sorted(const_packages)
        ))
        for number, line in enumerate(plan.files["consts.go"].splitlines(), 1):
            if line.startswith("\t{Name: "):
                plan.const_lines[number] = self.consts[len(plan.const_lines)]
        plan.files["glue.go"] = TEMPLATES.render(
            "glue.go.tmpl",
            funcs="".join(self.funcs),
            types="".join(self.types),
            vars="".join(self.vars),
            profile=_go_bool(profile),
            fast_exports="".join(self.fast_exports),
            cell_imports="".join(
                TEMPLATES.render("entry_glue_import.go.tmpl", package=name, path=f"{MODULE_PATH}/{name}")
                for name in sorted(self.glue_packages)
            ),
        )


def _cells_file(packages) -> str:
    """cells.go: every cell package imported (so its init runs) and the names other cells use aliased."""
    imports, aliases = [], []
    for package in sorted(packages, key=lambda p: p.name):
        imports.append(TEMPLATES.render("entry_cells_init.go.tmpl", path=package.path))
        if package.aliases:
            imports.append(TEMPLATES.render("entry_glue_import.go.tmpl", package=package.name, path=package.path))
        aliases += [TEMPLATES.render("entry_alias.go.tmpl", kind=kind, name=name, package=package.name)
                    for kind, name in package.aliases]
    return TEMPLATES.render("cells.go.tmpl", imports="".join(imports), aliases="".join(aliases))


def _fast_export(entry: FastEntry, name: str, waits: bool) -> str:
    """A scalar-only function's direct entry point: `ipg_slots_N` with one uint64 slot
    per value (the compiled caller of templates/fastcall.c calls it), or `ipg_fast_N`
    with C-typed parameters (cffi calls it)."""
    # A function that may wait for a goroutine is supervised while cells' goroutines run:
    # the fast entry then runs nothing and asks for the generic one (runtime/ipgrt/supervise.go).
    retry = "if ipolyglotrt.Retry() {\n\t\treturn\n\t}\n\t" if waits else ""
    return _slot_export(entry, name, retry) if entry.slots else _typed_export(entry, name, retry)


def _typed_export(entry: FastEntry, name: str, retry: str) -> str:
    sig = entry.signature
    params = ", ".join(f"a{i} {CGO_TYPES[t]}" for i, t in enumerate(sig.ins))
    args = ", ".join(f"{t}(a{i})" for i, t in enumerate(sig.ins))
    call = f"{name}({args})"
    if sig.out:
        result = f"(ipgResult {CGO_TYPES[sig.out]})"  # named: Retry's bare return gives the zero value
        body = f"return {CGO_TYPES[sig.out]}({call})"
    else:
        result = ""
        body = call
    return TEMPLATES.render("fast_export.go.tmpl", index=entry.index, params=params, result=result, body=body, retry=retry)


def _slot_export(entry: FastEntry, name: str, retry: str) -> str:
    sig = entry.signature
    call = f"{name}({', '.join(_from_slot(t, f'ipgSlots[{i}]') for i, t in enumerate(sig.ins))})"
    slots = f"ipgSlots := ipolyglotrt.Slots(ipolyglotunsafe.Pointer(ipgArgs), {len(sig.ins)})\n\t" if sig.ins else ""
    body = f"return C.uint64_t({_to_slot(sig.out, call)})" if sig.out else f"{call}\n\treturn 0"
    return TEMPLATES.render("slot_export.go.tmpl", index=entry.index, slots=slots, body=body, retry=retry)


_SIGNED = frozenset({"int", "int8", "int16", "int32", "int64", "rune"})

# How a scalar of each kind sits in a uint64 slot (runtime/ipgrt/slots.go), both ways:
# kind -> (the Go value a slot holds, the slot holding a Go value).
_SLOT_CONVERSIONS = {
    "bool": ("ipolyglotrt.SlotBool({slot})", "ipolyglotrt.BoolSlot({value})"),
    "float": ("{go_type}(ipolyglotrt.SlotFloat({slot}))", "ipolyglotrt.FloatSlot(float64({value}))"),
    "signed": ("{go_type}(int64({slot}))", "uint64(int64({value}))"),
    "unsigned": ("{go_type}({slot})", "uint64({value})"),
}


def _slot_kind(go_type: str) -> str:
    if go_type == "bool":
        return "bool"
    if go_type in ("float64", "float32"):
        return "float"
    return "signed" if go_type in _SIGNED else "unsigned"


def _from_slot(go_type: str, slot: str) -> str:
    """The Go value of `go_type` a uint64 slot holds."""
    return _SLOT_CONVERSIONS[_slot_kind(go_type)][0].format(go_type=go_type, slot=slot)


def _to_slot(go_type: str, value: str) -> str:
    """The uint64 slot holding a Go value of `go_type`."""
    return _SLOT_CONVERSIONS[_slot_kind(go_type)][1].format(go_type=go_type, value=value)


_CONST_ERROR = re.compile(r"(?:^|/)consts\.go:(\d+):(?:\d+:)? (.*)$", re.M)


def failed_consts(go_output: str, plan: Plan) -> dict[str, str]:
    """Constants whose registration in consts.go did not compile (name -> Go's reason)."""
    return {plan.const_lines[int(m[1])]: m[2] for m in _CONST_ERROR.finditer(go_output) if int(m[1]) in plan.const_lines}

"""The `%%go` backend: a cell plus the session's declarations -> one Go library.

Every build is one c-shared library holding all live declarations of the
session (so a redefinition is seen everywhere), loaded with cffi; its exported
functions and struct types are bound as Python objects. A library's Go runtime
can never be unloaded, so old libraries stay loaded and are counted.

The steps below are called in order by kernel/core/pipeline.py; none but
`commit` changes the session.
"""

from __future__ import annotations

import argparse
import json
import keyword
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.backend import Backend, BuildUnit, Built, Candidate, CellContext, Declaration
from ipolyglot.kernel.core.cells import Cell
from ipolyglot.kernel.core.diagnostics import CompileError, Diagnostic
from ipolyglot.kernel.core.travel import LOADED_BUILDS, traveling

from . import codegen, fastcall, inspector, library, marshal, pprof_view, travel
from .build import LIBRARY_NAME, GoFlags, diagnostics, go_build, key_parts
from .description import GoStructType
from .govars import GoVars
from .infer import InferenceError, go_type_of
from .marshal import GoStruct
from .reading import declaration, reserved_name_diagnostics, syntax_diagnostics
from .toolchain import GoTool

RUNTIME_WARNING_THRESHOLD = 32
VARS_NAME = "govars"  # the Python name of the live view of exported Go variables (govars.py)
_RESERVED = {"_fast", "_slow", "_pending", "_check", "_call", "_MISSING", "_extra", "result", "list"}


@dataclass
class GoCandidate(Candidate):
    """The Go session as it would be after a cell: its module requirements and build flags too."""

    requires: dict[str, str] = field(default_factory=dict)
    go_sum: str = ""  # checksums of the modules the session's builds fetched
    flags: GoFlags = GoFlags()
    new: list[Declaration] = field(default_factory=list)  # the cell's own declarations (warnings name only these)


@dataclass
class GoUnit(BuildUnit):
    """A generated package: its plan (files, functions, constants' lines) and how it is built."""

    plan: codegen.Plan | None = None
    flags: GoFlags = GoFlags()
    cell_id: str = ""  # the cell run ("" for a removal): its lines are named without a label


class GoBackend(Backend):
    language = "go"
    display_name = "Go"
    find_toolchain = staticmethod(toolchains.find_go)

    def __init__(self, tool: Callable[..., GoTool] = GoTool) -> None:
        super().__init__()
        self._tool = tool  # makes the GoTool of a cell (tests of compose pass one that runs nothing)
        self.session = library.GoSession()
        self._libraries: dict[str, library.GoLibrary] = {}
        self._classes: dict[tuple, type] = {}
        self._requires: dict[str, str] = {}
        self._go_sum: str = ""
        self._flags = GoFlags()  # the last cell's: a removal builds with them
        self._current: library.GoLibrary | None = None  # the library the namespace's names come from
        self._current_vars: dict[str, str] = {}  # var -> declaration text, in the current library
        self._unreadable_consts: set[tuple[str, str]] = set()  # (name, declaration text) Python cannot read
        self.vars = GoVars(lambda: self._current)
        self.runtime_warning_threshold = RUNTIME_WARNING_THRESHOLD

    # -- options ----------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--gcflags", default="", metavar="FLAGS", help="passed to go build -gcflags")
        parser.add_argument("--ldflags", default="", metavar="FLAGS", help="passed to go build -ldflags")
        parser.add_argument("--tags", default="", metavar="TAGS", help="build tags, comma-separated")
        parser.add_argument("--race", action="store_true", help="build with the race detector")
        parser.add_argument(
            "--require", action="append", default=[], metavar="MODULE@VERSION",
            help="add a module requirement to the session's go.mod",
        )

    # -- parse --------------------------------------------------------------------------
    def input_type(self, name: str, value: Any) -> str:
        known = {spec.name for d in self.declarations for spec in d.detail.types}
        try:
            return go_type_of(value, known)
        except InferenceError as exc:
            raise ValueError(str(exc)) from None

    def parse(self, cell: Cell, options: argparse.Namespace, inputs: dict[str, Any], ctx: CellContext):
        """The cell read by Go's parser: its declarations, or its statements (a codegen.Statements)."""
        found = inspector.inspect(cell.text, ctx.cache, self._tool(ctx.cache, ctx.toolchain))
        if found.mode == "error":
            raise CompileError("Go", syntax_diagnostics(found, cell.text))
        if found.mode == "stmts":
            return codegen.Statements(
                cell.id, found.body.text, found.imports, tuple(inputs.items()), tuple(options.output),
                found.body.refs, found.body.spawns, found.body.waits,
            )
        if options.input or options.output:
            raise CompileError("Go", [Diagnostic("-i/-o apply to a cell of statements; this cell holds declarations")])
        reserved = reserved_name_diagnostics(found.decls, cell.text)
        if reserved:
            raise CompileError("Go", reserved)
        return found

    def candidate(self, parsed, cell: Cell, options: argparse.Namespace, ctx: CellContext) -> GoCandidate:
        requires = dict(self._requires)
        for item in options.require:
            module, sep, version = item.partition("@")
            if not sep or not module or not version:
                raise CompileError("Go", [Diagnostic(f"--require expects MODULE@VERSION, got {item!r}")])
            requires[module] = version
        flags = GoFlags(options.gcflags, options.ldflags, options.tags, options.race)
        if isinstance(parsed, codegen.Statements):
            return GoCandidate(cell, self.declarations, parsed, [t for _, t in parsed.inputs], list(parsed.outputs),
                               requires=requires, go_sum=self._go_sum, flags=flags)
        new = [declaration(detail, index, cell) for index, detail in enumerate(parsed.decls)]
        declarations = self.declarations.with_cell(new)
        new_names = {n for d in new for n in d.detail.names}
        new_keys = {d.name for d in new}
        regrouped = {  # part of a group (var (...)) that the new cell redefines
            old.name for old in self.declarations if old.name not in new_keys and new_names & set(old.detail.names)
        }
        return GoCandidate(cell, declarations.without(regrouped), requires=requires, go_sum=self._go_sum,
                           flags=flags, new=new)

    # -- compose ------------------------------------------------------------------------
    def compose(self, candidate: GoCandidate, dropped: Mapping[str, str], ctx: CellContext) -> GoUnit:
        """The generated package; constants Python cannot read are left out of consts.go:
        `dropped` (this build's, said again on every load) and those an earlier build of
        this session found (said then, when their cell ran; left out silently since)."""
        go = self._tool(ctx.cache, ctx.toolchain)
        major, minor = go.version()
        # Through the cache like any artifact: published atomically with private modes,
        # and checked (every file of it) each time a build is about to compile it in.
        runtime_dir, _ = ctx.cache.get_or_build({"kind": "go-runtime", "runtime": codegen.RUNTIME_HASH}, codegen.write_runtime, lambda d: d)
        decls = list(candidate.declarations)
        plan = codegen.generate(
            decls, runtime_dir=runtime_dir, go_version=f"{major}.{minor}", requires=candidate.requires,
            profile=ctx.profile, statements=candidate.statements, go_sum=candidate.go_sum,
            skip_consts=frozenset(dropped) | self._known_unreadable(decls),
            slot_entries=fastcall.available(),
        )
        parts = key_parts(go, plan.files, candidate.flags.arguments())
        current = candidate.cell.id if candidate.cell else ""
        return GoUnit(f"Go cell {ctx.cell_label}", parts, dict(dropped), plan, candidate.flags, current)

    def _known_unreadable(self, decls: list[Declaration]) -> frozenset[str]:
        """Constants an earlier build of this session found unreadable, by the same text
        (so a later cell neither pays that failed build again nor repeats the warning)."""
        return frozenset(n for d in decls if d.kind == "const" for n in d.detail.names if (n, d.source) in self._unreadable_consts)

    # -- build --------------------------------------------------------------------------
    def build(self, unit: GoUnit, directory: Path, ctx: CellContext) -> None:
        go = self._tool(ctx.cache, ctx.toolchain)
        run = go_build(go, unit.plan.files, unit.flags.arguments(), directory)
        ctx.verbose(f"go command: {shlex.join(run.command)}")
        ctx.verbose(f"go build took {run.seconds:.2f} s")
        ctx.verbose(f"go compiled: {', '.join(run.compiled) or 'nothing (every package from Go build cache)'}")
        if run.returncode != 0:
            raise CompileError("Go", diagnostics(run.stderr, ctx.cells, unit.cell_id), run.stderr)
        if unit.flags.race:
            _probe_race_library(directory / LIBRARY_NAME)
        (directory / "build.json").write_text(json.dumps({"command": run.command, "seconds": run.seconds}))

    def cannot_cross(self, error: Exception, unit: GoUnit) -> dict[str, str]:
        """An untyped constant whose value does not fit its default Go type (`const Big = 1 << 100`)
        cannot be handed to Python: a build failing only there is repeated without it."""
        failed = codegen.failed_consts(getattr(error, "raw_output", ""), unit.plan)
        return {name: f"Go constant {name} is not readable from Python: {reason}" for name, reason in sorted(failed.items())}

    # -- load and bind -------------------------------------------------------------------
    def load(self, directory: Path, unit: GoUnit, ctx: CellContext) -> library.GoLibrary:
        path = directory / LIBRARY_NAME
        if unit.flags.race and str(path) not in self._libraries:
            _probe_race_library(path)  # also for a library cached earlier
        if str(path) not in self._libraries:
            self._libraries[str(path)] = library.GoLibrary(path, self.session, ctx.cells, fastcall.load(ctx.cache))
            if len(self._libraries) > self.runtime_warning_threshold:
                ctx.warn(self._runtime_warning(len(self._libraries)))
        return self._libraries[str(path)]

    def bind(self, built: Built, candidate: GoCandidate, ctx: CellContext) -> dict[str, Any]:
        lib, unit = built.loaded, built.unit
        if built.report.cache_hit:
            ctx.verbose("cache hit: no go command was run")
        ctx.verbose(f"generated code: {built.report.path / 'src'}")
        lib.travel_build = travel.library_reference(built.report.key, unit.plan, unit.flags.arguments())  # how other processes load it
        for module, version in sorted(self._fetched(built, candidate).items()):
            ctx.warn(f"fetched Go module {module}@{version}; this session keeps that version "
                     f"(choose another with %%go --require {module}@VERSION)")
        self._carry_vars(lib, unit, ctx)
        lib.share_cell_labels()
        new_names = {n for d in candidate.new for n in d.detail.names}
        names = self.names_of(lib, unit.plan, ctx.warn, new_names, unit.cell_id)
        for decl in candidate.new:
            if decl.kind == "func" and decl.detail.generic and codegen.is_exported(decl.name):
                ctx.warn(f"Go function {decl.name} is generic: only instantiated functions can be called from Python")
        return names

    def run_statements(self, built: Built, candidate: GoCandidate, inputs: list[Any]) -> list[Any]:
        lib = built.loaded
        outputs = lib.call(lib.by_id[built.unit.plan.statements.id], tuple(inputs), profile=lib.profiled)
        return list(outputs or [])

    def commit(self, candidate: GoCandidate, built: Built | None) -> None:
        self.declarations = candidate.declarations
        if built is None:  # nothing left to build: every declaration is gone
            self._current_vars = {}
            return
        self._requires = {**candidate.requires, **self._fetched(built, candidate)}
        self._go_sum = _read(built.report.path / "src" / "go.sum") or candidate.go_sum
        self._flags = candidate.flags
        self._current = built.loaded
        self._current_vars = dict(built.unit.plan.var_texts)
        self.session.classes = built.loaded.classes
        decls = list(candidate.declarations)
        texts = {n: d.source for d in decls if d.kind == "const" for n in d.detail.names}
        self._unreadable_consts |= {(n, texts[n]) for n in built.unit.dropped if n in texts}

    def _fetched(self, built: Built, candidate: GoCandidate) -> dict[str, str]:
        """The modules `go build` fetched for an import, to keep in the session's go.mod.

        Without this every later build resolves them again, and every later
        build error starts with `go: finding module for package ...`. The cell
        that caused the fetch says once which module and version it got.
        """
        go_mod = _read(built.report.path / "src" / "go.mod")
        built_requires = codegen.module_requirements(go_mod) if go_mod else {}
        return {m: v for m, v in built_requires.items() if m not in candidate.requires and not m.startswith("ipolyglot.local/")}

    def _carry_vars(self, lib: library.GoLibrary, unit: GoUnit, ctx: CellContext) -> None:
        """Copy package-level variables from the current runtime into a newly loaded one.

        A variable keeps its value across rebuilds when its declaration text (and
        -ldflags, which may set it) is unchanged, as a Python global survives a new
        `def`; a changed declaration starts from its new initializer. Values copy
        as encoded bytes (getter result in, setter call) without becoming Python objects.
        A value that cannot be copied (a sync.Mutex, a channel, an interface, ...)
        starts from its initializer too; a warning says so only when that loses
        something, i.e. when the old value differs from the one its runtime started
        with (so an untouched mutex is never mentioned, and a counter is each time
        it was changed since the last build).
        """
        old = self._current
        if old is None or old is lib or unit.flags.ldflags != self._flags.ldflags:
            return
        for name, text in unit.plan.var_texts.items():
            new_var, old_var = lib.vars.get(name), old.vars.get(name)
            if not new_var or not old_var or self._current_vars.get(name) != text:
                continue
            if not new_var.carried:
                # Said when the reset loses something: the value differs from the one the old runtime started with.
                if old.var_changed(old_var):
                    where = lib.cells.label(unit.plan.var_cells.get(name, ""))
                    ctx.warn(f"{where} var {name} ({new_var.type.go}) was reset by this rebuild: {new_var.reset or 'its value cannot cross'}")
                continue
            got = old.raw_call(old_var.get, bytes(8))
            if got[:1] != bytes([marshal.STATUS_OK]):
                continue
            done = lib.raw_call(new_var.set, got[1:])
            if done[:1] != bytes([marshal.STATUS_OK]):
                ctx.verbose(f"Go var {name} starts from its initializer: its old value does not fit its type now")

    def package_values(self) -> dict[str, tuple[str, bytes]]:
        """The current runtime's package variables that can be copied: name -> (declaration text,
        encoded value). A fresh process that loads the same build (a replaced worker) restores
        them with `restore_package_values`, as a rebuild carries them (`_carry_vars`)."""
        lib = self._current
        values: dict[str, tuple[str, bytes]] = {}
        for name, text in (self._current_vars.items() if lib is not None else ()):
            var = lib.vars.get(name)
            if var is None or not var.carried:
                continue
            got = lib.raw_call(var.get, bytes(8))
            if got[:1] == bytes([marshal.STATUS_OK]):
                values[name] = (text, bytes(got[1:]))
        return values

    def restore_package_values(self, values: dict[str, tuple[str, bytes]]) -> list[str]:
        """Set the variables whose declaration is still the one `values` were read under; the names set."""
        lib = self._current
        restored = []
        for name, (text, encoded) in (values.items() if lib is not None else ()):
            var = lib.vars.get(name)
            if var is None or not var.carried or self._current_vars.get(name) != text:
                continue
            if lib.raw_call(var.set, encoded)[:1] == bytes([marshal.STATUS_OK]):
                restored.append(name)
        return restored

    def names_of(
        self, lib: library.GoLibrary, plan: codegen.Plan, warn: Callable[[str], None], new_names: set[str] = frozenset(),
        cell_id: str = "",
    ) -> dict[str, Any]:
        """Every Python name a loaded library offers: struct classes (with their methods),
        constants, functions and `govars`; what cannot cross is said only for the cell run."""
        bind: dict[str, Any] = {}
        build = getattr(lib, "travel_build", None)
        for struct in lib.description.structs:
            cls = bind[struct.name] = self._struct_class(struct, lib, plan.docs.get(struct.name))
            cls._go_build_ = build
            self._attach_methods(cls, struct.name, lib, warn, new_names, plan.docs)
        for const in lib.description.consts:
            if const.problem:
                if const.name in new_names:
                    warn(f"Go constant {const.name} is not readable from Python: its type {const.problem} cannot cross")
                continue
            bind[const.name] = marshal.decode_value(const.value, 0, lib.classes)[0]
        if any(codegen.is_exported(name) for name in lib.vars):
            bind[VARS_NAME] = self.vars
        for entry in plan.funcs:
            func = lib.by_id[entry.id]
            if func.problem:
                if entry.cell_id == cell_id:
                    warn(
                        f"Go function {entry.name} is not callable from Python: its signature uses "
                        f"{func.problem}, which cannot cross between Go and Python"
                    )
                continue
            bind[entry.name] = traveling(lib.make_function(
                func, entry.fast, _python_params(entry.params), doc=plan.docs.get(entry.name)
            ), build, entry.name)
        if build is not None:
            LOADED_BUILDS.remember(build, dict(bind))
        return bind

    def _attach_methods(
        self, cls: type, type_name: str, lib: library.GoLibrary, warn: Callable[[str], None], new_names: set, docs: dict[str, str]
    ) -> None:
        """Make the exported methods of a struct type (from any cell) methods of its class."""
        attached = set()
        for func in lib.methods_of(type_name):
            if func.problem:
                if func.name in new_names or type_name in new_names:
                    warn(
                        f"Go method {func.name} is not callable from Python: its signature uses "
                        f"{func.problem}, which cannot cross between Go and Python"
                    )
                continue
            params = _python_params(func.params[1:], reserved={"self"})
            setattr(cls, func.method, lib.make_function(func, None, params, method=True, doc=docs.get(func.name)))
            attached.add(func.method)
        for method in getattr(cls, "_go_methods_", set()) - attached:
            if method in cls.__dict__:
                delattr(cls, method)
        cls._go_methods_ = attached

    def _struct_class(self, struct: GoStructType, lib: library.GoLibrary, comment: str | None = None) -> type:
        """The Python class of a Go struct; its docstring is the comment above the type, then its fields."""
        fields = tuple(name for name, _ in struct.fields)
        types = tuple(go_type.go for _, go_type in struct.fields)
        key = (struct.name, fields, types)
        cls = self._classes.get(key)
        if cls is None:
            cls = type(struct.name, (GoStruct,), {
                "_go_name_": struct.name, "_go_fields_": fields, "_go_types_": types, "__module__": "__main__",
            })
            self._classes[key] = cls
        fields_doc = f"Go struct {struct.name} {{ " + "; ".join(f"{n} {t}" for n, t in zip(fields, types)) + " } (a copy)"
        cls.__doc__ = f"{comment.strip()}\n\n{fields_doc}" if comment and comment.strip() else fields_doc
        cls._go_zero_ = struct.zero
        cls._go_classes_ = lib.classes
        lib.classes[struct.name] = cls
        return cls

    # -- the session ---------------------------------------------------------------------
    def removal(self, name: str) -> GoCandidate:
        """The session without a declaration (a type with its methods), unless others still use it.

        Removing a name that other declarations use would break every later
        build (`undefined: Node` in an unrelated cell), so the removal is
        refused and the users are named, as `%polyglot cpp rm` refuses a
        removal that does not build; the user decides what goes.
        """
        target = self.declarations.get(name)
        if target is None:
            raise KeyError(f"no declaration named {name!r} in this session")
        names = set(target.detail.names or [name])
        going = {target.name} | {
            d.name for d in self.declarations if target.kind == "type" and d.kind == "method" and d.name.split(".")[0] in names
        }
        users = [d for d in self.declarations if d.name not in going and names & d.detail.refs]
        if users:
            listed = ", ".join(f"{d.name} ({self.session_label(d)})" for d in users)
            raise ValueError(f"cannot remove {name}: still used by {listed}; remove or redefine those first")
        return GoCandidate(None, self.declarations.without(going), requires=dict(self._requires),
                           go_sum=self._go_sum, flags=self._flags)

    def session_label(self, decl: Declaration) -> str:
        """The cell a declaration came from, as the notebook labels it now."""
        return self._current.cells.label(decl.cell_id, decl.cell) if self._current else decl.cell

    def info(self) -> dict[str, str]:
        count = len(self._libraries)
        text = f"{count}"
        if count > self.runtime_warning_threshold:
            text += " (" + self._runtime_warning(count).split(": ", 1)[1] + ")"
        rows = {"Go runtimes loaded": text}
        if self._current is not None:
            rows["Go runtime (current)"] = _describe_stats(self._current.runtime_stats())
        if count > 1:
            totals: dict[str, int] = {}
            for lib in self._libraries.values():
                for key, value in lib.runtime_stats().items():
                    totals[key] = totals.get(key, 0) + value
            rows["Go runtimes (all)"] = _describe_stats(totals)
        return rows

    @staticmethod
    def _runtime_warning(count: int) -> str:
        return (
            f"{count} Go runtimes are loaded in this kernel: every rebuilt Go library brings its own "
            "(about 2 MB of memory and 5 threads each) and Go cannot unload one; restart the kernel to free them"
        )

    def line_magics(self) -> dict[str, Callable]:
        return {"go_pprof": self.pprof}

    def pprof(self, magics, line: str, cell: str | None) -> list[dict]:
        """`%go_pprof`: run Python code with runtime/pprof on; display bundles of the result.

        Raises LookupError (pprof_view.PprofUsageError) for a bad line or when no
        Go code is loaded. The worker's Go runtime is profiled where the namespace's Go
        functions run there (pprof_view.profiled_place).
        """
        request = pprof_view.parse(line, cell)
        worker = magics.worker if magics.worker_started else None
        place = pprof_view.profiled_place(magics.shell.user_ns, worker, magics.mode)
        if place.worker:
            runtime = pprof_view.WorkerRuntime.serving(magics.shell.user_ns, worker)
            return pprof_view.profile(request, runtime, magics.shell.ex, magics.worker.cells, runtime.others, place.left_out)
        lib, others = pprof_view.serving_library(magics.shell.user_ns, self._current)
        return pprof_view.profile(request, lib, magics.shell.ex, magics.cells, others, place.left_out)


def _probe_race_library(path: Path) -> None:
    """Load a race-detector build in a child process first.

    ThreadSanitizer maps its shadow memory at fixed addresses when the library
    loads; where the process's existing mappings are in the way (numpy's alone
    can be), it ends the process, which here would be the kernel. The child
    first imports the native extension modules this process has loaded, to
    resemble it; a failure becomes a build error instead of a dead kernel.
    """
    loaded = sorted({
        name.split(".")[0] for name, module in list(sys.modules.items())
        if str(getattr(module, "__file__", "") or "").endswith(".so")
    })
    probe = (
        "import ctypes, importlib, sys\n"
        "for name in sys.argv[2:]:\n"
        "    try: importlib.import_module(name)\n"
        "    except Exception: pass\n"
        "ctypes.CDLL(sys.argv[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(path), *loaded], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        detail = next((line.strip() for line in done.stderr.splitlines() if "ThreadSanitizer" in line), done.stderr.strip()[-300:])
        raise CompileError("Go", [Diagnostic(
            "the race detector cannot start inside this Python process, so a --race build cannot be loaded "
            f"here (build without --race, or run the code with `go test -race`): {detail}"
        )])


def _describe_stats(stats: dict) -> str:
    return (
        f"{stats['goroutines']} goroutines, heap in use {stats['heap_inuse'] / 2**20:.1f} MiB, "
        f"{stats['gc_cycles']} GC cycles"
    )


def _python_params(params: list[str], reserved: set[str] = frozenset()) -> list[str]:
    out: list[str] = []
    for index, name in enumerate(params):
        if (not name or name == "_" or keyword.iskeyword(name) or not name.isidentifier() or name in _RESERVED
                or name in reserved or name in out):
            name = f"arg{index}"
        out.append(name)
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""

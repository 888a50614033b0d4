"""The `%%go` backend: a cell plus the session's declarations -> one Go library.

Every build is one c-shared library holding all live declarations of the
session (so a redefinition is seen everywhere), loaded with cffi; its exported
functions and struct types are bound as Python objects. A library's Go runtime
can never be unloaded, so old libraries stay loaded and are counted.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import keyword
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ipolyglot.kernel.core.backend import Backend, CellContext, CellResult, Declaration
from ipolyglot.kernel.core.diagnostics import CompileError, Diagnostic

from ipolyglot.kernel.core.travel import LOADED_BUILDS, traveling

from . import codegen, inspector, library, marshal, pprof_view, travel
from .infer import InferenceError, go_type_of
from .marshal import GoStruct
from .toolchain import GoTool

LIBRARY_NAME = "libgocell.so"
RUNTIME_WARNING_THRESHOLD = 32
_DIAGNOSTIC = re.compile(r"^(?P<file>[^\s#][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<msg>.*)$")
_MISSING_MODULE = re.compile(
    r"(no required module provides package|cannot find module providing package|module lookup disabled|"
    r"dial tcp|no such host|connection refused|GOPROXY|unrecognized import path|missing go.sum entry|"
    r"reading https?://\S+: \d{3} )"
)
VARS_NAME = "govars"  # the Python name of the live view of exported Go variables
_MODULE_PROGRESS = re.compile(r"^go: (finding module for package|downloading|found|added|upgraded) ")
_GENERATED_FILE = re.compile(r"\S*\b(glue|consts|statements)\.go:\d+(:\d+)?")
# A cell's top-level names the generated package uses itself.
RESERVED_PREFIXES = ("ipolyglot", "ipg_", "ipgcell")
_PACKAGE_PATH = re.compile(r"^[\w.\-]+(/[\w.\-]+)*$")  # a line of `go build -v`
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
_RESERVED = {"_fast", "_slow", "_pending", "_check", "_call", "_MISSING", "result", "list"}


class GoBackend(Backend):
    language = "go"
    display_name = "Go"

    def __init__(self) -> None:
        super().__init__()
        self._libraries: dict[str, library.GoLibrary] = {}
        self._bound: set[str] = set()
        self._classes: dict[tuple, type] = {}
        self._requires: dict[str, str] = {}
        self._go_sum: str = ""  # checksums of the modules the session's builds fetched
        self._cell_sources: dict[str, str] = {}  # cell id -> text
        self._cell_labels: dict[str, str] = {}  # cell id -> its latest label, e.g. "In [3]"
        self._current: library.GoLibrary | None = None  # the library the namespace's names come from
        self._current_vars: dict[str, str] = {}  # var -> declaration text, in the current library
        self._current_ldflags: str = ""
        self._unreadable_consts: set[tuple[str, str]] = set()  # (name, declaration text)
        self.vars = GoVars(self)
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

    # -- the cell ---------------------------------------------------------------------
    def run_cell(self, source: str, options: argparse.Namespace, ctx: CellContext) -> CellResult:
        go = GoTool(ctx.cache, ctx.toolchain)
        label = ctx.cell_label.replace(":", "")
        requires = dict(self._requires)
        for item in options.require:
            module, sep, version = item.partition("@")
            if not sep or not module or not version:
                raise CompileError("Go", [Diagnostic(f"--require expects MODULE@VERSION, got {item!r}")])
            requires[module] = version
        info = inspector.inspect(source, ctx.cache, go)
        if info["mode"] == "error":
            clause = next((e for e in info["errors"] if _PACKAGE_CLAUSE_ERROR.match(e["msg"])), None)
            if clause is not None:  # what follows it is misread: the clause is the one thing to say
                diagnostic = self._syntax_diagnostic({**clause, "msg": PACKAGE_CLAUSE}, source)
                diagnostic.column = None
                raise CompileError("Go", [diagnostic])
            raise CompileError("Go", [self._syntax_diagnostic(e, source) for e in info["errors"]])
        cell_id = cell_identifier(source)
        self._cell_sources[cell_id] = source
        self._cell_labels[cell_id] = label
        if info["mode"] == "decls":
            if options.input or options.output:
                raise CompileError("Go", [Diagnostic("-i/-o apply to a cell of statements; this cell holds declarations")])
            reserved = reserved_name_diagnostics(info["decls"], source)
            if reserved:
                raise CompileError("Go", reserved)
            candidate, new_decls = self._candidate(info, label, cell_id)
            plan, lib, report = self._generate_and_build(list(candidate), go, requires, options, ctx, cell_id)
            requires = self._pin_fetched_modules(report, requires, ctx)
            self._carry_vars(lib, plan, options, ctx)
            result = self._bind(lib, plan, ctx, cell_id, new_decls)
            self._current_ldflags = options.ldflags
            self.declarations.replace_with(candidate)
            self._requires = requires
            result.report = report
            return result
        statements = self._statements(info, cell_id, options, ctx)
        plan, lib, report = self._generate_and_build(list(self.declarations), go, requires, options, ctx, cell_id, statements)
        requires = self._pin_fetched_modules(report, requires, ctx)
        self._carry_vars(lib, plan, options, ctx)
        result = self._bind(lib, plan, ctx, cell_id, [])
        self._current_ldflags = options.ldflags
        self._requires = requires
        result.report = report
        func = lib.functions[codegen.STATEMENTS_NAME]
        inputs = tuple(ctx.user_ns[name] for name in options.input)
        outputs = lib.call(func, inputs, profile=lib.profiled)
        if options.output:
            result.bind.update(zip(options.output, outputs))
        return result

    def _syntax_diagnostic(self, error: dict, source: str) -> Diagnostic:
        lines = source.splitlines() or [""]
        line = min(max(error["line"], 1), len(lines))
        col = error["col"] if error["line"] == line else None
        return Diagnostic(error["msg"], line + 1, col, lines[line - 1])

    def _candidate(self, info: dict, label: str, cell_id: str):
        new_decls = []
        for index, d in enumerate(info["decls"]):
            name = d["names"][0] if d["names"] else "_"
            if name in ("_", "init"):
                name = f"{name} ({cell_id} #{index + 1})"  # replaced only by a re-run of its cell
            extra = {**d, "imports": info["imports"], "cell_count": len(info["decls"]), "cell_id": cell_id}
            new_decls.append(Declaration(name, d["kind"], d["text"], label, d["line"] + 1, extra))
        candidate = self.declarations.with_cell(new_decls)
        new_names = {n for d in new_decls for n in d.extra["names"]}
        new_keys = {d.name for d in new_decls}
        for old in self.declarations:
            if old.name not in new_keys and new_names & set(old.extra.get("names", [])):
                candidate.remove(old.name)  # part of a group (var (...)) that a new cell redefines
        return candidate, new_decls

    def _statements(self, info: dict, cell_id: str, options, ctx: CellContext) -> codegen.Statements:
        known = {spec["name"] for d in self.declarations for spec in d.extra.get("types") or []}
        inputs = []
        for name in options.input:
            if name not in ctx.user_ns:
                raise CompileError("Go", [Diagnostic(f"-i {name}: there is no Python variable named {name!r}")])
            try:
                inputs.append((name, go_type_of(ctx.user_ns[name], known)))
            except InferenceError as exc:
                raise CompileError("Go", [Diagnostic(f"-i {name}: {exc}")]) from None
        return codegen.Statements(
            cell_id, info["body"]["text"], info["imports"], inputs, list(options.output), info["body"].get("refs") or [],
            bool(info["body"].get("spawns")), bool(info["body"].get("waits")),
        )

    def _generate(self, decls, go: GoTool, requires, profile: bool, statements=None) -> codegen.Plan:
        major, minor = go.version()
        # Through the cache like any artifact: published atomically with private modes,
        # and checked (every file of it) each time a build is about to compile it in.
        self._runtime_dir, _ = go.cache.get_or_build({"kind": "go-runtime", "runtime": codegen.RUNTIME_HASH}, codegen.write_runtime, lambda d: d)
        texts = {n: d.source for d in decls if d.kind == "const" for n in d.extra.get("names") or []}
        skip = frozenset(n for n, text in texts.items() if (n, text) in self._unreadable_consts)
        return codegen.generate(
            decls, runtime_dir=self._runtime_dir, go_version=f"{major}.{minor}",
            requires=requires, profile=profile, statements=statements, skip_consts=skip, go_sum=self._go_sum,
        )

    def _generate_and_build(self, decls, go: GoTool, requires, options, ctx: CellContext, cell_id: str, statements=None):
        """Generate and build; an untyped constant whose value does not fit its default
        Go type (`const Big = 1 << 100`) cannot be handed to Python, so a build failing
        only there is repeated without those constants, with a warning."""
        plan = self._generate(decls, go, requires, ctx.profile, statements)
        try:
            lib, report = self._build(plan, options, ctx, go, cell_id)
        except CompileError as exc:
            failed = codegen.failed_consts(exc.raw_output, plan)
            if not failed:
                raise
            texts = {n: d.source for d in decls if d.kind == "const" for n in d.extra.get("names") or []}
            self._unreadable_consts |= {(name, texts[name]) for name in failed}
            for name, reason in sorted(failed.items()):
                ctx.warn(f"Go constant {name} is not readable from Python: {reason}")
            plan = self._generate(decls, go, requires, ctx.profile, statements)
            lib, report = self._build(plan, options, ctx, go, cell_id)
        return plan, lib, report

    def _pin_fetched_modules(self, report, requires: dict[str, str], ctx: CellContext) -> dict[str, str]:
        """Keep the modules `go build` fetched for an import in the session's go.mod.

        Without this every later build resolves them again, and every later
        build error starts with `go: finding module for package ...`. The cell
        that caused the fetch says once which module and version it got.
        """
        src = report.path / "src"
        try:
            built = codegen.module_requirements((src / "go.mod").read_text())
            go_sum = (src / "go.sum").read_text() if (src / "go.sum").exists() else self._go_sum
        except OSError:
            return requires
        fetched = {m: v for m, v in built.items() if m not in requires and not m.startswith("ipolyglot.local/")}
        for module, version in sorted(fetched.items()):
            ctx.warn(f"fetched Go module {module}@{version}; this session keeps that version "
                     f"(choose another with %%go --require {module}@VERSION)")
        self._go_sum = go_sum
        return {**requires, **fetched}

    def _carry_vars(self, lib: library.GoLibrary, plan: codegen.Plan, options, ctx: CellContext) -> None:
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
        if old is None or old is lib or options.ldflags != self._current_ldflags:
            return
        for name, text in plan.var_texts.items():
            new_var, old_var = lib.vars.get(name), old.vars.get(name)
            if not new_var or not old_var or self._current_vars.get(name) != text:
                continue
            if not new_var["carried"]:
                # Said when the reset loses something: the value differs from the one the old runtime started with.
                if old.var_changed(old_var):
                    where = self._cell_labels.get(plan.var_cells.get(name, ""), "a cell")
                    ctx.warn(f"{where} var {name} ({new_var['go']}) was reset by this rebuild: {new_var.get('reset') or 'its value cannot cross'}")
                continue
            got = old.raw_call(old_var["get"], bytes(8))
            if got[:1] != bytes([marshal.STATUS_OK]):
                continue
            done = lib.raw_call(new_var["set"], got[1:])
            if done[:1] != bytes([marshal.STATUS_OK]):
                ctx.verbose(f"Go var {name} starts from its initializer: its old value does not fit its type now")

    # -- building ------------------------------------------------------------------------
    @staticmethod
    def build_flags(options) -> list[str]:
        flags = []
        if options.gcflags:
            flags.append(f"-gcflags={options.gcflags}")
        flags.append("-ldflags=" + " ".join(filter(None, ["-s -w", options.ldflags])))
        if options.tags:
            flags.append(f"-tags={options.tags}")
        if options.race:
            flags.append("-race")
        return flags

    def _build(self, plan: codegen.Plan, options, ctx: CellContext, go: GoTool, cell_id: str):
        flags = self.build_flags(options)
        parts = {
            "kind": "go-library",
            "files": json.dumps(sorted(plan.files.items())),
            "runtime": codegen.RUNTIME_HASH,
            "toolchain": go.identity(),
            "flags": json.dumps(flags),
            "env": go.build_env_key(),
        }
        notes: dict = {}

        def build(directory: Path) -> None:
            src = directory / "src"
            src.mkdir()
            for name, text in plan.files.items():
                (src / name).parent.mkdir(exist_ok=True)  # a cell package's folder
                (src / name).write_text(text)
            tc = go.toolchain()
            # -v names the packages compiled (not taken from Go's build cache).
            command = [tc.path, "build", "-buildmode=c-shared", "-trimpath", "-o", str(directory / LIBRARY_NAME), *flags, "-v", "."]
            goflags = " ".join(filter(None, [os.environ.get("GOFLAGS", ""), "-mod=mod"]))
            started = time.perf_counter()
            done = subprocess.run(command, cwd=src, env=go.env({"GOFLAGS": goflags}), capture_output=True, text=True)
            seconds = time.perf_counter() - started
            notes.update(command=command, seconds=seconds, compiled=_compiled_packages(done.stderr))
            if done.returncode != 0:
                raise CompileError("Go", self._diagnostics(done.stderr, cell_id), done.stderr)
            if options.race:
                _probe_race_library(directory / LIBRARY_NAME)
            (directory / "build.json").write_text(json.dumps({"command": command, "seconds": seconds}))

        def load(directory: Path) -> library.GoLibrary:
            if options.race and str(directory / LIBRARY_NAME) not in self._libraries:
                _probe_race_library(directory / LIBRARY_NAME)  # also for a library cached earlier
            return self._load(directory / LIBRARY_NAME, ctx)

        with ctx.building(f"Go cell {ctx.cell_label}") as feedback:
            lib, report = ctx.cache.get_or_build(parts, build, load, force=options.force)
            if report.cache_hit:
                feedback.outcome = "from cache"
        lib.travel_build = travel.library_reference(report.key, plan, flags)  # how other processes load it
        if notes:
            ctx.verbose(f"go command: {shlex.join(notes['command'])}")
            ctx.verbose(f"go build took {notes['seconds']:.2f} s")
            ctx.verbose(f"go compiled: {', '.join(notes['compiled']) or 'nothing (every package from Go build cache)'}")
        else:
            ctx.verbose("cache hit: no go command was run")
        ctx.verbose(f"generated code: {report.path / 'src'}")
        return lib, report

    def _load(self, path: Path, ctx: CellContext) -> library.GoLibrary:
        key = str(path)
        if key not in self._libraries:
            self._libraries[key] = library.GoLibrary(path, self._cell_labels)
            count = len(self._libraries)
            if count > self.runtime_warning_threshold:
                ctx.warn(self._runtime_warning(count))
        return self._libraries[key]

    @staticmethod
    def _runtime_warning(count: int) -> str:
        return (
            f"{count} Go runtimes are loaded in this kernel: every rebuilt Go library brings its own "
            "(about 2 MB of memory and 5 threads each) and Go cannot unload one; restart the kernel to free them"
        )

    def _diagnostics(self, stderr: str, current: str) -> list[Diagnostic]:
        found: list[Diagnostic] = []
        for line in stderr.splitlines():
            if not line.strip() or line.startswith("#") or _MODULE_PROGRESS.match(line) or _PACKAGE_PATH.match(line):
                continue
            if line.split(": ", 1)[0] in self._cell_sources:  # the C compiler's "In function" of a cgo preamble
                continue
            match = _DIAGNOSTIC.match(line)
            if match and match["file"] in self._cell_sources:
                if _MISSING_MODULE.search(match["msg"]):
                    match = _DIAGNOSTIC.match(line + " (a Go module the cell imports could not be fetched: "
                                              "check %%go --require MODULE@VERSION, or the network)")
                cell_line = int(match["line"])
                lines = self._cell_sources[match["file"]].splitlines()
                text = lines[cell_line - 2] if 2 <= cell_line <= len(lines) + 1 else None
                found.append(Diagnostic(
                    match["msg"], cell_line, int(match["col"]) if match["col"] else None, text,
                    None if match["file"] == current else self._cell_labels.get(match["file"]),
                ))
            elif match and match["file"] == "-o":
                found.append(Diagnostic(f"-o: {match['msg']} (an -o variable must be declared at the top level of the cell)"))
            elif _MISSING_MODULE.search(line):
                found.append(Diagnostic(
                    f"a Go module the cell imports is missing and could not be fetched "
                    f"(no network, or add it with %%go --require MODULE@VERSION): {line.strip()}"
                ))
                break
            elif line.startswith(("\t", " ")) and found:
                found[-1].message += "\n" + _in_user_terms(line.strip())
            elif match:
                found.append(Diagnostic(
                    f"{_in_user_terms(match['msg'])} (in the code ipolyglot generates around the cells; "
                    "%%go -v shows where it is)"
                ))
            elif "too many errors" not in line:
                found.append(Diagnostic(line.strip()))
        return found

    # -- binding ----------------------------------------------------------------------------
    def _bind(self, lib: library.GoLibrary, plan: codegen.Plan, ctx: CellContext, cell_id: str, new_decls) -> CellResult:
        bind: dict = {}
        self._current = lib
        self._current_vars = dict(plan.var_texts)
        lib.share_cell_labels()
        new_names = {n for d in new_decls for n in d.extra.get("names") or []}
        build = getattr(lib, "travel_build", None)
        for struct in lib.description.get("structs") or []:
            cls = bind[struct["name"]] = self._struct_class(struct, lib)
            cls._go_build_ = build
            self._attach_methods(cls, struct["name"], lib, ctx, new_names, plan.docs)
        for const in lib.description.get("consts") or []:
            if const.get("problem"):
                if const["name"] in new_names:
                    ctx.warn(f"Go constant {const['name']} is not readable from Python: its type {const['problem']} cannot cross")
                continue
            bind[const["name"]] = marshal.decode_value(base64.b64decode(const["value"]), 0, lib.classes)[0]
        if any(codegen.is_exported(name) for name in lib.vars):
            bind[VARS_NAME] = self.vars
        library._dispatch_classes.clear()
        library._dispatch_classes.update(lib.classes)
        for entry in plan.funcs:
            if entry["name"] == codegen.STATEMENTS_NAME:
                continue
            func = lib.functions[entry["name"]]
            if func.get("problem"):
                if entry.get("cell_id") == cell_id:
                    ctx.warn(
                        f"Go function {entry['name']} is not callable from Python: its signature uses "
                        f"{func['problem']}, which cannot cross between Go and Python"
                    )
                continue
            fast = entry.get("fast")
            bind[entry["name"]] = traveling(lib.make_function(
                func, fast and fast["index"], fast, _python_params(entry["params"]), doc=plan.docs.get(entry["name"])
            ), build, entry["name"])
        for decl in new_decls:
            if decl.kind == "func" and decl.extra.get("generic") and codegen.is_exported(decl.name):
                ctx.warn(f"Go function {decl.name} is generic: only instantiated functions can be called from Python")
        if build is not None:
            LOADED_BUILDS.remember(build, dict(bind))
        unbind = sorted(self._bound - set(bind))
        self._bound = set(bind)
        return CellResult(bind=bind, unbind=unbind)

    def _attach_methods(
        self, cls: type, type_name: str, lib: library.GoLibrary, ctx: CellContext, new_names: set, docs: dict[str, str]
    ) -> None:
        """Make the exported methods of a struct type (from any cell) methods of its class."""
        attached = set()
        for func in lib.functions.values():
            if func.get("receiver") != type_name:
                continue
            method = func["name"].split(".", 1)[1]
            if func.get("problem"):
                if func["name"] in new_names or type_name in new_names:
                    ctx.warn(
                        f"Go method {func['name']} is not callable from Python: its signature uses "
                        f"{func['problem']}, which cannot cross between Go and Python"
                    )
                continue
            params = _python_params(func["params"][1:], reserved={"self"})
            setattr(cls, method, lib.make_function(func, None, None, params, method=True, doc=docs.get(func["name"])))
            attached.add(method)
        for method in getattr(cls, "_go_methods_", set()) - attached:
            if method in cls.__dict__:
                delattr(cls, method)
        cls._go_methods_ = attached

    def _struct_class(self, struct: dict, lib: library.GoLibrary) -> type:
        fields = tuple(f["name"] for f in struct["fields"])
        types = tuple(f["go"] for f in struct["fields"])
        key = (struct["name"], fields, types)
        cls = self._classes.get(key)
        if cls is None:
            doc = f"Go struct {struct['name']} {{ " + "; ".join(f"{n} {t}" for n, t in zip(fields, types)) + " } (a copy)"
            cls = type(struct["name"], (GoStruct,), {
                "_go_name_": struct["name"], "_go_fields_": fields, "_go_types_": types,
                "__doc__": doc, "__module__": "__main__",
            })
            self._classes[key] = cls
        cls._go_zero_ = base64.b64decode(struct.get("zero") or "")
        cls._go_classes_ = lib.classes
        lib.classes[struct["name"]] = cls
        return cls

    # -- session commands ---------------------------------------------------------------------
    def remove(self, name: str) -> CellResult:
        """Forget a declaration (a type with its methods), unless others still use it.

        Removing a name that other declarations use would break every later
        build (`undefined: Node` in an unrelated cell), so the removal is
        refused and the users are named, as `%polyglot cpp rm` refuses a
        removal that does not build; the user decides what goes.
        """
        users = self._users_of(name)
        if users:
            listed = ", ".join(f"{d.name} ({self._cell_labels.get(d.extra.get('cell_id', ''), d.cell)})" for d in users)
            raise ValueError(f"cannot remove {name}: still used by {listed}; remove or redefine those first")
        removed = self.declarations.remove(name)
        for decl in list(self.declarations):
            if removed.kind == "type" and decl.kind == "method" and decl.name.split(".")[0] in removed.extra.get("names", []):
                self.declarations.remove(decl.name)
        gone = [n for n in removed.extra.get("names", [name]) if n in self._bound]
        for var in removed.extra.get("names", []) if removed.kind == "var" else []:
            self._current_vars.pop(var, None)  # a declaration added again starts afresh
        self._bound -= set(gone)
        return CellResult(unbind=gone)

    def _users_of(self, name: str) -> list[Declaration]:
        """The other declarations whose code refers to a name `name`'s declaration defines."""
        target = self.declarations.get(name)
        if target is None:
            raise KeyError(f"no declaration named {name!r} in this session")
        names = set(target.extra.get("names") or [name])
        going = {target.name} | {
            d.name for d in self.declarations if target.kind == "type" and d.kind == "method" and d.name.split(".")[0] in names
        }
        return [d for d in self.declarations if d.name not in going and names & set(d.extra.get("refs") or [])]

    def reset(self) -> CellResult:
        self.declarations.clear()
        self._current_vars.clear()
        gone = sorted(self._bound)
        self._bound.clear()
        return CellResult(unbind=gone)

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

    # -- Go's profiler ----------------------------------------------------------------------
    def pprof(self, line: str, cell: str | None, user_ns: dict, run) -> list[dict]:
        """`%go_pprof`: run Python code with runtime/pprof on; display bundles of the result.

        Raises LookupError (pprof_view.PprofUsageError) for a bad line or when no Go code is loaded.
        """
        request = pprof_view.parse(line, cell)
        lib, others = pprof_view.serving_library(user_ns, self._current)
        return pprof_view.profile(request, lib, run, self._cell_labels, others)


class GoVars:
    """`govars`: the session's exported Go package-level variables, read and written live.

    `govars.Limit` reads the variable's current value in Go (a copy), every
    time; `govars.Limit = 5` sets it (checked against its Go type). Values are
    never cached on the Python side, so they cannot go stale.
    """

    def __init__(self, backend: "GoBackend"):
        object.__setattr__(self, "_backend", backend)

    def _lookup(self, name: str):
        lib = self._backend._current
        var = lib.vars.get(name) if lib is not None and codegen.is_exported(name) else None
        if var is None:
            raise AttributeError(f"no exported Go variable named {name!r} in this session")
        return lib, var

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        lib, var = self._lookup(name)
        if var.get("problem"):
            raise TypeError(f"Go var {name} has type {var['go']}, which cannot cross to Python ({var['problem']})")
        return lib.call(lib.functions[f"{name} (get)"], ())

    def __setattr__(self, name: str, value) -> None:
        lib, var = self._lookup(name)
        func = lib.functions[f"{name} (set)"]
        try:
            lib.call(func, (value,))
        except TypeError as exc:
            if str(exc).startswith(func["name"]):  # an argument Python could not encode at all
                raise TypeError(f"Go var {name} (Go type {var['go']}): {str(exc).split(': ', 1)[-1]}") from None
            raise

    def __dir__(self):
        lib = self._backend._current
        return sorted(n for n in (lib.vars if lib else {}) if codegen.is_exported(n))

    def __repr__(self) -> str:
        lib = self._backend._current
        if lib is None:
            return "govars()"
        shown = []
        for name in self.__dir__():
            try:
                shown.append(f"{name}={getattr(self, name)!r}")
            except TypeError:
                shown.append(f"{name}=<{lib.vars[name]['go']}>")
        return "govars(" + ", ".join(shown) + ")"


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


def reserved_name_diagnostics(decls: list[dict], source: str) -> list[Diagnostic]:
    """Top-level names of a cell that would clash with the generated package's own."""
    lines = source.splitlines()
    found = []
    for decl in decls:
        for name in decl["names"]:
            if name == "main":
                message = MAIN_IS_RESERVED
            elif name.lower().startswith(RESERVED_PREFIXES):
                message = (
                    f"{name}: top-level names starting with {', '.join(RESERVED_PREFIXES[:-1])} or {RESERVED_PREFIXES[-1]} "
                    "(in any case) are reserved for the code ipolyglot generates; rename it"
                )
            else:
                continue
            line = _line_declaring(name, decl, lines)
            found.append(Diagnostic(message, line + 1, None, lines[line - 1] if 0 < line <= len(lines) else None))
    return found


def _line_declaring(name: str, decl: dict, lines: list[str]) -> int:
    """The cell-body line (1-based) where a declaration names `name` (its first line if not found)."""
    first = decl["line"]
    for offset, text in enumerate(decl["text"].splitlines()):
        if re.search(rf"\b{re.escape(name)}\b", text) and not text.lstrip().startswith("//"):
            return first + offset
    return first


def _in_user_terms(continuation: str) -> str:
    """A compiler note that points into generated code, told without the generated file's name."""
    return _GENERATED_FILE.sub("(code ipolyglot generates)", continuation)


def _compiled_packages(go_stderr: str) -> list[str]:
    """The packages `go build -v` compiled, in its order."""
    return [line for line in go_stderr.splitlines() if _PACKAGE_PATH.match(line)]


def cell_identifier(source: str) -> str:
    """How generated code names a cell: by its text, so a re-run is the same build."""
    return "cell-" + hashlib.sha256(source.encode()).hexdigest()[:10]


def _python_params(params: list[str], reserved: set[str] = frozenset()) -> list[str]:
    out: list[str] = []
    for index, name in enumerate(params):
        if (not name or name == "_" or keyword.iskeyword(name) or not name.isidentifier() or name in _RESERVED
                or name in reserved or name in out):
            name = f"arg{index}"
        out.append(name)
    return out

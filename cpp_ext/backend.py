"""The %%cpp backend: C++ cells become Python objects through pybind11.

Every build holds the whole session (all live declarations), so a later
definition replaces an earlier one everywhere and functions from other cells
see it. Each build is a new, uniquely named extension module whose classes are
`py::module_local()`, so redefining a type never clashes with its old
version. A build that fails leaves the session as it was.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shlex
import sysconfig
import threading
import time
from ast import literal_eval as eval_flags
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from ipolyglot.kernel.core.backend import Backend, CellContext, CellResult, Declaration, DeclarationStore
from ipolyglot.kernel.core.cache import cache_key, read_private, write_private
from ipolyglot.kernel.core.diagnostics import CompileError, Diagnostic

from . import build as builder
from . import parser, travel, unit
from .values import UnsupportedValue, cpp_type

# A cell that includes these is compiled with pybind11 (and only that cell's unit).
_PYTHON_HEADER = re.compile(r"#\s*include\s*[<\"](?:pybind11/|Python\.h)")
_PYTHON_API = re.compile(r"\bpybind11\b|\bpy::|\bPy[A-Z_]\w*|Python\.h")
# A whole extension module in a cell: ipolyglot makes the module itself.
_MODULE_MACRO = re.compile(r"^\s*(PYBIND11_MODULE|PyMODINIT_FUNC)\b", re.M)
BIND_CODE = "the generated binding code (the cells' declarations compiled with pybind11)"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
# Parse results are cached by cell text; a change to the parser invalidates them.
PARSE_FORMAT = hashlib.sha256(Path(parser.__file__).read_bytes() + Path(unit.__file__).read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]


def _opt_level(value: str) -> str:
    if value not in ("0", "1", "2", "3", "s", "fast"):
        raise argparse.ArgumentTypeError(f"-O{value}: use -O0, -O1, -O2 or -O3")
    return f"-O{value}"


_STANDARDS = ("14", "17", "20", "23", "26", "1y", "1z", "2a", "2b", "2c")


def _cxx_standard(value: str) -> str:
    """--std accepts what both g++ and libclang read as C++14 or later (the bindings need it)."""
    std = value.lstrip("=")
    dialect, _, year = std.partition("++")
    if dialect not in ("c", "gnu") or year not in _STANDARDS:
        raise argparse.ArgumentTypeError(f"--std {value}: not a C++ standard ipolyglot can build; use c++14, c++17, c++20 or c++23 (or gnu++NN)")
    return std


class CppBackend(Backend):
    language = "cpp"
    display_name = "C++"

    def __init__(self) -> None:
        super().__init__()
        self._preamble: dict[str, dict] = {}  # #include lines etc., by text, in first-seen order
        self._order: dict[str, int] = {}  # where each name was first defined
        self._cells: dict[str, tuple[str, str]] = {}  # cell id -> (cell text, label)
        self._bound: set[str] = set()  # Python names the current module bound
        self._modules: list[Any] = []  # loaded modules stay alive: their types may still be in use
        self._flags = builder.Flags()
        self._cell_flags: dict[str, builder.Flags] = {}  # each cell's options, kept for rebuilds
        self._pch_scratch: Path | None = None

    # -- options -----------------------------------------------------------------
    def add_arguments(self, parser_: argparse.ArgumentParser) -> None:
        parser_.add_argument("-O", dest="opt", type=_opt_level, default=None, metavar="LEVEL", help="optimization level -O0..-O3 (default -O2)")
        parser_.add_argument("--std", type=_cxx_standard, default="c++17", help="C++ standard (default c++17; c++20 with g++ >= 10)")
        parser_.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR", help="add an include directory")
        parser_.add_argument("-L", dest="lib_dirs", action="append", default=[], metavar="DIR", help="add a library directory")
        parser_.add_argument("-l", dest="libs", action="append", default=[], metavar="LIB", help="link a library")
        parser_.add_argument("--cflags", default="", help="extra compiler flags (quoted)")
        parser_.add_argument("--ldflags", default="", help="extra linker flags (quoted)")
        parser_.add_argument("-g", "--debug", action="store_true", help="build the cell's code with -g -O0 for gdb")
        parser_.add_argument("--keep-gil", action="store_true", help="do not release the GIL during calls (saves ~0.1-0.2 us per call of tiny functions)")

    def _flags_from(self, options: argparse.Namespace) -> builder.Flags:
        return builder.Flags(
            opt=options.opt or "-O2",
            std=options.std,
            debug=options.debug,
            include_dirs=[os.path.abspath(d) for d in options.include_dirs],
            lib_dirs=[os.path.abspath(d) for d in options.lib_dirs],
            libs=list(options.libs),
            cflags=shlex.split(options.cflags),
            ldflags=shlex.split(options.ldflags),
        )

    # -- the cell ----------------------------------------------------------------
    def run_cell(self, source: str, options: argparse.Namespace, ctx: CellContext) -> CellResult:
        flags = self._flags_from(options)
        cell_id = "cell-" + hashlib.sha256(source.encode()).hexdigest()[:12]
        _refuse_module_of_its_own(source)
        _check_braces(source)
        inputs = self._input_types(options.input, ctx)
        parsed = self._parse(source, flags, ctx, inputs, list(options.output))
        cells = {**self._cells, cell_id: (source, ctx.cell_label)}
        if parsed.mode == "statement":
            if parsed.errors and not parsed.statement:
                raise CompileError("C++", [Diagnostic(e["message"], e["line"] and e["line"] + 1, e["column"], None) for e in parsed.errors])
            return self._run_statement(source, parsed, cell_id, flags, options, ctx, cells)
        _refuse_main(parsed, source)
        decls, preamble = self._declarations(parsed, cell_id, ctx.cell_label, source, options.keep_gil)
        store = self.declarations.with_cell(decls)
        self._drop_stale_members(store, decls)
        _drop_stale_private(store, cell_id, {d.name for d in decls})
        new_preamble = {**self._preamble, **{p["name"]: p for p in preamble if p["name"] not in self._preamble}}
        order = dict(self._order)
        for d in decls:
            order.setdefault(d.name, len(order))
        cell_flags = {**self._cell_flags, cell_id: flags}
        self._pch_scratch = ctx.cache.scratch_dir("cpp-pch")
        module, report, units = self._build(store, new_preamble, order, cell_flags, flags, options, ctx, cells, cell_id)
        # Success: the candidate becomes the session.
        self.declarations.replace_with(store)
        self._preamble, self._order, self._flags = new_preamble, order, flags
        self._cell_flags = cell_flags
        self._cells = {cid: cells[cid] for cid in self._live_cells()}
        for warning in parsed.warnings:
            ctx.warn(warning)
        return self._bind_result(module, units, report)

    def _declarations(self, parsed: parser.ParsedCell, cell_id: str, label: str, source: str, keep_gil: bool = False):
        by_name: dict[str, list[dict]] = {}
        preamble: list[dict] = []
        custom = any(p.name == "ipolyglot_bind" for p in parsed.pieces)
        uses_python = custom or any(p.section == "preamble" and _PYTHON_HEADER.search(p.user_text) for p in parsed.pieces)
        for piece in parsed.pieces:
            record = copy.deepcopy(vars(piece))
            record["cell_id"] = cell_id
            if keep_gil or uses_python:
                # A cell that reaches pybind11 may release the GIL itself (py::gil_scoped_release).
                for bind in record["binds"]:
                    for fn in [bind, *bind.get("methods", [])]:
                        # --keep-gil spares no release around a Python callable (its calls
                        # take the GIL anyway), and one called on a C++ thread would wait
                        # forever for the GIL the caller keeps.
                        if uses_python or not _takes_callable(fn):
                            fn["keep_gil"] = True
            if uses_python and _PYTHON_API.search(piece.header_text or piece.user_text):
                # Only this cell's unit (and the binding unit) is compiled with pybind11.
                record["python_only"] = True
            if custom:
                record["binds"] = []
            if piece.section == "preamble":
                preamble.append(record)
            elif piece.private:
                # Private to the cell: never replaces, nor is replaced by, another cell's name.
                by_name.setdefault(f"{piece.name} (private to {label})", []).append(record)
            elif piece.name == "ipolyglot_bind":
                # Each cell's bindings are its own; they add to other cells' bindings.
                record["custom"] = True
                record["symbol"] = f"ipolyglot_bind_{cell_id.removeprefix('cell-')}"
                by_name.setdefault(f"ipolyglot_bind ({label})", []).append(record)
            else:
                by_name.setdefault(piece.name, []).append(record)
        has_public = any(not _attached(pieces) for pieces in by_name.values())
        decls = []
        for name, pieces in by_name.items():
            decls.append(Declaration(
                name=name,
                kind=pieces[0]["kind"],
                source="\n".join(p["user_text"] for p in pieces),
                cell=label,
                first_line=pieces[0]["first_line"],
                extra={"pieces": pieces, "cell_id": cell_id, "cell_has_public": has_public},
            ))
        return decls, preamble

    def _drop_stale_members(self, store: DeclarationStore, decls: list[Declaration]) -> None:
        """Out-of-line member definitions of a class redefined elsewhere would not match it."""
        redefined = {d.name for d in decls if d.kind == "class"}
        fresh = {d.name for d in decls}
        for d in list(store):
            if d.kind == "member-def" and d.name not in fresh and d.name.split("::")[0] in redefined:
                store.remove(d.name)

    def _live_cells(self) -> set[str]:
        live = {d.extra["cell_id"] for d in self.declarations}
        live |= {p["cell_id"] for p in self._preamble.values()}
        return live

    def _session_pieces(self, store: DeclarationStore, preamble: dict[str, dict], order: dict[str, int]) -> list[dict]:
        """Preamble first, then the declarations in session order: each name where it
        was first defined (so earlier cells' users still follow it after a
        redefinition), and within a cell never before what precedes it there: a
        name new to a cell moves up to just before the next older name of that cell."""
        by_cell: dict[str, list[tuple[int, dict]]] = {}
        for d in store:
            slot = order.get(d.name, 1 << 30)
            for piece in d.extra["pieces"]:
                by_cell.setdefault(piece["cell_id"], []).append((slot, piece))
        keyed = []
        for items in by_cell.values():
            items.sort(key=lambda item: (item[1]["first_line"], item[1]["column"]))
            later_min = 1 << 31
            for slot, piece in reversed(items):
                later_min = min(later_min, slot)
                keyed.append(((later_min, piece["first_line"], piece["column"]), piece))
        keyed.sort(key=lambda item: item[0])
        return list(preamble.values()) + [piece for _, piece in keyed]

    # -- parsing (cached by cell text and context) ------------------------------------
    def _parse(self, source, flags, ctx, inputs, outputs) -> parser.ParsedCell:
        context_pieces = self._session_pieces(self.declarations, self._preamble, self._order)
        full_header = unit._sections(context_pieces, header=True)
        context_text = "".join(full_header[s] for s in unit.SECTIONS)
        key_parts = {
            "format": PARSE_FORMAT,
            "cell": source,
            "context": context_text,
            "flags": repr((flags.std, flags.include_dirs, flags.defines())),
            "inputs": json.dumps(inputs, sort_keys=True),
            "outputs": json.dumps(outputs),
            "libclang": _libclang_version(),
        }
        path = ctx.cache.scratch_dir("cpp-parse") / (cache_key(key_parts) + ".json")
        known = read_private(path)
        if known is not None:
            try:
                return _parsed_from_json(json.loads(known))
            except (ValueError, KeyError, TypeError):
                pass
        started = time.perf_counter()
        try:
            parsed = self._parse_fresh(source, flags, ctx, inputs, outputs, context_pieces, context_text)
        except parser.ParseFailure as exc:
            raise CompileError("C++", [Diagnostic(str(exc))]) from None
        ctx.verbose(f"parsed the cell with libclang in {time.perf_counter() - started:.2f} s ({parsed.mode})")
        write_private(path, json.dumps(_parsed_to_json(parsed)))
        return parsed

    def _parse_fresh(self, source, flags, ctx, inputs, outputs, context_pieces, context_text) -> parser.ParsedCell:
        include_dirs = [*flags.include_dirs, *builder.python_includes()[1::2]]
        args = parser.parse_args(flags.std, include_dirs, flags.defines(), parser.gcc_builtin_include(ctx.toolchain().path))
        if inputs or outputs:
            return parser.parse_statement(source, context_text + unit.STATEMENT_HEADERS, args, inputs, outputs)
        alone = parser.split_cell(source, "", args)
        if not alone.errors:
            return alone
        guessed = {p.name for p in alone.pieces}
        rest = [p for p in context_pieces if not _redefined(p, guessed)]
        rest_header = unit._sections(rest, header=True)
        rest_text = "".join(rest_header[s] for s in unit.SECTIONS)
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
        statement = parser.parse_statement(source, context_text + unit.STATEMENT_HEADERS, args, inputs, outputs)
        if not statement.errors:
            return statement
        # Neither reading parses cleanly with libclang: let g++ judge the declarations;
        # what libclang could not read is named in the warnings, not bound.
        first = generous.errors[0]
        where = f" (line {first['line'] + 1}: {first['message']})" if first.get("line") else ""
        generous.errors = []
        generous.warnings.append(f"libclang could not fully parse this cell{where}; bindings may be incomplete")
        return generous

    def _input_types(self, names: list[str], ctx: CellContext) -> dict[str, str]:
        types = {}
        for name in names:
            if name not in ctx.user_ns:
                raise CompileError("C++", [Diagnostic(f"-i {name}: no Python variable named {name!r}")])
            try:
                types[name] = cpp_type(ctx.user_ns[name], f"-i {name}")
            except UnsupportedValue as exc:
                raise CompileError("C++", [Diagnostic(str(exc))]) from None
        return types

    # -- building ---------------------------------------------------------------------
    def _build(self, store, preamble, order, cell_flags, flags, options, ctx, cells, current="", statement=None, statement_cell="", body_lines=0):
        """Build (or find in the cache) the module of a session: one object per
        cell, each with its own cell's options, plus the binding object."""
        pieces = self._session_pieces(store, preamble, order)
        custom = any(p.get("custom") for p in pieces)
        python_cells = {p["cell_id"] for p in pieces if p.get("python_only") or p.get("custom")}
        units = unit.build_units(pieces, ctx.profile, statement, statement_cell, body_lines, custom)
        identity = builder.compiler_identity()
        # Every unit sees every cell's #includes, so include directories are session-wide.
        include_dirs = list(dict.fromkeys(d for f in [*cell_flags.values(), flags] for d in f.include_dirs))
        bind_flags = dataclasses.replace(flags, include_dirs=include_dirs).bind_compile()
        bind_parts = {"kind": "cpp-bind", "unit": units.bind, "flags": repr(bind_flags), "compiler": identity, "support": builder.support_digest()}
        objects: dict[str, dict] = {}
        link_flags: list[str] = []
        for cell, text in units.user.items():
            cflags = dataclasses.replace(cell_flags.get(cell, flags), include_dirs=include_dirs)
            with_python = cell in python_cells
            compile_flags = cflags.user_compile() + (builder.python_includes() if with_python else [])
            if cflags.debug:  # gdb names cells as the notebook does; a debug object is rebuilt when labels change
                compile_flags += _debugger_cell_names(cells)
            objects[cell] = {"kind": "cpp-object", "unit": text, "flags": repr(compile_flags), "custom": builder.support_digest() if with_python else "", "compiler": identity}
            link_flags += [f for f in cflags.link() if f not in link_flags or f.startswith("-Wl")]
        module_parts = {
            "kind": "cpp-module",
            "objects": " ".join(cache_key(objects[c]) for c in objects),
            "bind": cache_key(bind_parts),
            "link": repr(link_flags),
            "compiler": identity,
        }
        module_name = "ipolyglot_cpp_" + cache_key(module_parts)[:20]
        generated: dict[str, Path] = {}
        skipped: list[str] = []  # declarations left out of the bindings, with the reason

        def build_module(out: Path) -> None:
            tc = ctx.toolchain()
            messages: list[str] = []  # verbose lines from worker threads, printed here
            failed = threading.Event()

            def compile_object(cell: str):
                parts = objects[cell]
                compile_flags = eval_flags(parts["flags"])
                if cell in python_cells:
                    header = builder.precompiled_header(ctx.cache.scratch_dir("cpp-pch"), tc.path, compile_flags, tc.version, messages.append)
                    compile_flags = [*compile_flags, "-include", str(header)]

                def build(d: Path) -> None:
                    (d / "user.cpp").write_text(parts["unit"])
                    cmd = [*builder.launcher(), tc.path, *compile_flags, "-c", str(d / "user.cpp"), "-o", str(d / "user.o")]
                    code, text = builder.run_compiler(cmd, messages.append, failed.is_set)
                    if code != 0:
                        failed.set()
                        raise CompileError("C++", builder.diagnostics(text, cells, current), text)

                obj, report = ctx.cache.get_or_build(parts, build, lambda d: d / "user.o", force=options.force)
                generated[cell] = report.path / "user.cpp"
                return obj

            def compile_bind():
                """The binding object; registrations pybind11 cannot compile (a
                signature that cannot cross) are left out with a warning."""
                skip: frozenset[int] = frozenset()
                parts, text = bind_parts, units.bind
                for _attempt in range(3):
                    try:
                        bind_obj, report = ctx.cache.get_or_build(
                            parts, lambda d: self._build_bind(d, text, bind_flags, tc.path, tc.version, cells, current, messages.append, failed.is_set), lambda d: d / "bind.o", force=options.force
                        )
                        messages.append(f"binding unit: {'cached' if report.cache_hit else f'compiled in {report.build_seconds:.2f} s'} ({report.path / 'bind.cpp'})")
                        return bind_obj
                    except CompileError as exc:
                        bad = builder.failing_registrations(text, exc.raw_output) - skip
                        if not bad or failed.is_set():
                            raise
                        attempted = unit.build_units(pieces, ctx.profile, statement, statement_cell, body_lines, custom, skip)
                        # A call-error registration fails with the overloads it explains.
                        bad |= {i for f in bad if f in attempted.fallbacks for i in attempted.fallbacks[f]}
                        names = attempted.registered
                        for index in sorted(i for i in bad if i in names):
                            skipped.append(f"{names.get(index, '?')!r} is not bound: its signature cannot cross to Python ({builder.first_error(exc.raw_output)})")
                        skip = skip | bad
                        text = unit.build_units(pieces, ctx.profile, statement, statement_cell, body_lines, custom, skip).bind
                        parts = {**bind_parts, "unit": text}
                raise CompileError("C++", [Diagnostic("the bindings do not compile")])

            order_ = sorted(objects, key=lambda c: c != current)
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [pool.submit(compile_object, order_[0])] if order_ else []
                bind_future = pool.submit(compile_bind)
                futures += [pool.submit(compile_object, c) for c in order_[1:]]
                errors = []
                for future in [*futures, bind_future]:
                    try:
                        future.result()
                    except (CompileError, builder.Aborted) as exc:
                        errors.append(exc)
            for line in messages:
                ctx.verbose(line)
            (out / "skipped.json").write_text(json.dumps(skipped))
            real = [e for e in errors if isinstance(e, CompileError)]
            if real:
                raise real[0]
            target = out / f"{module_name}{EXT_SUFFIX}"
            link = [*builder.launcher(), tc.path, "-shared", str(bind_future.result()), *(str(f.result()) for f in futures), "-o", str(target), f"-Wl,--defsym=PyInit_{module_name}=PyInit_ipolyglot_bind", *link_flags]
            code, text = builder.run_compiler(link, ctx.verbose)
            if code != 0:
                raise CompileError("C++", builder.diagnostics(text, cells, current) or [Diagnostic("linking failed: " + text.strip()[-2000:])], text)

        def load(path: Path):
            notes = path / "skipped.json"
            if notes.exists():  # shown on cache hits too
                for warning in json.loads(notes.read_text()):
                    ctx.warn(warning)
            try:
                return _import_module(module_name, path / f"{module_name}{EXT_SUFFIX}")
            except ImportError as exc:
                raise _undefined_symbol_error(exc, cells, current) or exc

        with ctx.building(f"C++ cell {ctx.cell_label}") as fb:
            module, report = ctx.cache.get_or_build(module_parts, build_module, load, force=options.force)
            if report.cache_hit:
                fb.outcome = "from cache"
        self._modules.append(module)
        for name in units.undefined:
            owner = store.get(name.rsplit(".", 1)[0])
            if owner is not None and owner.extra.get("cell_id") == current:
                ctx.warn(f"{name!r} is not bound yet: it is declared, and no cell defines it (the cell that defines it binds it)")
        module._ipolyglot_build_ = travel.module_reference(report.key, module_name, f"{module_name}{EXT_SUFFIX}")
        if current in generated:
            ctx.verbose(f"generated code: {generated[current]}")
        else:
            ctx.verbose(f"generated code: {ctx.cache.artifact_dir(cache_key(objects[current])) / 'user.cpp'}" if current in objects else f"module: {report.path}")
        return module, report, units

    def _build_bind(self, out: Path, text: str, bind_flags, compiler: str, version: str, cells, current, verbose, abort) -> None:
        (out / "bind.cpp").write_text(text)
        header = builder.precompiled_header(self._pch_scratch, compiler, bind_flags, version, verbose)
        cmd = [*builder.launcher(), compiler, *bind_flags, "-include", str(header), "-c", str(out / "bind.cpp"), "-o", str(out / "bind.o")]
        code, output = builder.run_compiler(cmd, verbose, abort)
        if code != 0:
            raise CompileError("C++", builder.diagnostics(output, cells, current, BIND_CODE), output)

    def _bind_result(self, module, units: unit.Units, report) -> CellResult:
        names = list(units.top_names)
        names += [n for n in dir(module) if not n.startswith("_") and n not in names]
        bind = travel.prepare({n: getattr(module, n) for n in names if hasattr(module, n)}, getattr(module, "_ipolyglot_build_", None))
        unbind = sorted(self._bound - set(bind))
        self._bound = set(bind)
        return CellResult(bind=bind, unbind=unbind, report=report)

    # -- statement cells ------------------------------------------------------------
    def _run_statement(self, source, parsed, cell_id, flags, options, ctx, cells) -> CellResult:
        if parsed.errors:
            raise CompileError("C++", [Diagnostic(e["message"]) for e in parsed.errors])
        statement = parsed.statement
        body_lines = source.count("\n") + 1
        self._pch_scratch = ctx.cache.scratch_dir("cpp-pch")
        module, report, _ = self._build(self.declarations, self._preamble, self._order, {**self._cell_flags, cell_id: flags}, flags, options, ctx, cells, cell_id, statement, cell_id, body_lines)
        args = [ctx.user_ns[name] for name in statement["inputs"]]
        result = module.ipolyglot_statement(*args)
        outputs = list(statement["outputs"])
        bind = dict(zip(outputs, result)) if outputs else {}
        return CellResult(bind=bind, report=report)

    # -- the session ------------------------------------------------------------------
    def _rebuild(self, store: DeclarationStore) -> CellResult:
        from types import SimpleNamespace

        if not len(store):
            unbind = sorted(self._bound)
            self._bound = set()
            return CellResult(unbind=unbind)
        ctx = _quiet_context()
        options = SimpleNamespace(force=False)
        self._pch_scratch = ctx.cache.scratch_dir("cpp-pch")
        module, report, units = self._build(store, self._preamble, self._order, self._cell_flags, self._flags, options, ctx, dict(self._cells))
        return self._bind_result(module, units, report)

    def remove(self, name: str) -> CellResult:
        """Forget a declaration (a class with its out-of-line members), unless others
        still use it: those are named, as Go cells name theirs, from the references
        libclang resolves in the session's code."""
        name = self._declaration_named(name)
        going = {name} | {d.name for d in self.declarations if d.kind == "member-def" and d.name.startswith(name + "::")}
        users = self._users_of(going)
        if users:
            listed = ", ".join(d.name if "(private to " in d.name else f"{d.name} ({self._cells.get(d.extra['cell_id'], ('', d.cell))[1]})" for d in users)
            raise ValueError(f"cannot remove {name}: still used by {listed}; remove or redefine those first")
        candidate = self.declarations.with_cell([])
        for gone in going:
            candidate.remove(gone)
        _drop_stale_private(candidate, "", set())
        try:
            result = self._rebuild(candidate)
        except CompileError as exc:
            first = exc.diagnostics[0].render().split("\n")[0] if exc.diagnostics else "the build fails"
            raise ValueError(f"cannot remove {name}: the session does not build without it ({first})") from None
        self.declarations.replace_with(candidate)
        return result

    def _declaration_named(self, name: str) -> str:
        """The declaration `%polyglot cpp rm` means: namespace members are listed as
        ns.f, and may be named as C++ does (ns::f); `Cls::m` names an out-of-line member."""
        plain = name.strip().removeprefix("::")
        for candidate in (plain, plain.replace("::", ".")):
            if self.declarations.get(candidate) is not None:
                return candidate
        members = [d.name for d in self.declarations if d.kind == "member-def" and d.name.startswith(plain + "(")]
        if len(members) == 1:
            return members[0]
        hint = " (`%polyglot cpp` lists them: a namespace member is named ns.f or ns::f, an out-of-line member Cls::f)"
        raise KeyError(f"no declaration named {name!r} in this session{hint}")

    def _users_of(self, going: set[str]) -> list[Declaration]:
        """The other declarations whose code refers to what `going` declares."""
        pieces = self._session_pieces(self.declarations, self._preamble, self._order)
        owner = {id(p): d.name for d in self.declarations for p in d.extra["pieces"]}
        sections: dict[str, list[tuple[str, str | None]]] = {s: [] for s in unit.SECTIONS}
        for piece in pieces:
            for section, text, marked in unit._placements(piece, header=False, own=True):
                sections[section].append((unit._emit(piece, text, marked), owner.get(id(piece))))
        chunks = sections["preamble"] + [(unit._early_prototypes(pieces), None)] + sections["decl"] + sections["func"]
        include_dirs = list(dict.fromkeys(d for f in [*self._cell_flags.values(), self._flags] for d in f.include_dirs))
        args = parser.parse_args(self._flags.std, [*include_dirs, *builder.python_includes()[1::2]], self._flags.defines(), parser.gcc_builtin_include(_compiler_path()))
        try:
            names = parser.users_of(chunks, going, args)
        except parser.ParseFailure:
            return []  # the rebuild below still refuses a removal that does not build
        return [d for d in self.declarations if d.name in names]

    def reset(self) -> CellResult:
        unbind = sorted(self._bound)
        self.declarations.clear()
        self._preamble.clear()
        self._order.clear()
        self._cells.clear()
        self._cell_flags.clear()
        self._bound = set()
        return CellResult(unbind=unbind)

    def info(self) -> dict[str, str]:
        return {"C++ session": f"{len(self.declarations)} declarations, {len(self._modules)} modules loaded"}


def _debugger_cell_names(cells: dict[str, tuple[str, str]]) -> list[str]:
    """Flags that make debug information name each cell by its label (`In [5]`)
    instead of the `cell-<hash>` its #line directives use (the hash keeps
    ordinary builds cache hits whatever a cell's label)."""
    return [f"-fdebug-prefix-map={cell_id}={label.rstrip(':')}" for cell_id, (_, label) in sorted(cells.items())]


def _refuse_module_of_its_own(source: str) -> None:
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


def _takes_callable(fn: dict) -> bool:
    return any("std::function<" in p["type"] for p in fn.get("params", []))


MAIN_IS_RESERVED = (
    "a %%cpp cell holds declarations (built into a Python extension module) or statements (run at once); "
    "`main` is reserved, since the module has no entry point (and C++ forbids calling main): put main's "
    "statements in a %%cpp cell of their own, or rename it"
)


def _refuse_main(parsed: parser.ParsedCell, source: str) -> None:
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
        prev = source[i - 1] if i else ""
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


def _check_braces(source: str) -> None:
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


def _attached(pieces: list[dict]) -> bool:
    """Declarations that belong to their cell rather than to a name: private ones
    (static, anonymous namespace) and the cell's own `ipolyglot_bind`."""
    return all(p.get("private") or p.get("custom") for p in pieces)


def _drop_stale_private(store: DeclarationStore, current_cell: str, fresh: set[str]) -> None:
    """A cell's attached declarations live as long as the cell has a public one
    (a cell whose only declaration is `ipolyglot_bind` keeps it until removed);
    re-running a cell replaces its own earlier ones."""
    public_cells = {d.extra["cell_id"] for d in store if not _attached(d.extra["pieces"])}
    for d in list(store):
        if not _attached(d.extra["pieces"]):
            continue
        cell = d.extra["cell_id"]
        stale_copy = cell == current_cell and d.name not in fresh
        needs_public = d.extra.get("cell_has_public", True) or not all(p.get("custom") for p in d.extra["pieces"])
        if stale_copy or (needs_public and cell not in public_cells):
            store.remove(d.name)


def _redefined(piece: dict, names: set[str]) -> bool:
    name = piece.get("name", "")
    return name in names or name.split("::")[0] in names


def _import_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_UNDEFINED_SYMBOL = re.compile(r"undefined symbol: (\S+)")


def _undefined_symbol_error(exc: ImportError, cells: dict, current: str) -> CompileError | None:
    """A module that does not load because something declared is defined nowhere
    (an `extern` variable, a function or member declared but never defined):
    said in the cells' terms instead of the loader's ImportError."""
    found = _UNDEFINED_SYMBOL.search(str(exc))
    if not found:
        return None
    name = _demangle(found.group(1))
    if name.startswith("vtable for "):
        what = f"a virtual member function of {name.removeprefix('vtable for ')!r} is declared but no cell defines it"
    else:
        what = f"{name!r} is declared but no cell defines it"
    return CompileError("C++", [Diagnostic(
        f"{what}, so the module cannot load (undefined symbol); define it in this cell or an earlier one, "
        "or link the library that defines it (-l)"
    )], str(exc))


def _demangle(symbol: str) -> str:
    import shutil
    import subprocess

    tool = shutil.which("c++filt")
    if not tool:
        return symbol
    try:
        return subprocess.run([tool, symbol], capture_output=True, text=True, timeout=10).stdout.strip() or symbol
    except (OSError, subprocess.SubprocessError):
        return symbol


def _compiler_path() -> str:
    from ipolyglot.kernel.core.toolchains import find_cxx

    try:
        return find_cxx().path
    except Exception:  # noqa: BLE001 - without a compiler, libclang reads without its builtin headers
        return "g++"


def _libclang_version() -> str:
    try:
        return metadata.version("libclang")
    except metadata.PackageNotFoundError:
        return "unknown"


def _parsed_to_json(parsed: parser.ParsedCell) -> dict:
    return {
        "mode": parsed.mode,
        "pieces": [vars(p) for p in parsed.pieces],
        "warnings": parsed.warnings,
        "errors": parsed.errors,
        "statement": parsed.statement,
    }


def _parsed_from_json(data: dict) -> parser.ParsedCell:
    return parser.ParsedCell(
        mode=data["mode"],
        pieces=[parser.Piece(**p) for p in data["pieces"]],
        warnings=data["warnings"],
        errors=data["errors"],
        statement=data["statement"],
    )


def _quiet_context():
    """What remove() needs to rebuild: the shared cache, no cell output."""
    import contextlib

    from ipolyglot.kernel.core.cache import BuildCache
    from ipolyglot.kernel.core.backend import CellContext
    from ipolyglot.kernel.core.toolchains import find_cxx

    @contextlib.contextmanager
    def building(_description):
        yield type("Feedback", (), {"outcome": None})()

    return CellContext(
        cell_label="%polyglot", user_ns={}, cache=BuildCache(), toolchain=find_cxx,
        verbose=lambda _m: None, warn=lambda _m: None, building=building,
    )

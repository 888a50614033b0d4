"""The %%cpp backend: C++ cells become Python objects through pybind11.

Every build holds the whole session (all live declarations), so a later
definition replaces an earlier one everywhere and functions from other cells
see it. Each build is a new, uniquely named extension module whose classes are
`py::module_local()`, so redefining a type never clashes with its old
version. The steps below are called in order by kernel/core/pipeline.py;
only `commit` changes the session, so a build that fails leaves it as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.backend import Backend, Built, CellContext, DeclarationStore
from ipolyglot.kernel.core.cache import cache_key
from ipolyglot.kernel.core.cells import Cell, CellRegistry
from ipolyglot.kernel.core.diagnostics import CompileError, Diagnostic

from . import build as builder
from . import travel, unit
from .flags import Flags, compiler_identity
from .reading import Reading, read_cell, users_of
from .records import ParsedCell
from .session import CppCandidate, declaration_named, declarations_of, drop_stale_private, going_with, left_to_custom_bind, live_cells, session_pieces, with_cell
from .values import cpp_type

_STANDARDS = ("14", "17", "20", "23", "26", "1y", "1z", "2a", "2b", "2c")


def _opt_level(value: str) -> str:
    if value not in ("0", "1", "2", "3", "s", "fast"):
        raise argparse.ArgumentTypeError(f"-O{value}: use -O0, -O1, -O2 or -O3")
    return f"-O{value}"


def _cxx_standard(value: str) -> str:
    """--std accepts what both g++ and libclang read as C++14 or later (the bindings need it)."""
    std = value.lstrip("=")
    dialect, _, year = std.partition("++")
    if dialect not in ("c", "gnu") or year not in _STANDARDS:
        raise argparse.ArgumentTypeError(f"--std {value}: not a C++ standard ipolyglot can build; use c++14, c++17, c++20 or c++23 (or gnu++NN)")
    return std


@dataclass
class LoadedModule:
    """A loaded build: the module, and (once bound) the Python names it offers."""

    module: Any
    offered: dict[str, Any] = field(default_factory=dict)


class CppBackend(Backend):
    language = "cpp"
    display_name = "C++"
    find_toolchain = staticmethod(toolchains.find_cxx)

    def __init__(self) -> None:
        super().__init__()
        self.session = CppCandidate(None, self.declarations)  # the committed session
        self._modules: list[Any] = []  # loaded modules stay alive: their types may still be in use
        self._offered: dict[str, Any] = {}  # what the session's module binds (a statement cell keeps it)

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

    # -- the steps of a cell ---------------------------------------------------------
    def input_type(self, name: str, value: Any) -> str:
        return cpp_type(value)

    def parse(self, cell: Cell, options: argparse.Namespace, inputs: dict[str, Any], ctx: CellContext) -> ParsedCell:
        reading = Reading(session_pieces(self.session), Flags.from_options(options), lambda: ctx.toolchain().path, inputs, list(options.output))
        return read_cell(cell.text, reading, ctx)

    def candidate(self, parsed: ParsedCell, cell: Cell, options: argparse.Namespace, ctx: CellContext) -> CppCandidate:
        flags = Flags.from_options(options)
        cell_flags = {**self.session.cell_flags, cell.id: flags}
        if parsed.statement is not None:
            statement = parsed.statement
            return dataclasses.replace(
                self.session, cell=cell, statements=statement, inputs=list(statement.inputs.values()), outputs=list(statement.outputs),
                cell_flags=cell_flags, flags=flags, current=cell.id, warnings=[],
            )
        decls, preamble = declarations_of(parsed, cell.id, cell.label, options.keep_gil)
        store, preamble_after, order = with_cell(self.session, decls, preamble, cell.id)
        warnings = [*parsed.warnings, *left_to_custom_bind(parsed)]
        return CppCandidate(cell, store, preamble=preamble_after, order=order, cell_flags=cell_flags, flags=flags, current=cell.id, warnings=warnings)

    def compose(self, candidate: CppCandidate, dropped: Mapping[str, str], ctx: CellContext) -> unit.CppUnit:
        """`dropped` is keyed by registration index (what cannot_cross names)."""
        how = unit.Composition(
            cell_flags=candidate.cell_flags,
            flags=candidate.flags,
            current=candidate.current,
            compiler=compiler_identity(),
            profile=ctx.profile,
            statement=candidate.statements,
            body_lines=candidate.cell.text.count("\n") + 1 if candidate.cell else 0,
            debug_names=_debugger_cell_names(ctx.cells, live_cells(candidate) | {candidate.current}),
        )
        composed = unit.compose(session_pieces(candidate), how, frozenset(int(i) for i in dropped))
        composed.dropped = dict(dropped)
        return composed

    def build(self, unit_: unit.CppUnit, directory: Path, ctx: CellContext) -> None:
        builder.ModuleBuild(unit_, ctx).run(directory)

    def cannot_cross(self, error: Exception, unit_: unit.CppUnit) -> dict[str, str]:
        """The registrations g++'s errors point into, when only the bindings failed;
        a call-error registration fails with the overloads it explains."""
        if not isinstance(error, builder.BindingsDoNotCompile):
            return {}
        bind = unit_.bind
        bad = builder.failing_registrations(bind.text, error.raw_output)
        bad |= {i for f in bad if f in bind.fallbacks for i in bind.fallbacks[f]}
        why = builder.first_error(error.raw_output)
        return {str(i): f"{bind.registered[i]!r} is not bound: its signature cannot cross to Python ({why})" for i in sorted(bad) if i in bind.registered}

    def load(self, directory: Path, unit_: unit.CppUnit, ctx: CellContext) -> LoadedModule:
        try:
            return LoadedModule(_import_module(unit_.module_name, directory / unit_.file_name))
        except ImportError as exc:
            raise _undefined_symbol_error(exc) or exc

    def bind(self, built: Built, candidate: CppCandidate, ctx: CellContext) -> dict[str, Any]:
        loaded, composed = built.loaded, built.unit
        self._say_generated_code(composed, built, ctx)
        if candidate.statements is not None:
            return dict(self._offered)  # a cell of statements binds only its -o values
        for name in composed.bind.undefined:
            owner = candidate.declarations.get(name.rsplit(".", 1)[0])
            if owner is not None and owner.cell_id == candidate.current:
                ctx.warn(f"{name!r} is not bound yet: it is declared, and no cell defines it (the cell that defines it binds it)")
        for warning in candidate.warnings:
            ctx.warn(warning)
        module = loaded.module
        module._ipolyglot_build_ = travel.module_reference(built.report.key, composed)
        names = list(composed.bind.top_names)
        names += [n for n in dir(module) if not n.startswith("_") and n not in names]
        loaded.offered = travel.prepare({n: getattr(module, n) for n in names if hasattr(module, n)}, module._ipolyglot_build_)
        return loaded.offered

    def run_statements(self, built: Built, candidate: CppCandidate, inputs: list[Any]) -> list[Any]:
        result = built.loaded.module.ipolyglot_statement(*inputs)
        return list(result) if candidate.outputs else []

    def commit(self, candidate: CppCandidate, built: Built | None) -> None:
        if built is not None:
            self._modules.append(built.loaded.module)
        if candidate.statements is not None:
            return  # statements change no declaration
        self.session = dataclasses.replace(candidate, cell=None, current="", warnings=[])
        self.declarations = candidate.declarations
        self._offered = built.loaded.offered if built is not None else {}

    # -- the session ------------------------------------------------------------------
    def emptied(self) -> CppCandidate:
        return CppCandidate(None, DeclarationStore())

    def removal(self, name: str) -> CppCandidate:
        """The session without a declaration (a class with its out-of-line members),
        unless others still use it: those are named, as Go cells name theirs, from
        the references libclang resolves in the session's code."""
        name = declaration_named(self.declarations, name)
        going = going_with(self.declarations, name)
        users = users_of(self.session, going, _compiler_path)
        if users:
            listed = ", ".join(d.name if "(private to " in d.name else f"{d.name} ({d.cell})" for d in users)
            raise ValueError(f"cannot remove {name}: still used by {listed}; remove or redefine those first")
        store = self.declarations.without(going)
        drop_stale_private(store, "", set())
        return dataclasses.replace(self.session, declarations=store)

    def info(self) -> dict[str, str]:
        return {"C++ session": f"{len(self.declarations)} declarations, {len(self._modules)} modules loaded"}

    @staticmethod
    def _say_generated_code(composed: unit.CppUnit, built: Built, ctx: CellContext) -> None:
        own = composed.objects.get(composed.current)
        if own is None:
            ctx.verbose(f"module: {built.report.path}")
        else:
            ctx.verbose(f"generated code: {ctx.cache.artifact_dir(cache_key(own.key_parts(composed.compiler))) / 'user.cpp'}")


def _debugger_cell_names(cells: CellRegistry, ids: set[str]) -> list[str]:
    """Flags that make debug information name each cell by its label (`In [5]`)
    instead of the `cell-<hash>` its #line directives use (the hash keeps
    ordinary builds cache hits whatever a cell's label)."""
    return [f"-fdebug-prefix-map={i}={cells.label(i).rstrip(':')}" for i in sorted(ids) if i in cells]


def _import_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compiler_path() -> str:
    try:
        return toolchains.find_cxx().path
    except toolchains.ToolchainError:  # without a compiler, libclang reads without its builtin headers
        return "g++"


_UNDEFINED_SYMBOL = re.compile(r"undefined symbol: (\S+)")


def _undefined_symbol_error(exc: ImportError) -> CompileError | None:
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
    tool = shutil.which("c++filt")
    if not tool:
        return symbol
    try:
        return subprocess.run([tool, symbol], capture_output=True, text=True, timeout=10).stdout.strip() or symbol
    except (OSError, subprocess.SubprocessError):
        return symbol

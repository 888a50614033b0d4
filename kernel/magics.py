"""The %%go and %%cpp cell magics and the %polyglot line magic.

This is the one path data takes: the magic parses options, hands the cell to
the language backend together with the shared build cache and toolchain
discovery, and binds the names the backend offers into the user namespace.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from importlib import metadata

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .core import toolchains
from . import inspection, native_output, tracebacks
from ._version import __version__
from .core.awaitable import with_awaitable_forms
from .core.backend import Backend, CellContext, CellResult
from .core.cache import BuildCache, CacheSecurityError
from .core.cells import CellRegistry, CellTextError, cell_label, check_text
from .core.pipeline import InProcessLoader, Pipeline
from .core.diagnostics import CompileError
from .feedback import BuildFeedback, progress_line_for
from .core.options import OptionError, make_parser, parse_line
from .worker_protocol import NativeCrash
from . import profile_view
from .core import compare
from .core.compare import split_expressions
from .core.profiling import PROFILER

# Where each language backend lives; imported on first use so a broken or
# missing backend never stops the kernel from starting.
BACKENDS = {
    "go": ("ipolyglot.go_bridge.backend", "GoBackend"),
    "cpp": ("ipolyglot.cpp_ext.backend", "CppBackend"),
}
# Magics a backend adds of its own (Backend.line_magics), registered at load
# by name, so the backend is still imported only when one is used.
BACKEND_MAGICS = {"go_pprof": "go"}

USAGE = """\
Usage: %polyglot <command>
  info                 versions, toolchains, the build cache and loaded runtimes
  cache clear          empty the build cache
  mode [worker | in-process]   where native code runs: a supervised worker process, or the kernel itself
  go | cpp             list the session's Go / C++ declarations and their cells
  go rm NAME           forget one declaration   (also: cpp rm NAME)
  go reset             forget all of them       (also: cpp reset)
  profile              what each boundary crossing cost, per native function
  profile on | off     instrument every native function built from now on
  profile reset        forget what was recorded
  compare E1 E2 ...    time expressions side by side (best, median, ratio)
%go_pprof [--heap] STATEMENT   Go's own profiler around Python code (also %%go_pprof)
"""


class PolyglotUsageError(Exception):
    """A %polyglot or cell-magic line that cannot be understood; shown with the usage."""


class NotImplementedYet(Exception):
    """A backend that is not available in this build of ipolyglot."""


MODES = ("worker", "in-process")
DEFAULT_MODE = "worker"  # a native crash costs a call, not the session; `$IPOLYGLOT_MODE=in-process` chooses in-process
IN_PROCESS_NOTE = (
    "note: native code runs inside the kernel (in-process mode): a native crash ends the kernel and an "
    "interrupt waits for the native call to return; `%polyglot mode worker` runs it in a supervised process"
)


# Errors that are the user's (or the machine's), not ipolyglot's: shown as one
# short message, never as a traceback through ipolyglot's internals.
SHORT_ERRORS = (CompileError, OptionError, PolyglotUsageError, toolchains.ToolchainError, CacheSecurityError, NotImplementedYet, CellTextError)


def _show_short_error(shell, etype, value, tb, tb_offset=None):
    name = etype.__name__
    text = value.render() if isinstance(value, CompileError) else str(value)
    header = {"CompileError": f"{getattr(value, 'language', '')} build failed".strip()}.get(name, name)
    stb = [f"\x1b[0;31m{name}\x1b[0m: {header}\n{text}" if name == "CompileError" else f"\x1b[0;31m{name}\x1b[0m: {text}"]
    shell._showtraceback(etype, value, stb)
    return stb


@magics_class
class PolyglotMagics(Magics):
    def __init__(self, shell):
        super().__init__(shell)
        self.cache = BuildCache()
        self.cells = CellRegistry()
        self.pipeline = Pipeline(InProcessLoader())
        self._backends: dict[str, Backend] = {}
        self.mode = os.environ.get("IPOLYGLOT_MODE", DEFAULT_MODE)
        if self.mode not in MODES:
            self.mode = DEFAULT_MODE
        self._worker = None  # the WorkerSupervisor, started with the first cell run in worker mode
        self._in_process_noted = False

    # -- backends --------------------------------------------------------------
    def backend(self, language: str) -> Backend:
        if language not in self._backends:
            module_name, class_name = BACKENDS[language]
            try:
                module = importlib.import_module(module_name)
                cls = getattr(module, class_name)
            except (ImportError, AttributeError) as exc:
                raise NotImplementedYet(f"%%{language} cells are not implemented yet in this build ({exc})") from None
            self._backends[language] = cls()
        return self._backends[language]

    def _cell_label(self) -> str:
        return cell_label(self.shell)

    def _apply(self, result: CellResult) -> None:
        for name in result.unbind:
            if name not in result.bind:
                self.shell.user_ns.pop(name, None)
        self.shell.user_ns.update(with_awaitable_forms(result.bind))

    def _run(self, language: str, line: str, cell: str):
        check_text(f"%%{language} {line}\n{cell}")  # as the user typed it: the %%magic line is line 1
        backend = self.backend(language)
        options = parse_line(make_parser(language, backend), line)
        feedback = BuildFeedback(quiet=options.quiet, line_factory=progress_line_for(self.shell))

        def verbose(message: str) -> None:
            if options.verbose:
                print(message, flush=True)

        def warn(message: str) -> None:
            print(f"warning: {message}", file=sys.stderr, flush=True)

        ctx = CellContext(
            cell_label=self._cell_label(),
            cache=self.cache,
            cells=self.cells,
            toolchain=backend.find_toolchain,
            verbose=verbose,
            warn=warn,
            building=feedback.building,
            profile=options.profile or PROFILER.always,
            force=options.force,
        )
        try:
            if (options.place or self.mode) == "worker":
                result = self._run_in_worker(language, line, cell, ctx)
            else:
                self._note_in_process()
                result = self.pipeline.run_cell(backend, cell, options, self.shell.user_ns, ctx)
        finally:
            native_output.drain()
        self._apply(result)
        if result.report is not None and options.verbose:
            r = result.report
            verbose(f"cache: {'hit' if r.cache_hit else 'miss'} ({r.path})" + ("" if r.cache_hit else f", built in {r.build_seconds:.2f} s"))

    # -- worker mode -------------------------------------------------------------------
    @property
    def worker_started(self) -> bool:
        return self._worker is not None

    @property
    def worker(self):
        if self._worker is None:
            from .worker_supervisor import WorkerSupervisor

            self._worker = WorkerSupervisor(rebind=lambda outcome: self._apply(CellResult(outcome.bind, outcome.unbind)))
        return self._worker

    def _session_context(self, backend: Backend) -> CellContext:
        """For `%polyglot <language> rm/reset`: the session's cache, quiet feedback, warnings shown."""
        feedback = BuildFeedback(quiet=True, line_factory=progress_line_for(self.shell))
        return CellContext(
            cell_label=self._cell_label(), cache=self.cache, cells=self.cells, toolchain=backend.find_toolchain,
            verbose=lambda message: None, warn=lambda message: print(f"warning: {message}", file=sys.stderr, flush=True),
            building=feedback.building, profile=PROFILER.always,
        )

    def _run_in_worker(self, language: str, line: str, cell: str, ctx: CellContext) -> CellResult:
        from .worker_supervisor import CellHooks

        hooks = CellHooks(ctx.verbose, ctx.warn, ctx.building, self.shell.user_ns)
        outcome = self.worker.run_cell(language, line, cell, ctx.cell_label, ctx.profile, hooks)
        return CellResult(outcome.bind, outcome.unbind, outcome if outcome.cache_hit is not None else None)

    def _note_in_process(self) -> None:
        if not self._in_process_noted:
            self._in_process_noted = True
            print(IN_PROCESS_NOTE, file=sys.stderr, flush=True)

    def _mode_command(self, rest: list[str]) -> None:
        if not rest:
            print(f"mode: {self.mode}")
        elif rest[0] in MODES:
            self.mode = rest[0]
            print(f"native cells run {'in a supervised worker process' if self.mode == 'worker' else 'inside the kernel'} from now on")
        else:
            raise PolyglotUsageError(f"unknown mode {rest[0]!r}: use `%polyglot mode worker` or `%polyglot mode in-process`")

    @cell_magic
    def go(self, line, cell):
        """Compile Go declarations into Python objects, or run Go statements."""
        self._run("go", line, cell)

    @cell_magic
    def cpp(self, line, cell):
        """Compile C++ declarations into Python objects, or run C++ statements."""
        self._run("cpp", line, cell)

    def backend_magic(self, name: str, line: str, cell: str | None = None):
        """A magic a backend adds of its own (BACKEND_MAGICS), e.g. %go_pprof.

        The backend's function gets these magics (for the shell and the mode), the
        line and the cell; a LookupError it raises with `usage` set is a usage
        error, and the user's own code failing is shown as the user's error.
        """
        backend = self.backend(BACKEND_MAGICS[name])
        try:
            bundles = backend.line_magics()[name](self, line, cell)
        except compare.ExpressionFailed as failure:
            compare.show_user_error(self.shell, failure)
            return
        except LookupError as exc:
            if not getattr(exc, "usage", False):  # the user's own code raised it
                raise
            raise PolyglotUsageError(str(exc)) from None
        finally:
            native_output.drain()
        display_bundles(bundles or [])

    # -- %polyglot ---------------------------------------------------------------
    @line_magic
    def polyglot(self, line):
        """Inspect and manage ipolyglot: `%polyglot info`, `cache clear`, `go`, `cpp`."""
        words = line.split()
        if not words:
            print(USAGE)
            return
        command, rest = words[0], words[1:]
        if command == "info" and not rest:
            print(self.info_text())
        elif command == "cache" and rest == ["clear"]:
            freed = self.cache.clear()
            print(f"cleared the build cache at {self.cache.root} ({_human(freed)} freed)")
        elif command in BACKENDS:
            self._declarations_command(command, rest)
        elif command == "mode" and len(rest) <= 1:
            self._mode_command(rest)
        elif command == "profile" and len(rest) <= 1:
            self._profile_command(rest[0] if rest else "show")
        elif command == "compare" and rest:
            self._compare(line.split(None, 1)[1])
        else:
            print(f"unknown command: %polyglot {line.strip()}\n\n{USAGE}")

    def _declarations_command(self, language: str, rest: list[str]) -> None:
        if self.mode == "worker":
            self._worker_declarations_command(language, rest)
            return
        backend = self.backend(language)
        if not rest:
            rows = backend.declarations.table()
            if not rows:
                print(f"no {backend.display_name} declarations in this session")
                return
            width = max(len(r[0]) for r in rows)
            kind_width = max(len(r[1]) for r in rows)
            for name, kind, cell in rows:
                print(f"{name:<{width}}  {kind:<{kind_width}}  {cell}")
        elif rest[0] == "rm" and len(rest) == 2:
            try:
                result = self.pipeline.remove(backend, rest[1], self._session_context(backend))
            except (KeyError, ValueError) as exc:  # no such name, or a removal the backend refuses
                raise PolyglotUsageError(exc.args[0]) from None
            self._apply(result)
            print(f"removed {rest[1]}")
        elif rest == ["reset"]:
            self._apply(self.pipeline.reset(backend, self._session_context(backend)))
            print(f"forgot every {backend.display_name} declaration of this session")
        else:
            raise PolyglotUsageError(f"unknown command: %polyglot {language} {' '.join(rest)}\n\n{USAGE}")

    def _worker_declarations_command(self, language: str, rest: list[str]) -> None:
        display_name = self.backend(language).display_name
        if not rest:
            rows = self.worker.command(language, [])
            for name, kind, cell in rows:
                print(f"{name}  {kind}  {cell}")
            if not rows:
                print(f"no {display_name} declarations in this session")
        elif (rest[0] == "rm" and len(rest) == 2) or rest == ["reset"]:
            try:
                outcome = self.worker.command(language, rest)
            except (KeyError, ValueError) as exc:  # no such name, or a removal the backend refuses
                raise PolyglotUsageError(exc.args[0]) from None
            self._apply(CellResult(outcome.bind, outcome.unbind))
            print(f"removed {rest[1]}" if rest[0] == "rm" else f"forgot every {display_name} declaration of this session")
        else:
            raise PolyglotUsageError(f"unknown command: %polyglot {language} {' '.join(rest)}\n\n{USAGE}")

    def _profile_command(self, action: str) -> None:
        if action == "on":
            PROFILER.always = True
            print("profiling every native function built from now on (rebuild a cell to instrument it)")
        elif action == "off":
            PROFILER.always = False
            print("native functions built from now on are not instrumented")
        elif action == "reset":
            PROFILER.reset()
            print("profile cleared")
        elif action == "show":
            stats = PROFILER.stats()
            if not stats:
                print("nothing recorded: build a cell with --profile or run `%polyglot profile on` and rebuild")
                return
            display_bundles(profile_view.render(stats))
        else:
            raise PolyglotUsageError(f"unknown command: %polyglot profile {action}\n\n{USAGE}")

    def _compare(self, text: str) -> None:
        expressions = split_expressions(text)
        try:
            # Each expression once first: the user's own error surfaces as theirs, and results can be compared.
            results = [compare.evaluate(e, self.shell.user_ns) for e in expressions]
            timings = [compare.time_expression(e, self.shell.user_ns) for e in expressions]
        except compare.ExpressionFailed as failure:
            compare.show_user_error(self.shell, failure)
            return
        for warning in compare.disagreements(expressions, results):
            print(warning, file=sys.stderr)
        display_bundles(profile_view.render_comparison(timings))

    def info_text(self) -> str:
        rows: list[tuple[str, str]] = [
            ("Python", f"{platform.python_version()} ({sys.executable})"),
            ("ipolyglot", __version__),
        ]
        for label, finder in (("Go", toolchains.find_go), ("C++", toolchains.find_cxx)):
            facts = toolchains.describe(finder)
            if "error" in facts:
                rows.append((label, f"not available: {facts['error']}"))
            else:
                rows.append((label, f"{facts['version']}"))
                rows.append((f"{label} path", f"{facts['path']} (found via {facts['found via']})"))
        for dist in ("pybind11", "cffi", "numpy", "ipykernel"):
            rows.append((dist, _dist_version(dist)))
        rows.append(("cache", f"{self.cache.root} ({_human(self.cache.size_bytes())})"))
        rows.append(("mode", self.mode))
        in_worker = self.mode == "worker"
        for language in BACKENDS:
            backend = self._backends.get(language)
            if backend is not None and not in_worker:
                rows.extend(backend.info().items())
        if self._worker is not None:  # the worker's runtimes; labelled as such when the session runs in-process
            rows.extend((k if in_worker or k.startswith("worker") else f"worker: {k}", v) for k, v in self._worker.info().items())
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _backend_magic_function(magics: PolyglotMagics, name: str):
    def run(line, cell=None):
        return magics.backend_magic(name, line, cell)

    run.__name__ = name
    run.__doc__ = BACKEND_MAGIC_DOCS.get(name)
    return run


BACKEND_MAGIC_DOCS = {"go_pprof": "Run Python code with Go's CPU profiler (or --heap allocations) on: top functions and a flame graph."}


def display_bundles(bundles: list[dict]) -> None:
    from IPython.display import display

    for bundle in bundles:
        display(bundle, raw=True)


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def load(shell) -> None:
    """Register the magics, short error display, native-call tracebacks and in-order native output."""
    magics = PolyglotMagics(shell)
    shell.register_magics(magics)
    for name in BACKEND_MAGICS:
        shell.register_magic_function(_backend_magic_function(magics, name), "line_cell", name)
    shell.set_custom_exc(SHORT_ERRORS + (NativeCrash,), _show_short_error)
    tracebacks.install(shell)
    inspection.install(shell)
    if native_output.install():
        shell.events.register("post_execute", native_output.drain)

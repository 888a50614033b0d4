"""Compiling and linking a %%cpp build, and reading g++'s errors back into cell lines.

A build is objects linked into one extension module:
  * the user units (the cells' code, no pybind11) at each cell's -O level, and
  * the binding unit, cached by its own text, which holds declarations only:
    either pybind11 registrations, compiled at -O1 with a precompiled header of
    pybind11 and ipolyglot's casters, or, when every bound function takes and
    returns numbers, strings or vectors of numbers, C-ABI thunks and their table
    (no pybind11: a fraction of a second), linked with the generic caller.
Any unit that includes pybind11 costs seconds (g++ emits hundreds of its
functions in every such unit, even an empty one), so a new cell of such
functions pays none of it, and a class pays it when signatures change, not
when function bodies do. The precompiled header and the generic caller are
built once per compiler and flag set and kept in the build cache's scratch space.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ipolyglot.kernel.core.backend import CellContext
from ipolyglot.kernel.core.cache import FILE_MODE, check_private, private_dir, write_private
from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.diagnostics import CompileError, Diagnostic, cell_diagnostic

from .flags import GENERIC_CALLER_SOURCE, PCH_SOURCE, generic_caller_flags, support_digest
from .unit import GENERATED_FILE, CppUnit

BIND_CODE = "the generated binding code (the cells' declarations compiled with pybind11)"


class BindingsDoNotCompile(CompileError):
    """The binding unit failed while the cells' own code compiled: some
    registrations may be what cannot cross to Python (cpp_ext/backend.py)."""


def launcher() -> list[str]:
    ccache = shutil.which("ccache")
    return [ccache] if ccache else []


class Aborted(Exception):
    """A compile stopped because a sibling compile already failed."""


def run_compiler(argv: list[str], verbose, abort=None) -> tuple[int, str]:
    """Run one compiler command; `abort()` returning true stops it early."""
    verbose("$ " + " ".join(argv))
    env = {**os.environ, "CCACHE_SLOPPINESS": "pch_defines,time_macros,include_file_mtime,include_file_ctime"}
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                if abort is not None and abort():
                    proc.kill()
                    proc.wait()
                    raise Aborted()
        log.seek(0)
        return proc.returncode, log.read()


@dataclass(frozen=True)
class SupportFile:
    """A file every build of some kind uses, compiled once per compiler and flags into
    the build cache's scratch space (the precompiled header, the generic caller)."""

    what: str  # said in messages
    target: str  # the file's name in its folder
    copies: tuple[tuple[str, Path], ...]  # (name, source) copied into its folder first: a header sits beside its .gch

    def path(self, scratch: Path, version: str, flags: list[str]) -> tuple[Path, Path]:
        """(its folder, the compiled file): keyed by the compiler's version line, so
        wrappers of one compiler (ccache, a logging script) share it."""
        home = scratch / hashlib.sha256("\n".join([version, support_digest(), *flags]).encode()).hexdigest()[:24]
        return home, home / self.target

    def get(self, scratch: Path, compiler: str, flags: list[str], version: str, verbose, command: list[str]) -> Path:
        """The compiled file, built now unless it exists; `command` ends the compiler's
        arguments (what to compile), followed by -o."""
        home, target = self.path(scratch, version, flags)
        if not target.exists():
            private_dir(home)
            with FileLock(str(home / "lock"), mode=FILE_MODE):
                if not target.exists():
                    self._build(home, target, [*launcher(), compiler, *flags, *command], verbose)
        check_private(home, target, *(home / name for name, _ in self.copies))  # what every build uses: nobody else's
        return target

    def _build(self, home: Path, target: Path, argv: list[str], verbose) -> None:
        for name, source in self.copies:
            write_private(home / name, source.read_text())
        fd, tmp = tempfile.mkstemp(prefix="building-", suffix=target.suffix, dir=home)
        os.close(fd)
        started = time.perf_counter()
        code, out = run_compiler([*argv, "-o", tmp], verbose)
        if code != 0:
            Path(tmp).unlink(missing_ok=True)
            raise CompileError("C++", [Diagnostic(f"building {self.what} failed:\n" + out.strip()[-3000:])], out)
        os.chmod(tmp, FILE_MODE)  # the compiler may have recreated it with the umask's mode
        os.rename(tmp, target)
        verbose(f"{self.what} built in {time.perf_counter() - started:.2f} s: {target}")


PCH_HEADER = "ipolyglot_pch.hpp"
PRECOMPILED_HEADER = SupportFile("the precompiled header", PCH_HEADER + ".gch", ((PCH_HEADER, PCH_SOURCE),))
GENERIC_CALLER = SupportFile("the generic caller", "ipolyglot_generic_caller.o", ())


def precompiled_header(scratch: Path, compiler: str, flags: list[str], version: str, verbose) -> Path:
    """The precompiled header for these flags (built once, then reused by every
    pybind11 binding unit). g++ ignores a header that does not match and reads
    the plain text instead, so a wrong guess only costs time.

    IPOLYGLOT_CPP_NO_PCH=1 returns the plain header instead (for measuring what
    the precompiled header saves)."""
    if os.environ.get("IPOLYGLOT_CPP_NO_PCH") == "1":
        return PCH_SOURCE
    home, _ = PRECOMPILED_HEADER.path(scratch, version, flags)
    header = home / PCH_HEADER
    PRECOMPILED_HEADER.get(scratch, compiler, flags, version, verbose, ["-x", "c++-header", str(header)])
    return header


def generic_caller(scratch: Path, compiler: str, version: str, verbose) -> Path:
    """The generic caller's object (built once, then linked into every build whose
    functions it binds: include/ipolyglot_generic_caller.cpp)."""
    return GENERIC_CALLER.get(scratch, compiler, generic_caller_flags(), version, verbose, ["-c", str(GENERIC_CALLER_SOURCE)])


_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)? (?P<sev>fatal error|error|warning|note): (?P<msg>.*)$")
_REQUIRED_FROM = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s+required from")
# An error with no line (a macro given by -D is at `<command-line>`); a note that a cell line expanded it.
_UNLOCATED = re.compile(r"^(?P<file>[^:\n]+): (?:fatal error|error): (?P<msg>.*)$")
_MACRO_NOTE = re.compile(r"^in expansion of macro ")


_NOT_IN_STD = re.compile(r"is not a member of .std.$")
_STD_HINT_TEXT = " (is an #include missing? a declaration cell sees only the headers it includes)"
_STD_HINT = re.compile(re.escape(_STD_HINT_TEXT) + "$")


def diagnostics(output: str, cells: CellRegistry, current: str, generated_what: str = "the code ipolyglot generates around the cells (-v shows it)") -> list[Diagnostic]:
    """g++ errors mapped to the cells' lines (the #line file names are cell ids).

    Every message names a line of a cell or says it is not the user's code. An
    error inside a library header that a cell line led to is shown at that line.
    Errors in generated code are dropped when a cell has errors (they follow
    from them); otherwise they are named `generated_what`."""
    in_cells: list[Diagnostic] = []
    generated: list[Diagnostic] = []
    context: tuple[str, int, int | None] | None = None  # the last cell line g++ said an instantiation came from
    outside: tuple[Diagnostic, str] | None = None  # the last error outside the cells, and what a cell line would say
    for line in output.splitlines():
        required = _REQUIRED_FROM.match(line)
        if required and _cell_line(cells, required.group("file"), int(required.group("line"))):
            context = (required.group("file"), int(required.group("line")), _int(required.group("col")))
            continue
        m = _DIAG.match(line)
        if m and m.group("sev") == "note" and "did you forget to" in m.group("msg") and in_cells:
            # g++'s own hint for a missing #include belongs with the error it follows.
            last = in_cells[-1]
            last.message = _STD_HINT.sub("", last.message) + f" ({m.group('msg')})"
            continue
        if m and m.group("sev") == "note" and _MACRO_NOTE.match(m.group("msg")) and outside and _cell_line(cells, m.group("file"), int(m.group("line"))):
            shown, said = outside  # a macro the cell line expanded: the error is that line's
            generated.remove(shown)
            in_cells.append(cell_diagnostic(cells, current, m.group("file"), int(m.group("line")), _int(m.group("col")), f"{said} ({m.group('msg')})"))
            outside = None
            continue
        unlocated = None if m else _UNLOCATED.match(line)
        if unlocated:
            outside = (Diagnostic(f"in {unlocated.group('file')}: {unlocated.group('msg')}"), unlocated.group("msg"))
            generated.append(outside[0])
            continue
        if not m or m.group("sev") not in ("error", "fatal error"):
            continue
        outside = None
        file, lineno, msg = m.group("file"), int(m.group("line")), m.group("msg")
        if _NOT_IN_STD.search(msg):
            msg += _STD_HINT_TEXT
        if _cell_line(cells, file, lineno):
            in_cells.append(cell_diagnostic(cells, current, file, lineno, _int(m.group("col")), msg))
        elif context is not None:
            in_cells.append(cell_diagnostic(cells, current, *context, f"{msg} (inside {os.path.basename(file)}, reached from this line)"))
        elif _is_generated(file):
            generated.append(Diagnostic(f"in {generated_what}: {msg}"))
        else:
            outside = (Diagnostic(f"in {os.path.basename(file)}:{lineno}: {msg}"), f"{msg} (inside {os.path.basename(file)})")
            generated.append(outside[0])
        context = None
    return _unique(in_cells) or _unique(generated)


def _is_generated(file: str) -> bool:
    return os.path.basename(file) in (GENERATED_FILE, "user.cpp", "bind.cpp") or file.startswith("cell-")


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _cell_line(cells: CellRegistry, file: str, lineno: int) -> bool:
    """Whether file:lineno is a line the cell really has (the %%cpp line is line 1)."""
    cell = cells.get(file)
    return cell is not None and 2 <= lineno <= cell.text.count("\n") + 2


def _unique(found: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in found:
        key = (d.message, d.line, d.cell)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


_REGISTER = re.compile(r"ipolyglot_register_(\d+)\(pybind11::module_ &m\)")
_BIND_LINE = re.compile(r"bind\.cpp:(\d+):\d+:(?:\s+required from here| error:)")


def failing_registrations(bind_text: str, output: str) -> set[int]:
    """Which generated registration functions g++'s errors point into."""
    starts = []
    for number, line in enumerate(bind_text.splitlines(), start=1):
        m = _REGISTER.search(line)
        if m:
            starts.append((number, int(m.group(1))))
    found = set()
    for m in _BIND_LINE.finditer(output):
        line = int(m.group(1))
        owner = [index for start, index in starts if start <= line]
        if owner:
            found.add(owner[-1])
    return found


def first_error(output: str) -> str:
    for line in output.splitlines():
        m = _DIAG.match(line)
        if m and m.group("sev") in ("error", "fatal error"):
            return m.group("msg")
    return "it does not compile"


# -- one module: the objects (in parallel, each cached by its text), then the link ------------

class ModuleBuild:
    """The build of one CppUnit into a directory: its compiles share one toolchain,
    one log of verbose lines (written from worker threads, said at the end) and
    one failure flag that stops the sibling compiles."""

    def __init__(self, unit: CppUnit, ctx: CellContext):
        self.unit = unit
        self.ctx = ctx
        self.toolchain = ctx.toolchain()
        self.pch_scratch = ctx.cache.scratch_dir("cpp-pch")
        self.caller_scratch = ctx.cache.scratch_dir("cpp-generic-caller")
        self.messages: list[str] = []
        self.failed = threading.Event()

    def run(self, out: Path) -> None:
        cells = sorted(self.unit.objects, key=lambda c: c != self.unit.current)
        with ThreadPoolExecutor(max_workers=2) as pool:
            # The cell run first, then the bindings, beside it: its errors come soonest.
            objects = [pool.submit(self.compile_object, cells[0])] if cells else []
            bind = pool.submit(self.compile_bind)
            caller = [pool.submit(self.generic_caller)] if self.unit.bind.generic else []
            objects += [pool.submit(self.compile_object, c) for c in cells[1:]]
            errors = [e for e in (_error_of(f) for f in [*objects, bind, *caller]) if e is not None]
        for line in self.messages:
            self.ctx.verbose(line)
        if errors:
            raise errors[0]
        self.link([*(f.result() for f in caller), bind.result(), *(f.result() for f in objects)], out / self.unit.file_name)

    def generic_caller(self) -> Path:
        tc = self.toolchain
        return generic_caller(self.caller_scratch, tc.path, tc.version, self.messages.append)

    def compile_object(self, cell: str) -> Path:
        unit = self.unit.objects[cell]

        def build(d: Path) -> None:
            self._compile(d / "user.cpp", unit.text, self._with_header(unit.flags) if unit.with_python else unit.flags, d / "user.o", CompileError, None)

        obj, _ = self.ctx.cache.get_or_build(unit.key_parts(self.unit.compiler), build, lambda d: d / "user.o", force=self.ctx.force)
        return obj

    def compile_bind(self) -> Path:
        """The binding object; a failure is BindingsDoNotCompile (some registrations may not cross)."""
        unit = self.unit.bind

        def build(d: Path) -> None:
            flags = unit.flags if unit.generic else self._with_header(unit.flags)
            self._compile(d / "bind.cpp", unit.text, flags, d / "bind.o", BindingsDoNotCompile, BIND_CODE)

        obj, report = self.ctx.cache.get_or_build(unit.key_parts(self.unit.compiler), build, lambda d: d / "bind.o", force=self.ctx.force)
        self.messages.append(f"binding unit: {'cached' if report.cache_hit else f'compiled in {report.build_seconds:.2f} s'} ({report.path / 'bind.cpp'})")
        return obj

    def _with_header(self, flags: list[str]) -> list[str]:
        tc = self.toolchain
        header = precompiled_header(self.pch_scratch, tc.path, flags, tc.version, self.messages.append)
        return [*flags, "-include", str(header)]

    def _compile(self, source: Path, text: str, flags: list[str], target: Path, error: type[CompileError], generated_what: str | None) -> None:
        source.write_text(text)
        cmd = [*launcher(), self.toolchain.path, *flags, "-c", str(source), "-o", str(target)]
        code, output = run_compiler(cmd, self.messages.append, self.failed.is_set)
        if code != 0:
            if error is not BindingsDoNotCompile:  # a binding failure may be retried without some registrations
                self.failed.set()
            found = diagnostics(output, self.ctx.cells, self.unit.current, *([generated_what] if generated_what else []))
            raise error("C++", found, output)

    def link(self, objects: list[Path], target: Path) -> None:
        name = self.unit.module_name
        init = "ipolyglot_generic_init" if self.unit.bind.generic else "PyInit_ipolyglot_bind"
        cmd = [*launcher(), self.toolchain.path, "-shared", *map(str, objects), "-o", str(target), f"-Wl,--defsym=PyInit_{name}={init}", *self.unit.link_flags]
        code, output = run_compiler(cmd, self.ctx.verbose)
        if code != 0:
            found = diagnostics(output, self.ctx.cells, self.unit.current) or [Diagnostic("linking failed: " + output.strip()[-2000:])]
            raise CompileError("C++", found, output)


def _error_of(future) -> CompileError | None:
    """A compile's CompileError; a compile stopped because a sibling failed is no error of its own."""
    try:
        future.result()
    except CompileError as exc:
        return exc
    except Aborted:
        return None
    return None

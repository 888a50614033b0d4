"""Compiling and linking a %%cpp build, and reading g++'s errors back into cell lines.

A build is two objects linked into one extension module:
  * the user unit (the cells' code, no pybind11) at the cell's -O level, and
  * the binding unit (pybind11 registrations), compiled at -O1 with a
    precompiled header of pybind11 and ipolyglot's casters, and cached by its
    own text, which holds declarations only.
pybind11's large fixed compile cost is thus paid when signatures change, not
when function bodies do. The precompiled header is built once per compiler
and flag set and kept in the build cache's scratch space.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from ipolyglot.kernel.core.cache import FILE_MODE, check_private, private_dir, write_private
from ipolyglot.kernel.core.diagnostics import CompileError, Diagnostic

from .templating import INCLUDE_DIR, TEMPLATES
from .unit import GENERATED_FILE

BIND_OPT = "-O1"


@dataclass
class Flags:
    """Everything from the cell's options that changes a build."""

    opt: str = "-O2"
    std: str = "c++17"
    debug: bool = False
    include_dirs: list[str] = field(default_factory=list)
    lib_dirs: list[str] = field(default_factory=list)
    libs: list[str] = field(default_factory=list)
    cflags: list[str] = field(default_factory=list)
    ldflags: list[str] = field(default_factory=list)

    def canonical(self) -> str:
        return repr((self.opt, self.std, self.debug, self.include_dirs, self.lib_dirs, self.libs, self.cflags, self.ldflags))

    def defines(self) -> list[str]:
        return [f[2:] for f in self.cflags if f.startswith("-D")]

    def common(self) -> list[str]:
        flags = [f"-std={self.std}", "-fPIC", "-fvisibility=hidden", "-fdiagnostics-color=never", "-fno-diagnostics-show-caret", "-fmax-errors=8"]
        for d in self.include_dirs:
            flags += ["-I", d]
        return flags + list(self.cflags)

    def user_compile(self) -> list[str]:
        level = ["-g", "-O0"] if self.debug else [self.opt]
        return self.common() + level

    def bind_compile(self) -> list[str]:
        return self.common() + [BIND_OPT, *python_includes()]

    def link(self) -> list[str]:
        flags = []
        for d in self.lib_dirs:
            flags += ["-L", d, f"-Wl,-rpath,{d}"]
        flags += [f"-l{lib}" for lib in self.libs]
        return flags + list(self.ldflags)


def python_includes() -> list[str]:
    import pybind11

    return ["-I", str(INCLUDE_DIR), "-I", pybind11.get_include(), "-I", sysconfig.get_paths()["include"]]


def compiler_identity() -> str:
    """Which compiler a build would use, found without starting it (cache hits
    must not run the compiler): the same search as toolchains.find_cxx, keyed
    by the binary's path, size and modification time."""
    explicit = os.environ.get("CXX")
    candidates = [explicit] if explicit else ["c++", "g++", "clang++"]
    for name in candidates:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            real = os.path.realpath(path)
            try:
                st = os.stat(real)
            except OSError:
                continue
            return f"{path}|{real}|{st.st_size}|{st.st_mtime_ns}"
    return "none"


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


def _pch_source() -> str:
    return (TEMPLATES / "pch.hpp").read_text()


@functools.lru_cache(maxsize=None)
def support_digest() -> str:
    """What every binding unit includes besides its own text (ipolyglot's header,
    pybind11, Python): part of the binding object's cache key."""
    digest = hashlib.sha256(_pch_source().encode())
    for path in sorted(INCLUDE_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    import pybind11

    digest.update(pybind11.__version__.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def precompiled_header(scratch: Path, compiler: str, flags: list[str], version: str, verbose) -> Path:
    """The precompiled header for these flags (built once, then reused by every build).

    Keyed by the compiler's version line, so wrappers (ccache, a logging
    script) of the same compiler share it; g++ ignores a header that does not
    match and reads the plain text instead, so a wrong guess only costs time.

    IPOLYGLOT_CPP_NO_PCH=1 returns the plain header instead (for measuring what
    the precompiled header saves)."""
    if os.environ.get("IPOLYGLOT_CPP_NO_PCH") == "1":
        return TEMPLATES / "pch.hpp"
    key = hashlib.sha256("\n".join([version, support_digest(), *flags]).encode()).hexdigest()[:24]
    home = scratch / key
    header = home / "ipolyglot_pch.hpp"
    gch = home / "ipolyglot_pch.hpp.gch"
    if gch.exists():
        check_private(home, header, gch)  # what every build compiles in: nobody else's
        return header
    private_dir(home)
    with FileLock(str(home / "lock"), mode=FILE_MODE):
        if gch.exists():
            check_private(home, header, gch)
            return header
        write_private(header, _pch_source())
        fd, tmp = tempfile.mkstemp(prefix="pch-", suffix=".gch", dir=home)
        os.close(fd)
        started = time.perf_counter()
        code, out = run_compiler([*launcher(), compiler, *flags, "-x", "c++-header", str(header), "-o", tmp], verbose)
        if code != 0:
            Path(tmp).unlink(missing_ok=True)
            raise CompileError("C++", [Diagnostic("building the precompiled header failed:\n" + out.strip()[-3000:])], out)
        os.chmod(tmp, FILE_MODE)  # the compiler may have recreated it with the umask's mode
        os.rename(tmp, gch)
        verbose(f"precompiled header built in {time.perf_counter() - started:.2f} s: {gch}")
    return header


_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)? (?P<sev>fatal error|error|warning|note): (?P<msg>.*)$")
_REQUIRED_FROM = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s+required from")


_NOT_IN_STD = re.compile(r"is not a member of .std.$")
_STD_HINT_TEXT = " (is an #include missing? a declaration cell sees only the headers it includes)"
_STD_HINT = re.compile(re.escape(_STD_HINT_TEXT) + "$")


@dataclass
class _CellSpot:
    file: str
    line: int
    column: int | None


def diagnostics(output: str, cells: dict[str, tuple[str, str | None]], current: str, generated_what: str = "the code ipolyglot generates around the cells (-v shows it)") -> list[Diagnostic]:
    """g++ errors mapped to cells: `cells` maps a #line file name to (cell text, label).

    Every message names a line of a cell or says it is not the user's code. An
    error inside a library header that a cell line led to is shown at that line.
    Errors in generated code are dropped when a cell has errors (they follow
    from them); otherwise they are named `generated_what`."""
    in_cells: list[Diagnostic] = []
    generated: list[Diagnostic] = []
    context: _CellSpot | None = None  # the last cell line g++ said an instantiation came from
    for line in output.splitlines():
        required = _REQUIRED_FROM.match(line)
        if required and _cell_line(cells, required.group("file"), int(required.group("line"))):
            context = _CellSpot(required.group("file"), int(required.group("line")), _int(required.group("col")))
            continue
        m = _DIAG.match(line)
        if m and m.group("sev") == "note" and "did you forget to" in m.group("msg") and in_cells:
            # g++'s own hint for a missing #include belongs with the error it follows.
            last = in_cells[-1]
            last.message = _STD_HINT.sub("", last.message) + f" ({m.group('msg')})"
            continue
        if not m or m.group("sev") not in ("error", "fatal error"):
            continue
        file, lineno, msg = m.group("file"), int(m.group("line")), m.group("msg")
        if _NOT_IN_STD.search(msg):
            msg += _STD_HINT_TEXT
        if _cell_line(cells, file, lineno):
            in_cells.append(_cell_diagnostic(cells, current, _CellSpot(file, lineno, _int(m.group("col"))), msg))
        elif context is not None:
            where = os.path.basename(file)
            in_cells.append(_cell_diagnostic(cells, current, context, f"{msg} (inside {where}, reached from this line)"))
        elif _is_generated(file):
            generated.append(Diagnostic(f"in {generated_what}: {msg}"))
        else:
            generated.append(Diagnostic(f"in {os.path.basename(file)}:{lineno}: {msg}"))
        context = None
    return _unique(in_cells) or _unique(generated)


def _is_generated(file: str) -> bool:
    return os.path.basename(file) in (GENERATED_FILE, "user.cpp", "bind.cpp") or file.startswith("cell-")


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _cell_line(cells: dict[str, tuple[str, str | None]], file: str, lineno: int) -> bool:
    """Whether file:lineno is a line the cell really has (the %%cpp line is line 1)."""
    return file in cells and 2 <= lineno <= cells[file][0].count("\n") + 2


def _cell_diagnostic(cells, current: str, spot: _CellSpot, message: str) -> Diagnostic:
    text, label = cells[spot.file]
    lines = text.split("\n")
    source = lines[spot.line - 2] if 0 <= spot.line - 2 < len(lines) else None
    column = spot.column if source is not None and source.strip() else None
    return Diagnostic(message, spot.line, column, source if source and source.strip() else None, None if spot.file == current else label)


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

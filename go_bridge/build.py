"""`go build` of a generated package, and its messages in the user's terms.

The one place the Go library is compiled: a cell's build (backend.py) and a
build opened in another process (travel.py) both call `go_build`. Compiler
output names cells by their ids (`//line cell-…:N`); `diagnostics` maps it to
cell lines through the shared kernel/core/diagnostics.cell_diagnostic, and
keeps Go's own cases: module progress lines, missing modules, the `-o` line
of a cell of statements, notes pointing into generated code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.diagnostics import Diagnostic, cell_diagnostic

from . import codegen
from .toolchain import GoTool

LIBRARY_NAME = "libgocell.so"
_DIAGNOSTIC = re.compile(r"^(?P<file>[^\s#][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<msg>.*)$")
_MISSING_MODULE = re.compile(
    r"(no required module provides package|cannot find module providing package|module lookup disabled|"
    r"dial tcp|no such host|connection refused|GOPROXY|unrecognized import path|missing go.sum entry|"
    r"reading https?://\S+: \d{3} )"
)
_MODULE_PROGRESS = re.compile(r"^go: (finding module for package|downloading|found|added|upgraded) ")
_GENERATED_FILE = re.compile(r"\S*\b(glue|consts|statements)\.go:\d+(:\d+)?")
_PACKAGE_PATH = re.compile(r"^[\w.\-]+(/[\w.\-]+)*$")  # a line of `go build -v`
MODULE_NOT_FETCHED = (
    " (a Go module the cell imports could not be fetched: check %%go --require MODULE@VERSION, or the network)"
)


@dataclass(frozen=True)
class GoFlags:
    """The cell's options that change what `go build` produces (kept as data, rendered once)."""

    gcflags: str = ""
    ldflags: str = ""
    tags: str = ""
    race: bool = False

    def arguments(self) -> list[str]:
        flags = []
        if self.gcflags:
            flags.append(f"-gcflags={self.gcflags}")
        flags.append("-ldflags=" + " ".join(filter(None, ["-s -w", self.ldflags])))
        if self.tags:
            flags.append(f"-tags={self.tags}")
        if self.race:
            flags.append("-race")
        return flags


@dataclass(frozen=True)
class GoBuildRun:
    """A finished `go build`: what ran, how long, what it compiled, what it said."""

    command: list[str]
    seconds: float
    returncode: int
    stderr: str

    @property
    def compiled(self) -> list[str]:
        """The packages `go build -v` compiled (not taken from Go's build cache), in its order."""
        return [line for line in self.stderr.splitlines() if _PACKAGE_PATH.match(line)]


def key_parts(go: GoTool, files: dict[str, str], flags: list[str]) -> dict[str, str]:
    """Everything that changes the library: the package, the bridge runtime, the toolchain, flags, environment."""
    return {
        "kind": "go-library",
        "files": json.dumps(sorted(files.items())),
        "runtime": codegen.RUNTIME_HASH,
        "toolchain": go.identity(),
        "flags": json.dumps(flags),
        "env": go.build_env_key(),
    }


def go_build(go: GoTool, files: dict[str, str], flags: list[str], directory: Path) -> GoBuildRun:
    """Write the package into `directory`/src and build `directory`/libgocell.so from it."""
    src = directory / "src"
    src.mkdir()
    for name, text in files.items():
        (src / name).parent.mkdir(exist_ok=True)  # a cell package's folder
        (src / name).write_text(text)
    # -v names the packages compiled (not taken from Go's build cache).
    command = [go.toolchain().path, "build", "-buildmode=c-shared", "-trimpath", "-o", str(directory / LIBRARY_NAME), *flags, "-v", "."]
    goflags = " ".join(filter(None, [os.environ.get("GOFLAGS", ""), "-mod=mod"]))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=src, env=go.env({"GOFLAGS": goflags}), capture_output=True, text=True)
    return GoBuildRun(command, time.perf_counter() - started, done.returncode, done.stderr)


def diagnostics(stderr: str, cells: CellRegistry, current: str) -> list[Diagnostic]:
    """`go build`'s messages in the user's terms: cell lines (other cells by label), else plain."""
    found: list[Diagnostic] = []
    for line in stderr.splitlines():
        if not line.strip() or line.startswith("#") or _MODULE_PROGRESS.match(line) or _PACKAGE_PATH.match(line):
            continue
        if line.split(": ", 1)[0] in cells:  # the C compiler's "In function" of a cgo preamble
            continue
        match = _DIAGNOSTIC.match(line)
        in_cell = match and match["file"] in cells
        if in_cell:
            message = match["msg"] + (MODULE_NOT_FETCHED if _MISSING_MODULE.search(match["msg"]) else "")
            found.append(cell_diagnostic(
                cells, current, match["file"], int(match["line"]), int(match["col"]) if match["col"] else None, message
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


def _in_user_terms(continuation: str) -> str:
    """A compiler note that points into generated code, told without the generated file's name."""
    return _GENERATED_FILE.sub("(code ipolyglot generates)", continuation)

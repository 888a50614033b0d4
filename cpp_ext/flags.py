"""What a %%cpp cell's options change in a build, kept as data (lists of arguments),
and what else names a build: the compiler and ipolyglot's own support files."""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shlex
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ipolyglot.kernel.core.toolchains import binary_stamp, cxx_candidate

HERE = Path(__file__).resolve().parent
INCLUDE_DIR = HERE / "include"
PCH_SOURCE = HERE / "templates" / "pch.hpp"
GENERIC_CALLER_SOURCE = INCLUDE_DIR / "ipolyglot_generic_caller.cpp"
BIND_OPT = "-O1"


@dataclass(frozen=True)
class Flags:
    """Everything from one cell's options that changes a build."""

    opt: str = "-O2"
    std: str = "c++17"
    debug: bool = False
    include_dirs: tuple[str, ...] = ()
    lib_dirs: tuple[str, ...] = ()
    libs: tuple[str, ...] = ()
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: argparse.Namespace) -> "Flags":
        return cls(
            opt=options.opt or "-O2",
            std=options.std,
            debug=options.debug,
            include_dirs=tuple(os.path.abspath(d) for d in options.include_dirs),
            lib_dirs=tuple(os.path.abspath(d) for d in options.lib_dirs),
            libs=tuple(options.libs),
            cflags=tuple(shlex.split(options.cflags)),
            ldflags=tuple(shlex.split(options.ldflags)),
        )

    def defines(self) -> list[str]:
        return [f[2:] for f in self.cflags if f.startswith("-D")]

    def common(self, include_dirs: list[str]) -> list[str]:
        """Every unit sees every cell's #includes, so it gets the session's include directories."""
        flags = [f"-std={self.std}", "-fPIC", "-fvisibility=hidden", "-fdiagnostics-color=never", "-fno-diagnostics-show-caret", "-fmax-errors=8"]
        for d in include_dirs:
            flags += ["-I", d]
        return flags + list(self.cflags)

    def user_compile(self, include_dirs: list[str]) -> list[str]:
        return self.common(include_dirs) + (["-g", "-O0"] if self.debug else [self.opt])

    def bind_compile(self, include_dirs: list[str]) -> list[str]:
        return self.common(include_dirs) + [BIND_OPT, *python_includes()]

    def generic_bind_compile(self, include_dirs: list[str]) -> list[str]:
        """The generic binding unit includes no pybind11 or Python: only ipolyglot_abi.hpp."""
        return self.common(include_dirs) + [BIND_OPT, "-I", str(INCLUDE_DIR)]

    def link(self) -> list[str]:
        flags = []
        for d in self.lib_dirs:
            flags += ["-L", d, f"-Wl,-rpath,{d}"]
        flags += [f"-l{lib}" for lib in self.libs]
        return flags + list(self.ldflags)


def generic_caller_flags() -> list[str]:
    """The generic caller's own flags: it sees no cell's code, so no cell's options; -O2,
    as it is compiled once and every call of a generic build runs it."""
    return ["-std=c++17", "-fPIC", "-fvisibility=hidden", "-fdiagnostics-color=never", "-O2", *python_includes()]


def session_include_dirs(flags: list[Flags]) -> list[str]:
    return list(dict.fromkeys(d for f in flags for d in f.include_dirs))


def python_includes() -> list[str]:
    import pybind11

    return ["-I", str(INCLUDE_DIR), "-I", pybind11.get_include(), "-I", sysconfig.get_paths()["include"]]


def compiler_identity() -> str:
    """Which compiler a build would use, found without starting it (a cache hit
    must not run the compiler): find_cxx's choice, by path, size and mtime."""
    found = cxx_candidate()
    return (binary_stamp(found[0]) if found else None) or "none"


@functools.lru_cache(maxsize=None)
def support_digest() -> str:
    """What every binding unit includes besides its own text (ipolyglot's header,
    pybind11, Python): part of the binding object's cache key."""
    digest = hashlib.sha256(PCH_SOURCE.read_bytes())
    for path in sorted(INCLUDE_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    import pybind11

    digest.update(pybind11.__version__.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()

"""The compiled caller of scalar Go functions (templates/fastcall.c), built once per
machine and Python into the build cache.

A scalar Go function called through cffi's ABI mode pays libffi and a Python
wrapper function on top of the cgo crossing; a FastCall object converts its
arguments, releases the GIL and calls the library's slot entry point in C.
Where the extension cannot be built (no Python headers), `load` gives None and
scalar functions keep the cffi path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ipolyglot.kernel.core.cache import BuildCache, BuildFailed

from .templating import TEMPLATES

SOURCE_NAME = "fastcall.c"
MODULE = "ipolyglot_fastcall"

# Go scalar type -> the parameter/result code fastcall.c converts by.
CODES = {
    "bool": "?", "int": "q", "int8": "b", "int16": "h", "int32": "i", "int64": "q", "uint": "Q", "uint8": "B",
    "uint16": "H", "uint32": "I", "uint64": "Q", "uintptr": "Q", "float32": "f", "float64": "d", "byte": "B",
    "rune": "i",
}
NO_RESULT = "v"
MAX_PARAMS = 16  # fastcall.c's: a function with more takes the cffi path


def takes(ins: tuple[str, ...]) -> bool:
    """Whether the compiled caller can call a scalar function with these parameters."""
    return len(ins) <= MAX_PARAMS


def available() -> bool:
    """Whether this machine has what building the caller takes (a C compiler, Python's headers):
    builds then give scalar functions its entry points (codegen's slot_entries)."""
    return bool(_compiler()[0]) and (_include() / "Python.h").exists()


def load(cache: BuildCache) -> type | None:
    """The FastCall type, compiled into `cache` the first time; None when it cannot be built."""
    loaded = sys.modules.get(MODULE)
    if loaded is not None:
        return loaded.FastCall
    if not available():
        return None
    compiler, include = _compiler(), _include()
    source = TEMPLATES.text(SOURCE_NAME)
    parts = {"kind": "go-fastcall", "source": hashlib.sha256(source.encode()).hexdigest(), "compiler": " ".join(compiler)}
    try:
        path, _ = cache.get_or_build(parts, lambda d: _compile(compiler, include, source, d), _library)
    except (BuildFailed, OSError):
        return None
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[MODULE] = module
    return module.FastCall


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CC", "")) or [shutil.which("cc") or shutil.which("gcc") or ""]


def _include() -> Path:
    return Path(sysconfig.get_paths()["include"])


def codes(ins: tuple[str, ...], out: str) -> tuple[str, str]:
    """The parameter codes and the result code of a scalar signature."""
    return "".join(CODES[t] for t in ins), CODES[out] if out else NO_RESULT


def _library(directory: Path) -> Path:
    path = _library_name(directory)
    if not path.exists():
        raise BuildFailed(f"{path} is missing")
    return path


def _compile(compiler: list[str], include: Path, source: str, directory: Path) -> None:
    (directory / SOURCE_NAME).write_text(source)
    done = subprocess.run(
        [*compiler, "-O2", "-shared", "-fPIC", f"-I{include}", SOURCE_NAME, "-o", _library_name(directory).name],
        cwd=directory, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BuildFailed(f"compiling {SOURCE_NAME} failed:\n{done.stderr}")


def _library_name(directory: Path) -> Path:
    return directory / f"{MODULE}{sysconfig.get_config_var('EXT_SUFFIX')}"

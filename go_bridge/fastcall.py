"""The compiled caller of scalar Go functions (runtime/fastcall.c), built once per
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
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ipolyglot.kernel.core.cache import BuildCache, BuildFailed

SOURCE = Path(__file__).resolve().parent / "runtime" / "fastcall.c"
MODULE = "ipolyglot_fastcall"

# Go scalar type -> the parameter/result code fastcall.c converts by.
CODES = {
    "bool": "?", "int": "q", "int8": "b", "int16": "h", "int32": "i", "int64": "q", "uint": "Q", "uint8": "B",
    "uint16": "H", "uint32": "I", "uint64": "Q", "uintptr": "Q", "float32": "f", "float64": "d", "byte": "B",
    "rune": "i",
}
NO_RESULT = "v"


def load(cache: BuildCache) -> type | None:
    """The FastCall type, compiled into `cache` the first time; None when it cannot be built."""
    loaded = sys.modules.get(MODULE)
    if loaded is not None:
        return loaded.FastCall
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    include = Path(sysconfig.get_paths()["include"])
    if compiler is None or not (include / "Python.h").exists():
        return None
    source = SOURCE.read_bytes()
    parts = {"kind": "go-fastcall", "source": hashlib.sha256(source).hexdigest(), "compiler": compiler}
    try:
        path, _ = cache.get_or_build(parts, lambda d: _compile(compiler, include, d), _library)
    except (BuildFailed, OSError):
        return None
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[MODULE] = module
    return module.FastCall


def codes(ins: tuple[str, ...], out: str) -> tuple[str, str]:
    """The parameter codes and the result code of a scalar signature."""
    return "".join(CODES[t] for t in ins), CODES[out] if out else NO_RESULT


def _library(directory: Path) -> Path:
    path = _library_name(directory)
    if not path.exists():
        raise BuildFailed(f"{path} is missing")
    return path


def _compile(compiler: str, include: Path, directory: Path) -> None:
    done = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", f"-I{include}", str(SOURCE), "-o", str(_library_name(directory))],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BuildFailed(f"compiling {SOURCE.name} failed:\n{done.stderr}")


def _library_name(directory: Path) -> Path:
    return directory / f"{MODULE}{sysconfig.get_config_var('EXT_SUFFIX')}"

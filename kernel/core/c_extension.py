"""Small CPython extensions of ipolyglot's own (a compiled caller, the worker's shared-memory
lane), each compiled once per machine, compiler and Python into the build cache and imported
from there. Where the compiler or Python's headers are missing, `load` gives None and the
caller keeps its pure-Python path.
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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .cache import BuildCache, BuildFailed


@dataclass(frozen=True)
class CExtension:
    """One extension module: its import name, the C file it is compiled from, and a cache kind."""

    module: str
    source: str  # the C source text
    kind: str  # the build cache's "kind" part

    @property
    def file_name(self) -> str:
        return f"{self.module}.c"


def available() -> bool:
    """Whether this machine has what building an extension takes (a C compiler, Python's headers)."""
    return bool(compiler()[0]) and (include_dir() / "Python.h").exists()


def compiler() -> list[str]:
    return shlex.split(os.environ.get("CC", "")) or [shutil.which("cc") or shutil.which("gcc") or ""]


def include_dir() -> Path:
    return Path(sysconfig.get_paths()["include"])


def load(extension: CExtension, cache: BuildCache | None = None) -> ModuleType | None:
    """The extension's module, compiled into `cache` the first time; None when it cannot be built."""
    loaded = sys.modules.get(extension.module)
    if loaded is not None:
        return loaded
    if not available():
        return None
    command = compiler()
    parts = {"kind": extension.kind, "source": hashlib.sha256(extension.source.encode()).hexdigest(),
             "compiler": " ".join(command), "python": sysconfig.get_config_var("EXT_SUFFIX")}
    try:
        path, _ = (cache or BuildCache()).get_or_build(
            parts, lambda directory: _compile(extension, command, directory), lambda directory: _library(extension, directory)
        )
    except (BuildFailed, OSError):
        return None
    spec = importlib.util.spec_from_file_location(extension.module, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[extension.module] = module
    return module


def _library_path(extension: CExtension, directory: Path) -> Path:
    return directory / f"{extension.module}{sysconfig.get_config_var('EXT_SUFFIX')}"


def _library(extension: CExtension, directory: Path) -> Path:
    path = _library_path(extension, directory)
    if not path.exists():
        raise BuildFailed(f"{path} is missing")
    return path


def _compile(extension: CExtension, command: list[str], directory: Path) -> None:
    (directory / extension.file_name).write_text(extension.source)
    done = subprocess.run(
        [*command, "-O2", "-shared", "-fPIC", f"-I{include_dir()}", extension.file_name,
         "-o", _library_path(extension, directory).name],
        cwd=directory, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BuildFailed(f"compiling {extension.file_name} failed:\n{done.stderr}")

"""Go builds opened by reference in another process (the Go half of kernel/core/travel.py).

A Go build unit is the generated package (its files), the `go build` flags,
the bridge runtime's hash and what binding needs (the plan's function table
and doc comments). In the receiving process the library is taken from the
cache under the sender's key; when it is not there it is built again from the
unit, with this machine's Go, under this machine's key. Struct classes travel
as (name, fields, types, build) and their values as a class plus fields.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.cache import BuildCache, BuildFailed
from ipolyglot.kernel.core.toolchains import ToolchainError
from ipolyglot.kernel.core.travel import BY_REFERENCE_METACLASSES, LOADED_BUILDS, build_reference, known_in_main, loaded

from . import codegen, library
from .marshal import GoStruct, GoStructType
from .toolchain import GoTool

_RUNTIME_REPLACE = re.compile(r"^replace ipolyglot\.local/ipgrt => .*$", re.M)


def build_unit(plan: codegen.Plan, flags: list[str]) -> dict:
    """What another process needs to build this library again and bind it (plain data)."""
    return {
        "files": dict(plan.files),
        "flags": list(flags),
        "runtime": codegen.RUNTIME_HASH,
        "funcs": plan.funcs,
        "docs": dict(plan.docs),
        "var_texts": dict(plan.var_texts),
    }


def library_reference(key: str, plan: codegen.Plan, flags: list[str]) -> dict:
    return build_reference("go", key, build_unit(plan, flags))


def open_build(unit: dict, key: str, cache: BuildCache) -> dict:
    """The names a Go build binds (functions, struct classes, constants), loaded in this process."""
    from .backend import LIBRARY_NAME, GoBackend

    if unit["runtime"] != codegen.RUNTIME_HASH:
        raise ToolchainError(
            "a Go function arrived from an ipolyglot whose Go bridge differs from this process's; "
            "install the same ipolyglot version on both sides"
        )
    path = cache.artifact_dir(key) / LIBRARY_NAME
    if path.exists():
        cache.verify_artifact(path.parent)
    else:
        path = _rebuild(unit, key, cache)
    lib = library.GoLibrary(path)
    lib.travel_build = build_reference("go", key, unit)  # onward, it names the sender's build
    plan = codegen.Plan(files=unit["files"], funcs=unit["funcs"], docs=unit["docs"], var_texts=unit["var_texts"])
    quiet = SimpleNamespace(warn=lambda message: None, verbose=lambda message: None)
    return GoBackend()._bind(lib, plan, quiet, "", []).bind


def _where() -> str:
    return f"process {os.getpid()} on {socket.gethostname()}"


def _rebuild(unit: dict, key: str, cache: BuildCache) -> Path:
    """Build the library from its unit with this machine's Go (its cache lacks the sender's build)."""
    from .backend import LIBRARY_NAME

    go = GoTool(cache, toolchains.find_go)
    try:
        identity = go.identity()
    except (ToolchainError, OSError) as exc:
        raise ToolchainError(
            f"a Go function arrived in {_where()}, whose cache ({cache.root}) lacks its build {key[:12]}, "
            f"and it cannot be rebuilt here: {exc}"
        ) from None
    runtime_dir, _ = cache.get_or_build({"kind": "go-runtime", "runtime": codegen.RUNTIME_HASH}, codegen.write_runtime, lambda d: d)
    files = dict(unit["files"])
    files["go.mod"] = _RUNTIME_REPLACE.sub(lambda m: f"replace ipolyglot.local/ipgrt => {runtime_dir}", files["go.mod"])
    flags = list(unit["flags"])
    parts = {  # as GoBackend._build names it: the same machine and cache give the sender's key
        "kind": "go-library",
        "files": json.dumps(sorted(files.items())),
        "runtime": codegen.RUNTIME_HASH,
        "toolchain": identity,
        "flags": json.dumps(flags),
        "env": go.build_env_key(),
    }

    def build(directory: Path) -> None:
        src = directory / "src"
        src.mkdir()
        for name, text in files.items():
            (src / name).parent.mkdir(exist_ok=True)
            (src / name).write_text(text)
        command = [go.toolchain().path, "build", "-buildmode=c-shared", "-trimpath", "-o", str(directory / LIBRARY_NAME), *flags, "."]
        goflags = " ".join(filter(None, [os.environ.get("GOFLAGS", ""), "-mod=mod"]))
        done = subprocess.run(command, cwd=src, env=go.env({"GOFLAGS": goflags}), capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildFailed(f"rebuilding a Go function's library in {_where()} failed: {done.stderr.strip()[-2000:]}")

    directory, _ = cache.get_or_build(parts, build, lambda d: d)
    return directory / LIBRARY_NAME


# -- struct classes and values ----------------------------------------------------------

# Every struct class travels by reference (marshal.py's copyreg entry), cloudpickle included.
BY_REFERENCE_METACLASSES.add(GoStructType)


def struct_class_reference(cls: type) -> tuple:
    """(name, fields, types, build or None): enough to find the class again, or make a bare one."""
    return (cls._go_name_, tuple(cls._go_fields_), tuple(cls._go_types_), getattr(cls, "_go_build_", None))


def reduce_struct_class(cls: type):
    if cls is GoStruct:
        return "GoStruct"  # the base class itself: by its importable name
    return resolve_struct_class, struct_class_reference(cls)


def reduce_struct_value(value: GoStruct):
    return rebuild_struct_value, (struct_class_reference(type(value)), value.__dict__.copy())


def resolve_struct_class(name: str, fields: tuple, types: tuple, build: dict | None) -> type:
    """The struct class from its build (with its methods), the one `__main__` binds (a worker-mode
    kernel's copy: no Go runtime is loaded for it), or a bare class of the same shape."""

    def same_shape(found) -> bool:
        return isinstance(found, type) and issubclass(found, GoStruct) and tuple(found._go_types_) == tuple(types) \
            and tuple(found._go_fields_) == tuple(fields)

    if build is not None and loaded(build) and same_shape(found := LOADED_BUILDS.namespace(build).get(name)):
        return found
    if (found := known_in_main(name, same_shape)) is not None:
        return found
    if build is not None and same_shape(found := LOADED_BUILDS.namespace(build).get(name)):
        return found

    def bare() -> type:
        return type(name, (GoStruct,), {"_go_name_": name, "_go_fields_": tuple(fields), "_go_types_": tuple(types), "__module__": "__main__"})

    return LOADED_BUILDS.memo(("go-struct", name, tuple(fields), tuple(types)), bare)


def rebuild_struct_value(class_reference: tuple, fields: dict) -> GoStruct:
    cls = resolve_struct_class(*class_reference)
    value = cls.__new__(cls)
    value.__dict__.update(fields)
    return value

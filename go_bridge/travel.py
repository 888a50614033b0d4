"""Go builds opened by reference in another process (the Go half of kernel/core/travel.py).

A Go build unit is the generated package (its files), the `go build` flags,
the bridge runtime's hash and what binding needs (the plan's function table
and doc comments). In the receiving process the library is taken from the
cache under the sender's key; when it is not there it is built again from the
unit, with this machine's Go, under this machine's key. Struct classes travel
as (name, fields, types, build) and their values as a class plus fields.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.cache import BuildCache, BuildFailed
from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.toolchains import ToolchainError
from ipolyglot.kernel.core.travel import BY_REFERENCE_METACLASSES, LOADED_BUILDS, build_reference, known_in_main, loaded

from . import codegen, fastcall, library
from .build import LIBRARY_NAME, go_build, key_parts
from .inspector import FastSignature
from .marshal import GoStruct, GoStructMeta
from .toolchain import GoTool

def build_unit(plan: codegen.Plan, flags: list[str]) -> dict:
    """What another process needs to build this library again and bind it (plain data)."""
    return {
        "files": dict(plan.files),
        "module": dataclasses.asdict(plan.module),
        "flags": list(flags),
        "runtime": codegen.RUNTIME_HASH,
        "funcs": [dataclasses.asdict(entry) for entry in plan.funcs],
        "docs": dict(plan.docs),
        "var_texts": dict(plan.var_texts),
    }


def _plan(unit: dict) -> codegen.Plan:
    """The plan a build unit came from, as far as binding needs it."""
    funcs = []
    for entry in unit["funcs"]:
        fast = entry["fast"]
        if fast is not None:
            signature = FastSignature(tuple(fast["signature"]["ins"]), fast["signature"]["out"])
            fast = codegen.FastEntry(fast["index"], signature, fast.get("slots", False))
        funcs.append(codegen.FuncEntry(entry["name"], tuple(entry["params"]), entry["id"], entry["cell_id"], fast))
    return codegen.Plan(files=unit["files"], funcs=funcs, docs=unit["docs"], var_texts=unit["var_texts"])


def library_reference(key: str, plan: codegen.Plan, flags: list[str]) -> dict:
    return build_reference("go", key, build_unit(plan, flags))


def open_build(unit: dict, key: str, cache: BuildCache) -> dict:
    """The names a Go build binds (functions, struct classes, constants), loaded in this process."""
    from .backend import GoBackend

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
    backend = GoBackend()
    lib = library.GoLibrary(path, backend.session, CellRegistry(), fastcall.load(cache))
    lib.travel_build = build_reference("go", key, unit)  # onward, it names the sender's build
    return backend.names_of(lib, _plan(unit), lambda message: None)


def _where() -> str:
    return f"process {os.getpid()} on {socket.gethostname()}"


def _rebuild(unit: dict, key: str, cache: BuildCache) -> Path:
    """Build the library from its unit with this machine's Go (its cache lacks the sender's build)."""
    go = GoTool(cache, toolchains.find_go)
    try:
        go.identity()
    except (ToolchainError, OSError) as exc:
        raise ToolchainError(
            f"a Go function arrived in {_where()}, whose cache ({cache.root}) lacks its build {key[:12]}, "
            f"and it cannot be rebuilt here: {exc}"
        ) from None
    runtime_dir, _ = cache.get_or_build({"kind": "go-runtime", "runtime": codegen.RUNTIME_HASH}, codegen.write_runtime, lambda d: d)
    files = dict(unit["files"])
    module = unit["module"]
    files["go.mod"] = codegen.GoModule(module["go_version"], tuple(map(tuple, module["requires"]))).render(runtime_dir)
    flags = list(unit["flags"])

    def build(directory: Path) -> None:
        run = go_build(go, files, flags, directory)
        if run.returncode != 0:
            raise BuildFailed(f"rebuilding a Go function's library in {_where()} failed: {run.stderr.strip()[-2000:]}")

    # As GoBackend.compose names it: the same machine and cache give the sender's key.
    directory, _ = cache.get_or_build(key_parts(go, files, flags), build, lambda d: d)
    return directory / LIBRARY_NAME


# -- struct classes and values ----------------------------------------------------------

# Every struct class travels by reference (marshal.py's copyreg entry), cloudpickle included.
BY_REFERENCE_METACLASSES.add(GoStructMeta)


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

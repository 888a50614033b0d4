"""C++ builds opened by reference in another process (the C++ half of kernel/core/travel.py).

A C++ build is one extension module in the cache, named by its key. Its
functions and classes travel as references; values of a struct whose state is
its public fields travel as those fields and are rebuilt by the receiving
build's class; an enum member travels as its class and name, so that it
arrives as a member of the receiving build's own enum (the one its functions
accept). Instances of other classes hold state Python cannot see, so they
refuse to pickle, naming the class.

A C++ build unit is the composed module as plain data: each cell's object unit
(text, compile flags), the binding unit (text, flags), the link flags and the
module's names. The key parts are made from these and the compiler's identity
(cpp_ext/unit.py `assembled`), so a receiving process lacking the sender's
build rebuilds it with ModuleBuild, the backend's own build step, with this
machine's compiler: on the sender's machine that is the sender's key.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import json
import os
import socket
from pathlib import Path

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.backend import CellContext
from ipolyglot.kernel.core.cache import BuildCache, BuildFailed
from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.diagnostics import CompileError
from ipolyglot.kernel.core.native_signature import constructor_signature
from ipolyglot.kernel.core.pipeline import DROPPED_FILE
from ipolyglot.kernel.core.toolchains import ToolchainError
from ipolyglot.kernel.core.travel import LOADED_BUILDS, build_reference, known_in_main, loaded, resolve, traveling

from .build import ModuleBuild
from .flags import compiler_identity, python_includes
from .unit import BindingUnit, CppUnit, ObjectUnit, assembled

# Stands for this machine's pybind11 and Python include flags in a travelling unit.
PYTHON_INCLUDES = "<ipolyglot: python includes>"


def module_reference(key: str, composed: CppUnit) -> dict:
    return build_reference("cpp", key, build_unit(composed))


def build_unit(composed: CppUnit) -> dict:
    """What another process needs to build this module again (plain data)."""
    return {
        "module": composed.module_name,
        "file": composed.file_name,
        "objects": {
            cell: {"text": unit.text, "flags": _portable(unit.flags), "with_python": unit.with_python}
            for cell, unit in composed.objects.items()
        },
        "bind": {"text": composed.bind.text, "flags": _portable(composed.bind.flags), "generic": composed.bind.generic},
        "link": list(composed.link_flags),
        "dropped": dict(composed.dropped),
    }


def _portable(flags: list[str]) -> list[str]:
    """The flags with this machine's include paths of pybind11 and Python as a placeholder:
    another machine has them elsewhere."""
    local = python_includes()
    out, i = [], 0
    while i < len(flags):
        if flags[i:i + len(local)] == local:
            out.append(PYTHON_INCLUDES)
            i += len(local)
        else:
            out.append(flags[i])
            i += 1
    return out


def _local(flags: list[str]) -> list[str]:
    return [f for flag in flags for f in (python_includes() if flag == PYTHON_INCLUDES else [flag])]


def local_unit(unit: dict) -> CppUnit:
    """The travelled module as this machine composes it: its include paths, its compiler's key."""
    objects = {cell: ObjectUnit(o["text"], _local(o["flags"]), o["with_python"]) for cell, o in unit["objects"].items()}
    bind = BindingUnit(unit["bind"]["text"], _local(unit["bind"]["flags"]), generic=unit["bind"].get("generic", False))
    composed = assembled(objects, bind, list(unit["link"]), compiler_identity())
    composed.dropped = dict(unit.get("dropped", {}))
    return composed


def prepare(bind: dict, build: dict | None) -> dict:
    """The names a module binds, made to travel: functions by reference, struct values by fields;
    a class gets its constructor's annotated signature (`Counter(start: int)`)."""
    for value in bind.values():
        if isinstance(value, type) and not issubclass(value, enum.Enum):
            signature = constructor_signature(value)
            if signature is not None:
                value.__signature__ = signature
    if build is None:
        return bind
    ready = {}
    for name, value in bind.items():
        if isinstance(value, type):
            if issubclass(value, enum.Enum):
                value.__reduce_ex__ = _member_reducer(build, name)
            elif hasattr(value, "_ipolyglot_fields"):
                value.__reduce__ = _value_reducer(build, name)
        elif callable(value) and type(value).__name__ == "builtin_function_or_method":
            value = traveling(value, build, name)
        ready[name] = value
    LOADED_BUILDS.remember(build, ready)
    return ready


def _value_reducer(build: dict, class_name: str):
    def reduce(instance):
        fields = tuple(type(instance)._ipolyglot_fields)
        if not fields:
            raise TypeError(
                f"a C++ {class_name} cannot be copied to another process: its state is not public fields "
                "(only value-like structs travel); send the arguments that create it instead"
            )
        return rebuild_value, (build, class_name, {field: getattr(instance, field) for field in fields})

    return reduce


def _member_reducer(build: dict, class_name: str):
    def reduce_ex(member, protocol):
        return rebuild_member, (build, class_name, member.name)

    return reduce_ex


def rebuild_member(build: dict, class_name: str, member_name: str):
    """The member of the build's enum, or of the copy a worker-mode kernel binds (the build stays unloaded)."""

    def has_member(found) -> bool:
        return isinstance(found, type) and issubclass(found, enum.Enum) and member_name in found.__members__

    if not loaded(build) and (copy := known_in_main(class_name, has_member)) is not None:
        return copy[member_name]
    return resolve(build, class_name)[member_name]


def rebuild_value(build: dict, class_name: str, fields: dict):
    return resolve(build, class_name)(**fields)


def open_build(unit: dict, key: str, cache: BuildCache) -> dict:
    """The names a C++ build binds, loaded from the cache under the sender's key, else rebuilt."""
    path = cache.artifact_dir(key) / unit["file"]
    module_name = unit["module"]
    if path.exists():
        cache.verify_artifact(path.parent)
    else:
        path, module_name = _rebuild(unit, key, cache)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = {n: getattr(module, n) for n in dir(module) if not n.startswith("_")}
    return prepare(names, build_reference("cpp", key, unit))  # onward, it names the sender's build


def _where() -> str:
    return f"process {os.getpid()} on {socket.gethostname()}"


def _rebuild(unit: dict, key: str, cache: BuildCache) -> tuple[Path, str]:
    """Build the module from its unit with this machine's compiler (its cache lacks the sender's build)."""
    composed = local_unit(unit)

    def compiler() -> toolchains.Toolchain:
        try:
            return toolchains.find_cxx()
        except ToolchainError as exc:
            raise ToolchainError(
                f"a C++ function arrived in {_where()}, whose cache ({cache.root}) lacks its build {key[:12]}, "
                f"and it cannot be rebuilt here: {exc}"
            ) from None

    def build(directory: Path) -> None:
        try:
            ModuleBuild(composed, _rebuild_context(cache, compiler)).run(directory)
        except CompileError as exc:
            raise BuildFailed(f"rebuilding a C++ function's module in {_where()} failed: {exc.raw_output.strip()[-2000:] or exc}") from None
        (directory / DROPPED_FILE).write_text(json.dumps(composed.dropped))  # as the kernel's builds record it

    directory, _ = cache.get_or_build(composed.key_parts, build, lambda d: d)
    return directory / composed.file_name, composed.module_name


def _rebuild_context(cache: BuildCache, compiler) -> CellContext:
    """What ModuleBuild needs of a cell, for a build no cell asked for (it says nothing)."""

    def quiet(message: str) -> None:
        pass

    return CellContext(
        cell_label="", cache=cache, cells=CellRegistry(), toolchain=compiler, verbose=quiet, warn=quiet,
        building=lambda description: contextlib.nullcontext(),
    )

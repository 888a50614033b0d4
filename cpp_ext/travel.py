"""C++ builds opened by reference in another process (the C++ half of kernel/core/travel.py).

A C++ build is one extension module in the cache, named by its key. Its
functions and classes travel as references; values of a struct whose state is
its public fields travel as those fields and are rebuilt by the receiving
build's class; an enum member travels as its class and name, so that it
arrives as a member of the receiving build's own enum (the one its functions
accept). Instances of other classes hold state Python cannot see, so they
refuse to pickle, naming the class.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import socket

from ipolyglot.kernel.core.cache import BuildCache, BuildFailed
from ipolyglot.kernel.core.travel import LOADED_BUILDS, build_reference, known_in_main, loaded, resolve, traveling


def module_reference(key: str, module_name: str, file_name: str) -> dict:
    return build_reference("cpp", key, {"module": module_name, "file": file_name})


def prepare(bind: dict, build: dict | None) -> dict:
    """The names a module binds, made to travel: functions by reference, struct values by fields."""
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
    path = cache.artifact_dir(key) / unit["file"]
    if not path.exists():
        raise BuildFailed(
            f"a C++ function arrived in process {os.getpid()} on {socket.gethostname()}, whose cache ({cache.root}) "
            f"lacks its module {unit['module']}; C++ modules are not rebuilt in other processes yet: "
            "share the build cache (IPOLYGLOT_CACHE_DIR) with them"
        )
    cache.verify_artifact(path.parent)
    spec = importlib.util.spec_from_file_location(unit["module"], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = {n: getattr(module, n) for n in dir(module) if not n.startswith("_")}
    return prepare(names, build_reference("cpp", key, unit))

"""Python signatures for bound Go functions, from their Go types.

`inspect.signature`, `help()` and IPython's `F?` read `__signature__`, so a
Go function shows as `Add(a: int, b: int) -> int` although the generated
wrapper takes defaults that only report a missing argument. The signature is
built once at bind time: calls do not pay for it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping

import numpy as np

from .description import GoFunc

SCALARS: dict[str, type] = {
    "bool": bool, "string": str, "complex64": complex, "complex128": complex,
    "float32": float, "float64": float,
    **{name: int for name in (
        "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "uintptr", "byte", "rune",
    )},
}
NUMERIC = set(SCALARS) - {"string"}
# reflect kinds of named non-struct types (`type Celsius float64`): their Python face is the kind's.
KIND_FALLBACK: dict[str, object] = {
    "slice": list, "array": list, "map": dict, "func": Callable, "interface": typing.Any,
    "numeric-slice": np.ndarray, "ptr": typing.Any,
}


def annotation(go_type: str, classes: Mapping[str, type], kind: str = "") -> object:
    """The Python type a value of Go type `go_type` arrives as (or is accepted as)."""
    if go_type in SCALARS:
        return SCALARS[go_type]
    if go_type in classes:
        return classes[go_type]
    if go_type.startswith("*"):
        return typing.Optional[annotation(go_type[1:], classes)]
    if go_type in ("[]byte", "[]uint8"):
        return bytes
    if go_type.startswith("[]"):
        elem = go_type[2:]
        return np.ndarray if elem in NUMERIC else list[annotation(elem, classes)]
    if go_type.startswith("[") and "]" in go_type:
        return list[annotation(go_type.split("]", 1)[1], classes)]
    if go_type.startswith("map["):
        key, value = _split_map(go_type)
        return dict[_key(annotation(key, classes)), annotation(value, classes)]
    if go_type.startswith("func("):
        return Callable
    if go_type in ("any", "interface {}"):
        return typing.Any
    return SCALARS.get(kind) or KIND_FALLBACK.get(kind, typing.Any)


def _key(face: object) -> object:
    """Dict keys Go arrays and structs arrive as: tuples (a list or object is no dict key)."""
    if typing.get_origin(face) is list:
        return tuple[typing.get_args(face)[0], ...]
    if isinstance(face, type) and face not in (bool, int, float, complex, str, bytes):
        return tuple
    return face


def _split_map(go_type: str) -> tuple[str, str]:
    depth = 0
    for index, char in enumerate(go_type[3:], 3):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth == 0:
            return go_type[4:index], go_type[index + 1:]
    return "any", "any"


def signature(func: GoFunc, py_params: list[str], classes: Mapping[str, type], method: bool = False) -> inspect.Signature:
    """The signature of the Python function bound to a Go function (or method, with `self`)."""
    ins = func.ins[1 if method else 0:]
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] if method else []
    for index, (name, go) in enumerate(zip(py_params, ins)):
        if func.variadic and index == len(ins) - 1:
            elem = go.go[2:] if go.go.startswith("[]") else go.go
            params.append(inspect.Parameter(name, inspect.Parameter.VAR_POSITIONAL, annotation=annotation(elem, classes)))
        else:
            params.append(inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation(go.go, classes, go.kind)
            ))
    outs = [annotation(t.go, classes, t.kind) for t in func.outs]
    result = None if not outs else outs[0] if len(outs) == 1 else tuple[tuple(outs)]
    return inspect.Signature(params, return_annotation=result)

"""Go types for Python values brought into a statement cell with `-i`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .marshal import GoStruct

_DTYPE_GO = {
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "float32": "float32", "float64": "float64", "complex64": "complex64", "complex128": "complex128", "bool": "bool",
}


class InferenceError(TypeError):
    pass


def go_type_of(value, known_structs: set[str] | None = None) -> str:
    """int -> int64, float -> float64, str -> string, bytes -> []byte, arrays and
    lists -> slices of the element type, dict -> map, Go struct copies -> their type."""
    known_structs = known_structs or set()
    if value is None:
        raise InferenceError("None has no Go type; give the variable a value first")
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return _DTYPE_GO.get(np.dtype(type(value)).name, "int64") if isinstance(value, np.integer) else "int64"
    if isinstance(value, (float, np.floating)):
        return "float32" if isinstance(value, np.float32) else "float64"
    if isinstance(value, (complex, np.complexfloating)):
        return "complex128"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "[]byte"
    if isinstance(value, GoStruct):
        if value._go_name_ in known_structs:
            return value._go_name_
        return "map[string]any"
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return go_type_of(value.item(), known_structs)
        elem = _DTYPE_GO.get(value.dtype.name, "any")
        return "[]" * value.ndim + elem
    if isinstance(value, Mapping):
        keys = _unify([go_type_of(k, known_structs) for k in value.keys()])
        values = _unify([go_type_of(v, known_structs) for v in value.values()])
        return f"map[{keys}]{values}"
    if isinstance(value, (list, tuple)):
        return "[]" + _unify([go_type_of(v, known_structs) for v in value])
    return "any"


def _unify(types: list[str]) -> str:
    distinct = set(types)
    if not distinct:
        return "any"
    if len(distinct) == 1:
        return types[0]
    if distinct <= {"int64", "float64"}:
        return "float64"
    return "any"

"""C++ types for the Python values a statement cell brings in with -i."""

from __future__ import annotations

_NUMPY_TYPES = {
    "float64": "double", "float32": "float",
    "int64": "long long", "int32": "int", "int16": "short", "int8": "signed char",
    "uint64": "unsigned long long", "uint32": "unsigned int", "uint16": "unsigned short", "uint8": "unsigned char",
    "bool": "bool", "complex128": "std::complex<double>",
}


class UnsupportedValue(ValueError):
    """A Python value no C++ type takes (the message says why)."""


def cpp_type(value) -> str:
    """The C++ type a Python value arrives as (by copy)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, complex):
        return "std::complex<double>"
    if isinstance(value, str):
        return "std::string"
    if isinstance(value, (bytes, bytearray)):
        return "std::string"
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "ndim", None) is not None:
        if value.ndim == 0:
            return _NUMPY_TYPES.get(str(dtype), "double")
        if value.ndim == 1 and str(dtype) in _NUMPY_TYPES:
            return f"std::vector<{_NUMPY_TYPES[str(dtype)]}>"
        raise UnsupportedValue(f"only 1-d numeric numpy arrays can cross (got {value.ndim}-d {dtype})")
    if isinstance(value, (list, tuple)):
        if not value:
            return "std::vector<double>"
        kinds = {cpp_type(v) for v in value}
        if kinds == {"long long", "double"}:
            kinds = {"double"}
        if len(kinds) != 1:
            raise UnsupportedValue(f"a list must hold one kind of value to cross into C++ (got {sorted(kinds)})")
        return f"std::vector<{kinds.pop()}>"
    if isinstance(value, set):
        kinds = {cpp_type(v) for v in value} or {"double"}
        if len(kinds) != 1:
            raise UnsupportedValue("a set must hold one kind of value")
        return f"std::set<{kinds.pop()}>"
    if isinstance(value, dict):
        if not value:
            return "std::map<std::string, double>"
        keys = {cpp_type(k) for k in value}
        vals = {cpp_type(v) for v in value.values()}
        if vals == {"long long", "double"}:
            vals = {"double"}
        if len(keys) != 1 or len(vals) != 1:
            raise UnsupportedValue("a dict must have one key type and one value type")
        return f"std::map<{keys.pop()}, {vals.pop()}>"
    raise UnsupportedValue(f"a {type(value).__name__} cannot cross into a C++ statement cell")


"""The compiled caller of scalar Go functions (templates/fastcall.c), built once per
machine and Python into the build cache.

A scalar Go function called through cffi's ABI mode pays libffi and a Python
wrapper function on top of the cgo crossing; a FastCall object converts its
arguments, releases the GIL and calls the library's slot entry point in C.
Where the extension cannot be built (no Python headers), `load` gives None and
scalar functions keep the cffi path.
"""

from __future__ import annotations

from ipolyglot.kernel.core import c_extension
from ipolyglot.kernel.core.cache import BuildCache

from .templating import TEMPLATES

SOURCE_NAME = "fastcall.c"

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


def codes(ins: tuple[str, ...], out: str) -> tuple[str, str]:
    """The parameter codes and the result code of a scalar signature."""
    return "".join(CODES[t] for t in ins), CODES[out] if out else NO_RESULT


def available() -> bool:
    """Whether this machine has what building the caller takes (a C compiler, Python's headers):
    builds then give scalar functions its entry points (codegen's slot_entries)."""
    return c_extension.available()


def load(cache: BuildCache) -> type | None:
    """The FastCall type, compiled into `cache` the first time; None when it cannot be built."""
    module = c_extension.load(c_extension.CExtension("ipolyglot_fastcall", TEMPLATES.text(SOURCE_NAME), "go-fastcall"), cache)
    return None if module is None else module.FastCall

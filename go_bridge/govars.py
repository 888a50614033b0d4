"""`govars`: the session's exported Go package-level variables, read and written live."""

from __future__ import annotations

from typing import Any, Callable

from . import codegen


class GoVars:
    """`govars`: the session's exported Go package-level variables, read and written live.

    `govars.Limit` reads the variable's current value in Go (a copy), every
    time; `govars.Limit = 5` sets it (checked against its Go type). Values are
    never cached on the Python side, so they cannot go stale.
    """

    def __init__(self, current: Callable[[], Any]):  # the session's current GoLibrary (None before a build)
        object.__setattr__(self, "_current", current)

    def _lookup(self, name: str):
        lib = self._current()
        var = lib.vars.get(name) if lib is not None and codegen.is_exported(name) else None
        if var is None:
            raise AttributeError(f"no exported Go variable named {name!r} in this session")
        return lib, var

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        lib, var = self._lookup(name)
        if var.type.problem:
            raise TypeError(f"Go var {name} has type {var.type.go}, which cannot cross to Python ({var.type.problem})")
        return lib.call(lib.by_id[var.get], ())

    def __setattr__(self, name: str, value) -> None:
        lib, var = self._lookup(name)
        func = lib.by_id[var.set]
        try:
            lib.call(func, (value,))
        except TypeError as exc:
            if str(exc).startswith(func.name):  # an argument Python could not encode at all
                raise TypeError(f"Go var {name} (Go type {var.type.go}): {str(exc).split(': ', 1)[-1]}") from None
            raise

    def __dir__(self):
        lib = self._current()
        return sorted(n for n in (lib.vars if lib else {}) if codegen.is_exported(n))

    def __repr__(self) -> str:
        lib = self._current()
        if lib is None:
            return "govars()"
        shown = []
        for name in self.__dir__():
            try:
                shown.append(f"{name}={getattr(self, name)!r}")
            except TypeError:
                shown.append(f"{name}=<{lib.vars[name].type.go}>")
        return "govars(" + ", ".join(shown) + ")"

"""What a loaded Go library says it offers (runtime/ipgrt/call.go's ipg_describe), as typed records.

The JSON is read once, when the library loads; binding, calls, signatures and
`govars` use these records and look functions up by their id in the runtime's
table, never by a generated name.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass(frozen=True)
class GoType:
    go: str  # as Go prints it: "[]float64", "map[string]Point"
    kind: str = ""  # reflect's kind: a named non-struct type crosses as its kind
    problem: str = ""  # why a value of it cannot cross ("" when it can)


@dataclass(frozen=True)
class GoFunc:
    """A function, method or variable accessor in the runtime's table."""

    id: int
    name: str  # "F", "T.M" for a method
    params: tuple[str, ...] = ()
    ins: tuple[GoType, ...] = ()  # a method's receiver first
    outs: tuple[GoType, ...] = ()
    variadic: bool = False
    error: bool = False  # its last result is an `error`
    problem: str = ""  # why it cannot be called from Python ("" when it can)
    receiver: str = ""  # a method of this struct type
    pointer: bool = False  # ... with a pointer receiver
    channel: bool = False  # its result is a channel Python receives from (channels.py)

    @property
    def method(self) -> str:
        return self.name.split(".", 1)[1]


@dataclass(frozen=True)
class GoVar:
    """A package-level variable, read and written through two accessor functions."""

    name: str
    get: int  # the getter's id
    set: int  # the setter's id
    type: GoType
    carried: bool = False  # a rebuild can copy its value faithfully into the new runtime
    reset: str = ""  # ... and if not, why


@dataclass(frozen=True)
class GoConst:
    name: str
    value: bytes  # encoded (marshal.decode_value)
    problem: str = ""


@dataclass(frozen=True)
class GoStructType:
    name: str
    fields: tuple[tuple[str, GoType], ...]
    zero: bytes  # the zero value, encoded: the Python class's defaults


@dataclass(frozen=True)
class Description:
    funcs: dict[int, GoFunc]  # by id
    vars: dict[str, GoVar]
    consts: tuple[GoConst, ...]
    structs: tuple[GoStructType, ...]
    profiled: bool

    @classmethod
    def from_json(cls, raw: dict) -> "Description":
        funcs = (_func(f) for f in raw.get("funcs") or [])
        return cls(
            {f.id: f for f in funcs},
            {v["name"]: GoVar(v["name"], v["get"], v["set"], _type(v), bool(v.get("carried")), v.get("reset") or "")
             for v in raw.get("vars") or []},
            tuple(GoConst(c["name"], _bytes(c.get("value")), c.get("problem") or "") for c in raw.get("consts") or []),
            tuple(GoStructType(s["name"], tuple((f["name"], _type(f)) for f in s["fields"]), _bytes(s.get("zero")))
                  for s in raw.get("structs") or []),
            bool(raw.get("profile")),
        )


def _type(raw: dict) -> GoType:
    return GoType(raw["go"], raw.get("kind") or "", raw.get("problem") or "")


def _bytes(raw: str | None) -> bytes:
    return base64.b64decode(raw or "")


def _func(raw: dict) -> GoFunc:
    return GoFunc(
        raw["id"], raw["name"], tuple(raw.get("params") or ()), tuple(_type(t) for t in raw.get("in") or []),
        tuple(_type(t) for t in raw.get("out") or []), bool(raw.get("variadic")), bool(raw.get("error")),
        raw.get("problem") or "", raw.get("receiver") or "", bool(raw.get("pointer")), bool(raw.get("channel")),
    )

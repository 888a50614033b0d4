"""The typed records a %%cpp cell becomes: what libclang found (pieces, statements,
errors), and what the session adds to a piece (its cell, whether it needs pybind11).

Shared by the parser, the session and the code generators, so none of them
imports another to know a record's shape. Parse results are cached as JSON by
cell text, so every record here reads back from `asdict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Union


@dataclass
class Param:
    """A parameter of a bound function, method or constructor (or a field as a constructor's)."""

    name: str
    type: str  # canonical: what the generated code spells
    default: str | None = None  # the default argument as written
    spelling: str = ""  # as the user wrote the type (shown in messages)


@dataclass
class Function:
    """A bound free function, static method or method."""

    name: str
    ret: str
    params: list[Param]
    qual: str  # "::ns::f"
    ns: list[str]
    comment: str = ""  # the doc comment above it
    static: bool = False
    const: bool = False
    keep_gil: bool = False  # its cell keeps the GIL during calls
    defined_as: str = ""  # declared in its class, defined out of line: bound once a cell defines "Cls::m("


@dataclass
class Field:
    name: str
    type: str
    readonly: bool
    spelling: str = ""


@dataclass
class ClassBinding:
    """A bound struct or class."""

    name: str
    qual: str
    ns: list[str]
    fields: list[Field] = field(default_factory=list)
    ctors: list[list[Param]] = field(default_factory=list)  # the public constructors' parameters
    methods: list[Function] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    abstract: bool = False
    user_ctors: bool = False  # declares constructors (else a keyword constructor from its fields)
    comment: str = ""  # the doc comment above it: the class's docstring


@dataclass
class EnumBinding:
    name: str
    qual: str
    ns: list[str]
    scoped: bool
    values: list[tuple[str, int]]


Binding = Union[Function, ClassBinding, EnumBinding]


def binding_to_json(binding: Binding) -> dict:
    return {"is": type(binding).__name__, **asdict(binding)}


def binding_from_json(data: dict) -> Binding:
    data = dict(data)
    kind = data.pop("is")
    if kind == "EnumBinding":
        return EnumBinding(**{**data, "values": [tuple(v) for v in data["values"]]})
    if kind == "ClassBinding":
        return ClassBinding(**{
            **data,
            "fields": [Field(**f) for f in data["fields"]],
            "ctors": [[Param(**p) for p in ctor] for ctor in data["ctors"]],
            "methods": [_function_from_json(m) for m in data["methods"]],
        })
    return _function_from_json(data)


def _function_from_json(data: dict) -> Function:
    return Function(**{**data, "params": [Param(**p) for p in data["params"]]})


@dataclass
class Piece:
    """One top-level declaration of a cell (all same-named pieces are merged later)."""

    name: str  # Python-visible name: "f", "geo.P"; "#include <x>" for preamble text
    kind: str  # func, class, enum, template, typedef, var, member-def, block, preamble
    section: str  # preamble | type | other | func: where it goes in the unit
    ns: list[str]
    user_text: str
    header_text: str
    proto_text: str = ""  # a prototype without default arguments (free functions)
    first_line: int = 1  # cell line of the text's first line (%%cpp line = 1)
    column: int = 1
    binds: list[Binding] = field(default_factory=list)  # what the bindings register of it
    keep: list[str] = field(default_factory=list)  # member-pointer expressions to emit
    private: bool = False  # internal linkage (static, anonymous namespace): only its own cell's unit sees it
    # One declarator of a statement declaring several (`int a = 1, b = 2;`): the
    # shared specifiers (`int`) and where they stand in the cell.
    prefix: str = ""
    prefix_line: int = 1
    prefix_column: int = 1
    # Set by the session when the piece joins it (cpp_ext/session.py):
    cell_id: str = ""
    python_only: bool = False  # compiled with pybind11: only its own cell's unit and the bindings see it
    symbol: str = ""  # a cell's own `ipolyglot_bind`, renamed so several cells may define one


@dataclass
class ParseError:
    """A libclang error, at a line of the cell body (None: outside the cell)."""

    message: str
    line: int | None = None
    column: int | None = None


@dataclass
class Statement:
    """A cell of statements: run as the body of a function taking the -i inputs."""

    directives: str  # the cell's preprocessor lines (others blanked, so line numbers hold)
    statements: str  # the rest of the cell
    inputs: dict[str, str]  # -i name -> C++ type
    outputs: dict[str, str]  # -o name -> C++ type


@dataclass
class ParsedCell:
    mode: str  # "decls" or "statement"
    pieces: list[Piece] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    statement: Statement | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        for piece, record in zip(self.pieces, data["pieces"]):
            record["binds"] = [binding_to_json(b) for b in piece.binds]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "ParsedCell":
        statement = data["statement"]
        return cls(
            mode=data["mode"],
            pieces=[Piece(**{**p, "binds": [binding_from_json(b) for b in p["binds"]]}) for p in data["pieces"]],
            warnings=list(data["warnings"]),
            errors=[ParseError(**e) for e in data["errors"]],
            statement=Statement(**statement) if statement is not None else None,
        )


def fnptr_type(record: Function, cls_qual: str | None = None) -> str:
    """The C++ function-pointer type of a bound function or method."""
    params = ", ".join(p.type for p in record.params)
    if cls_qual and not record.static:
        return f"{record.ret} ({cls_qual}::*)({params}){' const' if record.const else ''}"
    return f"{record.ret} (*)({params})"

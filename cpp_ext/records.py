"""The typed records a %%cpp cell becomes: what libclang found (pieces, statements,
errors), and what the session adds to a piece (its cell, whether it needs pybind11).

Shared by the parser, the session and the code generators, so none of them
imports another to know a record's shape. Parse results are cached as JSON by
cell text, so every record here reads back from `asdict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    binds: list[dict] = field(default_factory=list)  # binding records (bindgen.py reads them)
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
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ParsedCell":
        statement = data["statement"]
        return cls(
            mode=data["mode"],
            pieces=[Piece(**p) for p in data["pieces"]],
            warnings=list(data["warnings"]),
            errors=[ParseError(**e) for e in data["errors"]],
            statement=Statement(**statement) if statement is not None else None,
        )


def fnptr_type(record: dict, cls_qual: str | None = None) -> str:
    """The C++ function-pointer type of a bound function or method record."""
    params = ", ".join(p["type"] for p in record["params"])
    if cls_qual and not record.get("static"):
        return f"{record['ret']} ({cls_qual}::*)({params}){' const' if record.get('const') else ''}"
    return f"{record['ret']} (*)({params})"

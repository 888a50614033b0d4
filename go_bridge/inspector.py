"""Reading a cell with Go's own parser (runtime/inspector, built once per toolchain).

What a cell holds (imports, declarations, or statements) is remembered by cell
text in the shared parse cache (BuildCache.remembered), so a cell seen before
needs no process at all, not even the inspector. The inspector's JSON becomes
the typed records below at once; nothing past this module reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ipolyglot.kernel.core.cache import BuildCache
from ipolyglot.kernel.core.toolchains import MIN_GO_TEXT, ToolchainError

from .templating import TEMPLATES
from .toolchain import GoTool

_SOURCE = Path(__file__).resolve().parent / "runtime" / "inspector" / "main.go"
INSPECTOR_HASH = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()


@dataclass(frozen=True)
class GoImport:
    """One import of a cell; `line`/`col` are in the cell body (1-based), `preamble` is cgo's."""

    path: str
    name: str = ""  # the explicit name ("", "_", "." or an alias)
    line: int = 1
    col: int = 1
    preamble: str = ""
    preamble_line: int = 0


@dataclass(frozen=True)
class TypeSpec:
    name: str
    generic: bool = False
    alias: bool = False
    constraint: bool = False  # an interface usable only as a type constraint


@dataclass(frozen=True)
class FastSignature:
    """A scalar-only function's Go parameter types and result ("" for none): it gets a direct C entry."""

    ins: tuple[str, ...]
    out: str


@dataclass(frozen=True)
class GoDetail:
    """What Go's parser says of one top-level declaration (Declaration.detail for Go)."""

    kind: str  # func, method, type, const, var
    names: tuple[str, ...]  # the package-level names it declares (none for a method)
    text: str
    line: int  # first line in the cell body
    col: int
    uses: frozenset[str] = frozenset()  # identifiers used as X in X.Sel: the imports it needs
    refs: frozenset[str] = frozenset()  # package-level names it refers to
    doc: str = ""
    params: tuple[str, ...] = ()
    variadic: bool = False
    generic: bool = False
    fast: FastSignature | None = None
    types: tuple[TypeSpec, ...] = ()
    spawns: bool = False  # holds a go statement
    waits: bool = False  # may wait for a goroutine (channel operation, select, Wait, Lock)
    imports: tuple[GoImport, ...] = ()  # its cell's imports
    cell_count: int = 1  # declarations in its cell


@dataclass(frozen=True)
class GoBody:
    """A cell of statements (imports blanked out, so positions stay true)."""

    text: str
    refs: frozenset[str] = frozenset()
    spawns: bool = False
    waits: bool = False


@dataclass(frozen=True)
class SyntaxProblem:
    line: int
    col: int
    msg: str


@dataclass(frozen=True)
class Inspection:
    """A cell read: declarations, statements, or the syntax errors of the reading that got further."""

    mode: str  # "decls", "stmts" or "error"
    imports: tuple[GoImport, ...] = ()
    decls: tuple[GoDetail, ...] = ()
    body: GoBody | None = None
    errors: tuple[SyntaxProblem, ...] = ()

    @classmethod
    def from_json(cls, raw: dict) -> "Inspection":
        imports = tuple(_import(i) for i in raw.get("imports") or [])
        decls = raw.get("decls") or []
        body = raw.get("body")
        return cls(
            raw["mode"],
            imports,
            tuple(_decl(d, imports, len(decls)) for d in decls),
            GoBody(body["text"], frozenset(body.get("refs") or ()), bool(body.get("spawns")), bool(body.get("waits")))
            if body else None,
            tuple(SyntaxProblem(e["line"], e["col"], e["msg"]) for e in raw.get("errors") or []),
        )


def _import(raw: dict) -> GoImport:
    return GoImport(raw["path"], raw.get("name") or "", raw["line"], raw["col"],
                    raw.get("preamble") or "", raw.get("preamble_line") or 0)


def _decl(raw: dict, imports: tuple[GoImport, ...], count: int) -> GoDetail:
    fast = raw.get("fast")
    return GoDetail(
        kind=raw["kind"], names=tuple(raw["names"]), text=raw["text"], line=raw["line"], col=raw["col"],
        uses=frozenset(raw.get("uses") or ()), refs=frozenset(raw.get("refs") or ()), doc=raw.get("doc") or "",
        params=tuple(raw.get("params") or ()), variadic=bool(raw.get("variadic")), generic=bool(raw.get("generic")),
        fast=FastSignature(tuple(fast["in"] or ()), fast["out"]) if fast else None,
        types=tuple(TypeSpec(t["name"], bool(t.get("generic")), bool(t.get("alias")), bool(t.get("constraint")))
                    for t in raw.get("types") or []),
        spawns=bool(raw.get("spawns")), waits=bool(raw.get("waits")), imports=imports, cell_count=count,
    )


def inspect(body: str, cache: BuildCache, go: GoTool) -> Inspection:
    """A cell body read by Go's parser (remembered by text)."""

    def run() -> dict:
        done = subprocess.run([str(inspector_binary(cache, go))], input=body, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"the Go cell inspector failed: {done.stderr.strip()}")
        return json.loads(done.stdout)

    raw = cache.remembered({"kind": "go-inspection", "inspector": INSPECTOR_HASH, "cell": body}, run)
    return Inspection.from_json(raw)


def inspector_binary(cache: BuildCache, go: GoTool) -> Path:
    def build(directory: Path) -> None:
        src = directory / "src"
        src.mkdir()
        (src / "main.go").write_text(_SOURCE.read_text())
        (src / "go.mod").write_text(TEMPLATES.render("inspector.go.mod.tmpl", go_version=MIN_GO_TEXT))
        tc = go.toolchain()
        done = subprocess.run(
            [tc.path, "build", "-trimpath", "-o", str(directory / "inspector"), "."],
            cwd=src, capture_output=True, text=True, env=go.env(), timeout=600,
        )
        if done.returncode != 0:
            raise ToolchainError(f"could not build the Go cell inspector with {tc.path}:\n{done.stderr.strip()}")

    def load(directory: Path) -> Path:
        binary = directory / "inspector"
        if not os.access(binary, os.X_OK):
            raise FileNotFoundError(binary)
        return binary

    parts = {"kind": "go-inspector", "source": INSPECTOR_HASH, "toolchain": go.identity()}
    value, _ = cache.get_or_build(parts, build, load)
    return value

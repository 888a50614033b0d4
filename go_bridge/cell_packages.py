"""Which cells compile as Go packages of their own.

Go's build cache works per package. With every cell in package main, any new
cell recompiles every earlier one: measured, a 5,000-line cell made every
later unrelated build pay its whole compile time again (the inspector and the
Python side take milliseconds; the compiler takes the rest). A large cell that
stands on its own is therefore compiled as package `ipgcell<hash>` (named by
its text, like its file), which Go compiles once and then takes from its
cache; package main reaches its names qualified, and the names other cells
use are aliased into main (`type T = pkg.T`, `var F = pkg.F`, `const K = pkg.K`).

A cell stands on its own when all of its declarations are live (none was
redefined by a later cell: a redefinition must be seen by the cell's own
code), it refers to no name another cell declares, no other cell declares
methods on its types, and every name other cells use from it is an exported,
non-generic type, func or const (Go cannot alias a variable or reach an
unexported name from another package). Anything else stays in package main,
which is always correct, only slower to rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipolyglot.kernel.core.backend import Declaration

MODULE = "ipolyglot.local/cell"
MIN_LINES = 200  # a smaller cell compiles in a blink: one package main is simpler


@dataclass
class CellPackage:
    """A cell compiled as a package of its own."""

    name: str  # the Go package name, e.g. ipgcell0123456789
    names: set[str]  # the package-level names it declares
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) other cells use

    @property
    def path(self) -> str:
        return f"{MODULE}/{self.name}"


def package_name(cell_id: str) -> str:
    return "ipgcell" + cell_id.removeprefix("cell-")


def declared_names(decl: Declaration) -> set[str]:
    """Package-level names a declaration introduces (a method introduces none)."""
    if decl.kind == "method":
        return set()
    return {n for n in decl.detail.names if n not in ("_", "init")}


def plan_packages(by_cell: dict[str, list[Declaration]], statement_refs: set[str] = frozenset()) -> dict[str, CellPackage]:
    """cell id -> its package, for the cells that compile on their own."""
    names = {cell: set().union(*(declared_names(d) for d in decls)) for cell, decls in by_cell.items()}
    packages = {}
    for cell, decls in by_cell.items():
        if not _large_and_whole(decls):
            continue
        others = [d for other, ds in by_cell.items() if other != cell for d in ds]
        package = _standalone(cell, decls, names[cell], others, statement_refs)
        if package is not None:
            packages[cell] = package
    return packages


def _large_and_whole(decls: list[Declaration]) -> bool:
    first = decls[0].detail
    whole = len(decls) == first.cell_count
    lines = sum(d.detail.text.count("\n") + 1 for d in decls)
    cgo = any(imp.path == "C" for imp in first.imports)
    return whole and lines >= MIN_LINES and not cgo


def _standalone(cell: str, decls, own: set[str], others: list[Declaration], statement_refs: set[str]) -> CellPackage | None:
    foreign = set().union(*(declared_names(d) for d in others)) if others else set()
    if any(foreign & d.detail.refs for d in decls):
        return None  # it uses another cell's names
    if any(d.kind == "method" and d.name.split(".")[0] in own for d in others):
        return None  # another cell adds methods to its types
    used = set(statement_refs).union(*(d.detail.refs for d in others)) & own
    package = CellPackage(package_name(cell), own)
    for decl in decls:
        for name in sorted(declared_names(decl) & used):
            kind = _alias_kind(decl, name)
            if kind is None:
                return None
            package.aliases.append((kind, name))
    return package


def _alias_kind(decl: Declaration, name: str) -> str | None:
    """How main can alias a name of another package: "type", "var" (a func value), "const"; None if it cannot."""
    if not name[:1].isupper():
        return None
    if decl.kind == "func" and not decl.detail.generic:
        return "var"
    if decl.kind == "type":
        spec = next((s for s in decl.detail.types if s.name == name), None)
        return "type" if spec is not None and not spec.generic else None
    if decl.kind == "const":
        return "const"
    return None

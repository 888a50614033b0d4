"""The small interface a language backend implements, and the session bookkeeping it shares.

The magic (kernel/magics.py) owns option parsing, the build cache, toolchain
discovery, build feedback and error presentation; a backend turns a cell plus
the session's earlier declarations into a build, loads it, and says which
Python names it offers. Backends import only the IPython-free modules of
this package (backend, cache, diagnostics, toolchains) and never each other.
"""

from __future__ import annotations

import abc
import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from .cache import BuildCache, BuildReport
from .toolchains import Toolchain


@dataclass
class Declaration:
    """One named top-level definition of a session, and the cell it came from."""

    name: str  # the Python-visible name (for C++ possibly "ns.name")
    kind: str  # "func", "type", "const", "var", "class", "enum", ...
    source: str  # its text, as the user wrote it
    cell: str  # label of the cell it came from, e.g. "In [3]"
    first_line: int = 1  # its first line in that cell (the %%magic line is line 1)
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific facts


class DeclarationStore:
    """The session's declarations of one language, by name, in definition order.

    A later definition of a name replaces the earlier one (like a Python def);
    a definition stays until it is replaced, removed or reset.
    """

    def __init__(self) -> None:
        self._decls: dict[str, Declaration] = {}

    def __iter__(self) -> Iterator[Declaration]:
        return iter(list(self._decls.values()))

    def __len__(self) -> int:
        return len(self._decls)

    def __contains__(self, name: str) -> bool:
        return name in self._decls

    def get(self, name: str) -> Declaration | None:
        return self._decls.get(name)

    def with_cell(self, decls: list[Declaration]) -> "DeclarationStore":
        """A copy with a cell's declarations applied: the candidate for a build.

        The live store is only replaced once the build succeeded, so a failing
        cell changes nothing.
        """
        new = DeclarationStore()
        new._decls = dict(self._decls)
        for decl in decls:
            new._decls.pop(decl.name, None)  # re-insert: redefinition moves it last
            new._decls[decl.name] = decl
        return new

    def replace_with(self, other: "DeclarationStore") -> None:
        self._decls = dict(other._decls)

    def remove(self, name: str) -> Declaration:
        try:
            return self._decls.pop(name)
        except KeyError:
            raise KeyError(f"no declaration named {name!r} in this session") from None

    def clear(self) -> None:
        self._decls.clear()

    def table(self) -> list[tuple[str, str, str]]:
        return [(d.name, d.kind, d.cell) for d in self._decls.values()]


@dataclass
class CellContext:
    """What the magic hands a backend for one cell."""

    cell_label: str  # "In [3]"
    user_ns: Mapping[str, Any]  # for -i: read Python values from here
    cache: BuildCache
    toolchain: Callable[[], Toolchain]  # resolves lazily; raises ToolchainError
    verbose: Callable[[str], None]  # prints a line only under -v
    warn: Callable[[str], None]  # a warning shown in the cell output
    building: Callable[[str], Any]  # context manager: live build feedback for a description
    profile: bool = False  # record boundary-crossing costs for the functions built


@dataclass
class CellResult:
    """What a cell changed in the Python namespace."""

    bind: dict[str, Any] = field(default_factory=dict)  # names to (re)bind in the user namespace
    unbind: list[str] = field(default_factory=list)  # names that no longer exist
    report: BuildReport | None = None


class Backend(abc.ABC):
    """A language plugged into the %%<language> cell magic and `%polyglot <language>`."""

    language: str  # "go" or "cpp": also the magic's name
    display_name: str  # "Go", "C++"

    def __init__(self) -> None:
        self.declarations = DeclarationStore()

    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the backend's own options to the shared cell-magic parser."""

    @abc.abstractmethod
    def run_cell(self, source: str, options: argparse.Namespace, ctx: CellContext) -> CellResult:
        """Build (through ctx.cache) and load a cell; run it if it holds statements.

        Raises diagnostics.CompileError for a cell that does not build, leaving
        the session unchanged.
        """

    @abc.abstractmethod
    def remove(self, name: str) -> CellResult:
        """Forget one declaration (and rebuild what depended on it, if needed)."""

    @abc.abstractmethod
    def reset(self) -> CellResult:
        """Forget every declaration of the session."""

    def info(self) -> dict[str, str]:
        """Extra lines for `%polyglot info` (e.g. Go runtimes loaded)."""
        return {}

"""The steps a language backend implements, and the typed data they pass along.

kernel/core/pipeline.py calls these steps in one fixed order (parse → candidate
→ compose → build → load → bind → commit); a backend never calls the pipeline
or another backend, and imports only this IPython-free core. What both
languages share (cell ids and labels, the cache, the drop-and-retry loop,
unbinding, input lookup, cache-hit feedback) lives in the pipeline, once.
"""

from __future__ import annotations

import abc
import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from .cache import BuildCache, BuildReport
from .cells import Cell, CellRegistry
from .toolchains import Toolchain

Detail = TypeVar("Detail")


@dataclass
class Declaration(Generic[Detail]):
    """One named top-level definition of a session, and the cell it came from."""

    name: str  # the Python-visible name (for C++ possibly "ns.name")
    kind: str  # "func", "type", "const", "var", "class", "enum", ...
    source: str  # its text, as the user wrote it
    cell: str  # label of the cell it came from, e.g. "In [3]"
    first_line: int = 1  # its first line in that cell (the %%magic line is line 1)
    cell_id: str = ""  # the id of the cell it came from (kernel/core/cells.py)
    detail: Detail | None = None  # the backend's own typed facts about it


class DeclarationStore:
    """The session's declarations of one language, by name, in definition order.

    A later definition of a name replaces the earlier one (like a Python def);
    a definition stays until it is replaced, removed or reset.
    """

    def __init__(self, decls: Iterator[Declaration] | list[Declaration] = ()) -> None:
        self._decls: dict[str, Declaration] = {d.name: d for d in decls}

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
        new = DeclarationStore(self)
        for decl in decls:
            new._decls.pop(decl.name, None)  # re-insert: redefinition moves it last
            new._decls[decl.name] = decl
        return new

    def without(self, names: set[str]) -> "DeclarationStore":
        return DeclarationStore(d for d in self if d.name not in names)

    def remove(self, name: str) -> Declaration:
        try:
            return self._decls.pop(name)
        except KeyError:
            raise KeyError(f"no declaration named {name!r} in this session") from None

    def table(self) -> list[tuple[str, str, str]]:
        return [(d.name, d.kind, d.cell) for d in self._decls.values()]


@dataclass
class CellContext:
    """What the pipeline hands a backend's steps for one cell (or one rm / reset)."""

    cell_label: str  # "In [3]"
    cache: BuildCache
    cells: CellRegistry  # every cell this session ran: ids, texts, latest labels
    toolchain: Callable[[], Toolchain]  # resolves lazily; raises ToolchainError
    verbose: Callable[[str], None]  # prints a line only under -v
    warn: Callable[[str], None]  # a warning shown in the cell output
    building: Callable[[str], Any]  # context manager: live build feedback for a description
    profile: bool = False  # record boundary-crossing costs for the functions built
    force: bool = False  # rebuild even when the cache has the artifact


@dataclass
class Candidate:
    """The session as it would be after this cell: nothing is committed before the build loads.

    A backend subclasses it with what else its build needs (Go's module
    requirements, C++'s preamble and per-cell flags); `inputs` are the -i
    values' native types, `outputs` the -o names, for a cell of statements.
    """

    cell: Cell | None  # None for a removal or a reset
    declarations: DeclarationStore
    statements: Any = None  # the backend's parsed statements, for a cell of statements
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class BuildUnit:
    """What `compose` made: the parts that name the artifact in the cache, and
    what the build, load and bind steps need of it (a backend subclasses it)."""

    description: str  # for live feedback: "Go cell In [3]"
    key_parts: dict[str, str]
    dropped: dict[str, str] = field(default_factory=dict)  # left out because it cannot cross: name -> the warning saying why


@dataclass
class Built:
    """A loaded build: the backend's handle on it, the unit it came from, where it is."""

    loaded: Any
    unit: BuildUnit
    report: BuildReport


@dataclass
class CellResult:
    """What a cell changed in the Python namespace."""

    bind: dict[str, Any] = field(default_factory=dict)  # names to (re)bind in the user namespace
    unbind: list[str] = field(default_factory=list)  # names that no longer exist
    report: BuildReport | None = None


class Backend(abc.ABC):
    """A language plugged into the %%<language> cell magic and `%polyglot <language>`.

    The steps, in the order the pipeline calls them. None of them changes the
    session except `commit`, which runs only after the build loaded.
    """

    language: str  # "go" or "cpp": also the magic's name
    display_name: str  # "Go", "C++"
    find_toolchain: Callable[[], Toolchain]  # kernel/core/toolchains.find_go or find_cxx

    def __init__(self) -> None:
        self.declarations = DeclarationStore()
        self.bound: dict[str, Any] = {}  # what the current build put in the namespace, by name (the pipeline keeps it)

    # -- options ------------------------------------------------------------------
    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the backend's own options to the shared cell-magic parser."""

    # -- the steps of a cell ------------------------------------------------------------
    @abc.abstractmethod
    def input_type(self, name: str, value: Any) -> Any:
        """The native type a -i value crosses as; raises ValueError (the reason) if none."""

    @abc.abstractmethod
    def parse(self, cell: Cell, options: argparse.Namespace, inputs: dict[str, Any], ctx: CellContext) -> Any:
        """Read the cell (declarations or statements); raises CompileError in the cell's lines."""

    @abc.abstractmethod
    def candidate(self, parsed: Any, cell: Cell, options: argparse.Namespace, ctx: CellContext) -> Candidate:
        """The session with this cell applied, not yet committed."""

    @abc.abstractmethod
    def compose(self, candidate: Candidate, dropped: Mapping[str, str], ctx: CellContext) -> BuildUnit:
        """The build unit for a candidate (generated files and key parts), leaving out
        `dropped`; runs no compiler, so it is tested without one."""

    @abc.abstractmethod
    def build(self, unit: BuildUnit, directory: Path, ctx: CellContext) -> None:
        """Compile a unit into `directory`; raises CompileError mapped to the cells' lines."""

    def cannot_cross(self, error: Exception, unit: BuildUnit) -> dict[str, str]:
        """What a failed build says cannot cross to Python (name -> the warning that says
        so): the pipeline leaves those out, warns, and builds again. Nothing, by default."""
        return {}

    @abc.abstractmethod
    def load(self, directory: Path, unit: BuildUnit, ctx: CellContext) -> Any:
        """Load a built artifact into this process (the in-process loader's step)."""

    @abc.abstractmethod
    def bind(self, built: Built, candidate: Candidate, ctx: CellContext) -> dict[str, Any]:
        """Every Python name the loaded build offers (the pipeline unbinds the rest)."""

    def run_statements(self, built: Built, candidate: Candidate, inputs: list[Any]) -> list[Any]:
        """Run a cell of statements; returns the -o values in order."""
        raise NotImplementedError(f"{self.display_name} cells of statements")

    @abc.abstractmethod
    def commit(self, candidate: Candidate, built: Built | None) -> None:
        """The candidate becomes the session (after its build loaded)."""

    # -- the session --------------------------------------------------------------------
    def emptied(self) -> Candidate:
        """The session without any declaration (`%polyglot <language> reset`)."""
        return Candidate(None, DeclarationStore())

    @abc.abstractmethod
    def removal(self, name: str) -> Candidate:
        """The session without `name`; raises KeyError (unknown) or ValueError (still used)."""

    def info(self) -> dict[str, str]:
        """Extra lines for `%polyglot info` (e.g. Go runtimes loaded)."""
        return {}

    def line_magics(self) -> dict[str, Callable]:
        """Magics of this language's own (name -> function(shell, line, cell)), e.g. %go_pprof."""
        return {}

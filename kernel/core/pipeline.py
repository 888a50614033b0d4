"""The one path a native cell takes, for every language, on one screen.

    register the cell → look up -i inputs → parse → form the candidate session
    → compose a build unit → the cache gets or builds it (dropping what cannot
    cross, with a warning, and building again) → the loader loads it → bind
    → commit → run the statements, if the cell holds statements

A backend (kernel/core/backend.py) supplies each step; nothing here knows a
language. `remove` and `reset` take the same path from the candidate on, with
the session's own cache and options, so the namespace and the native session
never disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .backend import Backend, BuildUnit, Built, Candidate, CellContext, CellResult
from .diagnostics import CompileError, Diagnostic

DROPPED_FILE = "dropped.json"  # in an artifact: what its build left out, with the warning that says why
MAX_DROP_ROUNDS = 4  # builds of one unit before what still fails is the user's error


class InProcessLoader:
    """Loads a build into this process: the backend's own load step."""

    def load(self, backend: Backend, directory: Path, unit: BuildUnit, ctx: CellContext) -> Any:
        return backend.load(directory, unit, ctx)


@dataclass
class Pipeline:
    """A session's path from cell text to Python names, for any backend."""

    loader: InProcessLoader

    def run_cell(
        self, backend: Backend, text: str, options: argparse.Namespace, user_ns: Mapping[str, Any], ctx: CellContext
    ) -> CellResult:
        cell = ctx.cells.register(text, ctx.cell_label)
        inputs = _input_values(backend, options.input, user_ns)
        parsed = backend.parse(cell, options, {name: kind for name, (_, kind) in inputs.items()}, ctx)
        candidate = backend.candidate(parsed, cell, options, ctx)
        built = self._build_and_load(backend, candidate, ctx, f"{backend.display_name} cell {ctx.cell_label}")
        result = self._bind(backend, built, candidate, ctx, changed_only=candidate.statements is not None)
        backend.commit(candidate, built)
        if candidate.statements is not None:
            outputs = backend.run_statements(built, candidate, [value for value, _ in inputs.values()])
            result.bind.update(zip(candidate.outputs, outputs))
        return result

    def remove(self, backend: Backend, name: str, ctx: CellContext) -> CellResult:
        """Forget one declaration: the session without it is built, loaded and bound like a cell.

        A removal the rest of the session cannot build without is refused (ValueError),
        and the session stays as it was."""
        candidate = backend.removal(name)
        try:
            return self._rebuild(backend, candidate, ctx)
        except CompileError as error:
            first = error.diagnostics[0].render().split("\n")[0] if error.diagnostics else "the build fails"
            raise ValueError(f"cannot remove {name}: the session does not build without it ({first})") from None

    def reset(self, backend: Backend, ctx: CellContext) -> CellResult:
        return self._rebuild(backend, backend.emptied(), ctx)

    # -- the steps the three share ------------------------------------------------------
    def _rebuild(self, backend: Backend, candidate: Candidate, ctx: CellContext) -> CellResult:
        if not len(candidate.declarations):  # nothing to build: every name goes
            backend.commit(candidate, None)
            gone, backend.bound = sorted(backend.bound), {}
            return CellResult(unbind=gone)
        built = self._build_and_load(backend, candidate, ctx, f"the {backend.display_name} session")
        result = self._bind(backend, built, candidate, ctx)
        backend.commit(candidate, built)
        return result

    def _build_and_load(self, backend: Backend, candidate: Candidate, ctx: CellContext, description: str) -> Built:
        unit = backend.compose(candidate, {}, ctx)
        final: list[BuildUnit] = [unit]

        def build(directory: Path) -> None:
            final[0] = self._build_dropping(backend, candidate, unit, directory, ctx)
            (directory / DROPPED_FILE).write_text(json.dumps(final[0].dropped))

        def load(directory: Path) -> Any:
            dropped = json.loads((directory / DROPPED_FILE).read_text())
            if dropped != final[0].dropped:  # a cache hit: the unit its build ended with
                final[0] = backend.compose(candidate, dropped, ctx)
            return self.loader.load(backend, directory, final[0], ctx)

        with ctx.building(description) as feedback:
            loaded, report = ctx.cache.get_or_build(unit.key_parts, build, load, force=ctx.force)
            if report.cache_hit:
                feedback.outcome = "from cache"
        for warning in final[0].dropped.values():  # said on every load, cached or not
            ctx.warn(warning)
        return Built(loaded, final[0], report)

    @staticmethod
    def _build_dropping(backend: Backend, candidate: Candidate, unit: BuildUnit, directory: Path, ctx: CellContext) -> BuildUnit:
        """Build; while the compiler says only that some declarations cannot cross to
        Python, leave those out and build again. What remains is the user's error."""
        for _ in range(MAX_DROP_ROUNDS):
            try:
                backend.build(unit, directory, ctx)
                return unit
            except CompileError as error:
                more = {n: why for n, why in backend.cannot_cross(error, unit).items() if n not in unit.dropped}
                if not more:
                    raise
                unit = backend.compose(candidate, {**unit.dropped, **more}, ctx)
                for leftover in directory.iterdir():
                    _remove(leftover)
        backend.build(unit, directory, ctx)
        return unit

    @staticmethod
    def _bind(backend: Backend, built: Built, candidate: Candidate, ctx: CellContext, changed_only: bool = False) -> CellResult:
        """Bind what the build offers and unbind what it no longer does. A cell of
        statements rebinds only the objects its build replaced: a name the user
        reassigned in Python keeps the user's value unless the build changed it."""
        names = backend.bind(built, candidate, ctx)
        gone = sorted(set(backend.bound) - set(names))
        shown = {n: v for n, v in names.items() if not changed_only or backend.bound.get(n) is not v}
        backend.bound = dict(names)
        return CellResult(bind=shown, unbind=gone, report=built.report)


class _NoFeedback:
    outcome = "built"


def run_without_kernel(backend: Backend, cache, text: str, line: str = "", label: str = "In [1]", warn=None) -> dict[str, Any]:
    """A cell through the pipeline with no kernel, no IPython and no namespace: the names it binds.

    What `python -m ipolyglot.kernel warm` and the benchmarks use: the same path
    as a `%%go` / `%%cpp` cell, minus live feedback and -i inputs.
    """
    from .backend import CellContext
    from .cells import CellRegistry
    from .options import make_parser, parse_line

    ctx = CellContext(
        cell_label=label, cache=cache, cells=CellRegistry(), toolchain=backend.find_toolchain,
        verbose=lambda _message: None, warn=warn or (lambda _message: None),
        building=lambda _what: contextlib.nullcontext(_NoFeedback()),
    )
    options = parse_line(make_parser(backend.language, backend), line)
    return Pipeline(InProcessLoader()).run_cell(backend, text, options, {}, ctx).bind


def _input_values(backend: Backend, names: list[str], user_ns: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """-i NAME: each Python value with the native type it crosses as (name -> (value, type))."""
    found = {}
    for name in names:
        if name not in user_ns:
            raise CompileError(backend.display_name, [Diagnostic(f"-i {name}: there is no Python variable named {name!r}")])
        try:
            found[name] = (user_ns[name], backend.input_type(name, user_ns[name]))
        except ValueError as exc:
            raise CompileError(backend.display_name, [Diagnostic(f"-i {name}: {exc}")]) from None
    return found


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()

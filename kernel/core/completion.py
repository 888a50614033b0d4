"""Completion and inspection inside %%go and %%cpp cells, with a deadline.

The kernel answers complete_request and inspect_request itself, so every
front end (JupyterLab, Notebook, VS Code, jupyter console) gets them. Each
language has one completer (gopls for Go, libclang for C++), imported on
first use like the backends. The session is read on the kernel's thread;
the slow part runs on the language's own worker thread, and the kernel waits
at most `timeout` seconds: a late answer is an empty one, never an error.
"""

from __future__ import annotations

import importlib
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .cell_context import MagicCell

DEADLINE_SECONDS = 1.0

COMPLETERS = {
    "go": ("ipolyglot.go_bridge.completion", "GoCompleter"),
    "cpp": ("ipolyglot.cpp_ext.completion", "CppCompleter"),
}


@dataclass
class Completion:
    """Matches for the text between cursor_start and cursor_end (offsets into the cell body)."""

    matches: list[str]
    cursor_start: int
    cursor_end: int
    types: list[dict] = field(default_factory=list)  # Jupyter's _jupyter_types_experimental entries

    @classmethod
    def empty(cls, cursor: int) -> "Completion":
        return cls([], cursor, cursor)


@dataclass
class Inspection:
    """What Shift-Tab shows: a signature and its doc comment, as plain text."""

    text: str = ""

    @property
    def found(self) -> bool:
        return bool(self.text)

    @classmethod
    def of(cls, text: str) -> "Inspection":
        return cls(text)

    @classmethod
    def nothing(cls) -> "Inspection":
        return cls("")


class LanguageCompleter(Protocol):
    def snapshot(self) -> Any:
        """The session's declarations, read on the kernel's thread (cheap): snapshot_of(its backend)."""

    @staticmethod
    def snapshot_of(backend: Any) -> Any:
        """The declarations of a backend as plain data (it may come from the worker process)."""

    def complete(self, session: Any, body: str, cursor: int, timeout: float) -> Completion: ...

    def inspect(self, session: Any, body: str, cursor: int, timeout: float) -> Inspection: ...

    def close(self) -> None: ...


@dataclass
class _Worker:
    completer: LanguageCompleter
    thread: ThreadPoolExecutor


class CellCompletion:
    """The kernel's completers, one per language, each with one worker thread."""

    def __init__(self, backend_for: Callable[[str], Any], timeout: float = DEADLINE_SECONDS,
                 session_for: Callable[[str, LanguageCompleter], Any] | None = None):
        self._backend_for = backend_for  # language -> its session backend (raises if unavailable)
        # language, completer -> the session's declarations; where native code runs in a
        # worker process, the worker's backend holds them and is asked instead.
        self._session_for = session_for or (lambda _language, completer: completer.snapshot())
        self.timeout = timeout
        self._workers: dict[str, _Worker] = {}

    def complete(self, cell: MagicCell) -> Completion:
        answer = self._ask(cell, "complete")
        return answer if answer is not None else Completion.empty(cell.cursor)

    def inspect(self, cell: MagicCell) -> Inspection:
        answer = self._ask(cell, "inspect")
        return answer if answer is not None else Inspection.nothing()

    def close(self) -> None:
        for worker in self._workers.values():
            worker.thread.submit(worker.completer.close)
            worker.thread.shutdown(wait=False)
        self._workers.clear()

    def _ask(self, cell: MagicCell, what: str):
        deadline = time.monotonic() + self.timeout
        worker = self._worker(cell.language)
        if worker is None:
            return None
        try:
            session = self._session_for(cell.language, worker.completer)
        except Exception:  # a completion never errors: the cell may be anything
            return None

        def run():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None  # queued behind a slow request: its asker has gone
            return getattr(worker.completer, what)(session, cell.body, cell.cursor, remaining)

        future = worker.thread.submit(run)
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            return None
        except Exception:
            return None

    def _worker(self, language: str) -> _Worker | None:
        if language not in self._workers:
            try:
                module_name, class_name = COMPLETERS[language]
                completer_class = getattr(importlib.import_module(module_name), class_name)
                completer = completer_class(self._backend_for(language))
            except Exception:
                return None
            self._workers[language] = _Worker(completer, ThreadPoolExecutor(1, thread_name_prefix=f"complete-{language}"))
        return self._workers[language]

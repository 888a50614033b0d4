"""complete_request and inspect_request for the kernel: cell magics get their language's answer.

A mixin for the kernel class, so that the message handling stays in one
small place: inside a %%go or %%cpp cell the cell's language answers (see
completion.py), anywhere else IPython does, exactly as before.
"""

from __future__ import annotations

from .core.cell_context import MagicCell, magic_cell_at
from .core.completion import CellCompletion


class CellCompletionRequests:
    """Mixed into an IPythonKernel subclass (before it) to answer inside cell magics."""

    _cell_completion: CellCompletion | None = None

    @property
    def cell_completion(self) -> CellCompletion:
        if self._cell_completion is None:
            self._cell_completion = CellCompletion(self._language_backend, session_for=self._session_snapshot)
        return self._cell_completion

    def _session_snapshot(self, language: str, completer):
        """The declarations earlier cells made: the worker's, when native code runs there."""
        magics = self.shell.magics_manager.registry["PolyglotMagics"]
        if magics.mode == "worker" and magics.worker_started:
            found = magics.worker.completion_session(language)
            if found is not None:
                return found
        return completer.snapshot()

    def _language_backend(self, language: str):
        magics = self.shell.magics_manager.registry["PolyglotMagics"]
        return magics.backend(language)

    def do_complete(self, code, cursor_pos):
        cell = magic_cell_at(code, cursor_pos)
        if cell is None:
            return super().do_complete(code, cursor_pos)
        answer = self.cell_completion.complete(cell)
        types = [{**entry, "start": cell.to_cell(entry["start"]), "end": cell.to_cell(entry["end"])} for entry in answer.types]
        return {
            "status": "ok",
            "matches": answer.matches,
            "cursor_start": cell.to_cell(answer.cursor_start),
            "cursor_end": cell.to_cell(answer.cursor_end),
            "metadata": {"_jupyter_types_experimental": types} if types else {},
        }

    def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        cell = magic_cell_at(code, cursor_pos)
        if cell is None:
            return super().do_inspect(code, cursor_pos, detail_level, omit_sections)
        answer = self.cell_completion.inspect(cell)
        return {
            "status": "ok",
            "found": answer.found,
            "data": {"text/plain": answer.text} if answer.found else {},
            "metadata": {},
        }

    def do_shutdown(self, restart):
        if self._cell_completion is not None:
            self._cell_completion.close()
            self._cell_completion = None
        return super().do_shutdown(restart)


__all__ = ["CellCompletionRequests", "MagicCell"]

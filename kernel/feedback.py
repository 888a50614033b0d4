"""Live build feedback: a line that counts seconds while a slow build runs.

Builds under half a second stay silent. A longer build shows
"building <what> … 1.5 s" and ends as a one-line summary ("<what>: built in
2.1 s"). Where that line lives depends on the front end:

- in a kernel (any ipykernel), one display that is updated in place
  (`display_id`): a notebook saved after a headless run keeps only the
  summary, where a stream would keep one line per tick;
- in a terminal, a stream line rewritten with a carriage return.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from typing import Callable, Protocol

SHOW_AFTER = 0.5
TICK = 0.5


class ProgressLine(Protocol):
    """Where the live line goes: shown, rewritten, and finally replaced by the summary."""

    def show(self, text: str) -> None: ...

    def finish(self, text: str) -> None: ...


class StreamLine:
    """A line on a text stream rewritten in place with '\\r' (terminals)."""

    def __init__(self, stream=None):
        self._stream = stream
        self._last_length = 0

    @property
    def stream(self):
        return self._stream or sys.stdout

    def show(self, text: str) -> None:
        self._write(f"\r{text}")

    def finish(self, text: str) -> None:
        self._write(f"\r{text}", end="\n")

    def _write(self, text: str, end: str = "") -> None:
        # Pad over the previous line so a shorter one leaves no debris in a terminal.
        body = text.lstrip("\r")
        pad = " " * max(0, self._last_length - len(body))
        self._last_length = len(body)
        self.stream.write(text + pad + end)
        self.stream.flush()


class DisplayLine:
    """One display output updated in place (`update_display_data`), for kernels."""

    def __init__(self):
        self._handle = None

    def show(self, text: str) -> None:
        from IPython.display import display

        bundle = {"text/plain": text}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def finish(self, text: str) -> None:
        self.show(text)


def progress_line_for(shell) -> Callable[[], ProgressLine]:
    """DisplayLine where the shell publishes displays to a front end (a kernel), else StreamLine."""
    try:
        from ipykernel.zmqshell import ZMQInteractiveShell
    except ImportError:
        return StreamLine
    return DisplayLine if isinstance(shell, ZMQInteractiveShell) else StreamLine


class BuildFeedback:
    def __init__(self, quiet: bool = False, stream=None, line_factory: Callable[[], ProgressLine] | None = None):
        self.quiet = quiet
        self._new_line = line_factory or (lambda: StreamLine(stream))
        self.shown = False
        self.outcome = "built"

    @contextlib.contextmanager
    def building(self, what: str):
        """Wrap a build; set `.outcome = "from cache"` inside if it turned out cached."""
        if self.quiet:
            yield self
            return
        line = self._new_line()
        started = time.perf_counter()
        done = threading.Event()

        def ticker():
            if done.wait(SHOW_AFTER):
                return
            # The first showing carries no figure: a front end that ignores display
            # updates (jupyter console) keeps only this line, so it must read true alone.
            self.shown = True
            line.show(f"building {what} …")
            while not done.wait(TICK):
                line.show(f"building {what} … {time.perf_counter() - started:.1f} s")

        # The ticker runs in the cell's context, so its output goes to the cell that builds.
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(ticker,), name="ipolyglot-build-feedback", daemon=True)
        thread.start()
        ok = False
        try:
            yield self
            ok = True
        finally:
            done.set()
            thread.join()
            if self.shown:
                line.finish(f"{what}: {self._summary(ok, time.perf_counter() - started)}")

    def _summary(self, ok: bool, elapsed: float) -> str:
        if not ok:
            return f"build failed after {elapsed:.1f} s"
        return f"built in {elapsed:.1f} s" if self.outcome == "built" else self.outcome

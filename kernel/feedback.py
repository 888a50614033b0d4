"""Live build feedback: a line that counts seconds while a slow build runs.

Builds under half a second stay silent. A longer build shows
"building <what> … 1.5 s", rewritten in place with a carriage return (which
JupyterLab, the classic notebook and terminals such as `jupyter console` all
honour in a stream), and ends as a one-line summary.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

SHOW_AFTER = 0.5
TICK = 0.5


class BuildFeedback:
    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self._stream = stream
        self.shown = False
        self.outcome = "built"

    @property
    def stream(self):
        return self._stream or sys.stdout

    def _write(self, text: str) -> None:
        # Pad over the previous live line so a shorter one leaves no debris in a terminal.
        body = text.lstrip("\r").rstrip("\n")
        pad = " " * max(0, getattr(self, "_last", 0) - len(body))
        self._last = len(body)
        self.stream.write(text.rstrip("\n") + pad + ("\n" if text.endswith("\n") else ""))
        self.stream.flush()

    @contextlib.contextmanager
    def building(self, what: str):
        """Wrap a build; set `.outcome = "from cache"` inside if it turned out cached."""
        if self.quiet:
            yield self
            return
        started = time.perf_counter()
        done = threading.Event()

        def ticker():
            if done.wait(SHOW_AFTER):
                return
            while True:
                self.shown = True
                self._write(f"\rbuilding {what} … {time.perf_counter() - started:.1f} s")
                if done.wait(TICK):
                    return

        thread = threading.Thread(target=ticker, name="ipolyglot-build-feedback", daemon=True)
        thread.start()
        ok = False
        try:
            yield self
            ok = True
        finally:
            done.set()
            thread.join()
            if self.shown:
                elapsed = time.perf_counter() - started
                summary = f"{self.outcome} in {elapsed:.1f} s" if ok and self.outcome == "built" else (
                    self.outcome if ok else f"build failed after {elapsed:.1f} s")
                self._write(f"\r{what}: {summary}\n")

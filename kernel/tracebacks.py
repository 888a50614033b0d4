"""Errors raised through native code show the user's line and the message, not ipolyglot's frames.

A call such as `Add("a", 1)` passes through ipolyglot's Python on its way to
native code and back: a generated wrapper (which has no source to show), the
marshaling, the status check that raises. Those frames tell the user nothing
and push the message off the screen; an exception caught and replaced inside
them adds a "During handling of the above exception" section about internals.

The same holds for a statement cell whose native code panics or throws: the
magic, the backend and the loader are not the user's business.

`install(shell)` wraps the shell's traceback formatter once. It hides every
frame of an `ipolyglot` module (generated code included: it runs with the
`__name__` of the module that generated it), and it drops a chained exception
that lived and died inside those frames. The user's own frames (their cell,
their functions, their callbacks called from native code) all stay. Setting
the formatter's `skip_hidden` to False (IPython's switch for
`__tracebackhide__` frames) shows ours as well, for debugging ipolyglot itself.
"""

from __future__ import annotations

import contextlib
from types import FrameType, TracebackType
from typing import Iterator

PACKAGE = "ipolyglot"


def _module_of(frame: FrameType) -> str:
    return frame.f_globals.get("__name__") or ""


def is_ipolyglot_frame(frame: FrameType) -> bool:
    module = _module_of(frame)
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def without_ipolyglot_frames(tb: TracebackType | None) -> TracebackType | None:
    """A new traceback chain with ipolyglot's frames left out; the original is not changed."""
    kept = [entry for entry in _frames(tb) if not is_ipolyglot_frame(entry.tb_frame)]
    pruned = None
    for entry in reversed(kept):
        pruned = TracebackType(pruned, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return pruned


def _is_internal(exc: BaseException) -> bool:
    """An exception raised and caught within ipolyglot's frames (its traceback holds no other)."""
    return all(is_ipolyglot_frame(entry.tb_frame) for entry in _frames(exc.__traceback__))


@contextlib.contextmanager
def _chain_without_internals(exc: BaseException) -> Iterator[None]:
    """While formatting: chained exceptions lose ipolyglot's frames, internal contexts are dropped.

    The formatter reads chained exceptions' `__traceback__`; the originals are
    put back afterwards so `%debug` and the user's own handling see them whole.
    """
    saved: list[tuple[BaseException, TracebackType | None, bool]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    try:
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            saved.append((current, current.__traceback__, current.__suppress_context__))
            if current is not exc:
                current.__traceback__ = without_ipolyglot_frames(current.__traceback__)
            context = current.__context__
            if current.__cause__ is None and context is not None and _is_internal(context):
                current.__suppress_context__ = True
            current = current.__cause__ or (None if current.__suppress_context__ else context)
        yield
    finally:
        for original, tb, suppress in saved:
            original.__traceback__ = tb
            original.__suppress_context__ = suppress


class WithoutIpolyglotFrames:
    """Stands in for a formatter's `structured_traceback`, hiding ipolyglot's frames."""

    def __init__(self, formatter):
        self.formatter = formatter
        self.format = formatter.structured_traceback

    def __call__(self, etype, evalue=None, etb=None, tb_offset=None, context=5):
        hide = getattr(self.formatter, "skip_hidden", True) and isinstance(evalue, BaseException)
        if not hide or not isinstance(etb, TracebackType):
            return self.format(etype, evalue, etb, tb_offset, context)
        with _chain_without_internals(evalue):
            return self.format(etype, evalue, without_ipolyglot_frames(etb), tb_offset, context)


def install(shell) -> None:
    """Hide ipolyglot's frames in the shell's tracebacks (once per shell)."""
    formatter = shell.InteractiveTB
    if not isinstance(formatter.structured_traceback, WithoutIpolyglotFrames):
        formatter.structured_traceback = WithoutIpolyglotFrames(formatter)

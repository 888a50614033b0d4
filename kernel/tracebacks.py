"""Errors raised through native functions show the user's line, not ipolyglot's frames.

A call such as `Add("a", 1)` passes through ipolyglot's Python on its way to
native code and back: a generated wrapper (which has no source to show), the
marshaling, the status check that raises. Those frames tell the user nothing
and push the message off the screen; an exception caught and replaced inside
them adds a "During handling of the above exception" section about internals.

`install(shell)` wraps the shell's traceback formatter once. For a traceback
whose outermost ipolyglot frame is a bound native object (not a magic), it
hides every frame of an `ipolyglot` module, including generated code, which
runs with the `__name__` of the module that generated it, and it drops a
chained exception that lived and died inside those frames. The user's own
frames (their cell, their callbacks called from native code) all stay. A
magic's failures are left whole: the ones that are the user's are shown short
already (magics.SHORT_ERRORS), any other is a fault of ipolyglot whose frames
are what a bug report needs. Setting the formatter's `skip_hidden` to False
(IPython's switch for `__tracebackhide__` frames) shows ours as well.
"""

from __future__ import annotations

import contextlib
from types import FrameType, TracebackType
from typing import Iterator

PACKAGE = "ipolyglot"
MAGICS_MODULE = "ipolyglot.kernel.magics"  # where IPython enters ipolyglot for %%go, %polyglot, ...


def _module_of(frame: FrameType) -> str:
    return frame.f_globals.get("__name__") or ""


def is_ipolyglot_frame(frame: FrameType) -> bool:
    module = _module_of(frame)
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def raised_through_native_call(tb: TracebackType | None) -> bool:
    """True when user code called into a bound native object (not a magic) and the error came out of it."""
    for entry in _frames(tb):
        if is_ipolyglot_frame(entry.tb_frame):
            return _module_of(entry.tb_frame) != MAGICS_MODULE
    return False


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


class NativeCallTracebacks:
    """Stands in for a formatter's `structured_traceback`, hiding ipolyglot's frames where they are noise."""

    def __init__(self, formatter):
        self.formatter = formatter
        self.format = formatter.structured_traceback

    def __call__(self, etype, evalue=None, etb=None, tb_offset=None, context=5):
        if not getattr(self.formatter, "skip_hidden", True) or not isinstance(evalue, BaseException) \
                or not isinstance(etb, TracebackType) or not raised_through_native_call(etb):
            return self.format(etype, evalue, etb, tb_offset, context)
        with _chain_without_internals(evalue):
            return self.format(etype, evalue, without_ipolyglot_frames(etb), tb_offset, context)


def install(shell) -> None:
    """Hide ipolyglot's frames in the shell's tracebacks of native calls (once per shell)."""
    formatter = shell.InteractiveTB
    if not isinstance(formatter.structured_traceback, NativeCallTracebacks):
        formatter.structured_traceback = NativeCallTracebacks(formatter)

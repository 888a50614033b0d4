"""Go channels that a Go function returned, received from in Python.

A Go function whose result is a channel (`chan T` or `<-chan T`) returns a
GoChannel: `for value in channel` receives until Go closes it, `async for`
does the same without blocking the event loop, and `receive()` is Go's
`value, ok := <-channel`. Go keeps the channel for Python until the GoChannel
is garbage-collected (runtime/ipgrt/channels.go).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any


class GoChannel:
    """A Go channel Python receives from; waiting for a value releases the GIL."""

    def __init__(self, library, handle: int, go_type: str):
        self._library = library
        self._handle = handle
        self._go_type = go_type
        self._pending: asyncio.Future | None = None  # a receive an async reader was cancelled in
        weakref.finalize(self, library.lib.ipg_chan_release, handle)

    def receive(self) -> tuple[Any, bool]:
        """The next value and True, or the zero value and False once Go closed the channel."""
        value, received = self._library.receive(self._handle)
        return value, received

    def __iter__(self):
        while True:
            value, received = self.receive()
            if not received:
                return
            yield value

    async def areceive(self) -> tuple[Any, bool]:
        """`receive()` awaited in a thread. If the awaiting task is cancelled, the
        receive goes on in its thread and the next `areceive` gets its value: none is lost."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(asyncio.to_thread(self.receive))
        result = await asyncio.shield(self._pending)
        self._pending = None
        return result

    async def __aiter__(self):
        while True:
            value, received = await self.areceive()
            if not received:
                return
            yield value

    def __repr__(self) -> str:
        return f"<Go {self._go_type} #{self._handle}>"

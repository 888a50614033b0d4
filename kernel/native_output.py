"""In-order output from native code (Go's fmt, C++'s std::cout, printf).

Native code writes to file descriptors 1 and 2, not to Python's sys.stdout.
ipykernel forwards those descriptors from a background thread, which lags: a
Go line printed between two Python prints arrives after both. Here each
descriptor is pointed at a pipe we own, and the pipe is drained
*synchronously* (after flushing C's stdio buffers) every time Python writes to
the same stream and when a cell finishes. Whatever native code wrote before a
Python print is therefore already in the pipe and goes out first. A background
thread still drains the pipe while native code runs, so long-running calls
stream their output and a full pipe never blocks a writer.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import select
import sys
import threading

_libc = ctypes.CDLL(None)
_libc.fflush.argtypes = [ctypes.c_void_p]


def flush_c_stdio() -> None:
    """Flush every C stdio buffer (printf, std::cout through stdio) into its descriptor."""
    _libc.fflush(None)


# One lock for both descriptors, so a drain and a Python write never interleave.
_order_lock = threading.RLock()


class _Pump:
    """Owns one descriptor's pipe and feeds it to one Python stream, in order."""

    def __init__(self, fd: int, stream):
        self.fd = fd
        self.stream = stream
        self.lock = _order_lock
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.original_write = stream.write
        self.saved_fd = os.dup(fd)
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.dup2(write_end, fd)
        os.close(write_end)
        self.read_end = read_end
        self.closed = False
        stream.write = self.write  # instance attribute: print() goes through us
        self.thread = threading.Thread(target=self._watch, name=f"ipolyglot-fd{fd}", daemon=True)
        self.thread.start()

    def _read_available(self) -> str:
        chunks = []
        while True:
            try:
                data = os.read(self.read_end, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        return self.decoder.decode(b"".join(chunks)) if chunks else ""

    def drain(self) -> None:
        with self.lock:
            text = self._read_available()
            if text:
                self.original_write(text)

    def write(self, text: str):
        with _order_lock:
            drain()  # both descriptors: native stderr written before this print goes first too
            return self.original_write(text)

    def _watch(self) -> None:
        while not self.closed:
            try:
                ready, _, _ = select.select([self.read_end], [], [], 0.2)
            except (OSError, ValueError):
                return
            if ready:
                self.drain()

    def close(self) -> None:
        self.closed = True
        self.thread.join(timeout=1)
        flush_c_stdio()
        self.drain()
        os.dup2(self.saved_fd, self.fd)
        os.close(self.saved_fd)
        os.close(self.read_end)
        try:
            del self.stream.write
        except AttributeError:
            pass


_pumps: list[_Pump] = []


def install() -> bool:
    """Route fds 1 and 2 through in-order pumps when running inside a kernel.

    In a terminal IPython the descriptors already are the terminal and order
    is natural, so nothing is changed there.
    """
    if _pumps:
        return True
    try:
        from ipykernel.iostream import OutStream
    except ImportError:
        return False
    if not isinstance(sys.stdout, OutStream) or not isinstance(sys.stderr, OutStream):
        return False
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
        _pumps.append(_Pump(fd, stream))
    return True


def drain() -> None:
    """Emit everything native code has written so far (call when a cell ends)."""
    if not _pumps:
        return
    flush_c_stdio()
    for pump in _pumps:
        pump.drain()


def uninstall() -> None:
    while _pumps:
        _pumps.pop().close()

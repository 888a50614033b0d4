"""The shared-memory lane beside a worker's main connection (resources/fast_channel.c).

A scalar call in a loop crosses through one shared page while both processes spin for a
bounded time, instead of through the pipe: a pipe round trip wakes a sleeping process, and
on a virtual machine whose idle CPUs halt, a wake-up on the other CPU costs tens of
microseconds. The pipe stays the connection proper: every call the lane does not take (a
first call after a pause, other arguments or results, errors, callbacks, interrupts) goes
there, and the worker's death is seen there. With one CPU, no compiler or no memfd, there
is no lane and calls take the pipe as before.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import ModuleType

from .core import c_extension

SPIN_NS_VARIABLE = "IPOLYGLOT_SPIN_NS"
DEFAULT_SPIN_NS = 200_000  # about the cost of two wake-ups of a halted vCPU, spent at most once per pause
EXTENSION_SOURCE = Path(__file__).parent / "resources" / "fast_channel.c"


def lane_module() -> ModuleType | None:
    """The compiled lane, or None where it cannot be built."""
    return c_extension.load(c_extension.CExtension("ipolyglot_fast_channel", EXTENSION_SOURCE.read_text(), "worker-lane"))


def spin_ns() -> int:
    """How long each side spins before it goes back to the pipe: 0 (no lane) on one CPU."""
    if len(os.sched_getaffinity(0)) < 2:
        return 0
    try:
        return max(0, int(os.environ.get(SPIN_NS_VARIABLE, DEFAULT_SPIN_NS)))
    except ValueError:
        return DEFAULT_SPIN_NS


def create_page() -> int | None:
    """A memfd of one page for a new worker's lane (inherited by the worker); None when there is no lane."""
    module = lane_module()
    if module is None or spin_ns() == 0 or not hasattr(os, "memfd_create"):
        return None
    fd = os.memfd_create("ipolyglot-lane", 0)
    os.ftruncate(fd, module.PAGE_BYTES)
    return fd


def kernel_lane(fd: int):
    """The kernel's side of the lane whose page is `fd`; calls of the kernel's main thread take it."""
    return lane_module().Lane(fd, spin_ns(), threading.main_thread().ident)


def worker_lane(fd: int):
    """The worker's side of the lane (its main thread serves it), or None when it cannot load."""
    module = lane_module()
    if module is None:
        return None
    try:
        return module.Lane(fd, spin_ns())
    finally:
        os.close(fd)

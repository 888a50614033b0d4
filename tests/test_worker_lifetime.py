"""Worker mode: the native worker never outlives its kernel, however the kernel ends."""

from __future__ import annotations

import os
import queue
import signal
import time

from conftest import RunningKernel

SPIN_CELL = r'''%%cpp
#include <cstdio>
int lifetime_twice(int x) { return 2 * x; }
void lifetime_spin() { std::puts("native call running"); std::fflush(stdout); volatile long n = 0; while (true) { n = n + 1; } }
'''
GONE_WITHIN_SECONDS = 10


def worker_pid(kernel: RunningKernel) -> int:
    for line in kernel.run("%polyglot info").ok().stdout.splitlines():
        if line.startswith("worker pid"):
            return int(line.split()[-1])
    raise AssertionError("no worker pid in %polyglot info")


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def assert_gone(pid: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(pid), f"worker {pid} outlived its kernel"


def kill_kernel(kernel: RunningKernel) -> None:
    os.kill(kernel.km.provisioner.process.pid, signal.SIGKILL)


def wait_for_output(kernel: RunningKernel, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} never appeared"
        try:
            msg = kernel.kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["msg_type"] == "stream":
            seen += msg["content"]["text"]


def test_worker_dies_when_its_kernel_is_killed_between_calls():
    with RunningKernel(env={"IPOLYGLOT_MODE": "worker"}) as kernel:
        kernel.run(SPIN_CELL, timeout=600).ok()
        assert kernel.eval("lifetime_twice(4)") == 8
        pid = worker_pid(kernel)
        kill_kernel(kernel)
        assert_gone(pid)


def test_worker_dies_when_its_kernel_is_killed_during_an_endless_native_call():
    with RunningKernel(env={"IPOLYGLOT_MODE": "worker"}) as kernel:
        kernel.run(SPIN_CELL, timeout=600).ok()
        pid = worker_pid(kernel)
        kernel.kc.execute("lifetime_spin()")
        wait_for_output(kernel, "native call running")
        kill_kernel(kernel)
        assert_gone(pid)


def test_worker_dies_when_its_kernel_shuts_down():
    with RunningKernel(env={"IPOLYGLOT_MODE": "worker"}) as kernel:
        kernel.run(SPIN_CELL, timeout=600).ok()
        pid = worker_pid(kernel)
        kernel.kc.stop_channels()
        kernel.km.shutdown_kernel(now=False)
        assert_gone(pid)


def test_worker_started_from_a_thread_outlives_that_thread():
    with RunningKernel(env={"IPOLYGLOT_MODE": "worker"}) as kernel:
        kernel.run("import threading\n"
                   "starter = threading.Thread(target=get_ipython().run_cell_magic, args=('cpp', '', "
                   f"{SPIN_CELL.split(chr(10), 1)[1]!r}))\n"
                   "starter.start(); starter.join()").ok()
        pid = worker_pid(kernel)
        time.sleep(1.0)
        assert is_running(pid)
        assert kernel.eval("lifetime_twice(5)") == 10
        assert worker_pid(kernel) == pid

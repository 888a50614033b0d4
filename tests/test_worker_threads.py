"""Worker mode: calls from different kernel threads run at the same time in the worker."""

from __future__ import annotations

import pytest

from conftest import RunningKernel, check

CPP_CELL = r'''%%cpp
#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>
long long now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
long long stay(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); return now_us(); }
int twice_later(std::function<int(int)> f, int x) { std::this_thread::sleep_for(std::chrono::milliseconds(100)); return 2 * f(x); }
int triple(int x) { return 3 * x; }
void die() { std::abort(); }
'''


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel(env={"IPOLYGLOT_MODE": "worker"}) as running:
        running.run(CPP_CELL, timeout=600).ok()
        yield running


def test_calls_from_threads_overlap_with_the_main_threads(kernel):
    check(kernel, """
import threading
windows = []
def timed():
    start = now_us(); windows.append((start, stay(400)))
threads = [threading.Thread(target=timed) for _ in range(3)]
[t.start() for t in threads]; timed(); [t.join() for t in threads]
assert len(windows) == 4
assert max(s for s, _ in windows) < min(e for _, e in windows), windows   # all four ran at once
""")


def test_callbacks_of_thread_calls_run_on_their_thread_and_may_call_native_code(kernel):
    check(kernel, """
import threading
results = {}
def job(i):
    results[i] = twice_later(lambda x: triple(x) + (threading.get_ident() == idents[i]), i)
idents = {}
threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
for i, t in enumerate(threads): t.start(); idents[i] = t.ident
[t.join() for t in threads]
assert results == {i: 2 * (3 * i + 1) for i in range(4)}, results
""")


def test_a_crash_in_a_threads_call_is_an_error_there_and_the_session_survives(kernel):
    check(kernel, """
import threading
errors = []
def crash():
    try:
        die()
    except Exception as error:
        errors.append(type(error).__name__)
t = threading.Thread(target=crash); t.start(); t.join()
assert errors == ["NativeCrash"], errors
assert triple(5) == 15
results = []
t = threading.Thread(target=lambda: results.append(triple(7))); t.start(); t.join()
assert results == [21]
""")

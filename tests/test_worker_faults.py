"""Worker mode: native faults and interrupts end the call, never the kernel or its Python state.

One kernel for the module: every crash replaces the worker and reloads the
session's two cells from the build cache, so later tests reuse the same
session; each test also checks that what existed before still works.
"""

from __future__ import annotations

import queue
import re
import time

import pytest

from conftest import CellOutput, RunningKernel

GO_CELL = r'''%%go
import (
    "fmt"
    "log"
    "os"
    "runtime"
    "sync"
    "time"
)
var Counter = 1
func Double(x int) int { return 2 * x }
func Bump() int { Counter++; return Counter }
func Exit() { os.Exit(3) }
func Fatal() { log.Fatal("the ledger does not balance") }
func Goexit() { runtime.Goexit() }
func MapRace() {
    m := map[int]int{}
    var wg sync.WaitGroup
    for g := 0; g < 8; g++ {
        wg.Add(1)
        go func() { defer wg.Done(); for i := 0; i < 1000000; i++ { m[i%64] = i } }()
    }
    wg.Wait()
}
func Huge() int { b := make([]byte, 1<<45); return len(b) }
func Deep(n int) int { var pad [64]int; pad[n%64] = n; return Deep(n+1) + pad[(n+1)%64] }
func Spin() int { fmt.Println("native call running"); n := 0; for { n++ } }
func Block() { fmt.Println("native call running"); select {} }
func Sleep() { fmt.Println("native call running"); time.Sleep(time.Hour) }
func WarnThenRecurse() int { fmt.Fprintln(os.Stderr, "about to recurse"); return Deep(0) }
func NotReallyPanic() int { fmt.Fprintln(os.Stderr, "panic: not really"); return 7 }
'''

CPP_CELL = r'''%%cpp
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stdexcept>
#include <thread>
int twice(int x) { return 2 * x; }
void null_deref() { volatile int* p = nullptr; *p = 1; }
void call_abort() { std::abort(); }
void call_terminate() { std::terminate(); }
void exit4() { std::exit(4); }
void thread_throw() { std::thread t([] { throw std::runtime_error("thread boom"); }); t.join(); }
void thread_callback(std::function<void()> f) { std::thread t(f); t.join(); }
void spin() { std::puts("native call running"); std::fflush(stdout); volatile long n = 0; while (true) { n = n + 1; } }
'''


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel() as running:
        running.run("%polyglot mode worker").ok()
        running.go_cell = running.run(GO_CELL, timeout=600).ok().execution_count
        running.cpp_cell = running.run(CPP_CELL, timeout=900).ok().execution_count
        running.run("before = 'kept'").ok()
        yield running


def assert_session_survived(kernel: RunningKernel) -> None:
    assert kernel.eval("(before, Double(21), twice(4))") == ("kept", 42, 8)


def crash_message(out: CellOutput) -> str:
    assert out.status == "error", out.stdout
    assert out.error["ename"] == "NativeCrash", out.error_text
    return out.error_text


FAULTS = [
    ("null_deref()", [r"SIGSEGV", r"null_deref\(\)"]),
    ("call_abort()", [r"SIGABRT"]),
    ("call_terminate()", [r"SIGABRT", r"terminate called without an active exception"]),
    ("exit4()", [r"exited with code 4"]),
    ("thread_throw()", [r"SIGABRT", r"thread boom"]),
    ("Exit()", [r"exited with code 3"]),
    ("Fatal()", [r"exited with code 1", r"the ledger does not balance"]),
    ("Goexit()", [r"Goexit"]),
    ("MapRace()", [r"fatal error: concurrent map (writes|read and map write)"]),
    ("Huge()", [r"out of memory"]),
    ("Deep(0)", [r"goroutine stack exceeds"]),
]


@pytest.mark.parametrize("call,expected", FAULTS, ids=[call.split("(")[0] for call, _ in FAULTS])
def test_native_fault_is_an_error_and_the_session_survives(kernel, call, expected):
    message = crash_message(kernel.run(call, timeout=300))
    for pattern in expected:
        assert re.search(pattern, message), f"{pattern!r} not in:\n{message}"
    assert "Native state" in message and "reset" in message
    assert_session_survived(kernel)


def test_a_callback_raising_on_a_cpp_thread_is_the_calls_error_not_a_crash(kernel):
    out = kernel.run("thread_callback(lambda: 1 / 0)", timeout=300)
    assert out.status == "error" and out.error["ename"] == "ZeroDivisionError", out.error_text
    assert_session_survived(kernel)


def test_crash_resets_native_state_and_old_objects_say_so(kernel):
    kernel.run("kept_double = Double\nBump(); assert Bump() == 3").ok()
    crash_message(kernel.run("Exit()"))
    assert kernel.eval("Bump()") == 2  # Go package variables start again from their initializers
    out = kernel.run("kept_double(1)")
    assert out.status == "error" and out.error["ename"] == "StaleNativeObject", out.error_text
    assert "worker that ended" in out.error_text
    assert_session_survived(kernel)


def test_panic_in_init_is_a_build_error_and_the_previous_build_stays(kernel):
    out = kernel.run('%%go\nfunc init() { panic("init went wrong") }\nfunc Later() int { return 1 }', timeout=300)
    assert out.status == "error" and out.error["ename"] == "CompileError", out.error_text
    assert "init went wrong" in out.error_text
    assert kernel.eval("'Later' in dir()") is False
    assert_session_survived(kernel)


def run_and_interrupt(kernel: RunningKernel, code: str, timeout: float = 120) -> CellOutput:
    """Start a cell, interrupt it once its native call says it runs, and collect what the cell sent."""
    out = CellOutput(status="?")
    msg_id = kernel.kc.execute(code)
    interrupted = False
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"no reply {timeout} s after starting {code!r}"
        try:
            msg = kernel.kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.stdout += content["text"] if content["name"] == "stdout" else ""
            if "native call running" in out.stdout and not interrupted:
                interrupted = True
                kernel.km.interrupt_kernel()
        elif kind == "error":
            out.error = content
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = kernel.kc.get_shell_msg(timeout=timeout)
    out.status = reply["content"]["status"]
    return out


@pytest.mark.parametrize("call", ["Spin()", "Block()", "Sleep()", "spin()"])
def test_interrupt_ends_a_native_call_with_keyboard_interrupt(kernel, call):
    out = run_and_interrupt(kernel, call)
    assert out.status == "error" and out.error["ename"] == "KeyboardInterrupt", out.error_text
    assert "native state was reset" in out.error_text or "native state was kept" in out.error_text
    assert_session_survived(kernel)


DEBUG_CPP_CELL = """%%cpp -g
void debug_null_deref() {
    volatile int* p = nullptr;
    *p = 1;
}
void debug_caller() { debug_null_deref(); }
"""


def test_a_cpp_crash_shows_the_native_backtrace_with_cell_lines(kernel):
    cell = kernel.run(DEBUG_CPP_CELL, timeout=900).ok().execution_count
    message = crash_message(kernel.run("debug_caller()", timeout=300))
    assert re.search(rf"debug_null_deref\(\)\n\s+In \[{cell}\]:4\n", message), message  # the faulting line
    assert re.search(rf"debug_caller\(\)\n\s+In \[{cell}\]:6\n", message), message  # its caller
    assert "died during debug_caller()" in message  # the one line on which Python call was running
    assert 'File "' not in message and "worker_main" not in message, message  # the worker's own Python frames are not shown
    assert_session_survived(kernel)


def test_a_cpp_crash_without_debug_info_names_the_function_and_its_cell(kernel):
    message = crash_message(kernel.run("null_deref()", timeout=300))
    assert re.search(rf"null_deref\(\)\n\s+In \[{kernel.cpp_cell}\]\n", message), message
    assert "build the cell with -g for line numbers" in message and "ipolyglot_cpp_" not in message, message
    assert_session_survived(kernel)


def test_a_go_fatal_error_shows_gos_traceback_with_cell_lines(kernel):
    race_line = GO_CELL.splitlines().index("        go func() { defer wg.Done(); for i := 0; i < 1000000; i++ { m[i%64] = i } }()") + 1
    message = crash_message(kernel.run("MapRace()", timeout=300))
    assert re.search(rf"MapRace\.func1\S*\n\s+In \[{kernel.go_cell}\]:{race_line}\n", message), message
    assert re.search(rf"created by MapRace\n\s+In \[{kernel.go_cell}\]:{race_line}\n", message), message
    assert "cell-" not in message and "+0x" not in message, message  # Go's own names for cells and offsets are not the user's
    assert_session_survived(kernel)


def test_a_go_crash_dump_stays_out_of_the_cells_stderr(kernel):
    for call, cause in [("WarnThenRecurse()", "goroutine stack exceeds"), ("MapRace()", "concurrent map")]:
        out = kernel.run(call, timeout=300)
        message = crash_message(out)
        assert cause in message and f"In [{kernel.go_cell}]:" in message, message
        assert not re.search(r"^goroutine \d+ |cell-[0-9a-f]{6}", out.stderr, re.MULTILINE), out.stderr
    assert "about to recurse" in kernel.run("WarnThenRecurse()", timeout=300).stderr  # the user's own print stays
    out = kernel.run("NotReallyPanic()").ok()
    assert out.result == "7" and "panic: not really" in out.stderr, out.stderr
    assert_session_survived(kernel)

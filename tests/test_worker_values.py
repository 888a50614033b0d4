"""Worker mode keeps the in-process semantics: what crosses, callbacks, objects, output order, modes."""

from __future__ import annotations

import re

import pytest

from conftest import RunningKernel, check

GO_CELL = r'''%%go
import ("fmt"; "strings"; "sync")
type Point struct{ X, Y float64 }
type Box struct{ Name string; Corner Point }
var Limit = 7
func Shout(s string) string { fmt.Println("go:", s); return strings.ToUpper(s) + "!" }
func Move(p Point, dx float64) Point { return Point{p.X + dx, p.Y} }
func (p *Point) Scale(f float64) { p.X *= f; p.Y *= f }
func Label(b Box) string { return fmt.Sprintf("%s@%g", b.Name, b.Corner.X) }
func Sum(xs []float64) float64 { s := 0.0; for _, x := range xs { s += x }; return s }
func Twice(xs []float64) []float64 { out := make([]float64, len(xs)); for i, x := range xs { out[i] = 2 * x }; return out }
func Fan(f func(int) int, n int) int {
    var wg sync.WaitGroup
    var mu sync.Mutex
    total := 0
    for i := 0; i < n; i++ {
        wg.Add(1)
        go func(i int) { defer wg.Done(); v := f(i); mu.Lock(); total += v; mu.Unlock() }(i)
    }
    wg.Wait()
    return total
}
func Divide(a, b float64) (float64, error) { if b == 0 { return 0, fmt.Errorf("divide %g by zero", a) }; return a / b, nil }
'''

CPP_CELL = r'''%%cpp
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>
enum class Color { Red, Green };
struct Account {
    std::string owner;
    double balance = 0;
    double deposit(double x) { if (x < 0) throw std::invalid_argument("negative deposit"); balance += x; return balance; }
};
double total(const std::vector<double>& xs) { double s = 0; for (double x : xs) s += x; std::printf("c++ total\n"); return s; }
double richer(const Account& a, const Account& b) { return a.balance > b.balance ? a.balance : b.balance; }
int call_twice(std::function<int(int)> f, int x) { return f(f(x)); }
Color flip(Color c) { return c == Color::Red ? Color::Green : Color::Red; }
'''


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel(env={"IPOLYGLOT_MODE": "worker"}) as running:
        running.run(GO_CELL, timeout=600).ok()
        running.run(CPP_CELL, timeout=900).ok()
        yield running


def test_environment_sets_the_starting_mode_and_info_shows_the_worker(kernel):
    out = kernel.run("%polyglot info").ok()
    assert "mode" in out.stdout and "worker" in out.stdout
    assert "worker pid" in out.stdout and "MiB RSS" in out.stdout and "worker threads" in out.stdout
    assert re.search(r"Go runtimes loaded +1\n", out.stdout), out.stdout  # the worker's, not the kernel's


def test_go_values_structs_methods_and_errors_cross_by_copy(kernel):
    check(kernel, (
        "import numpy as np\n"
        "from ipolyglot.go_bridge import GoError\n"
        "p = Point(X=1, Y=2)\n"
        "q = Move(p, 3)\n"
        "assert (q.X, q.Y, p.X) == (4.0, 2.0, 1.0) and type(q) is Point and q == Point(X=4, Y=2)\n"
        "p.Scale(10)\n"
        "assert (p.X, p.Y) == (10.0, 20.0), p\n"
        "assert Label(Box(Name='b', Corner=Point(X=5, Y=0))) == 'b@5'\n"
        "xs = np.arange(100000, dtype=np.float64)\n"
        "assert Sum(xs) == xs.sum()\n"
        "assert np.array_equal(Twice(xs), 2 * xs) and Twice(xs).dtype == np.float64\n"
        "try:\n"
        "    Divide(1, 0)\n"
        "except GoError as e:\n"
        "    assert 'divide 1 by zero' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no GoError')\n"
        "assert govars.Limit == 7\n"
        "govars.Limit = 9\n"
        "assert govars.Limit == 9\n"
        "import inspect\n"
        "assert list(inspect.signature(Move).parameters) == ['p', 'dx'], inspect.signature(Move)\n"
    ))


def test_callbacks_run_in_the_kernel_from_many_goroutines(kernel):
    check(kernel, (
        "seen = []\n"
        "def square(i):\n"
        "    seen.append(i)\n"
        "    return i * i\n"
        "assert Fan(square, 20) == sum(i * i for i in range(20))\n"
        "assert sorted(seen) == list(range(20))\n"
        "assert call_twice(lambda v: v + 3, 1) == 7\n"
        "assert call_twice(lambda v: Fan(lambda i: i, v), 4) == 15  # native -> Python -> native, nested\n"
    ))
    check(kernel, (
        "problem = ValueError('no thanks')\n"
        "def bad(i):\n"
        "    raise problem\n"
        "try:\n"
        "    call_twice(bad, 1)\n"
        "except ValueError as e:\n"
        "    assert e is problem, e  # the very object the callback raised\n"
        "else:\n"
        "    raise AssertionError('no ValueError')\n"
    ))


def test_cpp_objects_live_in_the_worker_behind_proxies(kernel):
    check(kernel, (
        "a = Account(owner='ann', balance=5)\n"
        "b = Account(owner='bob')\n"
        "assert a.deposit(10) == 15 and a.balance == 15\n"
        "b.balance = 40\n"
        "assert richer(a, b) == 40 and b.owner == 'bob'\n"
        "assert 'ann' in repr(a)\n"
        "assert a == a\n"
        "assert total([1.0, 2.5]) == 3.5\n"
        "assert flip(Color.Red) == Color.Green and flip(flip(Color.Red)) == Color.Red\n"
    ))
    out = kernel.run("a.deposit(-1)")
    assert out.status == "error" and out.error["ename"] == "ValueError" and "negative deposit" in out.error_text


def test_native_output_is_in_order_with_python_prints(kernel):
    out = kernel.run("print('py-1')\nShout('hi')\nprint('py-2')\ntotal([1.0])\nprint('py-3')").ok()
    assert out.stdout == "py-1\ngo: hi\npy-2\nc++ total\npy-3\n", out.stdout


def test_statement_cell_outputs_arrive_as_copies(kernel):
    kernel.run("n = 4").ok()
    kernel.run("%%go -i n -o squares\nsquares := []int64{}\nfor i := int64(0); i < n; i++ { squares = append(squares, i*i) }").ok()
    assert kernel.eval("squares.tolist() if hasattr(squares, 'tolist') else list(squares)") == [0, 1, 4, 9]


def test_in_process_cell_flag_and_mode_switch(kernel):
    out = kernel.run("%%go --in-process\nfunc Local() int { return 5 }").ok()
    assert "a native crash ends the kernel" in out.stderr  # said once, on the first in-process cell
    assert kernel.eval("(Local(), type(Local).__name__ == 'RemoteObject')") == (5, False)
    assert kernel.eval("type(getattr(Shout, 'target', Shout)).__name__") == "RemoteObject"  # still the worker's
    kernel.run("%polyglot mode in-process").ok()
    assert kernel.run("%polyglot mode").ok().stdout.strip() == "mode: in-process"
    kernel.run("%polyglot mode worker").ok()
    assert kernel.run("%polyglot mode").ok().stdout.strip() == "mode: worker"
    out = kernel.run("%polyglot mode sideways")
    assert out.status == "error" and "unknown mode" in out.error_text


TWICE_LINE = GO_CELL.splitlines().index(next(line for line in GO_CELL.splitlines() if line.startswith("func Twice"))) + 1


def test_go_pprof_profiles_the_workers_go_runtime(kernel):
    # Twice runs in the worker (the kernel's own Go runtime serves only the in-process Local): its row is the worker's.
    out = kernel.run("%go_pprof --heap Twice(list(range(100_000)))").ok()
    table = out.displays[0]["text/plain"]
    row = next(line.split() for line in table.splitlines()[3:] if "Twice" in line.split())
    assert row[-2] == "In" and re.fullmatch(rf"\[\d+\]:{TWICE_LINE}", row[-1]), table
    out = kernel.run("%go_pprof Divide(1, 0)")  # the profiled code's error is the user's own
    assert out.status == "error" and "divide 1 by zero" in out.error_text, out.error_text
    assert "Twice" in kernel.run("%go_pprof --heap Twice([1.0] * 100_000)").ok().displays[0]["text/plain"]


def test_go_pprof_profiles_where_the_go_functions_run_whatever_the_sessions_mode(kernel):
    kernel.run("%polyglot mode in-process\nlocal_kept = [Local]\ndel Local").ok()
    try:  # Twice was built in worker mode: in an in-process session the worker's runtime is still profiled
        assert "Twice" in kernel.run("%go_pprof --heap Twice(list(range(100_000)))").ok().displays[0]["text/plain"]
        kernel.run("Local = local_kept[0]").ok()  # Go functions in both places: the session's mode picks, and says so
        text = kernel.run("%go_pprof --heap Twice(list(range(100_000)))").ok().displays[0]["text/plain"]
        assert "the Go functions that run in the native worker (--worker) were not profiled" in text, text
    finally:
        kernel.run("%polyglot mode worker").ok()

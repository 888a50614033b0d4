"""What a Go user is told, through a real kernel: call errors without internals,
signatures and doc comments, names the generated code reserves, `rm` of a
name still in use, variables a rebuild resets, modules fetched for an import,
a package clause, `//export` cells, goroutine panics at the call waiting for
them, and errors of code run under %go_pprof."""

import re
import textwrap
import threading
import time
import zipfile

import pytest

from conftest import RunningKernel, mode_env, check
from go_cells import GO_TEST_ENV

# What a Go user is told holds in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")

DOCUMENTED_CELL = '''%%go
import (
	"errors"
	"strings"
)

// Add adds two integers.
func Add(a, b int) int { return a + b }

// Shout makes a string loud.
// It adds an exclamation mark.
func Shout(s string) string { return strings.ToUpper(s) + "!" }

func Mean(xs []float64) float64 {
	total := 0.0
	for _, x := range xs {
		total += x
	}
	return total / float64(len(xs))
}

// Pt is a point in the plane.
type Pt struct{ X, Y float64 }

// Scale returns the point scaled by k.
func (p Pt) Scale(k float64) Pt { return Pt{p.X * k, p.Y * k} }

func Split(s string) (int, string, error) {
	if s == "" {
		return 0, "", errors.New("empty")
	}
	return len(s), s[:1], nil
}

func Boom() { panic("boom") }

func Move(p *Pt, by map[string]float64, names ...string) {}
'''


@pytest.fixture(scope="module")
def kernel(kernel_mode):
    with RunningKernel(env={**GO_TEST_ENV, **mode_env(kernel_mode)}) as running:
        running.run(DOCUMENTED_CELL).ok()
        yield running


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_call_errors_show_the_message_without_a_chained_internal_error(kernel):
    cases = {
        'Add("a", 1)': "TypeError: Add() parameter a (Go type int): expected int, got str",
        "Add(2**70, 1)": "OverflowError: Add() parameter a (Go type int): 1180591620717411303424 is out of range for int",
        'Split("")': "GoError: empty",
        # The count of arguments, as C++ says it, in the compiled caller and the generated wrapper alike.
        "Add(1, 2, 3)": "TypeError: Add() takes 2 arguments (3 given)",
        "Add(*range(5))": "TypeError: Add() takes 2 arguments (5 given)",
        "Boom(1)": "TypeError: Boom() takes 0 arguments (1 given)",
        "Pt(1, 2).Scale(2, 3)": "TypeError: Pt.Scale() takes 1 argument (2 given)",
        "Add(1)": "TypeError: Add() missing parameter b (Go type int)",
        "Add(b=1)": "TypeError: Add() missing parameter a (Go type int)",
    }
    for code, expected in cases.items():
        out = kernel.run(code)
        assert out.status == "error", code
        text = out.error_text
        assert last_line(text) == expected, text
        assert "During handling" not in text and "an integer is required" not in text, text
    panic = kernel.run("Boom()").error_text
    assert "GoPanic: boom" in panic and "During handling" not in panic, panic


def test_functions_have_python_signatures_and_their_doc_comments(kernel):
    check(kernel, textwrap.dedent("""\
        import inspect
        assert str(inspect.signature(Add)) == "(a: int, b: int) -> int", inspect.signature(Add)
        assert str(inspect.signature(Mean)) == "(xs: numpy.ndarray) -> float", inspect.signature(Mean)
        assert str(inspect.signature(Split)) == "(s: str) -> tuple[int, str]", inspect.signature(Split)
        assert str(inspect.signature(Boom)) == "() -> None", inspect.signature(Boom)
        sig = str(inspect.signature(Move))
        assert sig == "(p: Optional[__main__.Pt], by: dict[str, float], *names: str) -> None", sig
        assert str(inspect.signature(Pt.Scale)) == "(self, k: float) -> __main__.Pt", inspect.signature(Pt.Scale)
        assert Shout.__doc__.startswith("Shout makes a string loud.\\nIt adds an exclamation mark.\\n\\nGo: func Shout"), Shout.__doc__
        assert Add.__doc__ == "Add adds two integers.\\n\\nGo: func Add(a int, b int) int", Add.__doc__
        assert Pt.Scale.__doc__.startswith("Scale returns the point scaled by k.\\n\\nGo: func (Pt) Scale"), Pt.Scale.__doc__
        assert Mean.__doc__ == "Go: func Mean(xs []float64) float64"
        assert Add(2, 3) == 5 and Shout("hi") == "HI!" and Pt(1, 2).Scale(2) == Pt(2, 4)
    """))
    reply = kernel.kc.inspect("Add", 3, detail_level=0, reply=True, timeout=60)  # what Shift-Tab and `Add?` show
    shown = re.sub(r"\x1b\[[0-9;]*m", "", reply["content"]["data"]["text/plain"])
    assert "Add(a: int, b: int) -> int" in shown and "Add adds two integers." in shown, shown
    assert "object object" not in shown, shown
    # Nothing of the wrapper: no call signature of functools.partial, no file of ipolyglot's.
    assert "Call signature" not in shown and "**kwargs" not in shown and ".py" not in shown, shown
    reply = kernel.kc.inspect("Pt", 2, detail_level=0, reply=True, timeout=60)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", reply["content"]["data"]["text/plain"])
    assert "Init signature: Pt(X: float = 0.0, Y: float = 0.0)" in shown and "Pt is a point in the plane." in shown, shown
    check(kernel, "assert Pt(Y=2) == Pt(0, 2) and Pt(3).X == 3 and Pt().X == 0")


def test_func_main_and_reserved_names_are_told_in_the_cells_terms(kernel):
    out = kernel.run('%%go\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}\n')
    assert out.status == "error"
    text = out.error_text
    assert "line 4: a %%go cell holds declarations" in text and "`func main` is reserved" in text, text
    assert "func main() {" in text and "glue.go" not in text and "redeclared" not in text, text
    out = kernel.run("%%go\nvar ipolyglotState = 1\nfunc ipg_call() {}\n")
    assert out.status == "error"
    text = out.error_text
    assert "line 2: ipolyglotState: top-level names starting with ipolyglot, ipg_ or ipgcell (in any case) are reserved" in text, text
    assert "line 3: ipg_call:" in text, text
    out = kernel.run('%%go\nimport "fmt"\nfunc init() { fmt.Sprint() }\nconst C = 3\nfunc Main() int { return C }\n').ok()
    assert kernel.eval("Main(), Add(1, 2)") == (3, 3)  # earlier definitions still work


def test_rm_refuses_a_name_still_in_use_and_names_its_users(kernel):
    kernel.run("%%go\ntype Node struct {\n\tLeft *Node\n\tValue int\n}\n\nfunc (n *Node) Sum() int { return n.Value }\n").ok()
    users = kernel.run("%%go\nfunc Depth(n *Node) int {\n\tif n == nil {\n\t\treturn 0\n\t}\n\treturn 1 + Depth(n.Left)\n}\n"
                       "func Leaf(v int) Node { return Node{Value: v} }\n")
    users.ok()
    label = _label_of(kernel, "Depth")
    out = kernel.run("%polyglot go rm Node")
    assert out.status == "error"
    assert f"cannot remove Node: still used by Depth ({label}), Leaf ({label}); remove or redefine those first" in out.error_text, out.error_text
    assert "Traceback" not in out.error_text
    kernel.run("%%go\nfunc Unrelated() int { return 41 + 1 }\n").ok()
    assert kernel.eval("Unrelated(), Depth(Leaf(3))") == (42, 1)
    for name in ("Depth", "Leaf", "Node"):
        assert f"removed {name}" in kernel.run(f"%polyglot go rm {name}").ok().stdout
    listing = kernel.run("%polyglot go").ok().stdout
    assert "Node" not in listing and "Node.Sum" not in listing
    kernel.run("%%go\nfunc AfterRemoval() int { return 2 }\n").ok()
    assert kernel.eval("AfterRemoval(), 'Node' in globals()") == (2, False)


def _label_of(kernel, name: str) -> str:
    listing = kernel.run("%polyglot go").ok().stdout
    row = next(line for line in listing.splitlines() if line.split()[0] == name)
    return row.split(None, 2)[2].strip()


def test_a_variable_a_rebuild_cannot_carry_is_reset_with_a_warning(kernel):
    kernel.run(textwrap.dedent("""\
        %%go
        import "sync"

        var conns = make(chan int, 4)
        var handlers = map[string]func() int{}
        var locks = map[string]*sync.Mutex{}
        var Counter = 0

        func Open() int {
        	conns <- 1
        	handlers["x"] = func() int { return 1 }
        	locks["x"] = &sync.Mutex{}
        	Counter++
        	return len(conns) + len(handlers) + len(locks)
        }
    """)).ok()
    assert kernel.eval("Open(), Open()") == (3, 4)
    label = _label_of(kernel, "conns")
    out = kernel.run("%%go\nfunc Later() int { return 5 }\n").ok()
    assert f"{label} var conns (chan int) was reset by this rebuild: channels cannot be carried across a rebuild" in out.stderr, out.stderr
    assert f"{label} var handlers (map[string]func() int) was reset by this rebuild: funcs cannot be carried" in out.stderr, out.stderr
    assert (f"{label} var locks (map[string]*sync.Mutex) was reset by this rebuild: sync.Mutex has unexported fields, "
            "which cannot be carried across a rebuild") in out.stderr, out.stderr
    assert "var Counter" not in out.stderr
    assert kernel.eval("govars.Counter, Open()") == (2, 3)  # Counter carried; the channel and maps start empty


def test_a_reset_is_told_only_when_it_loses_a_changed_value(kernel):
    # Told when the value differs from the one its runtime started with: an untouched mutex never,
    # a counter after each build in which it changed; never again and again for the same loss.
    kernel.run(textwrap.dedent("""\
        %%go
        import (
        	"io"
        	"os"
        	"sync"
        	"sync/atomic"
        	"time"
        )

        var mu sync.Mutex
        var wg sync.WaitGroup
        var hits atomic.Int64
        var started = time.Now()
        var out io.Writer = os.Stdout

        func Hit() int64 {
        	mu.Lock()
        	defer mu.Unlock()
        	wg.Add(1)
        	wg.Done()
        	_ = started
        	_ = out
        	return hits.Add(1)
        }
    """)).ok()
    label = _label_of(kernel, "hits")
    for version in range(2):  # unrelated rebuilds: nothing was lost
        out = kernel.run(f"%%go\nfunc Unrelated() int {{ return {version} }}\n").ok()
        assert "was reset" not in out.stderr, out.stderr
    assert kernel.eval("Hit(), Hit()") == (1, 2)
    out = kernel.run("%%go\nfunc Unrelated() int { return 2 }\n").ok()
    lines = [line for line in out.stderr.splitlines() if "was reset" in line]
    assert lines == [f"warning: {label} var hits (atomic.Int64) was reset by this rebuild: atomic.Int64 has unexported fields, "
                     "which cannot be carried across a rebuild"], out.stderr
    out = kernel.run("%%go\nfunc Unrelated() int { return 3 }\n").ok()
    assert "was reset" not in out.stderr, out.stderr  # the new runtime's counter was not touched
    assert kernel.eval("Hit()") == 1


def test_a_cell_with_a_package_clause_is_told_what_a_cell_is(kernel):
    out = kernel.run('%%go\npackage main\n\nimport "fmt"\n\nfunc Hi() { fmt.Println("hi") }\n')
    assert out.status == "error"
    text = out.error_text
    assert ("line 2: a %%go cell holds declarations (built into a library for Python) or statements (run at once), "
            "without a package clause") in text and "remove this line" in text, text
    assert "package main" in text and "expected declaration" not in text and "imports must appear" not in text, text
    out = kernel.run("%%go\n// Package doc.\npackage tools\nfunc Tool() int { return 1 }\n")
    assert "line 3: a %%go cell holds declarations" in out.error_text, out.error_text


def test_an_export_cell_of_its_own_and_its_function_called_from_c_in_another_cell(kernel):
    # cgo reads the comment directly above `import "C"` as C: no generated directive may sit there.
    kernel.run('%%go\nimport "C"\n\n//export Exported\nfunc Exported() int { return 3 }\n').ok()
    assert kernel.eval("Exported()") == 3
    kernel.run(textwrap.dedent("""\
        %%go
        /*
        extern long long Exported(void);
        static long long exported_twice(void) { return 2 * Exported(); }
        */
        import "C"

        func ExportedTwice() int { return int(C.exported_twice()) }
    """)).ok()
    assert kernel.eval("Exported(), ExportedTwice()") == (3, 6)
    out = kernel.run('%%go\nimport "C"\n\nfunc Half(x int) int { return int(C.int(x) / 2) }\n').ok()  # no preamble, no export
    assert kernel.eval("Half(8), ExportedTwice()") == (4, 6)


GOROUTINES_CELL = """%%go
import "time"

// Async calls f in a goroutine and waits for its result.
func Async(f func(int) int) int {
	ch := make(chan int)
	go func() { ch <- f(1) }()
	return <-ch
}

var jobs = make(chan int)
var results = make(chan int)

// StartWorker starts a goroutine that doubles jobs; a negative one makes it panic.
func StartWorker() {
	go func() {
		for j := range jobs {
			if j < 0 {
				panic("negative job")
			}
			results <- 2 * j
		}
	}()
}

// Submit hands the worker a job and waits for its result.
func Submit(j int) int {
	jobs <- j
	return <-results
}

// Hang waits for a goroutine that never sends.
func Hang() int {
	ch := make(chan int)
	go func() { time.Sleep(time.Millisecond) }()
	return <-ch
}
"""


def test_a_callback_failing_in_a_goroutine_ends_the_call_waiting_for_it(kernel):
    kernel.run(GOROUTINES_CELL).ok()
    out = kernel.run("def failing(x):\n    raise KeyError('x')\nAsync(failing)", timeout=60)
    assert out.status == "error", out.stdout
    text = out.error_text
    assert last_line(text) == "KeyError: 'x'" and "raise KeyError('x')" in text, text
    assert "panic in a goroutine" not in out.stderr, out.stderr  # raised where it was waited for: not printed as well
    out = kernel.run("Async(lambda x: 'notint')", timeout=60)
    assert out.status == "error"
    assert last_line(out.error_text) == "TypeError: callback result (Go type int): expected int, got str", out.error_text
    assert kernel.eval("Async(lambda x: x + 41), Add(1, 2)") == (42, 3)


def test_a_goroutine_panic_ends_a_later_call_waiting_for_it_and_an_interrupt_a_waiting_call(kernel):
    kernel.run(GOROUTINES_CELL).ok()
    assert kernel.eval("StartWorker(), Submit(3), Submit(4)") == (None, 6, 8)
    out = kernel.run("Submit(-1)", timeout=60)  # the worker started by an earlier call dies while Submit waits
    assert out.status == "error"
    assert "GoPanic: panic in a goroutine: negative job" in out.error_text, out.error_text
    started = time.monotonic()
    threading.Timer(1.0, kernel.km.interrupt_kernel).start()
    out = kernel.run("Hang()", timeout=60)
    assert out.status == "error" and out.error["ename"] == "KeyboardInterrupt", out.error_text
    assert time.monotonic() - started < 30
    assert kernel.eval("Async(lambda x: x * 5), Add(2, 2)") == (5, 4)


def test_go_pprof_shows_only_the_users_error(kernel):
    out = kernel.run("%go_pprof Boom()")
    assert out.status == "error"
    text = out.error_text
    assert "GoPanic: boom" in text and "Boom()" in text, text
    assert "run_line_magic" not in text and "Could not get source" not in text and "<string>" not in text, text
    out = kernel.run("%%go_pprof\nx = 1\n{}['missing']\n")
    assert out.status == "error" and last_line(out.error_text) == "KeyError: 'missing'", out.error_text
    assert "run_cell_magic" not in out.error_text and "{}['missing']" in out.error_text, out.error_text


def _module_proxy(root):
    """A GOPROXY directory serving example.com/greet v1.0.0 (the module-proxy file layout)."""
    base = root / "example.com" / "greet" / "@v"
    base.mkdir(parents=True)
    (base / "list").write_text("v1.0.0\n")
    (base / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}')
    (base / "v1.0.0.mod").write_text("module example.com/greet\n\ngo 1.21\n")
    with zipfile.ZipFile(base / "v1.0.0.zip", "w") as archive:
        archive.writestr("example.com/greet@v1.0.0/go.mod", "module example.com/greet\n\ngo 1.21\n")
        archive.writestr("example.com/greet@v1.0.0/greet.go",
                         'package greet\n\nfunc Hello(name string) string { return "hello, " + name }\n')
    return root


def test_a_fetched_module_is_named_once_and_kept_out_of_later_errors(tmp_path):
    proxy = _module_proxy(tmp_path / "proxy")
    env = {**GO_TEST_ENV, "GOPROXY": f"file://{proxy}", "GOSUMDB": "off", "GOFLAGS": "-modcacherw",
           "GOMODCACHE": str(tmp_path / "modcache")}
    with RunningKernel(env=env) as kernel:
        out = kernel.run('%%go\nimport "example.com/greet"\n\nfunc Greet(n string) string { return greet.Hello(n) }\n').ok()
        assert out.stderr.count("fetched Go module example.com/greet@v1.0.0") == 1, out.stderr
        assert kernel.eval('Greet("go")') == "hello, go"
        out = kernel.run("%%go\nfunc Bad() int { return \"x\" }\n")
        assert out.status == "error"
        assert "go: " not in out.error_text and "finding module" not in out.error_text, out.error_text
        assert re.search(r"line 2, column \d+: cannot use \"x\"", out.error_text), out.error_text
        out = kernel.run("%%go\nfunc Fine() int { return 1 }\n").ok()
        assert "fetched" not in out.stderr
        assert kernel.eval('Fine(), Greet("again")') == (1, "hello, again")

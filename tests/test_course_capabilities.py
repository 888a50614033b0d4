"""Capabilities the course notebooks stand on, through a real kernel: Go keeping a
Python callable after the call that passed it, cgo preambles in %%go cells,
awaitable native calls, debugger-friendly C++ source names, and Go channels
received from in Python."""

import re
import textwrap

import pytest

from conftest import RunningKernel, mode_env
from go_cells import GO_TEST_ENV
from test_worker_faults import run_and_interrupt

KERNEL_MODES = ("worker", "in-process")
# Two kinds of check read state inside the kernel process and are pinned in-process: the lifetime of
# the Python callables Go keeps (the bridge's table of live callables; worker mode's are in the
# test_worker_* modules) and the source names of debug builds (the kernel's own memory map).
IN_PROCESS_STATE = pytest.mark.kernel_modes("in-process")

HANDLERS_CELL = textwrap.dedent("""\
    %%go
    import (
    	"runtime"
    	"sync"
    )

    var (
    	handlersMu sync.Mutex
    	handlers   = map[string]func(string) string{}
    )

    // HandleFunc keeps fn for later calls, as net/http keeps a handler.
    func HandleFunc(path string, fn func(string) string) {
    	handlersMu.Lock()
    	defer handlersMu.Unlock()
    	handlers[path] = fn
    }

    func Forget(path string) {
    	handlersMu.Lock()
    	defer handlersMu.Unlock()
    	delete(handlers, path)
    }

    // ServeFromGoroutines calls the handler of path from n goroutines at once.
    func ServeFromGoroutines(path string, n int) []string {
    	handlersMu.Lock()
    	fn := handlers[path]
    	handlersMu.Unlock()
    	out := make([]string, n)
    	var wg sync.WaitGroup
    	for i := range n {
    		wg.Add(1)
    		go func() {
    			defer wg.Done()
    			out[i] = fn(path)
    		}()
    	}
    	wg.Wait()
    	return out
    }

    // Serve calls the handler of path on the calling goroutine.
    func Serve(path string) string {
    	handlersMu.Lock()
    	fn := handlers[path]
    	handlersMu.Unlock()
    	return fn(path)
    }

    func ApplyOnce(fn func(int) int, x int) int { return fn(x) }

    func CollectGarbage() { runtime.GC() }
    """)

# Waits (a bounded number of rounds) until Go's finalizers have handed back
# what Go dropped; the table size is then compared with its starting size.
SETTLE = textwrap.dedent("""\
    import time

    def settled_callables():
        for _ in range(200):
            CollectGarbage()
            time.sleep(0.005)
            CollectGarbage()
            if marshal.live_callables() <= baseline:
                break
        return marshal.live_callables()
    """)


@pytest.fixture(scope="module")
def kernel(kernel_mode):
    with RunningKernel(env={**GO_TEST_ENV, **mode_env(kernel_mode)}) as running:
        yield running


@pytest.fixture(scope="module")
def handlers(kernel) -> None:
    """The handler registry cell in the module's kernel, and a view of the bridge's live callables."""
    kernel.run(HANDLERS_CELL).ok()
    kernel.run(  # the Python callables the session's Go code holds (go_bridge/marshal.Callables)
        "from types import SimpleNamespace\n"
        "marshal = SimpleNamespace(live_callables=HandleFunc._go_library.session.callables.live)\n"
        "baseline = marshal.live_callables()"
    ).ok()
    kernel.run(SETTLE).ok()


@IN_PROCESS_STATE
def test_go_keeps_a_python_callable_after_the_call_that_passed_it(kernel, handlers):
    kernel.run('HandleFunc("/hello", lambda path: "hello from Python at " + path)').ok()
    assert kernel.eval('ServeFromGoroutines("/hello", 8)') == ["hello from Python at /hello"] * 8
    kernel.run('Forget("/hello")').ok()
    assert kernel.eval("settled_callables() - baseline") == 0


@IN_PROCESS_STATE
def test_a_callable_go_does_not_keep_is_released(kernel, handlers):
    assert kernel.eval("ApplyOnce(lambda x: x + 1, 41)") == 42
    assert kernel.eval("settled_callables() - baseline") == 0


@IN_PROCESS_STATE
def test_a_rejected_call_releases_its_callables_at_once(kernel, handlers):
    out = kernel.run('ApplyOnce(lambda x: x, "not an int")')
    assert out.status == "error" and "TypeError" in out.error_text
    assert kernel.eval("marshal.live_callables() - baseline") == 0


@IN_PROCESS_STATE
def test_an_exception_in_a_kept_callable_reaches_python(kernel, handlers):
    kernel.run('HandleFunc("/boom", lambda path: 1 / 0)').ok()
    out = kernel.run('Serve("/boom")')
    assert out.status == "error" and "ZeroDivisionError" in out.error_text, out.error_text
    kernel.run('Forget("/boom")').ok()


@IN_PROCESS_STATE
def test_registering_and_releasing_a_hundred_thousand_callables_leaks_nothing(kernel, handlers):
    out = kernel.run(textwrap.dedent("""\
        def resident_kib():
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

        for path in ("/warm-up", "/x"):
            for i in range(1000):
                HandleFunc(path, lambda p, i=i: str(i))
            Forget(path)
        settled_callables()
        rss_before = resident_kib()
        for i in range(100_000):
            HandleFunc("/x", lambda p, i=i: str(i))  # replaces (drops) the previous one
        peak = marshal.live_callables() - baseline
        assert ServeFromGoroutines("/x", 2) == ["99999", "99999"]
        Forget("/x")
        left = settled_callables() - baseline
        grown_kib = resident_kib() - rss_before
        print(peak, left, grown_kib)
        """)).ok()
    peak, left, grown_kib = map(int, out.stdout.split())
    assert left == 0
    assert peak < 20_000  # Go is asked to collect as callables pile up
    assert grown_kib < 64 * 1024, grown_kib


# ---- cgo in a %%go cell ---------------------------------------------------------

def test_a_cgo_preamble_above_import_c_is_compiled_as_c(kernel):
    kernel.run(textwrap.dedent("""\
        %%go
        // static int twice_c(int x) { return 2 * x; }
        import "C"

        func Twice(x int) int { return int(C.twice_c(C.int(x))) }
        """)).ok()
    assert kernel.eval("Twice(21)") == 42


def test_errors_in_a_cgo_preamble_name_cell_lines(kernel):
    out = kernel.run(textwrap.dedent("""\
        %%go
        import "fmt"

        /*
        #include <stdint.h>
        static int64_t thrice_c(int64_t x) {
            return 3 * x + undefined_name;
        }
        */
        import "C"

        func Thrice(x int) string { return fmt.Sprint(C.thrice_c(C.int64_t(x))) }
        """))
    assert out.status == "error"
    assert "line 7, column 20" in out.error_text and "undefined_name" in out.error_text, out.error_text
    assert "cell-" not in out.error_text, out.error_text


def test_go_calls_c_calls_python(kernel):
    kernel.run(textwrap.dedent("""\
        %%go
        // #include <stdint.h>
        import "C"

        var step func(int) int

        //export pyStep
        func pyStep(x C.int) C.int { return C.int(step(int(x))) }
        """)).ok()
    kernel.run(textwrap.dedent("""\
        %%go
        /*
        extern int pyStep(int);

        static int twice_then_step(int x) { return pyStep(2 * x); }
        */
        import "C"

        // Chain: Go calls C, C calls back into Go, Go calls the Python callable f.
        func Chain(x int, f func(int) int) int {
        	step = f
        	return int(C.twice_then_step(C.int(x)))
        }
        """)).ok()
    assert kernel.eval("Chain(20, lambda y: y + 2)") == 42
    out = kernel.run("Chain(1, lambda y: y // 0)")
    assert out.status == "error" and "ZeroDivisionError" in out.error_text, out.error_text


# ---- awaitable native calls -------------------------------------------------------

SLOW_GO = textwrap.dedent("""\
    %%go
    import "time"

    // Sleepy sleeps ms milliseconds in Go, then returns ms.
    func Sleepy(ms int) int { time.Sleep(time.Duration(ms) * time.Millisecond); return ms }
    """)

SLOW_CPP = textwrap.dedent("""\
    %%cpp
    #include <chrono>
    #include <thread>
    // Sleeps ms milliseconds in C++, then returns ms.
    int sleepy_cpp(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); return ms; }
    """)


def test_native_functions_are_awaitable_without_blocking_the_loop(kernel):
    kernel.run(SLOW_GO).ok()
    kernel.run(SLOW_CPP).ok()
    out = kernel.run(textwrap.dedent("""\
        import asyncio
        ticks = 0

        async def ticker():
            global ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        results = await asyncio.gather(Sleepy.aio(200), sleepy_cpp.aio(200))
        ticking.cancel()
        print(results, ticks > 0, sleepy_cpp(3), sleepy_cpp.__name__, Sleepy.aio.__name__)
        """)).ok()
    assert out.stdout.split() == ["[200,", "200]", "True", "3", "sleepy_cpp", "Sleepy.aio"], out.stdout


def test_cancelling_an_awaited_native_call_frees_the_loop(kernel):
    kernel.run(SLOW_GO).ok()
    out = kernel.run(textwrap.dedent("""\
        import asyncio
        waiting = asyncio.create_task(Sleepy.aio(1500))
        await asyncio.sleep(0.05)
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            print("cancelled", await Sleepy.aio(1))
        """)).ok()
    assert out.stdout.split() == ["cancelled", "1"], out.stdout


# ---- debugger-friendly C++ source names ----------------------------------------------

@IN_PROCESS_STATE
def test_debug_builds_name_cells_as_the_notebook_does(kernel):
    built = kernel.run(textwrap.dedent("""\
        %%cpp -g
        // Doubles x (built for gdb).
        int twice_debug(int x) {
            return 2 * x;
        }
        """)).ok()
    out = kernel.run(textwrap.dedent("""\
        import subprocess
        with open("/proc/self/maps") as maps:
            module_file = next(line.split()[-1] for line in maps if twice_debug.__module__ in line)
        dump = subprocess.run(["objdump", "--dwarf=decodedline", module_file], capture_output=True, text=True, check=True)
        print(twice_debug(4))
        print(sorted({line.split("  ")[0] for line in dump.stdout.splitlines() if line.startswith(("In [", "cell-"))}))
        """)).ok()
    assert out.stdout.splitlines() == ["8", repr([f"In [{built.execution_count}]"])], out.stdout


DEBUG_CPP = textwrap.dedent("""\
    %%cpp -g
    // Doubles x (built for gdb).
    int twice_debug(int x) {
        return 2 * x;
    }
    """)


def test_the_capabilities_hold_in_worker_mode_the_default():
    # Worker mode (the default) runs native code in another process: a kept Python callable is
    # called back from there, cgo builds there as here, and gdb attaches to the worker, whose
    # -g modules name their source as the notebook does.
    with RunningKernel(env=GO_TEST_ENV) as worker_kernel:
        worker_kernel.run("%polyglot mode worker").ok()
        worker_kernel.run(SLOW_GO).ok()
        out = worker_kernel.run(textwrap.dedent("""\
            import asyncio
            print(await asyncio.gather(*[Sleepy.aio(10 + i) for i in range(4)]), Sleepy(1))
            """)).ok()
        assert out.stdout.split() == ["[10,", "11,", "12,", "13]", "1"], out.stdout

        worker_kernel.run(HANDLERS_CELL).ok()
        worker_kernel.run("HandleFunc('/kept', lambda path: path.upper())").ok()
        assert worker_kernel.eval("Serve('/kept'), ServeFromGoroutines('/kept', 3)") == ("/KEPT", ["/KEPT"] * 3)

        worker_kernel.run('%%go\n// static int twice_c(int x) { return 2 * x; }\nimport "C"\n\nfunc TwiceC(x int) int { return int(C.twice_c(C.int(x))) }\n').ok()
        assert worker_kernel.eval("TwiceC(21)") == 42

        built = worker_kernel.run(DEBUG_CPP).ok()
        worker = re.search(r"worker pid +(\d+)", worker_kernel.run("%polyglot info").ok().stdout).group(1)
        out = worker_kernel.run(textwrap.dedent(f"""\
            import subprocess
            print(twice_debug(4))
            with open("/proc/{worker}/maps") as maps:
                modules = {{line.split()[-1] for line in maps if "ipolyglot_cpp_" in line}}
            names = set()
            for module_file in modules:
                dump = subprocess.run(["objdump", "--dwarf=decodedline", module_file], capture_output=True, text=True, check=True)
                names |= {{line.split("  ")[0] for line in dump.stdout.splitlines() if line.startswith(("In [", "cell-"))}}
            print(sorted(names))
            """)).ok()
        assert out.stdout.splitlines() == ["8", repr([f"In [{built.execution_count}]"])], out.stdout


# ---- a Go server calling Python between cells, in worker mode ---------------------------------

SERVER_CELL = textwrap.dedent("""\
    %%go
    import (
    	"fmt"
    	"io"
    	"net"
    	"net/http"
    )

    // ServePython answers every request with handler(path, body), called from the request's goroutine.
    func ServePython(handler func(path, body string) string) (string, error) {
    	listener, err := net.Listen("tcp", "127.0.0.1:0")
    	if err != nil {
    		return "", err
    	}
    	mux := http.NewServeMux()
    	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
    		defer func() {
    			if p := recover(); p != nil {
    				http.Error(w, fmt.Sprint(p), http.StatusInternalServerError)
    			}
    		}()
    		body, _ := io.ReadAll(r.Body)
    		io.WriteString(w, handler(r.URL.Path, string(body)))
    	})
    	go http.Serve(listener, mux)
    	return listener.Addr().String(), nil
    }

    func Square(x int) int { return x * x }
    """)

HANDLER_CELL = textwrap.dedent("""\
    import threading
    together = threading.Barrier(4, timeout=60)  # passes only when four handlers run at the same time

    def handler(path, body):
        if path == "/together":
            together.wait()
        if path == "/broken":
            raise ValueError("a broken handler")
        return f"{path} {body} {Square(len(body))}"  # a handler may call native code too

    address = ServePython(handler)
    """)

REQUESTS_CELL = textwrap.dedent("""\
    import concurrent.futures, urllib.error, urllib.request

    def fetch(path, data=None):
        try:
            with urllib.request.urlopen(f"http://{address}{path}", data=data, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        echoed = list(pool.map(lambda i: fetch(f"/n{i}", b"x" * i), range(12)))
        together = list(pool.map(lambda i: fetch("/together"), range(4)))
    assert echoed == [(200, f"/n{i} {'x' * i} {i * i}") for i in range(12)], echoed
    assert together == [(200, "/together  0")] * 4, together
    status, text = fetch("/broken")
    assert status == 500 and "a broken handler" in text, (status, text)
    assert Square(9) == 81
    """)


def test_a_go_server_calls_python_handlers_between_cells_in_worker_mode():
    """The serving notebook's situation: Go keeps the handler after the call that registered it
    returned and calls it, per request, while no cell waits on the worker; several requests at once."""
    with RunningKernel(env={**GO_TEST_ENV, **mode_env("worker")}) as worker_kernel:
        worker_kernel.run(SERVER_CELL).ok()
        worker_kernel.run(HANDLER_CELL).ok()
        worker_kernel.run(REQUESTS_CELL, timeout=180).ok()


# ---- Go channels returned to Python ------------------------------------------------

CHANNELS_CELL = textwrap.dedent("""\
    %%go
    import "time"

    // Ticks sends 0..n-1, one every ms milliseconds, then closes the channel.
    func Ticks(n, ms int) <-chan int {
    	ch := make(chan int)
    	go func() {
    		defer close(ch)
    		for i := range n {
    			time.Sleep(time.Duration(ms) * time.Millisecond)
    			ch <- i
    		}
    	}()
    	return ch
    }

    type Square struct{ N, Area int }

    func Squares(n int) (chan Square, error) {
    	ch := make(chan Square, n)
    	for i := range n {
    		ch <- Square{i, i * i}
    	}
    	close(ch)
    	return ch, nil
    }

    func NoChannel() chan string { return nil }
    """)


def test_a_go_channel_is_received_from_in_python(kernel):
    kernel.run(CHANNELS_CELL).ok()
    out = kernel.run(textwrap.dedent("""\
        ticks = Ticks(3, 1)
        print(list(ticks), ticks.receive(), [(s.N, s.Area) for s in Squares(3)], NoChannel(), repr(ticks))
        """)).ok()
    assert out.stdout.startswith("[0, 1, 2] (0, False) [(0, 0), (1, 1), (2, 4)] None <Go <-chan int #"), out.stdout


def test_a_go_channel_is_an_async_iterator_that_loses_no_value_on_cancel(kernel):
    kernel.run(CHANNELS_CELL).ok()
    out = kernel.run(textwrap.dedent("""\
        import asyncio
        print([value async for value in Ticks(4, 1)])
        slow = Ticks(3, 50)
        waiting = asyncio.create_task(slow.areceive())
        await asyncio.sleep(0.005)
        waiting.cancel()
        print([value async for value in slow])
        """)).ok()
    assert out.stdout.splitlines() == ["[0, 1, 2, 3]", "[0, 1, 2]"], out.stdout


WAITING_CHANNELS_CELL = textwrap.dedent("""\
    %%go
    import (
    	"fmt"
    	"os"
    	"time"
    )

    // Silent returns a channel nothing is sent on; soon after, it says a receive is waiting.
    func Silent() <-chan int {
    	go func() {
    		time.Sleep(300 * time.Millisecond)
    		fmt.Println("native call running")
    	}()
    	return make(chan int)
    }

    // Dying sends 0 and 1, then ends its process while Python waits for the next value.
    func Dying() <-chan int {
    	ch := make(chan int)
    	go func() {
    		ch <- 0
    		ch <- 1
    		time.Sleep(time.Second)
    		os.Exit(5)
    	}()
    	return ch
    }
    """)


def test_an_interrupt_ends_a_receive_that_waits(kernel):
    kernel.run(CHANNELS_CELL).ok()
    kernel.run(WAITING_CHANNELS_CELL).ok()
    out = run_and_interrupt(kernel, "waiting = Silent()\nwaiting.receive()")
    assert out.status == "error" and out.error["ename"] == "KeyboardInterrupt", out.error_text
    assert kernel.eval("list(Ticks(2, 1))") == [0, 1]


@pytest.mark.kernel_modes("worker")  # in-process, os.Exit in Go ends the kernel itself
def test_the_worker_ending_during_an_iteration_is_a_native_crash(kernel):
    kernel.run(CHANNELS_CELL).ok()
    kernel.run(WAITING_CHANNELS_CELL).ok()
    out = kernel.run("kept = 'still here'\nreceived = []\nfor value in Dying():\n    received.append(value)")
    assert out.status == "error" and out.error["ename"] == "NativeCrash", out.error_text
    assert "exited with code 5" in out.error_text and "a receive from" in out.error_text, out.error_text
    assert kernel.eval("kept, received, list(Ticks(2, 1))") == ("still here", [0, 1], [0, 1])

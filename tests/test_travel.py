"""Compiled functions travel to other processes: spawn pools, process executors, Dask workers.

A bound Go or C++ function pickles as a reference to its build; the receiving
process loads the build from its own cache or rebuilds it from the reference.
"""

import os
import shutil

import pytest

from go_cells import GO_TEST_ENV

GO_CELL = r'''%%go
import (
	"errors"
	"math"
)

type Point struct{ X, Y float64 }

func (p Point) Norm() float64 { return math.Hypot(p.X, p.Y) }

// Square multiplies a number by itself.
func Square(x float64) float64 { return x * x }

func Scale(p Point, k float64) Point { return Point{p.X * k, p.Y * k} }

func Positive(x int) (int, error) {
	if x < 0 {
		return 0, errors.New("negative input")
	}
	return x, nil
}

func Shout(s string) string { return s + "!" }
'''

CPP_CELL = r'''%%cpp
#include <stdexcept>
#include <string>
struct Pair { double a = 0; double b = 0; };
double cube(double x) { return x * x * x; }
double pair_sum(const Pair& p) { return p.a + p.b; }
Pair swapped(const Pair& p) { return Pair{p.b, p.a}; }
int checked(int x) { if (x < 0) throw std::invalid_argument("negative input"); return x; }
class Counter { public: int bump() { return ++n; } private: int n = 0; };
enum class Color { Red, Green = 5 };
enum Level { Low, High };
Color brighter(Color c) { return c == Color::Red ? Color::Green : Color::Red; }
Level raised(Level l) { return l == Low ? High : Low; }
Color color_at(int i) { return i ? Color::Green : Color::Red; }
'''

SPAWN_POOL = "import multiprocessing\npool = multiprocessing.get_context('spawn').Pool(2)\n"

# Runs a cloudpickled callable in the receiving process (what Dask does with a lambda).
RUN_CLOUDPICKLED = "def in_pool(function):\n    return pool.apply(eval, ('__import__(\"cloudpickle\").loads(b)()', {'b': cloudpickle.dumps(function)}))\n"

DASK_CLUSTER = (
    "import os\n"
    "from dask.distributed import Client, LocalCluster\n"
    "cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None)\n"
    "client = Client(cluster)\n"
)


@pytest.fixture(scope="module")
def kernel():
    from conftest import RunningKernel

    # In-process first (the tests at the end switch to worker mode): both modes' functions travel.
    with RunningKernel(env={**GO_TEST_ENV, "IPOLYGLOT_MODE": "in-process"}) as running:
        running.run(GO_CELL).ok()
        running.run(CPP_CELL).ok()
        running.run(SPAWN_POOL).ok()
        running.run("import cloudpickle\n" + RUN_CLOUDPICKLED).ok()
        yield running
        running.run("pool.terminate()")
        running.run("client.close(); cluster.close()")


def test_go_function_maps_over_a_spawn_pool(kernel):
    assert kernel.eval("pool.map(Square, [1.0, 2.0, 3.0])") == [1.0, 4.0, 9.0]
    assert kernel.eval("pool.map(Shout, ['a', 'b'])") == ["a!", "b!"]


def test_go_function_pickles_as_a_small_reference(kernel):
    kernel.run(
        "import pickle\n"
        "from ipolyglot.kernel.core.travel import resolve\n"
        "data = pickle.dumps(Square)\n"
        "assert b'Square' in data and len(data) < 200_000, len(data)\n"
        "assert pickle.loads(data)(3.0) == 9.0\n"
        "assert Square.__doc__.startswith('Square multiplies')\n"
    ).ok()


def test_go_structs_travel_with_their_methods(kernel):
    kernel.run(
        "import operator\n"
        "points = [Point(X=3, Y=4), Point(X=6, Y=8)]\n"
        "scaled = pool.starmap(Scale, [(p, 2.0) for p in points])\n"
        "assert scaled == [Point(X=6, Y=8), Point(X=12, Y=16)], scaled\n"
        "assert pool.map(operator.methodcaller('Norm'), points) == [5.0, 10.0]\n"
        "assert pool.apply(type, (Point(X=1, Y=2),)) is Point\n"
    ).ok()


def test_go_error_in_a_pool_worker_arrives_as_go_error(kernel):
    kernel.run(
        "from ipolyglot.go_bridge import GoError\n"
        "try:\n"
        "    pool.map(Positive, [1, -1])\n"
        "except GoError as exc:\n"
        "    assert str(exc) == 'negative input', exc\n"
        "else:\n"
        "    raise AssertionError('no GoError')\n"
    ).ok()


def test_go_function_in_a_process_pool_executor(kernel):
    kernel.run(
        "import multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('spawn')) as executor:\n"
        "    assert list(executor.map(Square, [2.0, 5.0])) == [4.0, 25.0]\n"
    ).ok()


def test_cpp_function_maps_over_a_spawn_pool(kernel):
    assert kernel.eval("pool.map(cube, [1.0, 2.0])") == [1.0, 8.0]
    kernel.run(
        "assert pool.map(pair_sum, [Pair(a=1, b=2)]) == [3.0]\n"
        "back = pool.apply(swapped, (Pair(a=1, b=2),))\n"
        "assert (type(back).__name__, back.a, back.b) == ('Pair', 2.0, 1.0)\n"
        "try:\n"
        "    pool.map(checked, [-1])\n"
        "except ValueError as exc:\n"
        "    assert 'negative input' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('no ValueError')\n"
    ).ok()


def test_cpp_class_instance_says_it_cannot_travel(kernel):
    out = kernel.run("import pickle\npickle.dumps(Counter())")
    assert out.status == "error" and out.error["ename"] == "TypeError"
    assert "Counter" in out.error["evalue"] and "value" in out.error["evalue"]


def run_in_a_fresh_pool(kernel, setup: str, body: str):
    """Run `body` (lines indented under `with …: ` that use the pool `elsewhere`) in a kernel cell,
    in a spawn pool of one process that first executes `setup` (its own cache, a missing toolchain)."""
    return kernel.run(
        "import multiprocessing, operator\n"
        f"setup = {setup!r}\n"
        "with multiprocessing.get_context('spawn').Pool(1, exec, (setup,)) as elsewhere:\n" + body
    )


def test_empty_cache_rebuilds_from_the_reference(kernel, tmp_path):
    fresh = tmp_path / "elsewhere"
    setup = f"import os; os.environ['IPOLYGLOT_CACHE_DIR'] = {str(fresh)!r}"
    run_in_a_fresh_pool(kernel, setup, (
        "    assert elsewhere.map(Square, [4.0]) == [16.0]\n"
        "    assert elsewhere.map(operator.methodcaller('Norm'), [Point(X=3, Y=4)]) == [5.0]\n"
    )).ok()
    built = list((fresh / "artifacts").glob("*/*/libgocell.so"))
    assert built, "the receiving process did not rebuild the Go library into its own cache"


def test_missing_toolchain_on_the_receiving_side_is_named(kernel, tmp_path):
    fresh = tmp_path / "no-go"
    setup = f"import os; os.environ['IPOLYGLOT_CACHE_DIR'] = {str(fresh)!r}; os.environ['IPOLYGLOT_GO'] = '/nonexistent/go'"
    out = run_in_a_fresh_pool(kernel, setup, (
        "    elsewhere.map(Square, [4.0])\n"
    ))
    assert out.status == "error" and out.error["ename"] == "ToolchainError", out.error_text
    assert "cannot be rebuilt here" in out.error["evalue"] and "/nonexistent/go" in out.error["evalue"]


def test_empty_cache_rebuilds_a_cpp_function_from_the_reference(kernel, tmp_path):
    fresh = tmp_path / "elsewhere-cpp"
    setup = f"import os; os.environ['IPOLYGLOT_CACHE_DIR'] = {str(fresh)!r}"
    run_in_a_fresh_pool(kernel, setup, (
        "    assert elsewhere.map(cube, [2.0, 3.0]) == [8.0, 27.0]\n"
        "    assert elsewhere.map(pair_sum, [Pair(a=1, b=2)]) == [3.0]\n"
        "    assert elsewhere.map(brighter, [Color.Red]) == [Color.Green]\n"
    )).ok()
    built = list((fresh / "artifacts").glob("*/*/ipolyglot_cpp_*"))
    assert built, "the receiving process did not rebuild the C++ module into its own cache"
    same_key = kernel.eval("cube._build['key']")
    assert (fresh / "artifacts" / same_key[:2] / same_key).is_dir(), "the same machine rebuilt under another key"


def test_missing_cpp_compiler_on_the_receiving_side_is_named(kernel, tmp_path):
    fresh = tmp_path / "no-cxx"
    setup = (
        f"import os; os.environ['IPOLYGLOT_CACHE_DIR'] = {str(fresh)!r}; "
        "os.environ['CXX'] = '/nonexistent/g++'; os.environ['PATH'] = '/nonexistent'"
    )
    out = run_in_a_fresh_pool(kernel, setup, (
        "    elsewhere.map(cube, [2.0])\n"
    ))
    assert out.status == "error" and out.error["ename"] == "ToolchainError", out.error_text
    message = out.error["evalue"]
    assert "cannot be rebuilt here" in message and "/nonexistent/g++" in message and "install g++" in message, message


def test_dask_local_cluster_maps_a_go_function(kernel):
    kernel.run(DASK_CLUSTER).ok()
    kernel.run(
        "futures = client.map(Square, [1.0, 2.0, 3.0])\n"
        "assert client.gather(futures) == [1.0, 4.0, 9.0]\n"
        "pids = set(client.run(os.getpid).values())\n"
        "assert os.getpid() not in pids\n"
        "point = client.submit(Scale, Point(X=1, Y=1), 3.0).result()\n"
        "assert point == Point(X=3, Y=3), point\n"
    ).ok()


def test_cpp_enums_travel_to_a_spawn_pool_and_a_dask_worker(kernel):
    kernel.run(
        "import pickle\n"
        "assert pickle.loads(pickle.dumps(Color)) is Color and pickle.loads(pickle.dumps(Color.Green)) is Color.Green\n"
        "assert pool.map(brighter, [Color.Red, Color.Green]) == [Color.Green, Color.Red]\n"
        "assert pool.map(raised, [Level.Low]) == [Level.High]\n"
        "assert pool.apply(getattr, (Color, 'Green')) is Color.Green\n"
        "assert client.submit(brighter, Color.Red).result() is Color.Green\n"
        "assert client.submit(lambda: brighter(Color.Green)).result() is Color.Red\n"
    ).ok()


def test_dask_tokens_name_the_build(kernel):
    kernel.run(
        "from dask.base import tokenize\n"
        "for f in (cube, Square):\n"
        "    assert tokenize(f) == tokenize(f) == pool.apply(tokenize, (f,)), f\n"
        "    assert client.submit(tokenize, f, pure=False).result() == tokenize(f), f\n"
        "assert tokenize(cube) != tokenize(pair_sum)\n"
        "old_cube, old_square = cube, Square\n"
    ).ok()
    kernel.run("%%cpp\ndouble cube_again(double x) { return x * x * x; }\n").ok()
    kernel.run("%%go\nfunc Twice(x float64) float64 { return 2 * x }\n").ok()
    kernel.run(
        "assert cube._build['key'] != old_cube._build['key'] and Square._build['key'] != old_square._build['key']\n"
        "assert tokenize(cube) != tokenize(old_cube) and tokenize(Square) != tokenize(old_square)\n"
    ).ok()


def test_struct_classes_travel_through_cloudpickle(kernel):
    kernel.run(
        "assert in_pool(lambda: Scale(Point(X=1, Y=2), 2.0)) == Point(X=2, Y=4)\n"
        "assert in_pool(lambda: Point) is Point\n"
        "assert in_pool(lambda: pair_sum(Pair(a=1, b=2))) == 3.0\n"
        "assert in_pool(lambda: Pair).__name__ == 'Pair'\n"
        "assert client.submit(lambda: Scale(Point(X=1, Y=2), 2.0).Norm()).result() == Point(X=2, Y=4).Norm()\n"
        "assert client.submit(lambda k: Scale(Point(X=1, Y=1), k), 3.0).result() == Point(X=3, Y=3)\n"
        "back = client.submit(lambda: swapped(Pair(a=1, b=2))).result()\n"
        "assert (type(back).__name__, back.a, back.b) == ('Pair', 2.0, 1.0)\n"
    ).ok()
    assert kernel.eval("in_pool(lambda: Counter().bump())") == 1  # the class travels; an instance would not
    out = kernel.run("import pickle\ncloudpickle.dumps(Counter())")
    assert out.status == "error" and "Counter" in out.error["evalue"], out.error_text


def test_go_function_travels_from_worker_mode(kernel):
    kernel.run("%polyglot mode worker").ok()
    kernel.run(GO_CELL).ok()
    kernel.run(CPP_CELL).ok()
    kernel.run(
        "assert type(Square.target).__name__ == 'RemoteObject', type(Square.target)\n"
        "assert type(cube.target).__name__ == 'RemoteObject', type(cube.target)\n"
        "assert pool.map(Square, [3.0]) == [9.0]\n"
        "assert pool.map(cube, [2.0]) == [8.0]\n"
        "assert client.gather(client.map(Square, [1.0, 2.0])) == [1.0, 4.0]\n"
        "assert client.gather(client.map(cube, [3.0])) == [27.0]\n"
        "from dask.base import tokenize\n"
        "assert tokenize(Square) == pool.apply(tokenize, (Square,)) and tokenize(cube) == pool.apply(tokenize, (cube,))\n"
    ).ok()


def test_values_arriving_in_a_worker_mode_kernel_load_no_native_code_there():
    from conftest import RunningKernel

    with RunningKernel(env={**GO_TEST_ENV, "IPOLYGLOT_MODE": "worker"}) as kernel:
        for cell in (GO_CELL, CPP_CELL, SPAWN_POOL, "import cloudpickle\n" + RUN_CLOUDPICKLED):
            kernel.run(cell).ok()
        kernel.run(
            "from ipolyglot.kernel.core.travel import LOADED_BUILDS\n"
            "back = pool.apply(Scale, (Point(X=1, Y=1), 2.0))\n"
            "assert type(back) is Point and back == Point(X=2, Y=2), back\n"
            "assert in_pool(lambda: Scale(Point(X=1, Y=2), 2.0)) == Point(X=2, Y=4)\n"
            "assert pool.apply(color_at, (1,)) is Color.Green\n"
            "assert not LOADED_BUILDS.namespaces, list(LOADED_BUILDS.namespaces)\n"
        ).ok()
        out = kernel.run("import pickle\npickle.dumps(Color.Green)")
        assert out.status == "error" and out.error["ename"] == "TypeError", out.error_text
        assert "Color.Green" in out.error["evalue"] and "value" in out.error["evalue"]
        kernel.run("pool.terminate()")

"""Marshaling through a real kernel: every row of DESIGN.md §5 both ways, nesting,
structs, errors, panics, callbacks, GIL release, output order."""

import re

import pytest

from conftest import RunningKernel, mode_env, check
from go_cells import GO_TEST_ENV, TYPES_CELL

# Marshaling, callbacks and output ordering hold in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")


@pytest.fixture(scope="module")
def kernel(kernel_mode):
    with RunningKernel(env={**GO_TEST_ENV, **mode_env(kernel_mode)}) as running:
        out = running.run(TYPES_CELL).ok()
        assert "Channel" in out.stderr and "chan int" in out.stderr, out.stderr  # skipped, with a warning
        running.run("import numpy as np\nfrom ipolyglot.go_bridge import GoError, GoPanic").ok()
        yield running


@pytest.mark.parametrize(
    "func, value",
    [
        ("EchoBool", "True"), ("EchoBool", "False"),
        ("EchoInt", "-(2**63)"), ("EchoInt", "2**63 - 1"),
        ("EchoInt8", "-128"), ("EchoInt8", "127"), ("EchoInt16", "-32768"), ("EchoInt32", "2**31 - 1"),
        ("EchoInt64", "-(2**63)"), ("EchoUint", "2**64 - 1"), ("EchoUint8", "255"),
        ("EchoUint16", "65535"), ("EchoUint32", "2**32 - 1"), ("EchoUint64", "2**64 - 1"),
        ("EchoFloat32", "1.5"), ("EchoFloat64", "-2.25e300"), ("EchoComplex", "complex(1.5, -2)"),
        ("EchoString", "'héllo \\x00 wörld ✓ 🐍'"), ("EchoString", "''"),
        ("EchoBytes", "b'\\x00\\xffabc'"), ("EchoStrings", "['a', '', 'ü']"),
        ("EchoMap", "{'a': 1, 'b': -2}"), ("EchoIntKeys", "{1: 'x', -5: 'y'}"),
    ],
)
def test_scalars_strings_and_maps_round_trip(kernel, func, value):
    check(kernel, f"v = {value}\nr = {func}(v)\nassert r == v and type(r) is type(v), (r, v)")


def test_numeric_slices_are_numpy_arrays_of_the_matching_dtype(kernel):
    check(kernel, """
a = np.arange(100_000, dtype=np.float64)
r = EchoFloats(a)
assert isinstance(r, np.ndarray) and r.dtype == np.float64 and np.array_equal(r, a) and r is not a
assert EchoFloats([1, 2.5]).tolist() == [1.0, 2.5]
assert EchoFloats(np.arange(5, dtype=np.int32)).tolist() == [0, 1, 2, 3, 4]   # converted while copying
assert EchoFloats(a[::2]).tolist() == a[::2].tolist()                         # strided input
r = EchoInt32s(np.array([1, -2, 3], dtype=np.int32)); assert r.dtype == np.int32 and r.tolist() == [1, -2, 3]
r = EchoUint8s([1, 65535]); assert r.dtype == np.uint16 and r.tolist() == [1, 65535]
r = EchoComplexes([1j, 2]); assert r.dtype == np.complex128 and r.tolist() == [1j, 2]
assert EchoFloats([]).shape == (0,)
assert EchoBools([True, False]) == [True, False]
assert EchoBytes(bytearray(b'xy')) == b'xy' and EchoBytes(memoryview(b'z')) == b'z'
big = bytes(range(256)) * 1000
assert EchoBytes(big) == big
""")


def test_large_numeric_results_are_arrays_of_their_own(kernel):
    # From 64 KiB on a result's numeric slice comes as a C block the array owns: every dtype,
    # nested in maps and lists, bigger than the input, views outliving the array, nil and empty.
    out = kernel.run("""%%go
func Spread(n int, x float64) []float64 { out := make([]float64, n); for i := range out { out[i] = x * float64(i) }; return out }
func Int8s(n int) []int8 { out := make([]int8, n); for i := range out { out[i] = int8(i) }; return out }
func Uint64s(n int) []uint64 { out := make([]uint64, n); for i := range out { out[i] = uint64(1<<63) + uint64(i) }; return out }
func Float32s(n int) []float32 { out := make([]float32, n); for i := range out { out[i] = float32(i) / 4 }; return out }
func Complex64s(n int) []complex64 { out := make([]complex64, n); for i := range out { out[i] = complex(float32(i), -1) }; return out }
func NilFloats() []float64 { return nil }
func Columns(n int) map[string][]int32 { return map[string][]int32{"a": make([]int32, n), "b": {7}} }
""")
    out.ok()
    check(kernel, """
n = 1 << 17
a = Spread(n, 0.5)
assert a.dtype == np.float64 and a.shape == (n,) and a[-1] == 0.5 * (n - 1) and a.flags.writeable
tail = a[-3:]; del a; import gc; gc.collect()
assert tail.tolist() == [0.5 * (n - 3), 0.5 * (n - 2), 0.5 * (n - 1)]   # a view keeps the block
b = Spread(n, 1.0); b += 1; assert b[0] == 1 and Spread(n, 1.0)[0] == 0   # each result is a copy of its own
assert Int8s(n).dtype == np.int8 and Int8s(n)[200] == np.int8(200 - 256)
assert Uint64s(n).dtype == np.uint64 and int(Uint64s(n)[-1]) == 2**63 + n - 1
assert Float32s(n).dtype == np.float32 and Float32s(n)[-1] == (n - 1) / 4
assert Complex64s(n).dtype == np.complex64 and Complex64s(n)[3] == 3 - 1j
assert NilFloats().shape == (0,) and Spread(0, 1.0).shape == (0,)
c = Columns(n); assert c['a'].dtype == np.int32 and c['a'].shape == (n,) and c['b'].tolist() == [7]
big = np.random.default_rng(1).random(10**6)
assert np.array_equal(EchoFloats(big), big) and EchoNested({'k': big})['k'].tolist() == big.tolist()
assert [row.shape for row in EchoGrid([np.arange(n), np.arange(3)])] == [(n,), (3,)]
import pickle; assert np.array_equal(pickle.loads(pickle.dumps(Spread(n, 2.0))), Spread(n, 2.0))
""")


def test_arrays_lists_nesting_and_any(kernel):
    check(kernel, """
assert EchoArray([1, 2, 3]) == [1, 2, 3]
assert EchoArray((4, 5, 6)) == [4, 5, 6]
n = EchoNested({'a': [1.0, 2.0], 'b': np.array([3.0])})
assert set(n) == {'a', 'b'} and n['a'].tolist() == [1.0, 2.0] and n['b'].dtype == np.float64
assert [row.tolist() for row in EchoGrid([[1, 2], [3]])] == [[1, 2], [3]]
assert [row.tolist() for row in EchoGrid(np.arange(6).reshape(2, 3))] == [[0, 1, 2], [3, 4, 5]]
assert EchoAny(None) is None and EchoAny(3) == 3 and EchoAny('s') == 's' and EchoAny([1, 'x']) == [1, 'x']
assert EchoAny({'k': 1.5}) == {'k': 1.5}
assert EchoInts().tolist() == [] and EchoInts(1, 2, 3).tolist() == [1, 2, 3]
""")


def test_large_dicts_of_common_shapes_round_trip(kernel):
    # 16 entries and more cross as two bulk columns; every shape must behave as entry by entry.
    check(kernel, """
n = 1000
sf = {f'k{i}-ü': i / 3 for i in range(n)}
assert EchoFloatMap(sf) == sf and EchoFloatMap({f'k{i}': i for i in range(n)}) == {f'k{i}': float(i) for i in range(n)}
si = {f'k{i}': i - 500 for i in range(n)}
assert EchoMap(si) == si and all(type(v) is int for v in EchoMap(si).values())
iss = {i * 7 - 3000: f'v{i}' for i in range(n)}
assert EchoIntKeys(iss) == iss
flags = {i: i % 3 == 0 for i in range(-50, 50)}
assert EchoFlags(flags) == flags
big = {i: 2**62 + i for i in range(100)}
assert EchoInt64Map(big) == big
assert EchoAny({f'k{i}': float(i) for i in range(40)}) == {f'k{i}': float(i) for i in range(40)}
assert EchoFloat32Map({f'k{i}': 0.5 for i in range(40)}) == {f'k{i}': 0.5 for i in range(40)}
nul = {f'a\\x00{i}': i for i in range(40)}                  # NUL inside keys: entry by entry
assert EchoMap(nul) == nul
assert OddKeys(40, True) == {f'k\\x00{i}': i for i in range(40)}
assert OddKeys(40, False) == {'\\udcff' + str(i): -i for i in range(40)}   # not UTF-8: as read_string does
def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return str(e)
    raise AssertionError(f'{fn.__name__} did not raise {exc.__name__}')
m = raises(OverflowError, EchoFloat32Map, {f'k{i}': 1e300 for i in range(40)}); assert 'float32' in m and 'key k' in m, m
m = raises(TypeError, EchoMap, {f'k{i}': 1.5 for i in range(40)}); assert 'map[string]int' in m or 'Go type int' in m, m
m = raises(OverflowError, EchoFlags, {2**40 + i: True for i in range(40)}); assert 'int32' in m, m
mixed = {f'k{i}': (i if i % 2 else float(i)) for i in range(40)}
m = raises(TypeError, EchoMap, mixed); assert 'key k0' in m, m
assert EchoFloatMap(mixed) == {k: float(v) for k, v in mixed.items()}
""")


def test_complex64_parts_are_range_checked_as_float32_is(kernel):
    kernel.run(
        "%%go\n"
        "type Phasor struct{ Z complex64 }\n"
        "func C64(c complex64) complex64 { return c }\n"
        "func C64s(cs []complex64) []complex64 { return cs }\n"
        "func C64Map(m map[string]complex64) map[string]complex64 { return m }\n"
        "func C64Field(p Phasor) Phasor { return p }\n"
        "func C64Back(f func() complex64) complex64 { return f() }\n"
    ).ok()
    check(kernel, """
def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return str(e)
    raise AssertionError(f'{fn.__name__}{args} did not raise {exc.__name__}')

m = raises(OverflowError, C64, complex(1e39, 0))
assert m == 'C64() parameter c (Go type complex64): (1e+39+0j) is out of range for complex64', m
assert raises(OverflowError, EchoFloat32, 1e39) == 'EchoFloat32() parameter v (Go type float32): 1e+39 is out of range for float32'
m = raises(OverflowError, C64, complex(1, -1e39)); assert '(1-1e+39j) is out of range for complex64' in m, m
m = raises(OverflowError, C64, 1e39); assert 'complex64' in m, m           # a float, an int beyond float32 too
m = raises(OverflowError, C64, 10**39); assert 'complex64' in m, m
m = raises(OverflowError, C64s, [1j, complex(1e39, 0)]); assert 'item 1' in m and 'complex64' in m, m
m = raises(OverflowError, C64s, np.array([1e39 + 0j])); assert 'complex64' in m, m
m = raises(OverflowError, C64Map, {'k': complex(0, 1e39)}); assert 'complex64' in m, m
m = raises(OverflowError, C64Field, Phasor(Z=complex(1e39, 0))); assert 'complex64' in m, m
try:
    C64Back(lambda: complex(1e39, 0))
except OverflowError as e:
    assert str(e) == 'callback result (Go type complex64): (1e+39+0j) is out of range for complex64', e
else:
    raise AssertionError('no OverflowError')
assert C64(1 + 2j) == 1 + 2j and C64(complex(float('inf'), 0)) == complex(float('inf'), 0)
assert C64(complex(3e38, -3e38)) == complex(np.float32(3e38), np.float32(-3e38))
assert C64s(np.array([1 + 1j], dtype=np.complex128)).tolist() == [1 + 1j]
assert EchoComplex(complex(1e300, 0)) == complex(1e300, 0)  # complex128 is not limited
""")


def test_scalar_functions_take_every_argument_form(kernel):
    # Scalar-only functions have a compiled caller: keywords, missing arguments, numpy scalars,
    # ints where floats go, values out of range and panics all behave as in the generic path.
    kernel.run("""%%go
func Mix(a int8, b uint16, c float32, d bool, e uint64, f rune, g byte, h uintptr, i int32, j uint32, k int16) float64 {
	if !d { return -1 }
	return float64(a) + float64(b) + float64(c) + float64(e%1000) + float64(f) + float64(g) + float64(h) + float64(i) + float64(j) + float64(k)
}
func Neg(x int64) int64 { return -x }
func Half(x float32) float32 { return x / 2 }
func Not(b bool) bool { return !b }
func Big() uint64 { return 1<<64 - 1 }
func Low() int8 { return -128 }
func Nothing(x int) {}
func Refuse(x int) int { if x < 0 { panic("negative") }; return x }
func Many(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q float64) float64 { return a + b + c + d + e + f + g + h + i + j + k + l + m + n + o + p + q }
""").ok()
    check(kernel, """
def raises(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:
        return str(e)
    raise AssertionError(f'{fn.__name__}{args} did not raise {exc.__name__}')

assert Mix(-128, 65535, 0.5, True, 2**64 - 1, 0x1F40D, 255, 7, -(2**31), 2**32 - 1, -32768) == (
    -128 + 65535 + 0.5 + 615 + 0x1F40D + 255 + 7 - 2**31 + 2**32 - 1 - 32768)
assert Mix(1, 2, 3, False, 4, 5, 6, 7, 8, 9, 10) == -1
r = Neg(5); assert r == -5 and type(r) is int
assert Neg(x=5) == -5 and Neg(np.int64(3)) == -3 and Neg(-(2**63)) == -(2**63)
assert raises(TypeError, Neg) == 'Neg() missing parameter x (Go type int64)'
assert 'Go type int64' in raises(OverflowError, Neg, 2**63)
assert 'Go type int64' in raises(TypeError, Neg, 1.5)
m = raises(TypeError, Neg, 1, 2); assert 'Neg' in m, m
r = Half(3); assert r == 1.5 and type(r) is float
assert Half(np.float32(1.0)) == 0.5 and Half(float('inf')) == float('inf') and Half(2**60) == 2.0**59
assert 'Go type float32' in raises(OverflowError, Half, 1e39)
assert 'Go type float32' in raises(OverflowError, Half, 10**39)
assert Not(True) is False and Not(b=False) is True and Not(np.bool_(True)) is False
assert Big() == 2**64 - 1 and Low() == -128 and Nothing(1) is None
assert 'negative' in raises(GoPanic, Refuse, -1)
assert Refuse(2) == 2
assert Many(*range(17)) == sum(range(17)) and Many(*range(16), q=1.5) == sum(range(16)) + 1.5
import inspect, pickle
assert str(inspect.signature(Neg)) == '(x: int) -> int' and Neg.__doc__.startswith('Go: func Neg(x int64) int64')
assert Neg.__name__ == 'Neg' and Neg.aio.__name__ == 'Neg.aio' and pickle.loads(pickle.dumps(Neg))(2) == -2
""")


def test_scalar_function_that_waits_is_supervised_while_goroutines_run(kernel):
    # The compiled caller's entry runs nothing while a cell's goroutine runs: the call is made
    # again through the generic, supervised entry, so the goroutine's panic ends the wait.
    kernel.run("""%%go
import "time"
var gate = make(chan int)
func StartLatePanic() bool { go func() { time.Sleep(200 * time.Millisecond); panic("late") }(); return true }
func Take(x int) int { return x + <-gate }
""").ok()
    check(kernel, """
assert StartLatePanic()
try:
    Take(1)
except GoPanic as e:
    assert 'late' in str(e), e
else:
    raise AssertionError('no GoPanic')
""")


def test_structs_by_value_pointer_nil_and_dict(kernel):
    check(kernel, """
p = Point(X=3, Y=4, Label='p')
assert repr(p) == "Point(X=3, Y=4, Label='p')"
assert Point() == Point(X=0.0, Y=0.0, Label='') and Point(1.0) == Point(X=1.0)
s = Scale(p, 2)
assert isinstance(s, Point) and s == Point(X=6.0, Y=8.0, Label='p')
assert Scale({'X': 1, 'Y': 2}, 3) == Point(X=3.0, Y=6.0)
assert Norm2(p) == 25.0 and Norm2(None) == -1.0 and Norm2({'X': 1.0}) == 1.0
assert EchoPointPtr(None) is None and EchoPointPtr(p) == Point(X=3.0, Y=4.0, Label='p')
shape = Shape(Name='tri', Points=[Point(X=1), {'Y': 2}], Tags={'a': 1}, Origin=None)
r = EchoShape(shape)
assert r.Name == 'tri' and r.Points == [Point(X=1.0), Point(Y=2.0)] and r.Tags == {'a': 1} and r.Origin is None
assert EchoPoints([]) == [] and EchoShape({'Origin': {'X': 5}}).Origin == Point(X=5.0)
assert Split('abc') == ('abc!', 3, False)
""")


def test_wrong_arity_type_and_range_name_the_parameter_and_go_type(kernel):
    check(kernel, """
def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return str(e)
    raise AssertionError(f'{fn.__name__}{args} did not raise {exc.__name__}')

m = raises(OverflowError, EchoInt8, 128); assert 'parameter v' in m and 'int8' in m, m
m = raises(OverflowError, EchoUint, -1); assert 'uint' in m, m
m = raises(OverflowError, EchoInt64, 2**63); assert 'int64' in m, m
m = raises(OverflowError, EchoUint64, 2**64); assert 'uint64' in m, m
m = raises(OverflowError, EchoFloat32, 1e300); assert 'float32' in m, m
m = raises(TypeError, EchoInt, 'x'); assert 'parameter v (Go type int)' in m, m
m = raises(TypeError, EchoInt, 1.5); assert 'Go type int' in m, m
m = raises(TypeError, EchoString, b'x'); assert 'Go type string' in m, m
m = raises(TypeError, Scale, Point()); assert 'parameter k (Go type float64)' in m, m
m = raises(TypeError, Scale, {'Z': 1}, 1.0); assert 'no exported field' in m and 'Z' in m, m
m = raises(TypeError, EchoArray, [1, 2]); assert '[3]int' in m, m
m = raises(TypeError, EchoFloats, ['a']); assert 'Go type []float64' in m, m
m = raises(TypeError, EchoMap, {'a': 'b'}); assert 'map[string]int' in m, m
m = raises(TypeError, EchoInt, object()); assert 'parameter v (Go type int)' in m, m
raises(TypeError, EchoInt, 1, 2)
""")


def test_callers_objects_are_never_modified(kernel):
    check(kernel, """
xs = np.array([1.0, 2.0]); m = {'a': 1}; p = Point(X=1)
Mutate(xs, m, p)
assert xs.tolist() == [1.0, 2.0] and m == {'a': 1} and p == Point(X=1)
""")


def test_error_results_raise_go_error(kernel):
    check(kernel, """
assert Div(1, 4) == 0.25 and Check(True) is None
try:
    Div(1, 0)
except GoError as e:
    assert str(e) == 'division by zero'
else:
    raise AssertionError('no GoError')
try:
    Check(False)
except GoError as e:
    assert str(e) == 'check failed: false'
else:
    raise AssertionError('no GoError')
""")


def test_panics_raise_go_panic_with_cell_lines(kernel):
    # The line of Boom's `m["x"] = n` in TYPES_CELL, counting the %%go line as line 1.
    line = TYPES_CELL.splitlines().index('\t\tm["x"] = n') + 1
    check(kernel, f"""
import re
assert Boom(1) == 1
try:
    Boom(5)
except GoPanic as e:
    assert 'assignment to entry in nil map' in e.value, e.value
    assert re.search(r'In \\[\\d+\\]:{line}$', e.stack, re.M), e.stack
else:
    raise AssertionError('no GoPanic')
try:
    BoomSlow([1.0])
except GoPanic as e:
    assert 'index out of range' in e.value
assert Boom(2) == 2   # the library still works after a panic
""")


def test_panic_in_a_user_goroutine_is_reported_not_fatal(kernel):
    # PanicInGoroutine waits for its goroutine (whose deferred Done runs as it panics): the
    # panic ends that call, or, when the call returned first, is raised by the next one.
    out = kernel.run("""
import re, time
def next_panic():
    for _ in range(500):
        try:
            EchoInt(1)
        except GoPanic as e:
            return e
        time.sleep(0.01)
try:
    PanicInGoroutine()
    caught = next_panic()
except GoPanic as e:
    caught = e
print('caught:', caught.value)
assert str(caught).startswith('panic in a goroutine: goroutine exploded'), str(caught)
assert re.search(r"In \\[\\d+\\]:\\d+", caught.stack) and "cell-" not in caught.stack, caught.stack
assert next_panic() is None   # reported once
print('alive', Boom(1))
""").ok()
    assert "caught: goroutine exploded" in out.stdout
    assert "alive 1" in out.stdout
    # A goroutine panicking while no call is in progress: Go's own report in the cell's output, raised by the next call.
    kernel.run('%%go\nimport "time"\n\nfunc PanicSoon() {\n\tgo func() {\n\t\ttime.Sleep(10 * time.Millisecond)\n\t\tpanic("on its own")\n\t}()\n}\n').ok()
    out = kernel.run("""
PanicSoon()
time.sleep(0.5)
try:
    EchoInt(1)
except GoPanic as e:
    print('next call:', e.where + e.value)
assert next_panic() is None
""").ok()
    assert "next call: panic in a goroutine: on its own" in out.stdout, out.stdout
    assert "panic in a goroutine: on its own" in out.stderr, out.stderr
    assert re.search(r"In \[\d+\]:\d+", out.stderr) and "cell-" not in out.stderr, out.stderr  # Go's own report


def test_callbacks_from_the_calling_goroutine_and_others(kernel):
    check(kernel, """
assert Apply(lambda x: x * 10, [1.0, 2.0]).tolist() == [10.0, 20.0]
seen = []
def square(i):
    seen.append(i)
    return i * i
assert ApplyConcurrently(square, 20) == sum(i * i for i in range(20))
assert sorted(seen) == list(range(20))
assert Combine('ab', lambda s, n: (s * n, None)) == 'abab'
""")


def test_callback_exceptions_reach_python_unchanged(kernel):
    check(kernel, """
class Oops(Exception):
    pass
def bad(x):
    raise Oops('from python')
try:
    Apply(bad, [1.0])
except Oops as e:
    assert str(e) == 'from python'
else:
    raise AssertionError('callback exception lost')
try:
    Combine('x', lambda s, n: (s, 'an error message'))
except GoError as e:
    assert str(e) == 'an error message'
else:
    raise AssertionError('no GoError')
try:
    Combine('x', lambda s, n: (1, None))
except TypeError as e:  # a result Go cannot take is refused as a parameter would be
    assert str(e) == 'callback result 1 (Go type string): expected string, got int', str(e)
else:
    raise AssertionError('no TypeError')
""")


def test_gil_is_released_calls_from_threads_overlap(kernel):
    check(kernel, """
import threading
windows = []
def worker():
    windows.append(Window(300))
threads = [threading.Thread(target=worker) for _ in range(2)]
[t.start() for t in threads]; [t.join() for t in threads]
(s1, e1), (s2, e2) = windows
assert s1 < e2 and s2 < e1, windows   # the two execution windows overlap
""")


def test_go_output_is_in_order_with_python_prints(kernel):
    out = kernel.run("print('a'); Greet('b'); print('c')").ok()
    assert out.stdout == "a\nhello from Go, b\nc\n"


def test_functions_carry_their_go_signature(kernel):
    assert kernel.eval("Div.__doc__") == "Go: func Div(a float64, b float64) (float64, error)"
    assert kernel.eval("EchoInts.__doc__") == "Go: func EchoInts(xs ...int) []int"

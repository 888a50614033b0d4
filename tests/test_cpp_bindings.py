"""%%cpp declarations become Python objects: every binding kind and every caster family.

One cell declares everything (one build per run, shared through the cache);
the tests call into it through a real kernel.
"""

from __future__ import annotations

import pytest

# C++ marshaling, callbacks and output ordering hold in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")

DECLARATIONS = r'''%%cpp
#include <array>
#include <chrono>
#include <complex>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

// free functions: overloads, default arguments, keyword arguments
int add(int a, int b = 10) { return a + b; }
double add(double a, double b) { return a + b + 0.5; }
std::string describe(const std::string& name, int times = 1, bool loud = false) {
    std::string out;
    for (int i = 0; i < times; ++i) out += name;
    return loud ? out + "!" : out;
}

// classes
struct Point {
    double x = 0, y = 0;
    double norm2() const { return x * x + y * y; }
    void scale(double k) { x *= k; y *= k; }
};

class Account {
public:
    Account(std::string owner, double balance) : owner(owner), balance_(balance) {}
    explicit Account(std::string owner) : owner(owner), balance_(0) {}
    double deposit(double amount) {
        if (amount <= 0) throw std::invalid_argument("deposit must be positive");
        balance_ += amount;
        return balance_;
    }
    double balance() const { return balance_; }
    static Account joint(const std::string& a, const std::string& b) { return Account(a + "&" + b, 1.0); }
    std::string owner;
    const int id = 7;
private:
    double balance_;
};

enum class Color { Red, Green = 5, Blue };
enum Plain { ONE = 1, TWO = 2 };
Color next_color(Color c) { return c == Color::Red ? Color::Green : Color::Blue; }
int plain_value(Plain p) { return static_cast<int>(p) * 100; }

namespace geo {
    struct Box { double w = 1, h = 1; double area() const { return w * h; } };
    double area_sum(const std::vector<Box>& boxes) { double s = 0; for (auto& b : boxes) s += b.area(); return s; }
    namespace deep { int answer() { return 42; } }
}

// casters, both ways
std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out; std::string cur;
    for (char c : s) { if (c == ' ') { out.push_back(cur); cur.clear(); } else cur += c; }
    out.push_back(cur); return out;
}
std::map<std::string, int> count_chars(const std::string& s) { std::map<std::string, int> m; for (char c : s) m[std::string(1, c)]++; return m; }
std::unordered_map<int, double> invert(const std::unordered_map<int, double>& m) { std::unordered_map<int, double> r; for (auto& kv : m) r[kv.first] = 1.0 / kv.second; return r; }
std::set<int> unique_sorted(const std::set<int>& s) { return s; }
std::pair<int, std::string> pair_up(std::pair<int, std::string> p) { return {p.first * 2, p.second + p.second}; }
std::tuple<int, double, std::string> triple(std::tuple<int, double, std::string> t) { return {std::get<0>(t) + 1, std::get<1>(t) * 2, std::get<2>(t) + "?"}; }
std::optional<int> maybe_half(std::optional<int> x) { if (!x || *x % 2) return std::nullopt; return *x / 2; }
std::variant<int, std::string> flip_kind(std::variant<int, std::string> v) {
    if (std::holds_alternative<int>(v)) return std::to_string(std::get<int>(v));
    return static_cast<int>(std::get<std::string>(v).size());
}
std::complex<double> rotate(std::complex<double> z) { return z * std::complex<double>(0, 1); }
std::string shout(const std::string& s) { return s + "!"; }
double apply_twice(const std::function<double(double)>& f, double x) { return f(f(x)); }
std::function<int(int)> make_adder(int n) { return [n](int x) { return x + n; }; }
std::array<int, 3> rev3(std::array<int, 3> a) { return {a[2], a[1], a[0]}; }
std::vector<std::vector<int>> nested(int n) { std::vector<std::vector<int>> v(n); for (int i = 0; i < n; ++i) v[i].assign(i, i); return v; }

// bulk numeric copies
double total(const std::vector<double>& xs) { double s = 0; for (double x : xs) s += x; return s; }
std::vector<double> doubled(std::vector<double> xs) { for (double& x : xs) x *= 2; return xs; }
std::vector<float> as_float(const std::vector<float>& xs) { return xs; }
std::vector<long long> squares(int n) { std::vector<long long> v(n); for (int i = 0; i < n; ++i) v[i] = 1LL * i * i; return v; }
std::vector<unsigned char> bytes_up(std::vector<unsigned char> b) { for (auto& c : b) c += 1; return b; }
std::array<double, 3> cross(std::array<double, 3> a, std::array<double, 3> b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

// exceptions
int checked_index(const std::vector<int>& v, int i) {
    if (i < 0) throw std::invalid_argument("negative index");
    return v.at(i);
}
void fail_runtime(const std::string& why) { throw std::runtime_error(why); }
struct MyError : std::exception { const char* what() const noexcept override { return "my own error"; } };
void fail_custom() { throw MyError(); }

// output from C++
void speak(const std::string& s) {
    std::cout << "cout:" << s << std::endl;
    std::printf("printf:%s\n", s.c_str());
    std::cerr << "cerr:" << s << std::endl;
}
void speak_no_flush(const std::string& s) { std::cout << "unflushed:" << s << "\n"; }

// runs without the GIL: returns when it started and ended (steady clock, ns)
std::pair<long long, long long> busy(int ms) {
    auto now = [] { return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
    long long start = now();
    volatile double sink = 0;
    while (now() - start < ms * 1000000LL) sink += 1;
    return {start, now()};
}

// definitions the binding unit must not duplicate
struct Gauge { int level() const; int lift(int by); static int max_level(); };
int Gauge::level() const { return 3; }
int Gauge::lift(int by) { return level() + by; }
int Gauge::max_level() { return 10; }
struct Shape { virtual double area() const = 0; virtual ~Shape() = default; };
struct Square : Shape { double side = 1; double area() const override { return side * side; } };
double area_of(const Shape& s) { return s.area(); }
auto deduced(int x) { return x * 3; }
constexpr int shifted(int x) { return x + 100; }
inline int decremented(int x) { return x - 1; }
static int internal_helper(int x) { return x * 2; }
int uses_helper(int x) { return internal_helper(x); }
extern "C" { int c_add(int a, int b) { return a + b; } }
class Secret { int value = 3; public: int get() const { return value; } };

// not bindable: skipped with a warning
template <typename T> T twice(T x) { return x + x; }
int uses_template(int x) { return twice(x); }
int owned_value(std::unique_ptr<int> p) { return *p; }
'''


@pytest.fixture(scope="module")
def cpp(kernel):
    out = kernel.run(DECLARATIONS).ok()
    kernel.run("import numpy as np").ok()
    return kernel, out


def test_free_functions_overloads_defaults_and_keywords(cpp):
    k, _ = cpp
    assert k.eval("add(1)") == 11
    assert k.eval("add(1, 2)") == 3
    assert k.eval("add(1.0, 2.0)") == 3.5
    assert k.eval("add(b=5, a=1)") == 6
    assert k.eval("describe('ab', loud=True, times=2)") == "abab!"
    assert k.eval("describe('x')") == "x"


def test_out_of_line_virtual_inline_static_and_extern_c_definitions(cpp):
    k, _ = cpp
    assert k.eval("Gauge().level(), Gauge().lift(2), Gauge.max_level()") == (3, 5, 10)
    assert k.eval("area_of(Square(side=3))") == 9.0
    out = k.run("Shape()")
    assert out.error and out.error["ename"] == "TypeError"  # abstract: no constructor
    assert k.eval("deduced(2), shifted(1), decremented(5), uses_helper(4), c_add(2, 3)") == (6, 101, 4, 8, 5)
    assert k.eval("Secret().get(), repr(Secret())") == (3, "Secret()")


def test_wrong_arguments_raise_type_error(cpp):
    k, _ = cpp
    out = k.run("add('one')")
    assert out.error and out.error["ename"] == "TypeError"
    out = k.run("total(['a'])")
    assert out.error["ename"] == "TypeError"


def test_classes_constructors_methods_properties_repr(cpp):
    k, _ = cpp
    k.run("p = Point(x=3, y=4)").ok()
    assert k.eval("p.norm2()") == 25.0
    k.run("p.scale(2); p.y = 1.5").ok()
    assert k.eval("(p.x, p.y)") == (6.0, 1.5)
    assert k.eval("repr(p)") == "Point(x=6.0, y=1.5)"
    assert k.eval("repr(Point())") == "Point(x=0.0, y=0.0)"
    k.run("acct = Account('ann', 10.0)").ok()
    assert k.eval("acct.deposit(5)") == 15.0
    assert k.eval("acct.balance()") == 15.0
    assert k.eval("Account('bob').balance()") == 0.0
    assert k.eval("acct.owner") == "ann"
    k.run("acct.owner = 'anne'").ok()
    assert k.eval("acct.owner") == "anne"
    assert k.eval("acct.id") == 7
    out = k.run("acct.id = 8")
    assert out.error and out.error["ename"] == "AttributeError"
    assert k.eval("Account.joint('a', 'b').owner") == "a&b"
    assert k.eval("repr(acct)") == "Account(owner='anne', id=7)"


def test_enums_are_python_enums(cpp):
    k, _ = cpp
    k.run("import enum").ok()
    assert k.eval("issubclass(Color, enum.Enum)") is True
    assert k.eval("[c.name for c in Color]") == ["Red", "Green", "Blue"]
    assert k.eval("next_color(Color.Red) is Color.Green") is True
    assert k.eval("Color.Green.value") == 5
    assert k.eval("issubclass(Plain, enum.IntEnum)") is True
    assert k.eval("plain_value(Plain.TWO)") == 200
    out = k.run("next_color(0)")
    assert out.error["ename"] == "TypeError"


def test_namespaces_are_submodules(cpp):
    k, _ = cpp
    assert k.eval("geo.Box(w=2, h=3).area()") == 6.0
    assert k.eval("geo.area_sum([geo.Box(w=2, h=3), geo.Box()])") == 7.0
    assert k.eval("geo.deep.answer()") == 42


def test_stl_casters_both_ways(cpp):
    k, _ = cpp
    assert k.eval("words('a bb ccc')") == ["a", "bb", "ccc"]
    assert k.eval("count_chars('abca')") == {"a": 2, "b": 1, "c": 1}
    assert k.eval("invert({1: 2.0, 2: 4.0})") == {1: 0.5, 2: 0.25}
    assert k.eval("unique_sorted({3, 1, 2})") == {1, 2, 3}
    assert k.eval("pair_up((2, 'ab'))") == (4, "abab")
    assert k.eval("triple((1, 1.5, 'x'))") == (2, 3.0, "x?")
    assert k.eval("(maybe_half(4), maybe_half(3), maybe_half(None))") == (2, None, None)
    assert k.eval("(flip_kind(12), flip_kind('abc'))") == ("12", 3)
    assert k.eval("rotate(1+2j)") == (-2 + 1j)
    assert k.eval("shout('héllo wörld ✓ 𝄞')") == "héllo wörld ✓ 𝄞!"
    assert k.eval("apply_twice(lambda v: v * 3, 2.0)") == 18.0
    assert k.eval("make_adder(5)(10)") == 15
    assert k.eval("rev3([1, 2, 3]).tolist()") == [3, 2, 1]
    assert k.eval("[v.tolist() for v in nested(3)]") == [[], [1], [2, 2]]


def test_bulk_numeric_vectors_numpy_in_and_out(cpp):
    k, _ = cpp
    assert k.eval("total(np.arange(1000.0))") == 499500.0
    assert k.eval("total([1, 2.5])") == 3.5
    k.run("import array").ok()
    assert k.eval("total(array.array('d', [1.0, 2.0]))") == 3.0
    assert k.eval("total(memoryview(np.ones(4)))") == 4.0
    assert k.eval("total(np.arange(5))") == 10.0  # int64 buffer: converted, not rejected
    assert k.eval("total(np.arange(10.0)[::2])") == 20.0  # strided: element-wise fallback
    k.run("src = np.arange(5.0); out = doubled(src)").ok()
    assert k.eval("type(out).__name__, str(out.dtype), out.tolist()") == ("ndarray", "float64", [0.0, 2.0, 4.0, 6.0, 8.0])
    assert k.eval("src.tolist()") == [0.0, 1.0, 2.0, 3.0, 4.0]  # the caller's array is untouched
    assert k.eval("str(as_float(np.ones(3, dtype=np.float32)).dtype)") == "float32"
    assert k.eval("str(squares(4).dtype), squares(4).tolist()") == ("int64", [0, 1, 4, 9])
    assert k.eval("bytes_up(b'abc').tolist()") == [98, 99, 100]
    assert k.eval("cross(np.array([1.0, 0, 0]), [0.0, 1, 0]).tolist()") == [0.0, 0.0, 1.0]
    out = k.run("cross([1.0, 2.0], [0.0, 1, 0])")
    assert out.error["ename"] == "TypeError"


def test_cpp_exceptions_become_python_exceptions(cpp):
    k, _ = cpp
    out = k.run("checked_index([1, 2], -1)")
    assert out.error["ename"] == "ValueError" and "negative index" in out.error["evalue"]
    out = k.run("checked_index([1, 2], 5)")
    assert out.error["ename"] == "IndexError"
    out = k.run("fail_runtime('it broke')")
    assert out.error["ename"] == "RuntimeError" and out.error["evalue"] == "it broke"
    out = k.run("fail_custom()")
    assert out.error["ename"] == "RuntimeError" and "my own error" in out.error["evalue"]
    out = k.run("Account('x').deposit(-1)")
    assert out.error["ename"] == "ValueError"
    assert k.eval("checked_index([1, 2], 1)") == 2  # the kernel is fine afterwards


def test_native_output_appears_in_order(cpp):
    k, _ = cpp
    out = k.run("print('py-1'); speak('a'); print('py-2'); speak_no_flush('b'); print('py-3')").ok()
    assert out.stdout.splitlines() == ["py-1", "cout:a", "printf:a", "py-2", "unflushed:b", "py-3"]
    assert out.stderr.splitlines() == ["cerr:a"]


def test_gil_is_released_during_calls(cpp):
    k, _ = cpp
    code = (
        "import threading\n"
        "windows = []\n"
        "threads = [threading.Thread(target=lambda: windows.append(busy(400))) for _ in range(2)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "(a0, a1), (b0, b1) = windows\n"
        "overlap = min(a1, b1) - max(a0, b0)\n"
    )
    k.run(code).ok()
    # Both calls were executing C++ at the same moment: impossible while holding the GIL.
    assert k.eval("overlap > 0") is True


def test_keep_gil_option_holds_the_gil(fresh_kernel):
    k = fresh_kernel  # its own session: the large cell above need not be rebuilt
    cell = r'''%%cpp --keep-gil
#include <chrono>
#include <utility>
std::pair<long long, long long> busy_holding(int ms) {
    auto now = [] { return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
    long long start = now();
    volatile double sink = 0;
    while (now() - start < ms * 1000000LL) sink += 1;
    return {start, now()};
}
'''
    k.run(cell).ok()
    code = (
        "import threading\n"
        "held = []\n"
        "threads = [threading.Thread(target=lambda: held.append(busy_holding(200))) for _ in range(2)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "(a0, a1), (b0, b1) = held\n"
    )
    k.run(code).ok()
    assert k.eval("min(a1, b1) <= max(a0, b0)") is True  # strictly one after the other


def test_unbindable_declarations_are_skipped_with_a_warning(cpp):
    k, out = cpp
    assert "twice" in out.stderr and "template" in out.stderr
    assert "'owned_value' is not bound" in out.stderr
    assert k.eval("'owned_value' in dir()") is False
    assert k.eval("uses_template(4)") == 8
    assert k.eval("'twice' in dir()") is False


def test_custom_bindings_with_ipolyglot_bind(fresh_kernel):
    kernel = fresh_kernel  # its own session: the other cells need not be rebuilt with pybind11
    cell = r'''%%cpp
#include <pybind11/pybind11.h>
int hidden_helper(int x) { return x * 3; }
void ipolyglot_bind(pybind11::module_& m) {
    m.def("tripled", &hidden_helper, pybind11::arg("value"));
    m.attr("VERSION") = "custom-1";
}
'''
    kernel.run(cell).ok()
    assert kernel.eval("tripled(value=5), VERSION") == (15, "custom-1")
    assert kernel.eval("'hidden_helper' in dir()") is False

"""Ordinary Go using its standard library, cross-checked against Python computing the same.

Two cells (one build each per run, shared through the cache) hold realistic
code: sorting, strings, strconv, unicode, regexp, encoding/json, bytes, generics,
closures, math, crypto/sha256, time, container/heap, goroutines, math/big and
wrapped errors.
"""

import pytest

from conftest import RunningKernel, check
from go_cells import GO_TEST_ENV

TEXT_CELL = r'''%%go
import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type Person struct {
	Name string
	Age  int
}

func SortPeople(people []Person) []Person {
	out := slices.Clone(people)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Age != out[j].Age {
			return out[i].Age < out[j].Age
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func SortFloats(xs []float64) []float64 {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

func Fields(s string) []string          { return strings.Fields(s) }
func SplitOn(s, sep string) []string    { return strings.Split(s, sep) }

func TitleWords(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		r := []rune(strings.ToLower(w))
		r[0] = unicode.ToUpper(r[0])
		words[i] = string(r)
	}
	return strings.Join(words, " ")
}

func JoinWithBuilder(parts []string, sep string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(p)
	}
	return b.String()
}

func ParseFloats(texts []string) ([]float64, error) {
	out := make([]float64, 0, len(texts))
	for _, t := range texts {
		v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func FormatBase(n int64, base int) string { return strconv.FormatInt(n, base) }

func RoundTripInt(n int64, base int) (int64, error) {
	return strconv.ParseInt(strconv.FormatInt(n, base), base, 64)
}

func FormatShortest(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func RuneStats(s string) (int, int, int) {
	letters := 0
	for _, r := range s {
		if unicode.IsLetter(r) {
			letters++
		}
	}
	return utf8.RuneCountInString(s), len(s), letters
}

func Reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

var numberPattern = regexp.MustCompile(`-?\d+(?:\.\d+)?`)

func FindNumbers(s string) []string { return numberPattern.FindAllString(s, -1) }

func FindPairs(s string) [][]string {
	re := regexp.MustCompile(`(\w+)=(\w+)`)
	out := [][]string{}
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1:])
	}
	return out
}

func ToJSON(m map[string]int) (string, error) {
	data, err := json.Marshal(m)
	return string(data), err
}

func NestedJSON(name string, scores []float64, tags map[string]string) (string, error) {
	data, err := json.Marshal(map[string]any{"name": name, "scores": scores, "tags": tags})
	return string(data), err
}

func DecodeCounts(text string) (map[string]int, error) {
	var m map[string]int
	err := json.Unmarshal([]byte(text), &m)
	return m, err
}

func CSVLine(values []int) []byte {
	var buf bytes.Buffer
	for i, v := range values {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, "%d", v)
	}
	buf.WriteString("\n")
	return buf.Bytes()
}

type Number interface {
	~int | ~int64 | ~float64
}

func sumOf[T Number](xs []T) T {
	var total T
	for _, x := range xs {
		total += x
	}
	return total
}

func mapSlice[T, U any](xs []T, f func(T) U) []U {
	out := make([]U, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func SumInts(xs []int64) int64       { return sumOf(xs) }
func SumFloats(xs []float64) float64 { return sumOf(xs) }
func Lengths(words []string) []int   { return mapSlice(words, func(s string) int { return utf8.RuneCountInString(s) }) }

func makeCounter(step int) func() int {
	n := 0
	return func() int { n += step; return n }
}

func CounterRun(step, times int) []int {
	next := makeCounter(step)
	out := []int{}
	for i := 0; i < times; i++ {
		out = append(out, next())
	}
	return out
}

func ApplyTwice(f func(int) int, x int) int { return f(f(x)) }
'''

NUMERIC_CELL = r'''%%go
import (
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"sync"
	"time"
)

func Hypot(x, y float64) float64 { return math.Hypot(x, y) }
func Gamma(x float64) float64    { return math.Gamma(x) }
func Erf(x float64) float64      { return math.Erf(x) }

func MathTable(xs []float64) map[string][]float64 {
	out := map[string][]float64{}
	for _, x := range xs {
		out["sqrt"] = append(out["sqrt"], math.Sqrt(x))
		out["log1p"] = append(out["log1p"], math.Log1p(x))
		out["atan2"] = append(out["atan2"], math.Atan2(x, 1.5))
		out["erfc"] = append(out["erfc"], math.Erfc(x))
	}
	return out
}

func Sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func Sha256Raw(data []byte) []byte {
	h := sha256.New()
	h.Write(data)
	return h.Sum(nil)
}

func TotalNanos(hours, minutes int, seconds float64) int64 {
	d := time.Duration(hours)*time.Hour + time.Duration(minutes)*time.Minute + time.Duration(seconds*float64(time.Second))
	return int64(d)
}

func DurationText(nanos int64) string { return time.Duration(nanos).String() }

func DaysBetween(from, to string) (int, error) {
	a, err := time.Parse("2006-01-02", from)
	if err != nil {
		return 0, err
	}
	b, err := time.Parse("2006-01-02", to)
	if err != nil {
		return 0, err
	}
	return int(b.Sub(a).Hours() / 24), nil
}

type floatHeap []float64

func (h floatHeap) Len() int           { return len(h) }
func (h floatHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h floatHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *floatHeap) Push(x any)        { *h = append(*h, x.(float64)) }
func (h *floatHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// SmallestK keeps a max-heap of the k smallest values seen.
func SmallestK(xs []float64, k int) []float64 {
	h := &floatHeap{}
	for _, x := range xs {
		if h.Len() < k {
			heap.Push(h, x)
		} else if k > 0 && x < (*h)[0] {
			(*h)[0] = x
			heap.Fix(h, 0)
		}
	}
	out := make([]float64, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(float64)
	}
	return out
}

func collatzSteps(n int64) int64 {
	steps := int64(0)
	for n != 1 {
		if n%2 == 0 {
			n /= 2
		} else {
			n = 3*n + 1
		}
		steps++
	}
	return steps
}

// CollatzParallel fans the inputs out to a pool of workers and gathers in order.
func CollatzParallel(ns []int64, workers int) []int64 {
	type job struct{ index int; n int64 }
	jobs := make(chan job)
	out := make([]int64, len(ns))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				steps := collatzSteps(j.n)
				mu.Lock()
				out[j.index] = steps
				mu.Unlock()
			}
		}()
	}
	for i, n := range ns {
		jobs <- job{i, n}
	}
	close(jobs)
	wg.Wait()
	return out
}

func SumSquaresChan(n int) int64 {
	results := make(chan int64, n)
	for i := 1; i <= n; i++ {
		go func(i int64) { results <- i * i }(int64(i))
	}
	var total int64
	for i := 0; i < n; i++ {
		total += <-results
	}
	return total
}

func Factorial(n int64) string {
	return new(big.Int).MulRange(1, n).String()
}

func Binomial(n, k int64) string { return new(big.Int).Binomial(n, k).String() }

func PowMod(base, exp, mod string) (string, error) {
	b, ok1 := new(big.Int).SetString(base, 10)
	e, ok2 := new(big.Int).SetString(exp, 10)
	m, ok3 := new(big.Int).SetString(mod, 10)
	if !ok1 || !ok2 || !ok3 {
		return "", fmt.Errorf("not an integer among %q, %q, %q", base, exp, mod)
	}
	return new(big.Int).Exp(b, e, m).String(), nil
}

var ErrNotFound = errors.New("record not found")

func lookup(id int) (string, error) {
	if id == 42 {
		return "answer", nil
	}
	return "", fmt.Errorf("lookup %d: %w", id, ErrNotFound)
}

func Fetch(id int) (string, error) {
	name, err := lookup(id)
	if err != nil {
		return "", fmt.Errorf("fetch failed: %w", err)
	}
	return name, nil
}

func IsNotFound(id int) bool {
	_, err := Fetch(id)
	return errors.Is(err, ErrNotFound)
}

func OpenMissing(path string) (string, error) {
	_, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("config missing: %w", err)
	}
	return "found", err
}
'''


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel(env=GO_TEST_ENV) as running:
        running.run(TEXT_CELL).ok()
        running.run(NUMERIC_CELL).ok()
        running.run("import numpy as np\nfrom ipolyglot.go_bridge import GoError, GoPanic").ok()
        yield running


def test_sorting_structs_and_floats_matches_sorted(kernel):
    check(kernel, """
import random
rng = random.Random(7)
people = [Person(Name=rng.choice(['ann', 'bob', 'cy', 'dee', 'é']), Age=rng.randrange(20, 25)) for _ in range(40)]
got = SortPeople(people)
want = sorted(people, key=lambda p: (p.Age, p.Name))
assert [(p.Name, p.Age) for p in got] == [(p.Name, p.Age) for p in want], got
assert SortPeople([{'Name': 'z', 'Age': 1}, {'Name': 'a', 'Age': 1}]) == [Person(Name='a', Age=1), Person(Name='z', Age=1)]
xs = np.array([rng.uniform(-1e6, 1e6) for _ in range(1000)] + [0.0, -0.0, 1e-300])
r = SortFloats(xs)
assert isinstance(r, np.ndarray) and r.tolist() == sorted(xs.tolist())
assert xs.tolist() != r.tolist()   # the caller's array is not sorted in place
""")


def test_strings_fields_split_title_and_builder_match_python(kernel):
    check(kernel, """
text = "  the quick\\tbrown  fox\\n jumps über   the ÉLAN  "
assert Fields(text) == text.split()
for s, sep in [("a,b,,c", ","), ("", ","), ("abc", ""), ("x--y--", "--")]:
    want = list(s) if sep == "" else s.split(sep)
    assert SplitOn(s, sep) == want, (s, sep, SplitOn(s, sep), want)
words = "hello wORLD über émile"
assert TitleWords(words) == " ".join(w.capitalize() for w in words.split())
parts = ["α", "", "βγ", "🐍"]
assert JoinWithBuilder(parts, " | ") == " | ".join(parts)
assert JoinWithBuilder([], ",") == ""
""")


def test_strconv_parse_and_format_round_trips(kernel):
    check(kernel, """
texts = ["1.5", " -2e-3 ", "1e308", "0.1", "inf", "-0"]
got = ParseFloats(texts)
assert got.tolist() == [float(t) for t in texts]
try:
    ParseFloats(["1.0", "abc"])
except GoError as e:
    assert 'strconv.ParseFloat: parsing "abc": invalid syntax' in str(e), str(e)
else:
    raise AssertionError("no GoError")
for n in [0, 255, -255, 2**63 - 1, -(2**63), 123456789]:
    assert FormatBase(n, 2) == (format(n, 'b') if n >= 0 else '-' + format(-n, 'b'))
    assert FormatBase(n, 16) == (format(n, 'x') if n >= 0 else '-' + format(-n, 'x'))
    assert FormatBase(n, 36) and int(FormatBase(n, 36), 36) == n
    assert RoundTripInt(n, 7) == n
for x in [0.1, 1/3, 1e22, 5e-324, 123456.789, 2.5e-8]:
    assert float(FormatShortest(x)) == x      # shortest digits round-trip, like Python's repr
    assert FormatShortest(x).split('e')[0].replace('.', '').strip('0') == repr(x).split('e')[0].replace('.', '').strip('0')
""")


def test_unicode_runes_versus_bytes(kernel):
    check(kernel, """
for s in ["", "abc", "naïve café", "日本語テキスト", "🐍 + 🦫 = ❤️", "e\\u0301"]:
    runes, nbytes, letters = RuneStats(s)
    assert runes == len(s), (s, runes)
    assert nbytes == len(s.encode('utf-8'))
    assert letters == sum(c.isalpha() for c in s), (s, letters)
    assert Reverse(s) == s[::-1]
""")


def test_regexp_find_all_matches_re_findall(kernel):
    check(kernel, """
import re
text = "x=1, y=-2.5; total 1000 items at 3.14 each, id 007 and -0.5 and 12.x"
assert FindNumbers(text) == re.findall(r'-?\\d+(?:\\.\\d+)?', text)
assert FindNumbers("none here") == []
pairs = "a=1 bb=two c=3 =bad d="
assert FindPairs(pairs) == [list(p) for p in re.findall(r'(\\w+)=(\\w+)', pairs)]
""")


def test_json_marshal_sorts_map_keys_like_sort_keys(kernel):
    check(kernel, """
import json
m = {'zeta': 1, 'alpha': -2, 'Mid': 3, 'ü': 4, '': 0}
assert ToJSON(m) == json.dumps(m, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
assert ToJSON({}) == '{}'
got = NestedJSON('n"q', np.array([1.5, 2.0, 1e21]), {'b': 'x', 'a': '<y>'})
assert json.loads(got) == {'name': 'n"q', 'scores': [1.5, 2.0, 1e21], 'tags': {'b': 'x', 'a': '<y>'}}
assert list(json.loads(got)) == sorted(['name', 'scores', 'tags'])
assert DecodeCounts('{"a": 1, "b": 22}') == {'a': 1, 'b': 22}
try:
    DecodeCounts('{"a": "x"}')
except GoError as e:
    assert 'cannot unmarshal string' in str(e), str(e)
else:
    raise AssertionError("no GoError")
""")


def test_bytes_buffer_generics_and_closures(kernel):
    check(kernel, """
import functools, operator
vals = [3, -1, 0, 2**40]
line = CSVLine(vals)
assert type(line) is bytes and line == (",".join(map(str, vals)) + "\\n").encode()
assert CSVLine([]) == b"\\n"
ints = np.arange(-500, 1000, dtype=np.int64)
assert SumInts(ints) == int(ints.sum())
floats = [0.1] * 10
assert SumFloats(floats) == functools.reduce(operator.add, floats)   # plain left-to-right addition
words = ["a", "héllo", "日本", ""]
assert Lengths(words).tolist() == [len(w) for w in words]
assert CounterRun(3, 5).tolist() == [3 * i for i in range(1, 6)]
assert CounterRun(1, 0).tolist() == []
assert ApplyTwice(lambda x: x * 10 + 1, 4) == 411
""")


def test_math_functions_match_python_math(kernel):
    check(kernel, """
import math
for x, y in [(3, 4), (1e200, 1e200), (0, -0.0), (5e-324, 5e-324)]:
    assert Hypot(x, y) == math.hypot(x, y), (x, y)
for x in [0.5, 1, 5, 10.5, 171, -2.5]:
    assert math.isclose(Gamma(x), math.gamma(x), rel_tol=1e-14), (x, Gamma(x), math.gamma(x))
assert Gamma(6) == math.gamma(6) == 120.0
for x in [-3, -0.5, 0, 1e-10, 0.5, 2, 6]:
    assert math.isclose(Erf(x), math.erf(x), rel_tol=1e-15, abs_tol=1e-300), (x, Erf(x), math.erf(x))
xs = [0.0, 0.25, 2.0, 100.0]
table = MathTable(np.array(xs))
assert sorted(table) == ['atan2', 'erfc', 'log1p', 'sqrt']
assert table['sqrt'].tolist() == [math.sqrt(x) for x in xs]
assert np.allclose(table['log1p'], [math.log1p(x) for x in xs], rtol=1e-15, atol=0)
assert np.allclose(table['atan2'], [math.atan2(x, 1.5) for x in xs], rtol=1e-15, atol=0)
assert np.allclose(table['erfc'], [math.erfc(x) for x in xs], rtol=1e-14, atol=1e-300)
""")


def test_sha256_matches_hashlib(kernel):
    check(kernel, """
import hashlib
for data in [b"", b"abc", bytes(range(256)) * 1000, "héllo".encode()]:
    assert Sha256Hex(data) == hashlib.sha256(data).hexdigest()
    assert Sha256Raw(data) == hashlib.sha256(data).digest()
assert Sha256Hex(np.arange(10, dtype=np.uint8).tobytes()) == hashlib.sha256(bytes(range(10))).hexdigest()
""")


def test_time_durations_cross_as_int64_nanoseconds(kernel):
    check(kernel, """
import datetime
got = TotalNanos(2, 30, 1.5)
assert type(got) is int and got == int(datetime.timedelta(hours=2, minutes=30, seconds=1.5).total_seconds() * 1e9)
assert DurationText(got) == "2h30m1.5s"
assert DurationText(1500) == "1.5µs"
assert DaysBetween("2024-01-01", "2024-03-01") == (datetime.date(2024, 3, 1) - datetime.date(2024, 1, 1)).days
try:
    DaysBetween("2024-13-01", "2024-01-01")
except GoError as e:
    assert 'month out of range' in str(e), str(e)
else:
    raise AssertionError("no GoError")
""")


def test_container_heap_top_k_matches_heapq(kernel):
    check(kernel, """
import heapq, random
rng = random.Random(3)
xs = [rng.gauss(0, 1) for _ in range(5000)]
for k in [0, 1, 10, 5000, 6000]:
    assert SmallestK(np.array(xs), k).tolist() == heapq.nsmallest(k, xs), k
""")


def test_goroutine_worker_pool_and_channels(kernel):
    check(kernel, """
def collatz(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps
ns = np.arange(1, 3001, dtype=np.int64)
for workers in [1, 4, 16]:
    assert CollatzParallel(ns, workers).tolist() == [collatz(int(n)) for n in ns]
assert SumSquaresChan(1000) == sum(i * i for i in range(1, 1001))
""")


def test_math_big_results_as_decimal_strings(kernel):
    check(kernel, """
import math
for n in [0, 1, 20, 21, 100, 500]:
    assert Factorial(n) == str(math.factorial(n)), n
assert Binomial(200, 73) == str(math.comb(200, 73))
assert PowMod(str(3**100), str(10**30 + 7), str(2**127 - 1)) == str(pow(3**100, 10**30 + 7, 2**127 - 1))
try:
    PowMod("12", "x", "5")
except GoError as e:
    assert str(e) == 'not an integer among "12", "x", "5"', str(e)
else:
    raise AssertionError("no GoError")
""")


def test_wrapped_errors_surface_as_go_error_text(kernel):
    check(kernel, """
assert Fetch(42) == "answer"
try:
    Fetch(7)
except GoError as e:
    assert str(e) == "fetch failed: lookup 7: record not found", str(e)
else:
    raise AssertionError("no GoError")
assert IsNotFound(7) and not IsNotFound(42)
try:
    OpenMissing("/nonexistent/ipolyglot/config.toml")
except GoError as e:
    assert str(e) == "config missing: open /nonexistent/ipolyglot/config.toml: no such file or directory", str(e)
else:
    raise AssertionError("no GoError")
""")

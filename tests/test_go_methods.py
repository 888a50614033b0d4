"""Methods of Go struct types, package-level constants and variables, and var
state across rebuilds, through a real kernel."""


import pytest

from conftest import RunningKernel, check
from go_cells import GO_TEST_ENV

METHODS_CELL = r'''%%go
import (
	"errors"
	"fmt"
)

type Counter struct {
	N    int
	Name string
}

func (c *Counter) Bump() int { c.N++; return c.N }

func (c *Counter) Add(k int) error {
	c.N += k
	if c.N > 10 {
		return errors.New("counter over 10")
	}
	return nil
}

func (c Counter) Describe(prefix string) string { return fmt.Sprintf("%s%s=%d", prefix, c.Name, c.N) }

func (c Counter) Boom() int {
	var m map[string]int
	m["x"] = c.N
	return 0
}

func (c Counter) Listen(ch chan int) {}

const Pi2 = 6.28
const Big = 1 << 100
const Greeting = "hi"

type Color int

const (
	Red Color = iota
	Green
)

var hits int
var Limit = 3

func Hit() int { hits++; return hits }
func ReadLimit() int { return Limit }
'''

LATER_METHOD_CELL = """%%go
func (c Counter) Triple() int { return 3 * c.N }
func Unrelated() string { return "x" }
"""

CHANGED_VAR_CELL = """%%go
var hits = 100
"""


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel(env=GO_TEST_ENV) as running:
        out = running.run(METHODS_CELL).ok()
        assert "Counter.Listen" in out.stderr and "chan int" in out.stderr, out.stderr
        assert "Big" in out.stderr and "overflows" in out.stderr, out.stderr
        running.run("from ipolyglot.go_bridge import GoError, GoPanic").ok()
        yield running


def test_value_and_pointer_methods_with_copy_back(kernel):
    check(kernel, """
c = Counter(N=0, Name='c')
assert c.Bump() == 1 and c.N == 1, c          # pointer receiver: fields copied back
assert c.Bump() == 2 and c == Counter(N=2, Name='c')
assert c.Describe('n:') == 'n:c=2' and c.N == 2  # value receiver: unchanged
assert 'copied back' in Counter.Bump.__doc__ and Counter.Bump.__doc__.startswith('Go: func (*Counter) Bump() int')
assert Counter.Describe.__doc__.startswith('Go: func (Counter) Describe(prefix string) string')
assert not hasattr(Counter, 'Listen')
""")


def test_method_errors_panics_and_bad_arguments(kernel):
    line = METHODS_CELL.splitlines().index('\tm["x"] = c.N') + 1
    check(kernel, f"""
import re
c = Counter(N=5)
assert c.Add(3) is None and c.N == 8
try:
    c.Add(5)
except GoError as e:
    assert str(e) == 'counter over 10' and c.N == 13, (e, c)   # copied back before raising
else:
    raise AssertionError('no GoError')
try:
    c.Boom()
except GoPanic as e:
    assert 'nil map' in e.value and re.search(r'In \\[\\d+\\]:{line}$', e.stack, re.M), e.stack
else:
    raise AssertionError('no GoPanic')
for bad, exc, text in [(('x',), TypeError, 'Counter.Add() parameter k (Go type int)'),
                       ((2**63,), OverflowError, 'Go type int'), ((), TypeError, 'missing parameter k')]:
    try:
        c.Add(*bad)
    except exc as e:
        assert text in str(e), e
    else:
        raise AssertionError(bad)
assert c.N == 13
""")


def test_exported_constants_are_python_values(kernel):
    assert kernel.eval("Pi2, Greeting, Red, Green") == (6.28, "hi", 0, 1)
    assert kernel.eval("'Big' in globals()") is False


def test_var_state_survives_a_later_cell_and_later_methods_work(kernel):
    assert kernel.eval("Hit(), Hit()") == (1, 2)
    check(kernel, "govars.Limit = 9\nassert ReadLimit() == 9 and govars.Limit == 9")
    out = kernel.run("govars.Limit = 'many'")
    assert out.status == "error" and "Go var Limit (Go type int)" in out.error_text, out.error_text
    kernel.run(LATER_METHOD_CELL).ok()
    assert kernel.eval("Hit(), govars.Limit, ReadLimit(), Counter(N=2).Triple(), Unrelated()") == (3, 9, 9, 6, "x")
    assert kernel.eval("repr(govars)") == "govars(Limit=9)"


def test_a_changed_var_declaration_starts_from_its_new_initializer(kernel):
    assert kernel.eval("Hit()") == 4
    kernel.run(CHANGED_VAR_CELL).ok()
    assert kernel.eval("Hit(), govars.Limit") == (101, 9)
    refused = kernel.run("%polyglot go rm hits")  # Hit still uses it
    assert refused.status == "error" and "cannot remove hits: still used by Hit (In [" in refused.error_text, refused.error_text
    kernel.run("%polyglot go rm Hit").ok()
    kernel.run("%polyglot go rm hits").ok()
    kernel.run("%%go\nvar hits int\n\nfunc Hit() int { hits++; return hits }\n").ok()
    assert kernel.eval("Hit()") == 1  # removed, then declared again: a fresh variable

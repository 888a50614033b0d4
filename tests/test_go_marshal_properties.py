"""Property tests: generated values survive a round trip through Go unchanged.

The library is built once (it is the same cell the kernel tests use, so usually
a cache hit) and loaded into the test process itself, so hypothesis can try
many values quickly.
"""

import contextlib
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from go_cells import GO_TEST_ENV, TYPES_CELL
from ipolyglot.go_bridge.backend import GoBackend
from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.backend import CellContext
from ipolyglot.kernel.core.cache import BuildCache
from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.pipeline import InProcessLoader, Pipeline
from ipolyglot.kernel.core.options import make_parser, parse_line


@pytest.fixture(scope="module")
def go():
    saved = {name: os.environ.get(name) for name in GO_TEST_ENV}
    os.environ.update(GO_TEST_ENV)
    try:
        backend = GoBackend()
        warnings = []
        ctx = CellContext(
            cell_label="In [1]", cache=BuildCache(), cells=CellRegistry(), toolchain=toolchains.find_go,
            verbose=lambda m: None, warn=warnings.append, building=lambda what: contextlib.nullcontext(_Outcome()),
        )
        body = TYPES_CELL.split("\n", 1)[1]
        result = Pipeline(InProcessLoader()).run_cell(backend, body, parse_line(make_parser("go", backend), ""), {}, ctx)
        assert any("Channel" in w for w in warnings)
        yield result.bind
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Outcome:
    outcome = "built"


FAST = settings(max_examples=60, deadline=None)
text = st.text()  # any code points, including NUL and lone surrogates
ints64 = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=False)


@FAST
@given(value=ints64)
def test_int64(go, value):
    assert go["EchoInt64"](value) == value and go["EchoInt"](value) == value


@FAST
@given(value=st.integers(0, 2**64 - 1))
def test_uint64(go, value):
    assert go["EchoUint64"](value) == value


@FAST
@given(value=st.integers())
def test_int8_range(go, value):
    if -128 <= value <= 127:
        assert go["EchoInt8"](value) == value
    else:
        with pytest.raises(OverflowError):
            go["EchoInt8"](value)


@FAST
@given(value=floats)
def test_float64(go, value):
    assert go["EchoFloat64"](value) == value


@FAST
@given(value=text)
def test_string(go, value):
    assert go["EchoString"](value) == value


@FAST
@given(value=st.binary())
def test_bytes(go, value):
    assert go["EchoBytes"](value) == value


@FAST
@given(value=hnp.arrays(np.float64, st.integers(0, 20000), elements=floats))
def test_float_arrays(go, value):
    out = go["EchoFloats"](value)
    assert out.dtype == np.float64 and np.array_equal(out, value)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_result_blocks_are_freed_with_their_arrays(go):
    # A large result's numeric slice is a C block its array owns: 200 results of 8 MB each
    # would hold 1.6 GB if the blocks were not freed with the arrays.
    xs = np.ones(10**6)
    for _ in range(5):
        go["EchoFloats"](xs)
    before = _resident_bytes()
    for _ in range(200):
        assert go["EchoFloats"](xs)[-1] == 1.0
    assert _resident_bytes() - before < 400 * 2**20


@FAST
@given(value=st.dictionaries(text, st.lists(floats, max_size=5), max_size=5))
def test_nested_maps(go, value):
    out = go["EchoNested"](value)
    assert {k: v.tolist() for k, v in out.items()} == value


@FAST
@given(
    points=st.lists(st.builds(dict, X=floats, Y=floats, Label=text), max_size=4),
    tags=st.dictionaries(text, ints64, max_size=3),
    origin=st.none() | st.builds(dict, X=floats),
)
def test_structs(go, points, tags, origin):
    Point, Shape = go["Point"], go["Shape"]
    shape = Shape(Name="s", Points=[Point(**p) for p in points], Tags=tags, Origin=None if origin is None else Point(**origin))
    assert go["EchoShape"](shape) == shape


@FAST
@given(
    floats_by_text=st.dictionaries(text, floats, max_size=60),
    text_by_int=st.dictionaries(ints64, text, max_size=60),
    ints_by_text=st.dictionaries(text, ints64, max_size=60),
)
def test_dicts_of_common_shapes(go, floats_by_text, text_by_int, ints_by_text):
    # From 16 entries on these cross in bulk columns (strings joined by NUL unless one holds NUL).
    assert go["EchoFloatMap"](floats_by_text) == floats_by_text
    assert go["EchoIntKeys"](text_by_int) == text_by_int
    assert go["EchoMap"](ints_by_text) == ints_by_text


json_like = st.recursive(
    st.none() | st.booleans() | ints64 | floats | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@FAST
@given(value=json_like)
def test_any(go, value):
    assert go["EchoAny"](value) == value

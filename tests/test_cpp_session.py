"""The %%cpp session: accumulation, redefinition, failed builds, statement cells,
compile errors, %polyglot cpp, options and profiling, through one real kernel.

The tests of this module run in order and build on each other's cells.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

import pytest

# A C++ session holds in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")

BASE = r'''%%cpp
#include <vector>
#include <string>
struct Item { std::string name; double price = 0; };
double price_of(const Item& it) { return it.price; }
double scale() { return 2.0; }
double scaled(double x) { return x * scale(); }
'''

USES_BASE = r'''%%cpp
double total_price(const std::vector<Item>& items) {
    double s = 0;
    for (const auto& it : items) s += price_of(it);
    return s * scale();
}
'''

NEW_SCALE = r'''%%cpp
double scale() { return 10.0; }
'''

NEW_ITEM = r'''%%cpp
#include <string>
struct Item { std::string name; double price = 0; int qty = 1; };
double price_of(const Item& it) { return it.price * it.qty; }
'''

BROKEN = r'''%%cpp
#include <string>
double scale() { return 99.0; }
int oops(int x) {
    return x + undefined_name;
}
'''


def test_declarations_accumulate_across_cells(kernel):
    kernel.run(BASE).ok()
    kernel.run(USES_BASE).ok()
    assert kernel.eval("total_price([Item(name='a', price=1.5), Item(name='b', price=2)])") == 7.0
    assert kernel.eval("scaled(3)") == 6.0


def test_redefinition_replaces_everywhere(kernel):
    kernel.run(NEW_SCALE).ok()
    # scaled() and total_price() come from other cells and call the new scale().
    assert kernel.eval("scaled(3)") == 30.0
    assert kernel.eval("total_price([Item(name='a', price=1)])") == 10.0


def test_redefining_a_struct_never_clashes(kernel):
    kernel.run("old_item = Item(name='old', price=3)").ok()
    kernel.run(NEW_ITEM).ok()
    assert kernel.eval("price_of(Item(name='x', price=2, qty=3))") == 6.0
    assert kernel.eval("total_price([Item(name='x', price=2, qty=3)])") == 60.0
    assert kernel.eval("repr(Item(name='x'))") == "Item(name='x', price=0.0, qty=1)"
    # An instance made before the redefinition is copied field by field (qty keeps
    # its default), never reinterpreted with the new layout.
    assert kernel.eval("price_of(old_item)") == 3.0
    assert kernel.eval("repr(old_item)") == "Item(name='old', price=3.0)"
    kernel.run(NEW_ITEM).ok()  # the same cell again: still no "already registered"
    assert kernel.eval("Item(qty=4).qty") == 4


def test_failed_build_changes_nothing(kernel):
    out = kernel.run(BROKEN)
    assert out.status == "error"
    assert "undefined_name" in out.error_text
    assert "Traceback" not in out.error_text and "ipolyglot" not in out.error_text
    assert kernel.eval("scaled(1)") == 10.0  # the old scale() is still the one in use
    assert kernel.eval("'oops' in dir()") is False


def test_compile_errors_use_cell_line_numbers(kernel):
    out = kernel.run(BROKEN)
    text = out.error_text
    # %%cpp is line 1, so the bad return statement is line 5.
    assert re.search(r"line 5, column \d+: .*undefined_name", text), text
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "return x + undefined_name;")
    # The caret sits under the first character of the unknown name.
    assert lines[at + 1].strip() == "^"
    assert lines[at + 1].index("^") == lines[at].index("undefined_name")


def test_compile_errors_in_earlier_cells_name_the_cell(kernel):
    # A cell whose code breaks a declaration from an earlier cell: g++ reports
    # the error in the earlier cell, which is named.
    out = kernel.run("%%cpp\nstruct Item { int only; };\n")
    assert out.status == "error"
    assert re.search(r"In \[\d+\], line \d+", out.error_text), out.error_text
    assert kernel.eval("Item(name='still', price=1).name") == "still"


def test_polyglot_cpp_lists_removes_and_resets(kernel):
    listing = kernel.run("%polyglot cpp").ok().stdout
    rows = {line.split()[0]: line.split()[1] for line in listing.splitlines() if line.strip()}
    assert rows["Item"] == "class" and rows["scale"] == "func" and rows["total_price"] == "func"
    assert re.search(r"scale\s+func\s+In \[\d+\]", listing)
    kernel.run("%polyglot cpp rm scaled").ok()
    assert kernel.eval("'scaled' in dir()") is False
    assert kernel.eval("price_of(Item(price=2))") == 2.0
    out = kernel.run("%polyglot cpp rm no_such_thing")
    assert out.status == "error" and "no_such_thing" in out.error_text


def test_statement_cells_with_inputs_and_outputs(kernel):
    kernel.run("import numpy as np; xs = np.array([1.0, 2.0, 3.5]); n = 3; tag = 'run'; opts = {'a': 1.5}").ok()
    cell = r'''%%cpp -i xs,n,tag,opts -o s,label,count,squares
#include <iostream>
double s = 0;
for (double x : xs) s += x;
std::string label = tag + "-" + std::to_string(n);
int count = static_cast<int>(xs.size()) + static_cast<int>(opts["a"] * 2);
std::vector<double> squares;
for (double x : xs) squares.push_back(x * x);
std::cout << "sum is " << s << std::endl;
'''
    out = kernel.run(cell).ok()
    assert "sum is 6.5" in out.stdout
    assert kernel.eval("s, label, count") == (6.5, "run-3", 6)
    assert kernel.eval("type(squares).__name__, squares.tolist()") == ("ndarray", [1.0, 4.0, 12.25])
    assert kernel.eval("xs.tolist()") == [1.0, 2.0, 3.5]


def test_statement_cells_see_session_declarations(kernel):
    out = kernel.run("%%cpp\nstd::cout << \"price \" << price_of(Item{\"pen\", 2.5, 2}) << std::endl;\n").ok()
    assert out.stdout.strip().endswith("price 5")
    assert kernel.eval("price_of(Item(price=1))") == 1.0  # statement cells do not change the session


def test_statement_cell_errors_are_mapped(kernel):
    out = kernel.run("%%cpp -i n -o y\nint y = n +;\n")
    assert out.status == "error" and "line 2" in out.error_text


def test_verbose_shows_command_paths_and_cache_use(kernel):
    # A fresh body each run, so the cell's own code really compiles (its
    # binding object, which depends on the signature only, may be cached).
    cell = f"%%cpp -v -O1\nint opt_probe(int x) {{ return x + 1; /* {uuid.uuid4().hex} */ }}\n"
    first = kernel.run(cell).ok().stdout
    assert "cache: miss" in first and "built in" in first
    assert re.search(r"\S*(c\+\+|g\+\+)\S* .*-O1 .*-c \S*user\.cpp", first), first
    assert "binding unit:" in first and "bind.cpp" in first
    second = kernel.run(cell).ok().stdout
    assert "cache: hit" in second
    assert "generated code:" in second and "user.cpp" in second
    assert kernel.eval("opt_probe(1)") == 2


def test_optimization_levels_and_debug(kernel):
    # Statement cells with the same signature share one binding object, so
    # this costs three small compiles, not three binding builds.
    probe = "#ifdef __OPTIMIZE__\n#define PROBE_OPT 1\n#else\n#define PROBE_OPT 0\n#endif\nint level = PROBE_OPT;\n"
    levels = []
    for options in ("-O0", "-O3", "-g", ""):
        kernel.run(f"%%cpp {options} -o level\n{probe}").ok()
        levels.append(kernel.eval("level"))
    assert levels == [0, 1, 0, 1]  # the default is -O2
    out = kernel.run("%%cpp -O7\nint x7() { return 1; }\n")
    assert out.status == "error" and "-O7" in out.error_text


def test_std_and_include_options(kernel):
    # A stable directory: -I is part of every unit's options, so a new path
    # each run would rebuild the whole session instead of using the cache.
    include_dir = Path(tempfile.gettempdir()) / f"ipolyglot-cpp-test-include-{os.getuid()}"
    include_dir.mkdir(mode=0o700, exist_ok=True)
    header = include_dir / "extra_header.hpp"
    header.write_text("inline int from_header() { return 314; }\n")
    cell = f"%%cpp -I {include_dir} --std c++20\n#include \"extra_header.hpp\"\n#include <span>\nint span_len(int n) {{ int a[8] = {{}}; return static_cast<int>(std::span<int>(a, n).size()) + from_header(); }}\n"
    kernel.run(cell).ok()
    assert kernel.eval("span_len(3)") == 317


def test_profiling_records_boundary_costs(kernel):
    kernel.run("%%cpp --profile\n#include <vector>\ndouble prof_sum(const std::vector<double>& v) { double s = 0; for (double x : v) s += x; return s; }\n").ok()
    kernel.run("from ipolyglot.kernel.core.profiling import PROFILER; PROFILER.reset()\nfor _ in range(5): prof_sum(np.ones(1000))").ok()
    stats = kernel.eval("[(s.language, s.name, s.calls, s.copy_in_ns > 0, s.total_ns >= s.copy_in_ns + s.native_ns + s.copy_out_ns) for s in PROFILER.stats()]")
    assert ("cpp", "prof_sum", 5, True, True) in stats
    assert kernel.eval("prof_sum(np.ones(10))") == 10.0


def test_reset_forgets_everything(kernel):
    kernel.run("%polyglot cpp reset").ok()
    assert kernel.eval("'price_of' in dir() or 'Item' in dir()") is False
    assert "no C++ declarations" in kernel.run("%polyglot cpp").ok().stdout
    kernel.run(NEW_SCALE).ok()  # a fresh session builds again
    assert kernel.eval("scale()") == 10.0

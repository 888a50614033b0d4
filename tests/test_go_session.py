"""The Go session through a real kernel: accumulation, redefinition, failed builds,
%polyglot go / rm / reset, statement cells, compile errors, options, the cache."""

import os
import stat
import textwrap

import pytest

from conftest import RunningKernel, mode_env
from go_cells import GO_TEST_ENV

# A Go session holds in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")

HELPER_V1 = """%%go
import "strings"

func Helper() string { return strings.Repeat("v1", 1) }
func UsesHelper() string { return "uses " + Helper() }
"""

HELPER_V2 = """%%go
func Helper() string { return "v2" }
"""

LATER_CELL = """%%go
import "fmt"

type Pair struct{ A, B int }

func Describe(p Pair) string { return fmt.Sprintf("%d/%d via %s", p.A, p.B, UsesHelper()) }
"""

BROKEN_CELL = """%%go
func Helper() string {
	return 42
}
"""


@pytest.fixture(scope="module")
def kernel(kernel_mode):
    with RunningKernel(env={**GO_TEST_ENV, **mode_env(kernel_mode)}) as running:
        yield running


def test_declarations_accumulate_and_redefinition_replaces_everywhere(kernel):
    kernel.run(HELPER_V1).ok()
    assert kernel.eval("UsesHelper()") == "uses v1"
    kernel.run(LATER_CELL).ok()
    assert kernel.eval("Describe(Pair(A=1, B=2))") == "1/2 via uses v1"
    kernel.run(HELPER_V2).ok()  # strings is no longer used by the first cell: its import is dropped
    assert kernel.eval("Helper(), UsesHelper(), Describe(Pair(A=3, B=4))") == ("v2", "uses v2", "3/4 via uses v2")
    listing = kernel.run("%polyglot go").ok().stdout
    rows = {line.split()[0]: line for line in listing.splitlines()}
    assert set(rows) == {"Helper", "UsesHelper", "Pair", "Describe"}
    assert rows["Helper"].split()[1] == "func" and rows["Pair"].split()[1] == "type"
    assert rows["Helper"].split(None, 2)[2] != rows["UsesHelper"].split(None, 2)[2]  # from different cells


def test_a_failed_build_changes_nothing(kernel):
    before = kernel.run("%polyglot go").ok().stdout
    out = kernel.run(BROKEN_CELL)
    assert out.status == "error"
    text = out.error_text
    assert "line 3, column 9" in text and "return 42" in text, text
    assert "cannot use 42" in text
    assert "Traceback" not in text and "ipolyglot" not in text.replace("ipolyglot.go", ""), text
    assert kernel.eval("Helper(), UsesHelper()") == ("v2", "uses v2")
    assert kernel.run("%polyglot go").ok().stdout == before
    assert kernel.eval("1 + 1") == 2  # the kernel is alive


def test_syntax_errors_map_to_cell_lines(kernel):
    out = kernel.run("%%go\nfunc Fine() int { return 1 }\n\nfunc Broken( {\n}\n")
    assert out.status == "error"
    assert "line 4" in out.error_text and "func Broken( {" in out.error_text, out.error_text


def test_errors_in_an_earlier_cell_name_that_cell(kernel):
    out = kernel.run("%%go\nfunc Other() int { return 1 }\nfunc Helper() int { return 2 }\n")
    assert out.status == "error"
    # UsesHelper (an earlier cell) now adds a string and an int.
    assert "In [" in out.error_text and 'return "uses " + Helper()' in out.error_text, out.error_text


def test_rm_and_reset(kernel):
    kernel.run("%%go\nfunc Temp() int { return 7 }\n").ok()
    assert kernel.eval("Temp()") == 7
    assert "removed Temp" in kernel.run("%polyglot go rm Temp").ok().stdout
    assert kernel.eval("'Temp' in globals()") is False
    assert "Temp" not in kernel.run("%polyglot go").ok().stdout
    out = kernel.run("%polyglot go rm NoSuchThing")
    assert out.status == "error" and "NoSuchThing" in out.error_text
    kernel.run("%polyglot go reset").ok()
    assert "no Go declarations" in kernel.run("%polyglot go").ok().stdout
    assert kernel.eval("[n for n in ('Helper', 'UsesHelper', 'Describe', 'Pair') if n in globals()]") == []


def test_statement_cells_with_inputs_and_outputs(kernel):
    kernel.run(textwrap.dedent("""\
        import numpy as np
        n = 4
        xs = np.array([1.0, 2.0, 3.5])
        name = "go"
        table = {"a": 1, "b": 2}
        words = ["x", "yy"]
    """)).ok()
    out = kernel.run(textwrap.dedent("""\
        %%go -i n,xs,name,table,words -o total,label,keys,counts,doubled
        import (
        	"fmt"
        	"sort"
        )
        total := 0.0
        for _, x := range xs {
        	total += x
        }
        label := fmt.Sprintf("%s-%d", name, n)
        keys := []string{}
        for k := range table {
        	keys = append(keys, k)
        }
        sort.Strings(keys)
        counts := map[string]int{}
        for _, w := range words {
        	counts[w] = len(w)
        }
        doubled := make([]float64, len(xs))
        for i, x := range xs {
        	doubled[i] = 2 * x
        }
        fmt.Println("ran with", n)
    """)).ok()
    assert "ran with 4" in out.stdout
    assert kernel.eval("total, label, keys, counts") == (6.5, "go-4", ["a", "b"], {"x": 1, "yy": 2})
    assert kernel.eval("type(doubled).__name__, doubled.tolist()") == ("ndarray", [2.0, 4.0, 7.0])
    out = kernel.run("%%go -o missing\nx := 1\n_ = x\n")
    assert out.status == "error" and "-o" in out.error_text and "missing" in out.error_text


def test_statement_cells_see_session_declarations(kernel):
    kernel.run("%%go\nfunc Triple(x int) int { return 3 * x }\n").ok()
    kernel.run("%%go -o t\nt := Triple(5)\n").ok()
    assert kernel.eval("t") == 15


def test_options_verbose_tags_ldflags(kernel):
    out = kernel.run(textwrap.dedent("""\
        %%go -f -v --tags ipolyglot_test --ldflags "-X main.Version=1.2.3" --gcflags=-N
        var Version = "dev"

        func GetVersion() string { return Version }
    """)).ok()
    assert "-tags=ipolyglot_test" in out.stdout and "-buildmode=c-shared" in out.stdout, out.stdout
    assert "-X main.Version=1.2.3" in out.stdout and "-gcflags=-N" in out.stdout
    assert "generated code:" in out.stdout and "cache:" in out.stdout
    assert kernel.eval("GetVersion()") == "1.2.3"
    again = kernel.run(textwrap.dedent("""\
        %%go -v --tags ipolyglot_test --ldflags "-X main.Version=1.2.3" --gcflags=-N
        var Version = "dev"

        func GetVersion() string { return Version }
    """)).ok()
    assert "cache: hit" in again.stdout and "no go command was run" in again.stdout


def test_info_counts_loaded_runtimes(kernel):
    out = kernel.run("%polyglot info").ok().stdout
    line = next(line for line in out.splitlines() if line.startswith("Go runtimes loaded"))
    assert int(line.split()[3]) >= 3


def test_missing_module_without_network_is_a_clear_error(kernel):
    out = kernel.run('%%go\nimport "example.invalid/nosuchmod"\nfunc X() int { return nosuchmod.Y }\n')
    assert out.status == "error"
    assert "example.invalid/nosuchmod" in out.error_text and "module" in out.error_text, out.error_text


def test_a_cache_hit_starts_no_go_process_even_in_a_new_kernel(tmp_path):
    log = tmp_path / "go-invocations.log"
    wrapper = tmp_path / "go"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {_real_go()} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = {**GO_TEST_ENV, "IPOLYGLOT_GO": str(wrapper)}
    cell = "%%go\nfunc CachedOne() int { return 1 }\n"
    first = RunningKernel(env=env)
    try:
        first.run(cell).ok()
        assert first.eval("CachedOne()") == 1
        first.run(cell).ok()  # the same session
    finally:
        first.shutdown()
    calls = log.read_text().splitlines()
    assert any(line.startswith("build -buildmode=c-shared") for line in calls), calls
    second = RunningKernel(env=env)
    try:
        second.run(cell).ok()
        assert second.eval("CachedOne()") == 1
    finally:
        second.shutdown()
    assert log.read_text().splitlines() == calls  # no go process at all for the hits
    builds = [line for line in calls if line.startswith("build -buildmode")]
    assert len(builds) <= 1


def _real_go() -> str:
    import shutil

    found = shutil.which("go") or "/usr/local/go/bin/go"
    return os.path.realpath(found)


def test_profiled_calls_record_the_four_phases(kernel):
    kernel.run("%%go --profile\nfunc Profiled(xs []float64) float64 { return xs[0] }\n").ok()
    kernel.run("import numpy as np\nfor _ in range(3): Profiled(np.ones(1000))").ok()
    stats = kernel.eval(
        "[(s.calls, s.total_ns > 0, s.native_ns >= 0, s.copy_in_ns > 0, s.copy_out_ns > 0) "
        "for s in __import__('ipolyglot.kernel.core.profiling', fromlist=['PROFILER']).PROFILER.stats() if s.name == 'Profiled']"
    )
    assert stats == [(3, True, True, True, True)]


RACE_CELL = """%%go --race
import "sync"

func RaceCount(n int) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	total := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); mu.Lock(); total++; mu.Unlock() }()
	}
	wg.Wait()
	return total
}
"""


def test_race_builds_with_the_race_detector_and_never_ends_the_kernel(kernel):
    out = kernel.run(RACE_CELL.replace("--race", "--race -v"))
    if out.status == "ok":
        assert "-race" in out.stdout  # the exact go command, printed by -v
        assert kernel.eval("RaceCount(20)") == 20
    else:  # where ThreadSanitizer cannot map its memory inside a running process
        assert "race detector cannot start" in out.error_text and "ThreadSanitizer" in out.error_text, out.error_text
    assert kernel.eval("1 + 1") == 2  # the kernel survived


@pytest.mark.parametrize("proxy", ["off", "default"])
def test_require_of_an_unreachable_module_is_a_clear_error(kernel, proxy):
    # GOPROXY=off is what a machine without network sees; the default proxy answers for an unknown module.
    setting = "os.environ['GOPROXY'] = 'off'" if proxy == "off" else "os.environ.pop('GOPROXY', None)"
    kernel.run(f"import os\n_saved_proxy = os.environ.get('GOPROXY')\n{setting}").ok()
    try:
        out = kernel.run(
            '%%go --require example.invalid/required@v1.2.3\nimport "example.invalid/required"\n'
            "func UsesRequired() int { return required.Y }\n"
        )
    finally:
        kernel.run("if _saved_proxy is None: os.environ.pop('GOPROXY', None)\nelse: os.environ['GOPROXY'] = _saved_proxy").ok()
    assert out.status == "error"
    assert "example.invalid/required" in out.error_text and "--require" in out.error_text, out.error_text
    assert "Traceback" not in out.error_text
    out = kernel.run("%%go --require notaversion\nfunc F() {}\n")
    assert out.status == "error" and "MODULE@VERSION" in out.error_text

"""A large Go cell compiles as a package of its own, so later builds do not
compile it again (Go's build cache keeps it), through a real kernel.

What is asserted is the structure (the generated layout and the packages
`go build -v` says it compiled), never a timing.
"""

import re
import textwrap
from pathlib import Path

import pytest

from conftest import RunningKernel, check
from go_cells import GO_TEST_ENV


def large_cell(steps: int = 40) -> str:
    """A generated cell of about 8 lines a step, over the size that gets a package of its own."""
    lines = [
        "%%go -f -v",
        'import "math"',
        "",
        "type Vec struct{ X, Y float64 }",
        "",
        "// Norm is the length of v.",
        "func (v Vec) Norm() float64 { return math.Hypot(v.X, v.Y) }",
        "",
        "var seen = map[string]int{}",
        "var Calls int",
        "",
        "const Scale = 2",
        "",
        "func Base() int { return 1 }",
        "func UsesBase() int { return Base() + 1 }",
        "func Fail(v Vec) float64 { panic(\"bad vec\") }",
        "",
    ]
    for i in range(steps):
        lines += [
            f"func Step{i}(x float64) float64 {{",
            "\tfor k := 0; k < 3; k++ {",
            "\t\tx = math.Sqrt(x*x + float64(k))",
            "\t}",
            f'\tseen["Step{i}"]++',
            "\tCalls++",
            f"\treturn x*Scale + {i}",
            "}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel(env=GO_TEST_ENV) as running:
        yield running


def compiled(stdout: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if line.startswith("go compiled: "))
    return line.removeprefix("go compiled: ").split(", ")


def generated(stdout: str) -> Path:
    return Path(re.search(r"generated code: (\S+)", stdout)[1])


def test_later_builds_do_not_compile_an_unchanged_large_cell_again(kernel):
    first = kernel.run(large_cell()).ok()
    src = generated(first.stdout)
    packages = [p.name for p in src.iterdir() if p.is_dir() and p.name.startswith("ipgcell")]
    assert len(packages) == 1, sorted(p.name for p in src.iterdir())
    assert "func Step3(" in (src / packages[0] / "cell.go").read_text()
    assert not any("func Step3(" in f.read_text() for f in src.glob("*.go")), "the large cell is also in package main"
    check(kernel, "assert Step0(0.0) == 2 * 3 ** 0.5 and Vec(3, 4).Norm() == 5.0 and Scale == 2 and UsesBase() == 2")

    unrelated = kernel.run("%%go -f -v\nfunc Unrelated() int { return 7 }\n").ok()
    assert compiled(unrelated.stdout) == ["ipolyglot.local/cell"], unrelated.stdout
    assert (generated(unrelated.stdout) / packages[0] / "cell.go").exists()  # still its own package, taken from Go's cache

    user = kernel.run("%%go -f -v\nfunc UsesLarge(v Vec) float64 { return Step1(v.Norm()) * Scale }\n").ok()
    assert compiled(user.stdout) == ["ipolyglot.local/cell"], user.stdout
    statements = kernel.run("%%go -f -v -o total\ntotal := Step2(1) + UsesLarge(Vec{3, 4})\n").ok()
    assert compiled(statements.stdout) == ["ipolyglot.local/cell"], statements.stdout
    check(kernel, textwrap.dedent("""\
        assert Unrelated() == 7 and UsesLarge(Vec(3, 4)) == Step1(5.0) * 2 and total == Step2(1) + UsesLarge(Vec(3, 4))
        assert govars.Calls == 7, govars.Calls  # a variable of the large cell keeps its value across the rebuilds
    """))


def test_names_errors_and_panics_of_a_large_cell_read_as_the_user_wrote_them(kernel):
    out = kernel.run('Fail("x")')
    assert out.status == "error" and "Fail() parameter v (Go type Vec): expected a Vec or a dict of its fields" in out.error_text, out.error_text
    out = kernel.run("Fail(Vec(1, 2))")
    assert out.status == "error" and "GoPanic: bad vec" in out.error_text, out.error_text
    assert re.search(r"\bFail\(", out.error_text) and "ipgcell" not in out.error_text and "ipolyglot.local" not in out.error_text, out.error_text


def test_redefining_a_name_of_a_large_cell_is_seen_by_its_own_code(kernel):
    out = kernel.run("%%go -f -v\nfunc Base() int { return 10 }\n").ok()
    assert not any(p.name.startswith("ipgcell") for p in generated(out.stdout).iterdir()), "a partly redefined cell stays in main"
    assert kernel.eval("Base(), UsesBase(), Step0(0.0) > 0") == (10, 11, True)


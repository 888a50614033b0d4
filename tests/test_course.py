"""The course notebooks are teaching material: prose first, checked results, exercises at the end.

test_notebooks.py executes every notebook (and so runs the `assert`s inside them:
values are copies, the standard-library cross-checks agree, the three languages
compute the same results). These checks read the notebooks without running them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Course notebook number -> file (the tour is notebook 1; the others are added as they are written).
COURSE = {
    2: "crossing.ipynb",
    4: "gc.ipynb",
    7: "stdlib.ipynb",
    8: "faster.ipynb",
}


def _read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


@pytest.mark.parametrize("number,name", sorted(COURSE.items()), ids=[n for _, n in sorted(COURSE.items())])
def test_course_notebook_shape(number, name):
    nb = _read(name)
    assert nb.metadata.kernelspec.name == "ipolyglot"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "a course notebook opens with its title"
    assert f"Course notebook {number}." in first.source
    last_heading = [c.source for c in nb.cells if c.cell_type == "markdown" and "\n## " in "\n" + c.source][-1]
    assert "## Exercises" in last_heading, "a course notebook ends with exercises"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert sum("assert " in c.source for c in code) >= 3, "results are checked, not only shown"
    assert all(not c.outputs and c.execution_count is None for c in code), "notebooks are committed without outputs"
    sources = [c.source.strip() for c in code]
    assert len(sources) == len(set(sources)), "every code cell has a distinct text"


def test_no_timing_is_asserted():
    """Figures are printed and charted, never asserted: a busy machine must not fail the course."""
    for name in COURSE.values():
        for cell in _read(name).cells:
            if cell.cell_type != "code":
                continue
            for line in cell.source.splitlines():
                if line.lstrip().startswith("assert"):
                    assert not any(word in line for word in ("perf_counter", "t_serial", "t_parallel", "seconds(", "timeit")), line

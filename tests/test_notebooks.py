"""Every notebook in notebooks/ runs top to bottom on the ipolyglot kernel, without an error."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, kernel_name="ipolyglot", timeout=600, allow_errors=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert all(o.output_type != "error" for o in outputs)
    assert outputs, "the notebook produced no output at all"


def test_tour_starts_with_info():
    tour = nbformat.read(NOTEBOOKS[0].parent / "tour.ipynb", as_version=4)
    first_code = next(c for c in tour.cells if c.cell_type == "code")
    assert first_code.source.strip() == "%polyglot info"

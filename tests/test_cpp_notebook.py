"""The C++ teaching notebook runs top to bottom on the ipolyglot kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "cpp.ipynb"


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_cpp_notebook_executes():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="ipolyglot", timeout=600, allow_errors=False).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [_text(c) for c in code]
    assert "Particle(x=2.0, v=2.0) 5.0 2.0 int string" in outputs[1]
    assert "ValueError: mean of nothing" in outputs[2]
    assert outputs[4].splitlines() == ["before", "smoothed 5 values", "after [0. 1. 2. 1. 0.] [0. 3. 0. 3. 0.]"]
    assert outputs[6].strip() == "0.0"
    assert "w sums to 4.0" in outputs[8]
    assert "(4.0, 'w sums to 4.000000')" in outputs[9]

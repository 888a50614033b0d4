"""The Go teaching notebook runs top to bottom in a real ipolyglot kernel."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from go_cells import GO_TEST_ENV

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "go.ipynb"


def test_go_notebook_executes(monkeypatch):
    for name, value in GO_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="ipolyglot", timeout=300).execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))
               for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "('HI!', 5.0, 4.5)" in text
    assert "GoError: division by zero" in text
    assert "[0, 1, 4, 9, 16, 25, 36, 49]" in text
    assert "measured 3 words" in text
    assert "([('go', 2), ('notebook', 8), ('python', 6)], 'notebook')" in text
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))

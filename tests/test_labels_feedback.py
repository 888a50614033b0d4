"""Cell labels equal the prompt in every front end; build progress is one display updated in place.

Labels are compared with the execute_reply's execution_count (the number the
front end shows). Cells that must really build carry a nonce, so the cache
cannot answer them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import nbformat
from nbclient import NotebookClient

from conftest import RunningKernel

# One Go cell text shared by the front ends: after its first build it is a cache hit.
SHARED_GO_CELL = "%%go\nfunc LabelProbe() int { return 11 }"


def _listing_label(listing: str, name: str) -> str:
    row = next(line for line in listing.splitlines() if line.split()[:1] == [name])
    return row.split(None, 2)[2].strip()


def _build_display(out) -> tuple[str, list[str]]:
    """The display_id of a cell's build progress and the texts it showed, in order."""
    shown = [m for m in out.messages if m["msg_type"] in ("display_data", "update_display_data")]
    assert shown, f"no build display; stdout={out.stdout!r}"
    ids = {m["content"]["transient"]["display_id"] for m in shown}
    assert len(ids) == 1, f"the progress used several displays: {ids}"
    assert shown[0]["msg_type"] == "display_data"
    assert all(m["msg_type"] == "update_display_data" for m in shown[1:])
    return ids.pop(), [m["content"]["data"]["text/plain"] for m in shown]


def test_labels_equal_the_prompt_and_progress_is_one_display(kernel):
    kernel.run("a = 1").ok()
    kernel.run("b = 2").ok()
    nonce = uuid.uuid4().hex
    go = kernel.run(
        f"%%go\n// {nonce}\nfunc LabelPanic() int {{\n\tvar m map[string]int\n\tm[\"x\"] = 1\n\treturn 0\n}}"
    ).ok()
    label = f"In [{go.execution_count}]"
    _, texts = _build_display(go)
    assert texts[0] == f"building Go cell {label} …"  # no figure: a front end that ignores updates keeps this line
    assert all(t.startswith(f"building Go cell {label} … ") for t in texts[1:-1])
    assert re.fullmatch(rf"Go cell {re.escape(label)}: built in \d+\.\d s", texts[-1]), texts
    assert "building" not in go.stdout and "\r" not in go.stdout

    panic = kernel.run("LabelPanic()")
    assert panic.status == "error"
    assert f"LabelPanic(...)\n    {label}:5" in panic.error_text  # line 5 of the cell, the %%go line being 1
    assert _listing_label(kernel.run("%polyglot go").ok().stdout, "LabelPanic") == label

    # A class: its cell is bound by pybind11, a build long enough to show progress (a cell of plain
    # functions goes through the generic caller and builds in under the half second before it shows).
    cpp = kernel.run(f"%%cpp\n// {nonce}\nstruct LabelProbeType {{ int v = 3; }};\nint label_probe() {{ return 3; }}").ok()
    cpp_label = f"In [{cpp.execution_count}]"
    _, texts = _build_display(cpp)
    assert re.fullmatch(rf"C\+\+ cell {re.escape(cpp_label)}: built in \d+\.\d s", texts[-1]), texts
    assert _listing_label(kernel.run("%polyglot cpp").ok().stdout, "label_probe") == cpp_label

    shared = kernel.run(SHARED_GO_CELL).ok()
    assert _listing_label(kernel.run("%polyglot go").ok().stdout, "LabelProbe") == f"In [{shared.execution_count}]"


def test_label_in_a_stock_python_kernel_with_the_extension():
    with RunningKernel(kernel_name="python3") as stock:
        stock.run("%load_ext ipolyglot.kernel").ok()
        stock.run("a = 1").ok()
        cell = stock.run(SHARED_GO_CELL).ok()
        assert cell.execution_count == 3
        assert _listing_label(stock.run("%polyglot go").ok().stdout, "LabelProbe") == "In [3]"
        assert stock.eval("LabelProbe()") == 11


def test_terminal_ipython_labels_and_keeps_its_live_line(tmp_path):
    """Plain IPython reading a terminal session: prompts In [1].. and a '\\r' progress line."""
    nonce = uuid.uuid4().hex
    session = (
        "a = 1\n"
        "%load_ext ipolyglot.kernel\n"
        f"%%go\n// {nonce}\nfunc TerminalProbe() int {{ return 5 }}\n\n\n"
        "%polyglot go\n"
        "TerminalProbe()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--simple-prompt", "--quick", "--no-banner", "--colors=NoColor"],
        input=session.encode(), capture_output=True, timeout=300, env={**os.environ, "TERM": "dumb"},
    )
    out = done.stdout.decode()  # bytes: text mode would turn the '\r' of the live line into '\n'
    assert "In [3]:" in out and "In [4]:" in out, out  # the Go cell is In [3], the listing In [4]
    assert "\rbuilding Go cell In [3] …" in out, out
    assert re.search(r"\rGo cell In \[3\]: built in \d+\.\d s", out), out
    assert re.search(r"TerminalProbe\s+func\s+In \[3\]", out), out
    assert "Out[5]: 5" in out, out


def test_saved_notebook_keeps_only_the_build_summary(tmp_path):
    nonce = uuid.uuid4().hex
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        # a class: bound by pybind11, a build that shows progress (see above)
        nbformat.v4.new_code_cell(f"%%cpp\n// {nonce}\nstruct SavedProbe {{ int v = 4; }};\nint saved_probe() {{ return 4; }}"),
        nbformat.v4.new_code_cell("saved_probe()"),
    ])
    NotebookClient(notebook, kernel_name="ipolyglot", timeout=600, allow_errors=False).execute()
    build_cell = notebook.cells[1]
    texts = [_output_text(o) for o in build_cell.outputs]
    assert not any("building" in t for t in texts), texts
    summaries = [t for t in texts if "C++ cell" in t]
    assert len(summaries) == 1, texts
    assert re.fullmatch(rf"C\+\+ cell In \[{build_cell.execution_count}\]: built in \d+\.\d s", summaries[0]), texts
    assert notebook.cells[2].outputs[0]["data"]["text/plain"] == "4"


def _output_text(output) -> str:
    if output.output_type == "stream":
        return output.text
    return output.get("data", {}).get("text/plain", "")


def _plain(terminal_text: str) -> str:
    """What a person reads on the terminal: escape sequences dropped, carriage returns as line ends."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal_text).replace("\r\n", "\n").replace("\r", "\n")


def test_jupyter_console_labels_and_build_line():
    """`jupyter console` on a pty, typed as a person types: the labels are its prompts' numbers."""
    import pexpect

    nonce = uuid.uuid4().hex
    console = pexpect.spawn(
        sys.executable, ["-m", "jupyter_console", "--kernel", "ipolyglot", "--no-confirm-exit",
                         "--ZMQTerminalInteractiveShell.highlighting_style=bw"],
        env={**os.environ, "TERM": "dumb"}, encoding="utf-8", timeout=300, dimensions=(50, 200),
    )
    typed = []
    console.logfile_read = _Collect(typed)

    def cell(*lines: str, prompt: int) -> None:
        for line in lines:
            console.send(line + "\r")
            console.expect_exact(line)  # echoed: the next line starts after it
        console.send("\r")  # the cell's last line ends with a newline: still incomplete
        console.send("\r")  # a blank line after it ends a cell magic
        console.expect(rf"In \[{prompt}\]")

    try:
        console.expect(r"In \[1\]")
        console.send("a = 1\r")
        console.expect(r"In \[2\]")
        cell("%%go", f"// {nonce}", "func ConsolePanic() int { var m map[string]int; m[\"x\"] = 1; return 0 }", prompt=3)
        console.send("ConsolePanic()\r")
        console.expect(r"In \[4\]")
        console.send("exit\r")
        console.expect(pexpect.EOF)
    finally:
        console.close(force=True)
    shown = _plain("".join(typed))
    assert "building Go cell In [2] …\n" in shown, shown  # the display's first showing, all a console keeps
    assert "GoPanic: assignment to entry in nil map" in shown, shown
    assert "ConsolePanic(...)\n    In [2]:3" in shown, shown  # line 3 of the cell In [2], the %%go line being 1


class _Collect:
    """A pexpect log that keeps what the console wrote."""

    def __init__(self, into: list[str]):
        self._into = into

    def write(self, text: str) -> None:
        self._into.append(text)

    def flush(self) -> None:
        pass

"""Completion and inspection inside %%go and %%cpp cells, through a real kernel.

complete_request and inspect_request go over the wire as any front end sends
them. The first request of a language may come back empty while gopls or
libclang warms up, so the tests ask again until an answer comes (no timings
are asserted here; those are in benchmarks/completion.py).
"""

from __future__ import annotations

import re
import time

import pytest

from conftest import RunningKernel, mode_env
from go_cells import GO_TEST_ENV

from ipolyglot.go_bridge.completion import GOPLS_VERSION, find_gopls
from ipolyglot.kernel.core.cell_context import magic_cell_at
from ipolyglot.kernel.core.completion import CellCompletion, Completion

WARM_UP_SECONDS = 90

SHOUT_CELL = """%%go
import "strings"

// Shout says s loudly.
func Shout(s string) string { return strings.ToUpper(s) + "!" }
"""

MEAN_CELL = """%%cpp
#include <vector>

double mean(const std::vector<double>& xs) {
    double sum = 0;
    for (double x : xs) sum += x;
    return xs.empty() ? 0 : sum / xs.size();
}
"""


@pytest.fixture(scope="module")
def kernel(kernel_mode):
    with RunningKernel(env={**GO_TEST_ENV, **mode_env(kernel_mode)}) as running:
        yield running


@pytest.fixture(scope="module")
def go_session(kernel):
    assert find_gopls() is not None, (
        "gopls is needed for completion in %%go cells: run .ci/setup, or "
        f"`go install golang.org/x/tools/gopls@{GOPLS_VERSION}` and put it on PATH"
    )
    kernel.run(SHOUT_CELL).ok()
    return kernel


@pytest.fixture(scope="module")
def cpp_session(kernel):
    kernel.run(MEAN_CELL).ok()
    return kernel


def reply(kernel: RunningKernel, request: str, code: str, cursor_pos: int) -> dict:
    msg_id = getattr(kernel.kc, request)(code, cursor_pos)
    while True:
        msg = kernel.kc.get_shell_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id:
            assert msg["content"]["status"] == "ok", msg["content"]
            return msg["content"]


def complete(kernel: RunningKernel, code: str, cursor_pos: int | None = None, expect: str | None = None) -> dict:
    """The complete_reply for the cursor (the end of the code by default), asked
    again while it is still warming up and `expect` is not among the matches."""
    cursor_pos = len(code) if cursor_pos is None else cursor_pos
    deadline = time.monotonic() + WARM_UP_SECONDS
    while True:
        content = reply(kernel, "complete", code, cursor_pos)
        if expect is None or expect in content["matches"] or time.monotonic() > deadline:
            return content
        time.sleep(0.5)


def inspect(kernel: RunningKernel, code: str, cursor_pos: int, expect: str) -> str:
    deadline = time.monotonic() + WARM_UP_SECONDS
    while True:
        content = reply(kernel, "inspect", code, cursor_pos)
        text = content["data"].get("text/plain", "") if content["found"] else ""
        if expect in text or time.monotonic() > deadline:
            return re.sub(r"\x1b\[[0-9;]*m", "", text)
        time.sleep(0.5)


# -- Go ----------------------------------------------------------------------------------
def test_go_standard_library_completes_with_the_typed_prefix_replaced(go_session):
    code = '%%go\nimport "strings"\n\nfunc Loud(s string) string { return strings.ToU'
    content = complete(go_session, code, expect="ToUpper")
    assert "ToUpper" in content["matches"]
    assert content["cursor_start"] == len(code) - len("ToU")
    assert content["cursor_end"] == len(code)


def test_go_function_of_an_earlier_cell_completes(go_session):
    code = '%%go\nfunc Twice(s string) string { return Sho'
    content = complete(go_session, code, expect="Shout")
    assert content["matches"][0] == "Shout"
    assert (content["cursor_start"], content["cursor_end"]) == (len(code) - 3, len(code))


def test_go_statement_cell_completes_in_the_middle_of_the_text(go_session):
    code = '%%go -i x\nfmt.Println(Sho)\nfmt.Println("done")'
    cursor = code.index("Sho") + 3
    content = complete(go_session, code, cursor, expect="Shout")
    assert "Shout" in content["matches"]
    assert (content["cursor_start"], content["cursor_end"]) == (cursor - 3, cursor)


def test_go_inspection_shows_signature_and_doc_comment(go_session):
    code = '%%go\nimport "strings"\n\nfunc Twice(s string) string { return Shout(s) + strings.ToUpper(s) }'
    session_function = inspect(go_session, code, code.index("Shout") + 2, expect="Shout says")
    assert "func Shout(s string) string" in session_function
    assert "Shout says s loudly." in session_function
    standard = inspect(go_session, code, code.index("ToUpper") + 2, expect="ToUpper")
    assert "func strings.ToUpper(s string) string" in standard
    assert "upper case" in standard


def test_python_inspection_of_a_bound_go_function_shows_its_go_signature_and_doc(go_session):
    text = inspect(go_session, "Shout", 5, expect="Shout says")
    assert "Shout(s string) string" in text
    assert "Shout says s loudly." in text
    # What else `Shout?` shows speaks to the user (the awaitable form), not of ipolyglot's insides.
    assert "f.aio(*args)" in text and "vectorcall" not in text and "pickle" not in text, text


def test_broken_go_cell_gives_an_answer_not_an_error(go_session):
    for code in ['%%go\nfunc (((( {{ "unterminated\nstrings.', "%%go\n}}}}\n)))", "%%go\n"]:
        content = reply(go_session, "complete", code, len(code))
        assert isinstance(content["matches"], list)
        assert reply(go_session, "inspect", code, len(code))["status"] == "ok"


# -- C++ ----------------------------------------------------------------------------------
def test_cpp_standard_library_completes(cpp_session):
    code = "%%cpp\n#include <vector>\nstd::vec"
    content = complete(cpp_session, code, expect="vector")
    assert "vector" in content["matches"]
    assert (content["cursor_start"], content["cursor_end"]) == (len(code) - 3, len(code))


def test_cpp_function_of_an_earlier_cell_completes(cpp_session):
    code = "%%cpp\ndouble twice_mean(const std::vector<double>& xs) { return 2 * mea"
    content = complete(cpp_session, code, expect="mean")
    assert "mean" in content["matches"]
    assert content["cursor_start"] == len(code) - 3


def test_cpp_members_complete_inside_a_body(cpp_session):
    code = "%%cpp\n#include <string>\nint size_of(std::string s) { return s.le"
    assert "length" in complete(cpp_session, code, expect="length")["matches"]


def test_cpp_inspection_shows_the_signature(cpp_session):
    code = "%%cpp\ndouble twice_mean(const std::vector<double>& xs) { return 2 * mean(xs); }"
    assert "double twice_mean(const std::vector<double> & xs)" in inspect(cpp_session, code, code.index("twice") + 2, expect="twice")
    text = inspect(cpp_session, code, code.index(" mean(") + 2, expect="mean")
    assert "double mean(const std::vector<double> & xs)" in text


def test_broken_cpp_cell_gives_an_answer_not_an_error(cpp_session):
    for code in ["%%cpp\n}}}} #include <nonexistent_header>\nstd::", '%%cpp\nint f( { "unterminated\nstd::vec', "%%cpp\n"]:
        content = reply(cpp_session, "complete", code, len(code))
        assert isinstance(content["matches"], list)
        assert reply(cpp_session, "inspect", code, len(code))["status"] == "ok"


# -- Python, as before ------------------------------------------------------------------------
def test_python_completion_outside_cell_magics_is_unchanged(kernel):
    kernel.run("my_polyglot_value = 42").ok()
    assert "import" in complete(kernel, "impo")["matches"]
    content = complete(kernel, "x = my_polyglot_va")
    assert "my_polyglot_value" in content["matches"]
    assert content["cursor_start"] == len("x = ")
    assert "%%go" in complete(kernel, "%%g")["matches"]  # on the magic line, Python's completer answers


# -- the pieces, without a kernel ---------------------------------------------------------------
def test_cursor_is_translated_between_cell_and_magic_body():
    code = "\n%%go -v\nfunc F() {}"
    cell = magic_cell_at(code, len(code))
    assert (cell.language, cell.body, cell.cursor) == ("go", "func F() {}", len("func F() {}"))
    assert cell.to_cell(cell.cursor) == len(code)
    assert magic_cell_at(code, 3) is None  # on the magic line
    assert magic_cell_at("%%gopher\nx", 10) is None
    assert magic_cell_at("print(1)\n%%go\n", 12) is None


class SlowCompleter:
    def __init__(self, backend):
        pass

    def snapshot(self):
        return None

    def complete(self, session, body, cursor, timeout):
        time.sleep(3)
        return Completion(["late"], 0, cursor)

    def close(self):
        pass


def test_a_late_answer_is_an_empty_one(monkeypatch):
    from ipolyglot.kernel.core import completion

    monkeypatch.setitem(completion.COMPLETERS, "go", (__name__, "SlowCompleter"))
    completer = CellCompletion(lambda language: None, timeout=0.2)
    try:
        answer = completer.complete(magic_cell_at("%%go\nstrings.ToU", len("%%go\nstrings.ToU")))
        assert answer.matches == [] and answer.cursor_start == answer.cursor_end == len("strings.ToU")
    finally:
        completer.close()

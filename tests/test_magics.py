"""%polyglot, the extension in plain IPython, in-order native output and build feedback."""

from __future__ import annotations

import io
import re
import os
import subprocess
import sys
import time

from ipolyglot.kernel import __version__
from ipolyglot.kernel.feedback import BuildFeedback


def test_info_reports_versions_toolchains_and_cache(kernel):
    out = kernel.run("%polyglot info").ok().stdout
    rows = dict(line.split(None, 1) if "  " in line else (line, "") for line in out.splitlines())
    import cffi
    import pybind11
    import shutil

    assert sys.version.split()[0] in out
    assert f"ipolyglot  {__version__}" in out.replace("ipolyglot   ", "ipolyglot  ")
    go_version = subprocess.run([shutil.which("go"), "version"], capture_output=True, text=True).stdout.strip()
    assert go_version in out
    assert "(found via PATH)" in out
    cxx_version = subprocess.run([shutil.which("c++"), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert cxx_version in out
    assert "pybind11" in rows and pybind11.__version__ in out
    assert cffi.__version__ in out
    assert os.environ["IPOLYGLOT_CACHE_DIR"] in out


def test_usage_for_no_or_wrong_arguments(kernel):
    for line in ("%polyglot", "%polyglot frobnicate", "%polyglot cache"):
        out = kernel.run(line).ok().stdout
        assert "Usage: %polyglot" in out and "cache clear" in out, line


def test_cache_clear(kernel, tmp_path):
    cache_dir = os.environ["IPOLYGLOT_CACHE_DIR"]
    kernel.run("from ipolyglot.kernel.core.cache import BuildCache").ok()
    # Publish a throwaway artifact into a cache of its own, then clear it through the magic.
    kernel.run(
        f"import os; os.environ['IPOLYGLOT_CACHE_DIR'] = {str(tmp_path / 'c')!r}\n"
        "ip = get_ipython(); m = ip.magics_manager.registry['PolyglotMagics']\n"
        "m.cache = BuildCache()\n"
        "m.cache.get_or_build({'unit': 'x'}, lambda d: (d / 'blob').write_bytes(b'0' * 4096), lambda d: d)"
    ).ok()
    out = kernel.run("%polyglot cache clear").ok().stdout
    assert "cleared the build cache" in out and "KiB freed" in out
    assert not list((tmp_path / "c" / "artifacts").iterdir())
    kernel.run(f"os.environ['IPOLYGLOT_CACHE_DIR'] = {cache_dir!r}; m.cache = BuildCache()").ok()


def test_native_fd_output_is_in_order_with_python_prints(kernel):
    code = (
        "import os, ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "print('py-1')\n"
        "os.write(1, b'fd-1\\n')\n"
        "libc.printf(b'printf-1\\n')\n"  # buffered in C stdio: flushed before the next Python print
        "print('py-2')\n"
        "os.write(2, b'fd-err\\n')\n"
        "libc.printf(b'printf-tail\\n')"  # still buffered when the cell ends
    )
    out = kernel.run(code).ok()
    assert out.stdout == "py-1\nfd-1\nprintf-1\npy-2\nprintf-tail\n"
    assert out.stderr == "fd-err\n"


def test_large_native_output_does_not_block(kernel):
    out = kernel.run("import os\nfor i in range(2000): os.write(1, b'x' * 99 + b'\\n')\nprint('done')").ok()
    assert out.stdout.count("x" * 99) == 2000 and out.stdout.endswith("done\n")


def test_extension_loads_in_plain_ipython(tmp_path):
    script = tmp_path / "use.ipy"
    script.write_text("%load_ext ipolyglot.kernel\n%polyglot info\n%polyglot\n")
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", str(script)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ipolyglot" in done.stdout and "Usage: %polyglot" in done.stdout


def test_unknown_cell_magic_option_is_a_short_error(kernel):
    out = kernel.run("%%go --no-such-option\nfunc F() {}")
    assert out.status == "error"
    assert "unrecognized arguments: --no-such-option" in out.error_text
    assert "usage: %%go" in out.error_text
    assert "Traceback" not in out.error_text and "magics.py" not in out.error_text


# -- build feedback -------------------------------------------------------------

def test_feedback_silent_for_quick_builds():
    stream = io.StringIO()
    with BuildFeedback(stream=stream).building("Go cell In [1]"):
        time.sleep(0.05)
    assert stream.getvalue() == ""


def test_feedback_live_line_then_summary():
    stream = io.StringIO()
    with BuildFeedback(stream=stream).building("Go cell In [1]"):
        time.sleep(1.3)
    text = stream.getvalue()
    assert text.startswith("\rbuilding Go cell In [1] …")
    assert re.search(r"\rbuilding Go cell In \[1\] … 1\.\d s", text)  # then it counts
    assert re.search(r"\rGo cell In \[1\]: built in 1\.\d s *\n$", text)
    assert text.endswith("\n")


def test_feedback_reports_cache_and_failure():
    stream = io.StringIO()
    with BuildFeedback(stream=stream).building("x") as fb:
        time.sleep(0.7)
        fb.outcome = "from cache"
    assert "x: from cache" in stream.getvalue()
    stream = io.StringIO()
    try:
        with BuildFeedback(stream=stream).building("x"):
            time.sleep(0.7)
            raise RuntimeError
    except RuntimeError:
        pass
    assert "x: build failed after 0.7 s" in stream.getvalue()


def test_feedback_quiet():
    stream = io.StringIO()
    with BuildFeedback(quiet=True, stream=stream).building("x"):
        time.sleep(0.7)
    assert stream.getvalue() == ""


def test_slow_build_shows_a_live_display_then_a_summary(kernel):
    cell = "%%go -f\nfunc FeedbackProbe() int { return 7 }"
    out = kernel.run(cell).ok()
    shown = [m["content"] for m in out.messages if m["msg_type"] in ("display_data", "update_display_data")]
    assert shown and shown[0]["data"]["text/plain"].startswith("building Go cell In [")
    assert len({content["transient"]["display_id"] for content in shown}) == 1  # one display, updated in place
    summary = shown[-1]["data"]["text/plain"]
    assert summary.startswith("Go cell In [") and ": built in " in summary and summary.endswith(" s")
    assert "building" not in out.stdout
    assert kernel.eval("FeedbackProbe()") == 7
    quiet = kernel.run(cell.replace("-f", "-f -q")).ok()
    assert "building" not in quiet.stdout and "built in" not in quiet.stdout and not quiet.displays

"""The JupyterLab extension: shipped in the wheel, listed by JupyterLab, and
working in a real browser (Debian's headless Chromium driven by Playwright).

The wheel is built from the checkout's files and its data folder handed to
JupyterLab through JUPYTER_PATH, which is where `pip install` puts it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from test_install import copy_checkout

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = "ipolyglot-highlight"
CHROMIUM = os.environ.get("IPOLYGLOT_CHROMIUM", "/usr/bin/chromium")
# The README's screenshot; refreshed by a run with IPOLYGLOT_UPDATE_SCREENSHOTS=1.
SCREENSHOT = ROOT / "docs" / "jupyterlab-go-completion.png"
WARM_UP_SECONDS = 120


@pytest.fixture(scope="module")
def wheel_data(tmp_path_factory) -> Path:
    """share/jupyter of the built wheel, as `pip install` would lay it out."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    copy_checkout(source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"), str(source)],
        check=True, capture_output=True, timeout=600,
    )
    wheel = next((base / "dist").glob("ipolyglot-*.whl"))
    unpacked = base / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return next(unpacked.glob("ipolyglot-*.data")) / "data" / "share" / "jupyter"


def jupyter(*argv: str, env: dict) -> subprocess.CompletedProcess:
    jupyter_bin = Path(sys.executable).with_name("jupyter")
    assert jupyter_bin.exists(), "JupyterLab is needed: pip install -e '.[test]' (or run .ci/setup)"
    return subprocess.run([str(jupyter_bin), *argv], env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_ships_the_prebuilt_extension_and_jupyterlab_lists_it(wheel_data):
    assert (wheel_data / "labextensions" / EXTENSION / "package.json").exists()
    assert list((wheel_data / "labextensions" / EXTENSION / "static").glob("remoteEntry.*.js"))
    listed = jupyter("labextension", "list", env={**os.environ, "JUPYTER_PATH": str(wheel_data)})
    text = listed.stdout + listed.stderr
    line = next((line for line in text.splitlines() if EXTENSION in line), "")
    assert "enabled" in line and "OK" in line, text


def test_the_prebuilt_bundle_holds_the_source():
    """The committed bundle was built from the committed source (rebuild: cd labextension && npm run build)."""
    source = (ROOT / "labextension" / "lib" / "index.js").read_text()
    bundle = "".join(p.read_text() for p in (ROOT / "labextension" / "prebuilt" / "static").glob("*.js"))
    for marker in ("text/x-go", "text/x-c++src", "ipolyglot-highlight:plugin"):
        assert marker in source and marker in bundle


# -- the browser ----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(wheel_data, tmp_path_factory):
    """A JupyterLab server with the wheel's extension, serving a copy of notebooks/."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / "tour.ipynb", root / "tour.ipynb")
    news = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "get notified about news?" pop-up over the screenshot
    port, token = _free_port(), "ipolyglot-test"
    env = {
        **os.environ,
        "JUPYTER_PATH": str(wheel_data),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
    assert jupyter_lab.exists(), "JupyterLab is needed: pip install -e '.[test]' (or run .ci/setup)"
    log = open(base / "lab.log", "w")
    server = subprocess.Popen(
        [str(jupyter_lab), "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (base / "lab.log").read_text()[-3000:]
            time.sleep(0.5)
    yield url, token
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def page(lab):
    assert os.access(CHROMIUM, os.X_OK), f"headless Chromium is needed at {CHROMIUM}: apt-get install chromium (or run .ci/setup)"
    from playwright.sync_api import sync_playwright

    url, token = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.set_default_timeout(120_000)
        tab.goto(f"{url}/lab/tree/tour.ipynb?token={token}")
        tab.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content")
        yield tab
        browser.close()


def _code_cell(page, first_line: str):
    return page.locator(".jp-CodeCell", has=page.locator(".cm-line", has_text=first_line)).first


def _color_of_word(cell, word: str) -> str:
    return cell.locator(".cm-content").evaluate(
        """(content, word) => {
            const walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                const at = node.textContent.search(new RegExp('\\\\b' + word + '\\\\b'));
                if (at >= 0 && node.parentElement.textContent.trim() === word) {
                    return getComputedStyle(node.parentElement).color;
                }
            }
            return null;
        }""",
        word,
    )


def test_go_and_cpp_cells_are_highlighted_as_their_language_and_python_stays_python(page):
    go_cell = _code_cell(page, "%%go")
    go_cell.scroll_into_view_if_needed()
    go_content = go_cell.locator(".cm-content")
    page.wait_for_function("(el) => el.getAttribute('data-language') === 'go'", arg=go_content.element_handle())
    python_cell = _code_cell(page, "import numpy as np")
    assert python_cell.locator(".cm-content").get_attribute("data-language") == "python"
    # Go's `func` is a keyword token, coloured as Python's `import` keyword is.
    func_color = _color_of_word(go_cell, "func")
    assert func_color is not None and func_color == _color_of_word(python_cell, "import")
    cpp_cell = _code_cell(page, "%%cpp")
    cpp_cell.scroll_into_view_if_needed()
    page.wait_for_function("(el) => el.getAttribute('data-language') === 'cpp'", arg=cpp_cell.locator(".cm-content").element_handle())


def test_tab_in_a_go_cell_offers_the_completion_of_gopls(page, tmp_path):
    first = _code_cell(page, "%%go")
    first.locator(".cm-content").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new cell below, in command mode
    page.keyboard.press("Enter")
    page.keyboard.type('%%go\nimport "strings"\n\nvar Loud = strings.ToU')
    completer = page.locator(".jp-Completer-item", has_text="ToUpper")
    deadline = time.monotonic() + WARM_UP_SECONDS
    while True:  # the kernel's first completion may come back empty while gopls warms up
        page.keyboard.press("Tab")
        try:
            completer.first.wait_for(state="visible", timeout=3000)
            break
        except Exception:
            assert time.monotonic() < deadline, "no ToUpper offered after pressing Tab in a %%go cell"
    page.screenshot(path=str(tmp_path / SCREENSHOT.name))
    if os.environ.get("IPOLYGLOT_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(tmp_path / SCREENSHOT.name, SCREENSHOT)

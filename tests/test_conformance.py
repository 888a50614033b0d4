"""The external Jupyter kernel conformance suite (jupyter_kernel_test) against the `ipolyglot` kernelspec.

Every sample attribute of `KernelTests` is filled, so no test of the suite is
skipped; the samples include the polyglot magics where the protocol allows it
(completion of `%%go`/`%%cpp`/`%polyglot`, is_complete of magic cells, the
pager on `%polyglot?`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import jupyter_kernel_test
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

KERNEL_NAME = "ipolyglot"


def _ensure_kernelspec() -> None:
    if KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        from ipolyglot.kernel.kernelspec import install

        install(prefix=sys.prefix)


class _PrivateHistory:
    """Start the kernel with an IPython directory of its own.

    The history tests search the whole history database; a private one keeps
    them independent of whatever the user's real history holds (and keeps the
    suite's cells out of it).
    """

    @classmethod
    def setUpClass(cls) -> None:
        _ensure_kernelspec()
        cls._ipython_dir = tempfile.mkdtemp(prefix="ipolyglot-ipython-")
        env = {**os.environ, "IPYTHONDIR": cls._ipython_dir}
        cls._start(env)

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls._ipython_dir, ignore_errors=True)


class IPolyglotKernelTests(_PrivateHistory, jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL_NAME
    language_name = "python"
    file_extension = ".py"

    @classmethod
    def _start(cls, env: dict) -> None:
        cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name, startup_timeout=120, env=env)

    code_hello_world = 'print("hello, world")'

    code_stderr = 'import sys; print("something went wrong", file=sys.stderr)'

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "%poly", "matches": {"%polyglot"}},
        {"text": "%%g", "matches": {"%%go", "%%go_pprof"}},
        {"text": "%%cp", "matches": {"%%cpp"}},
    ]

    complete_code_samples = [
        "1",
        'print("hello, world")',
        "def f(x):\n    return 2 * x\n\n",
        "%polyglot info",
        "%%cpp\nint twice(int x) { return 2 * x; }\n\n",
    ]
    incomplete_code_samples = [
        "print(1,",
        "def f(x):",
        "for i in range(3):\n    x = i",
        "%%go\nfunc F() int { return 1 }",
        "%%cpp",
    ]
    invalid_code_samples = ["import = 7", "1 +* 2", ")"]

    code_page_something = "%polyglot?"

    code_generate_error = 'raise ValueError("this cell fails")'

    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "sum(range(10))", "result": "45"},
        {"code": "'poly' + 'glot'", "result": "'polyglot'"},
    ]

    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>ipolyglot</b>'))", "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math(r'\\frac{1}{2}'))", "mime": "text/latex"},
    ]

    # A glob over the raw source; matches exactly one distinct entry of code_execute_result.
    code_history_pattern = "sum(range(*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "print"

    code_clear_output = "from IPython.display import clear_output; print('soon gone'); clear_output()"


class IPolyglotIopubWelcomeTests(_PrivateHistory, jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True

    @classmethod
    def _start(cls, env: dict) -> None:
        from jupyter_client.manager import KernelManager

        cls.km = KernelManager(kernel_name=cls.kernel_name)
        cls.km.start_kernel(env=env)
        cls.kc = cls.km.client()

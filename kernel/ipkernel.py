"""The ipolyglot kernel: IPython's kernel with the Go and C++ cell magics loaded."""

from __future__ import annotations

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp

from ._version import __version__
from .completion_requests import CellCompletionRequests
from .core.cells import CellTextError, check_text


class IPolyglotKernel(CellCompletionRequests, IPythonKernel):
    """A Python kernel whose shell also understands %%go, %%cpp and %polyglot,
    and completes and inspects inside %%go and %%cpp cells."""

    implementation = "ipolyglot"
    implementation_version = __version__
    banner = f"ipolyglot {__version__}: Python 3 with %%go and %%cpp cells"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shell.extension_manager.load_extension("ipolyglot.kernel")

    async def do_execute(self, code, silent, *args, **kwargs):
        """As IPython's, but a cell that is not text gets one line that says where, not a traceback.

        A lone surrogate (text that was not valid UTF-8, escaped in the JSON of
        the request) makes ipykernel's own cell naming fail before IPython
        runs anything; the cell is refused here instead, and nothing runs.
        """
        try:
            check_text(code)
        except CellTextError as exc:
            return self._refuse(exc)
        return await super().do_execute(code, silent, *args, **kwargs)

    def _refuse(self, exc: Exception) -> dict:
        name = type(exc).__name__
        traceback = [f"\x1b[0;31m{name}\x1b[0m: {exc}"]
        self.shell._showtraceback(type(exc), exc, traceback)
        return {
            "status": "error", "ename": name, "evalue": str(exc), "traceback": traceback,
            "execution_count": self.shell.execution_count - 1, "user_expressions": {}, "payload": [],
        }

    def do_history(self, hist_access_type, output, raw, session=0, start=0, stop=None, n=None, pattern=None, unique=False):
        """As IPython's, but a range of the current session names the real session number.

        IPython reports the current session as 0 ("this one"), which a client
        cannot tell apart from a real session number 0.
        """
        reply = super().do_history(hist_access_type, output, raw, session, start, stop, n, pattern, unique)
        current = self.shell.history_manager.session_number
        reply["history"] = [((current if entry[0] == 0 else entry[0]),) + tuple(entry[1:]) for entry in reply["history"]]
        return reply


class IPolyglotKernelApp(IPKernelApp):
    name = "ipolyglot-kernel"
    kernel_class = IPolyglotKernel
    # ipolyglot forwards fd 1/2 itself, in order with Python's output (native_output.py).
    capture_fd_output = False

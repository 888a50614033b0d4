"""The ipolyglot kernel: IPython's kernel with the Go and C++ cell magics loaded."""

from __future__ import annotations

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp

from ._version import __version__


class IPolyglotKernel(IPythonKernel):
    """A Python kernel whose shell also understands %%go, %%cpp and %polyglot."""

    implementation = "ipolyglot"
    implementation_version = __version__
    banner = f"ipolyglot {__version__}: Python 3 with %%go and %%cpp cells"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shell.extension_manager.load_extension("ipolyglot.kernel")

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

"""ipolyglot: Python, Go and C++ cells in one Jupyter session.

`%load_ext ipolyglot.kernel` registers %%go, %%cpp and %polyglot in any IPython;
the `ipolyglot` kernelspec starts a kernel that has them loaded already.
"""

from ._version import __version__
from .worker_protocol import NativeCrash

__all__ = ["NativeCrash", "__version__", "load_ipython_extension"]


def load_ipython_extension(shell) -> None:
    from .magics import load  # IPython is imported only when the extension loads

    load(shell)

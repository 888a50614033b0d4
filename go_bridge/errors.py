"""The exceptions Go code raises in Python."""

from __future__ import annotations


class GoError(Exception):
    """A Go function returned a non-nil `error` as its last result; the message is `err.Error()`."""


class GoPanic(Exception):
    """A Go panic, recovered at the boundary: the panic value and the Go stack.

    Frames of the user's code point at cell lines (`In [3]:5` is line 5 of
    cell In [3], counting the `%%go` line as line 1).
    """

    def __init__(self, value: str, stack: str = "", where: str = ""):
        self.value = value
        self.stack = stack
        self.where = where
        text = f"{where}{value}"
        if stack:
            text += "\n\nGo stack (most recent call first):\n" + "\n".join(
                ("    " + line.strip()) if line.startswith("\t") else line for line in stack.splitlines()
            )
        super().__init__(text)

    def __reduce__(self):
        # Raised in a pool or Dask worker, it is pickled back to the caller whole.
        return type(self), (self.value, self.stack, self.where)

"""The `%%go` backend: Go declarations and statements as Python objects.

Each build is one Go c-shared library holding every live declaration of the
session plus generated entry points; values cross by copy only (see
marshal.py and runtime/ipgrt for the wire format both sides share).
"""

from .errors import GoError, GoPanic

__all__ = ["GoError", "GoPanic"]

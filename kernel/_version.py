"""The single place the ipolyglot version is defined."""

__version__ = "0.1.0"

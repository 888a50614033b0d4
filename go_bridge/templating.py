"""The Go backend's templates/ folder: every generated file (Go and Python) is rendered from it."""

from pathlib import Path

from ipolyglot.kernel.core.templates import TemplateFolder

TEMPLATES = TemplateFolder(Path(__file__).resolve().parent / "templates")

"""Loading the generated-code templates shipped in templates/."""

from __future__ import annotations

import functools
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"
INCLUDE_DIR = Path(__file__).resolve().parent / "include"


@functools.lru_cache(maxsize=None)
def template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


@functools.lru_cache(maxsize=None)
def snippets() -> dict[str, Template]:
    """The named pieces of snippets.txt ("@@ name" headers)."""
    found: dict[str, Template] = {}
    name, lines = None, []
    for line in (TEMPLATES / "snippets.txt").read_text().splitlines():
        if line.startswith("@@ "):
            if name:
                found[name] = Template("\n".join(lines).strip("\n"))
            name, lines = line[3:].strip(), []
        elif name is not None:
            lines.append(line)
    if name:
        found[name] = Template("\n".join(lines).strip("\n"))
    return found


def snippet(snippet_name: str, /, **values) -> str:
    return snippets()[snippet_name].substitute(**values)


def render(name: str, **values) -> str:
    return template(name).substitute(**values)

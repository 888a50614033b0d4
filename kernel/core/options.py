"""Option parsing for the %%go and %%cpp cell magics: the shared options once, backends add theirs."""

from __future__ import annotations

import argparse
import shlex


class OptionError(ValueError):
    """A malformed magic line; the message includes the usage."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would call sys.exit
        raise OptionError(f"{message}\n{self.format_usage().strip()}")

    def exit(self, status=0, message=None):
        raise OptionError((message or "").strip() or self.format_help())


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        if not name.isidentifier():
            raise argparse.ArgumentTypeError(f"{name!r} is not a valid variable name")
    return names


def make_parser(magic: str, backend=None) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"%%{magic}", add_help=True, allow_abbrev=False)
    common = parser.add_argument_group("common options")
    common.add_argument("-f", "--force", action="store_true", help="rebuild even if the cache has this cell")
    common.add_argument("-v", "--verbose", action="store_true", help="show the build command, generated code path, build time and cache use")
    common.add_argument("-q", "--quiet", action="store_true", help="no live build feedback")
    common.add_argument("-i", "--input", type=_names, action="extend", default=[], metavar="A,B", help="Python variables to bring into a statement cell")
    common.add_argument("-o", "--output", type=_names, action="extend", default=[], metavar="X,Y", help="variables to copy back into Python after a statement cell")
    common.add_argument("--profile", action="store_true", help="record what each boundary crossing costs (see %%polyglot profile)")
    place = common.add_mutually_exclusive_group()
    place.add_argument("--worker", dest="place", action="store_const", const="worker", help="run this cell's native code in the supervised worker process")
    place.add_argument("--in-process", dest="place", action="store_const", const="in-process", help="load this cell's native code into the kernel itself")
    if backend is not None:
        backend.add_arguments(parser.add_argument_group(f"{backend.display_name} options"))
    return parser


def parse_line(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise OptionError(f"cannot parse the options {line!r}: {exc}") from None
    return parser.parse_args(attach_option_values(parser, argv))


def attach_option_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Join each option that takes a value with the word after it when that word starts with '-'.

    argparse reads `--cflags "-O3 -ffast-math"` as an option without its value
    followed by an unknown option; POSIX utilities (and users) take the word
    after an option that requires a value as that value, whatever it starts
    with. Writing it as `--cflags=-O3 …` (or `-I-dir`) says so to argparse.
    """
    takes_value = _options_taking_a_value(parser)
    joined: list[str] = []
    words = iter(argv)
    for word in words:
        joined.append(word)
        value = next(words, None) if word in takes_value else None
        if value is None:
            continue
        if value.startswith("-"):
            joined[-1] = f"{word}={value}" if word.startswith("--") else word + value
        else:
            joined.append(value)
    return joined


def _options_taking_a_value(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings of the parser whose action consumes exactly one argument."""
    return {
        option
        for action in parser._actions  # argparse offers no public listing of its actions
        if action.option_strings and action.nargs in (None, 1)
        for option in action.option_strings
    }

"""The ``dnal`` command line. Each subcommand lives in ``dnal_core/commands/<name>.py`` with a
``register(subparsers)`` function that adds its parser and sets ``func``; this file finds
them, so adding a command never touches it.

Bad input (an unknown model, a missing file, a bad value) prints one line on stderr and exits
with code 2: library code raises ``ValueError`` and ``main`` turns it into that line. A run
stopped by a NaN or infinite loss (``NonFiniteLossError``) prints one line and exits with code 3.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys

from . import __version__, commands
from .train.fast import NonFiniteLossError


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    # argparse takes "-1e-3" for an option (its own pattern knows only "-1" and "-0.5"), so
    # "--lambda -1e-3" failed with "expected one argument". Every number, exponents and
    # infinities included, is a value here: no option of ours looks like a number.
    _NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-inf(inity)?$", re.IGNORECASE)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = self._NUMBER  # private attribute, read by argparse

    def error(self, message):  # argparse's default prints the whole usage block
        raise UsageError(f"{self.prog}: {message}")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dnal", description="Differentiable Neural Architecture Learning (DNAL).")
    parser.add_argument("--version", action="version", version=f"dnal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = make_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except ValueError as e:  # UsageError included
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(msg if msg.startswith("dnal") else f"dnal: error: {msg}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:  # the run diverged: stage, epoch and step named
        print(f"dnal: error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("dnal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

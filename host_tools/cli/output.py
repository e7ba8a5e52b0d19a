"""What every command shares for its output: the --json flag, printing a result, progress and
notes on stderr, and the error a command raises for a usage mistake (CommandError, a DbchError).
"""

from __future__ import annotations

import argparse
import json
import sys

from host_tools.errors import DbchError

TOP = "_top_"  # the main parser's copies of the shared options: dests with this prefix


class CommandError(DbchError):
    """A failure the user can act on; the message says what to do."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def add_json_flag(parser: argparse.ArgumentParser, *, before_command: bool = False) -> None:
    """--json, for a command (or, before_command, for the main parser: see DbchParser, which
    fills in its default)."""
    parser.add_argument(
        "--json",
        dest=TOP + "json" if before_command else "json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print machine-readable JSON on stdout",
    )
    if not before_command:
        parser.set_defaults(_json_flag=True)


def emit(args: argparse.Namespace, result, text: str | None = None) -> None:
    """Print a command's result: JSON with --json, else the human text (or the JSON)."""
    if getattr(args, "json", False) or text is None:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(text)


def say(text: str) -> None:
    """Progress, or a note for whoever watches: on stderr, at once (stdout holds the result)."""
    print(text, file=sys.stderr, flush=True)


def notice(message: str) -> None:
    """A note from dbch itself on stderr: "dbch: MESSAGE"."""
    say(f"dbch: {message}")

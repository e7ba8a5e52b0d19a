"""`dbch`: flash, drive and test Dual Band Comms Hub agents on real and virtual boards."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from agent import VERSION

# Each module adds its own sub-commands: `register(subparsers)` sets `func` on its parsers.
# A command's func(args) returns a JSON-able result (printed with --json) and an exit code, or
# raises CommandError, which becomes "dbch: message" on stderr and exit status 1.
COMMAND_MODULES: tuple[str, ...] = (
    "host_tools.vboard",
    "host_tools.flash",
    "host_tools.commands",
    "host_tools.duis_front",
    "host_tools.duis_assets",
    "host_tools.firmware",
    "host_tools.simagent",
    "host_tools.selftest",
    "host_tools.demo",
    "host_tools.pki",
    "host_tools.triage",
)


class CommandError(Exception):
    """A failure the user can act on; the message says what to do."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dbch {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def emit(args: argparse.Namespace, result, text: str | None = None) -> None:
    """Print a command's result: JSON with --json, else the human text (or the JSON)."""
    if getattr(args, "json", False) or text is None:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except CommandError as e:
        print(f"dbch: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("dbch: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())

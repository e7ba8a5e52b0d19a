"""`dbch`: flash, drive and test Dual Band Comms Hub agents on real and virtual boards."""

# The options a command shares (--port, --start, --baud, --timeout; --json) may come before the
# command as well as after it; given in both places, the one after the command wins.

from __future__ import annotations

import argparse
import importlib
import sys

from agent import VERSION
from host_tools.cli.output import TOP as _TOP
from host_tools.cli.output import CommandError, add_json_flag, emit  # noqa: F401  (for the commands)
from host_tools.errors import DbchError

# Each module adds its own sub-commands: `register(subparsers)` sets `func` on its parsers.
# A command's func(args) returns a JSON-able result (printed with --json) and an exit code, or
# raises a DbchError (host_tools.errors; CommandError is the kind the commands raise), which
# becomes "dbch: message" on stderr and exit status 1 (followed by what the board printed, when
# the error comes from an answer that never came).
COMMAND_MODULES: tuple[str, ...] = (
    "host_tools.cli.vboard",
    "host_tools.cli.flash",
    "host_tools.cli.link",
    "host_tools.cli.duis",
    "host_tools.cli.dcc",
    "host_tools.cli.firmware",
    "host_tools.cli.agent",
    "host_tools.cli.han",
    "host_tools.cli.selftest",
    "host_tools.cli.demo",
    "host_tools.cli.pki",
    "host_tools.cli.triage",
    "host_tools.cli.ipsec",
    "host_tools.cli.gateway",
    "host_tools.cli.fleet",
)

# The commands each module adds, so that `dbch COMMAND` loads only the module of COMMAND: a
# command's start is part of its time (a warm `dbch flash` takes 0.2 s end to end). Without a
# command (`dbch`, `dbch --help`) or with one not named here, every module is loaded.
# tests/host/test_cli_platforms.py checks this against what each module's register() adds.
COMMANDS: dict[str, str] = {
    "vboard": "host_tools.cli.vboard",
    "flash": "host_tools.cli.flash",
    "mpremote": "host_tools.cli.flash",
    "status": "host_tools.cli.link",
    "config": "host_tools.cli.link",
    "alerts": "host_tools.cli.link",
    "duis": "host_tools.cli.duis",
    "schema": "host_tools.cli.duis",
    "dcc": "host_tools.cli.dcc",
    "firmware": "host_tools.cli.firmware",
    "agent": "host_tools.cli.agent",
    "selftest": "host_tools.cli.selftest",
    "demo": "host_tools.cli.demo",
    "han": "host_tools.cli.han",
    "pki": "host_tools.cli.pki",
    "triage": "host_tools.cli.triage",
    "ipsec": "host_tools.cli.ipsec",
    "gateway": "host_tools.cli.gateway",
    "fleet": "host_tools.cli.fleet",
}
# the options of the `dbch` parser itself that take a value (host_tools.cli.options)
_VALUED = ("--port", "-p", "--baud", "--timeout")


def command_of(argv: list[str]) -> str | None:
    """The command word of a `dbch` command line (the first word that is neither an option nor the
    value of one of the options before the command), or None."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--":
            return None
        elif word.startswith("-"):
            skip = word in _VALUED
        else:
            return word
    return None


EPILOG = """\
These options go before the command or after it (after it wins): `dbch --port sim status` is
`dbch status --port sim`. The port is $DBCH_PORT if it is set, else vboard: the default virtual
board, started on demand. A named virtual board or CPython agent (vboard:NAME, sim:NAME) must be
running, unless --start is given. See `dbch COMMAND --help` for the options of each command."""


class DbchParser(argparse.ArgumentParser):
    """The `dbch` parser: after parsing, the shared options given before the command are merged
    into the command's, and the defaults of those not given at all are filled in."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        self._merge_shared(namespace)
        return namespace, extras

    def _merge_shared(self, ns: argparse.Namespace) -> None:
        from host_tools.cli.options import port_defaults

        values = vars(ns)
        before = {k[len(_TOP) :]: values.pop(k) for k in list(values) if k.startswith(_TOP)}
        takes = {"port": values.pop("_port_args", False), "json": values.pop("_json_flag", False)}
        command = values.get("command")
        for name, value in before.items():
            group = "json" if name == "json" else "port"
            if command and not takes[group]:
                if name in values:
                    self.error(f"`dbch {command}` has its own --{name}: give it after the command")
                self.error(f"`dbch {command}` takes no --{name}")
            values.setdefault(name, value)
        if takes["port"]:
            for name, value in port_defaults().items():
                values.setdefault(name, value)
            if values.get("start") and isinstance(values.get("port"), str):
                from host_tools.link.ports import Port

                ns.port = Port(values["port"], start=True)
        if takes["json"]:
            values.setdefault("json", False)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `dbch` parser; with the command (a key of COMMANDS) only its module is loaded."""
    from host_tools.cli.options import add_port_args

    parser = DbchParser(
        prog="dbch", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dbch {VERSION}")
    add_port_args(parser, before_command=True)
    add_json_flag(parser, before_command=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser)
    modules = COMMAND_MODULES
    if COMMANDS.get(command) in COMMAND_MODULES:
        modules = (COMMANDS[command],)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name not in _POSIX_ONLY:
                raise
            _unavailable(sub, name, e.name)
            continue
        module.register(sub)
    return parser


# Modules only POSIX systems have: the virtual board and the CPython agent run behind ptys with
# flock'ed state, so on Windows their commands say so and every other command still works.
_POSIX_ONLY = ("fcntl", "termios", "tty", "pty")


def _unavailable(sub: argparse._SubParsersAction, module: str, missing: str) -> None:
    command = module.rpartition(".")[2]

    def refuse(_args: argparse.Namespace) -> int:
        raise CommandError(f"`dbch {command}` needs a POSIX system (Linux or macOS): this Python has no {missing}")

    # every word after the command is taken as it is (no option of its own), so that any of the
    # command's usual options gets this answer rather than a usage error
    p = sub.add_parser(command, help=f"(needs Linux or macOS: no {missing} here)", add_help=False, prefix_chars="\0")
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=refuse)


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """`dbch ARGV`: its exit status. parser: the one to parse with (default: build_parser(), every
    command)."""
    parser = parser or build_parser(command_of(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except DbchError as e:
        why = _explanation(e)
        print(f"dbch: {e}" + (f"\n{why}" if why else ""), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("dbch: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


def _explanation(error: BaseException) -> str:
    """What the board printed instead of answering, if `error` comes from a silence that can be
    explained (an AgentTimeout with explain(), anywhere in its chain of causes)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        explain = getattr(error, "explain", None)
        if callable(explain):
            try:
                return explain() or ""
            except Exception:
                return ""
        error = error.__cause__ or error.__context__
    return ""

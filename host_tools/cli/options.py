"""The options of every command that opens a port (--port, --start, --baud, --timeout), and the
client or Agent they describe."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import host_tools.servers  # noqa: F401  (makes the ports vboard, sim and triage known)
from host_tools.cli.output import CommandError, add_json_flag, notice
from host_tools.link.ports import DEFAULT_BAUD, DEFAULT_PORT, DEFAULT_TIMEOUT, PORT_ENV, Port, default_port

if TYPE_CHECKING:
    from host_tools.link.agent import Agent
    from host_tools.link.client import AgentClient

_PORT_OPTIONS = (
    (
        ("--port", "-p"),
        dict(
            metavar="PORT",
            help=f"board port: vboard[:NAME] (a virtual board), sim[:NAME] (the CPython agent), triage[:NAME] "
            f"(a hub on a triage tool's TLS link), mqtts://HOST:PORT/EUI (a hub a dbch gateway serves on "
            f"an MQTT broker), a device path such as /dev/ttyUSB0, or a pyserial URL "
            f"(default: ${PORT_ENV}, else {DEFAULT_PORT}, the default virtual board). A named virtual board "
            "or agent must be running, unless --start",
        ),
    ),
    (
        ("--start",),
        dict(action="store_true", help="start the named virtual board or CPython agent of --port if it is not running"),
    ),
    (("--baud",), dict(metavar="BAUD", type=int, help=f"serial baud rate for real boards (default {DEFAULT_BAUD})")),
    (
        ("--timeout",),
        dict(metavar="SECONDS", type=float, help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT:g})"),
    ),
)


def add_port_args(parser: argparse.ArgumentParser, *, before_command: bool = False, many: bool = False) -> None:
    """--port, --start, --baud and --timeout. They are given to each command that opens a port,
    and (before_command) to the main `dbch` parser, where they may come before the command.
    Their defaults are filled in after parsing (port_defaults): what is given after the command
    wins over what is given before it. many: the command takes several boards, --port repeated
    or a comma list (read them with ports_of)."""
    for flags, options in _PORT_OPTIONS:
        name = flags[0][2:]
        dest = "_top_" + name if before_command else name
        if many and name == "port":
            options = dict(options, action="append", help=options["help"] + _MANY_HELP)
        parser.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, **options)
    if not before_command:
        parser.set_defaults(_port_args=True)


_MANY_HELP = ". Several boards at once: --port repeated, or a comma list (--port /dev/ttyUSB0,/dev/ttyUSB1)"


def ports_of(args: argparse.Namespace) -> list[str]:
    """The --port values of a command that takes several boards (add_port_args(many=True)): each
    --port given, split at commas, in order, each a Port with --start if it was given; the
    default port when none was. CommandError for an empty value or a port named twice."""
    given = getattr(args, "port", None) or default_port()
    values = [given] if isinstance(given, str) else list(given)
    ports: list[str] = []
    for value in values:
        for spec in str(value).split(","):
            spec = spec.strip()
            if not spec:
                raise CommandError(
                    f"--port {value!r}: an empty port name; give ports as --port A --port B or --port A,B"
                )
            if spec in ports:
                raise CommandError(f"--port {spec} is given twice: each board is flashed once")
            ports.append(spec)
    start = getattr(args, "start", False)
    return [Port(p, start=True) if start else p for p in ports]


def port_command(parser: argparse.ArgumentParser, func) -> argparse.ArgumentParser:
    """A command that opens a port: the port options, --json, and `func` to run it."""
    add_port_args(parser)
    add_json_flag(parser)
    parser.set_defaults(func=func)
    return parser


def port_defaults() -> dict:
    """The values of the port options not given on the command line."""
    return {"port": default_port(), "start": False, "baud": DEFAULT_BAUD, "timeout": DEFAULT_TIMEOUT}


def open_client(args: argparse.Namespace, *, echo_text: bool = False) -> AgentClient:
    """The client on the port the options name; echo_text: what the board prints besides frames
    goes to stderr."""
    spec = getattr(args, "port", None) or default_port()
    if getattr(args, "start", False) and not getattr(spec, "start", False):
        spec = Port(spec, start=True)
    from host_tools.link.agent import connect  # loaded by the commands that talk to an agent

    on_text = (lambda b: sys.stderr.write(b.decode("utf-8", "replace"))) if echo_text else None
    return connect(
        spec,
        baud=getattr(args, "baud", DEFAULT_BAUD),
        timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
        on_text=on_text,
        notice=notice,
    )


def open_agent(args: argparse.Namespace) -> Agent:
    """The Agent on the port the options name."""
    from host_tools.link.agent import Agent

    return Agent(open_client(args))

"""Turn a --port value into a connected AgentClient.

vboard[:NAME]   a virtual board (the MicroPython unix port on a pty), started if not running
sim[:NAME]      the agent under CPython on a pty (dbch agent), started if not running
triage[:NAME]   a hub on the Triage System Interface, through a running `dbch triage serve`
/dev/ttyUSB0    a real board's serial port (or any pyserial URL: socket://host:port, loop://)
"""

from __future__ import annotations

import argparse
import sys

from host_tools.cli import CommandError
from host_tools.client import AgentClient, LinkError, SerialTransport

DEFAULT_PORT = "vboard"


def add_port_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        "-p",
        default=DEFAULT_PORT,
        help="board port: vboard[:NAME] (default: the default virtual board), sim[:NAME] (the CPython agent), triage[:NAME] (a hub on a triage tool's TLS link), a device path, or a pyserial URL",
    )
    parser.add_argument("--baud", type=int, default=115200, help="serial baud rate for real boards (default 115200)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")


def resolve(spec: str, *, start: bool = True) -> str:
    """A device path or URL for a --port value; starts the virtual board if needed."""
    if spec == "vboard" or spec.startswith("vboard:"):
        from host_tools import vboard

        name = spec.partition(":")[2] or "default"
        try:
            if start:
                return vboard.ensure_running(name=name).port
            return vboard.resolve_port(spec, start=False)
        except vboard.VBoardError as e:
            raise CommandError(str(e)) from e
    if spec == "sim" or spec.startswith("sim:"):
        from host_tools import simagent

        try:
            return simagent.resolve_port(spec, start=start)
        except simagent.SimAgentError as e:
            raise CommandError(str(e)) from e
    if spec == "triage" or spec.startswith("triage:"):
        from host_tools import triage

        try:
            return triage.resolve_port(spec)
        except triage.TriageToolError as e:
            raise CommandError(str(e)) from e
    return spec


def open_client(args: argparse.Namespace, *, echo_text: bool = False) -> AgentClient:
    try:
        path = resolve(args.port)
        transport = SerialTransport(path, args.baud)
    except LinkError as e:
        raise CommandError(str(e)) from e
    on_text = (lambda b: sys.stderr.write(b.decode("utf-8", "replace"))) if echo_text else None
    return AgentClient(transport, timeout=args.timeout, on_text=on_text, port=args.port)


def checked(client: AgentClient, op: str, args: dict | None = None, timeout: float | None = None):
    """Request op; a timeout becomes a CommandError that says what to do."""
    try:
        return client.request(op, args, timeout)
    except LinkError as e:
        raise CommandError(str(e)) from e

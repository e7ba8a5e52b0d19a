"""`dbch agent`: start, serve, stop or show the CPython-simulated agent (host_tools.servers.simagent)."""

from __future__ import annotations

import argparse
import sys

from host_tools.cli.output import add_json_flag
from host_tools.cli.server_args import add_server_parser, announce, command_main, run_action
from host_tools.servers import simagent
from host_tools.servers.simagent import SimAgentInfo


def _describe(info: SimAgentInfo) -> str:
    return f"{info.name}: {info.port} (device {info.eui}, fs {info.fs}, pid {info.pid})"


def _serving(info: SimAgentInfo) -> dict:
    return {"port": info.port, "pid": info.pid, "fs": info.fs, "eui": info.eui}


def run_command(args: argparse.Namespace) -> int:
    if args.serve:
        return simagent.serve(args.name, fs=args.fs, eui=args.eui, on_ready=announce(args, _serving))
    return run_action(
        args, simagent.REGISTRY, _describe, lambda: simagent.ensure_running(args.name, fs=args.fs, eui=args.eui)
    )


def register(subparsers) -> None:
    p = add_server_parser(
        subparsers,
        simagent.REGISTRY,
        help="run the agent under CPython on a pty (simulated hardware); --port sim[:NAME] finds it",
        description="Start (in the background), serve, stop or show the CPython-simulated agent: the "
        "agent's own code on boards.sim parts behind a pty that the host tools open like a board's port.",
        one="the agent",
        fs="storage",
    )
    p.add_argument("--eui", help="set the agent's EUI-64, e.g. 00-DB-12-34-56-78-90-A2 (kept in its storage)")
    add_json_flag(p)
    p.set_defaults(func=run_command)


if __name__ == "__main__":  # `dbch agent` alone: how a background one is started
    sys.exit(command_main("agent", register))

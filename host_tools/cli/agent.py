"""`dbch agent`: start, serve, stop or show the CPython-simulated agent (host_tools.servers.simagent)."""

from __future__ import annotations

import sys

from host_tools.cli.server_args import ServerCommand, command_main
from host_tools.servers import simagent
from host_tools.servers.simagent import SimAgentInfo


def _describe(info: SimAgentInfo) -> str:
    return f"{info.name}: {info.port} (device {info.eui}, fs {info.fs}, pid {info.pid})"


def _serving(info: SimAgentInfo) -> dict:
    return {"port": info.port, "pid": info.pid, "fs": info.fs, "eui": info.eui}


COMMAND = ServerCommand(
    simagent.REGISTRY,
    simagent.serve,
    simagent.ensure_running,
    _describe,
    help="run the agent under CPython on a pty (simulated hardware); --port sim[:NAME] finds it",
    description="Start (in the background), serve, stop or show the CPython-simulated agent: the "
    "agent's own code on boards.sim parts behind a pty that the host tools open like a board's port.",
    one="the agent",
    fs="storage",
    options=(("--eui", {"help": "set the agent's EUI-64, e.g. 00-DB-12-34-56-78-90-A2 (kept in its storage)"}),),
    serving=_serving,
)
register = COMMAND.register


if __name__ == "__main__":  # `dbch agent` alone: how a background one is started
    sys.exit(command_main("agent", register))

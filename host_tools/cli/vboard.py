"""`dbch vboard`: start, serve, stop, reset or show a virtual board (host_tools.servers.vboard)."""

from __future__ import annotations

import argparse
import sys

from host_tools.cli.output import emit
from host_tools.cli.server_args import ServerCommand, command_main
from host_tools.servers import vboard
from host_tools.servers.vboard import VBoardInfo


def _describe(info: VBoardInfo) -> str:
    extra = "".join(f", {k} {v}" for k, v in (("baud", info.baud), ("heap", info.heap), ("board", info.board)) if v)
    return f"{info.name}: {info.port} (fs {info.fs}, pid {info.pid}{extra})"


def _reset(args: argparse.Namespace) -> int:
    info = vboard.reset(args.name)
    emit(args, info.to_json(), f"reset {_describe(info)}")
    return 0


COMMAND = ServerCommand(
    vboard.REGISTRY,
    vboard.serve,
    vboard.ensure_running,
    _describe,
    help="run a virtual board (the MicroPython unix port on a pty)",
    description="Start (in the background), serve, stop or show a virtual board: the MicroPython unix "
    "port on a pty that mpremote, pyserial and terminal programs open like a board's serial port.",
    one="the board",
    fs="flash",
    options=(
        ("--baud", {"type": int, "metavar": "N", "help": "pace the link at N/10 bytes per second each way"}),
        (
            "--heap",
            {
                "metavar": "SIZE",
                "help": "MicroPython heap size, e.g. 128K, to emulate a small board (the agent's heap: the ROMFS "
                "image dbch flash writes is held beside it, as a board keeps it in flash)",
            },
        ),
        (
            "--board",
            {
                "metavar": "NAME",
                "help": "run that board's own module and radio driver on simulated chips, from now on "
                f"({', '.join(vboard.boards_carried()[1:])}; {vboard.PLAIN_BOARD}: the virtual board's own "
                "simulated radio); kept in its flash (data/radio)",
            },
        ),
    ),
    actions=(("--reset", "hard-reset the running board (main.py runs)", _reset),),
)
register = COMMAND.register


if __name__ == "__main__":  # `dbch vboard` alone: how a background one is started
    sys.exit(command_main("vboard", register))

"""`dbch vboard`: start, serve, stop, reset or show a virtual board (host_tools.servers.vboard)."""

from __future__ import annotations

import argparse
import sys

from host_tools.cli.output import add_json_flag, emit
from host_tools.cli.server_args import add_server_parser, announce, command_main, run_action
from host_tools.servers import vboard
from host_tools.servers.vboard import VBoardInfo


def _describe(info: VBoardInfo) -> str:
    extra = "".join(f", {k} {v}" for k, v in (("baud", info.baud), ("heap", info.heap)) if v)
    return f"{info.name}: {info.port} (fs {info.fs}, pid {info.pid}{extra})"


def run_command(args: argparse.Namespace) -> int:
    if args.serve:
        ready = announce(args, VBoardInfo.to_json)
        return vboard.serve(args.name, fs=args.fs, baud=args.baud, heap=args.heap, on_ready=ready)
    if args.reset:
        info = vboard.reset(args.name)
        emit(args, info.to_json(), f"reset {_describe(info)}")
        return 0
    return run_action(
        args,
        vboard.REGISTRY,
        _describe,
        lambda: vboard.ensure_running(args.name, fs=args.fs, baud=args.baud, heap=args.heap),
    )


def register(subparsers) -> None:
    p = add_server_parser(
        subparsers,
        vboard.REGISTRY,
        help="run a virtual board (the MicroPython unix port on a pty)",
        description="Start (in the background), serve, stop or show a virtual board: the MicroPython unix "
        "port on a pty that mpremote, pyserial and terminal programs open like a board's serial port.",
        one="the board",
        fs="flash",
        more=(("--reset", "hard-reset the running board (main.py runs)"),),
    )
    p.add_argument("--baud", type=int, metavar="N", help="pace the link at N/10 bytes per second each way")
    p.add_argument("--heap", metavar="SIZE", help="MicroPython heap size, e.g. 128K, to emulate a small board")
    add_json_flag(p)
    p.set_defaults(func=run_command)


if __name__ == "__main__":  # `dbch vboard` alone: how a background one is started
    sys.exit(command_main("vboard", register))

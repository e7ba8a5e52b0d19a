"""What the commands of the background servers (`dbch vboard`, `dbch agent`) share: their parser
with its actions and options (--serve, --stop, --status, --list, --name, --fs), what --serve
prints once the server is up, the answers to the other actions, for a
host_tools.servers.registry.ServiceRegistry, and `python -m host_tools.cli.COMMAND`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from host_tools.cli import DbchParser, main
from host_tools.cli.output import emit
from host_tools.servers.registry import DEFAULT_NAME, ServiceRegistry


def add_server_parser(
    subparsers, registry: ServiceRegistry, *, help: str, description: str, one: str, fs: str, more: tuple = ()
) -> argparse.ArgumentParser:
    """The parser of `dbch COMMAND` (registry.command) with the actions (one of them at most) and
    options every server has; the caller adds its own, then --json. one: what the actions call
    the server ("the board"); fs: what its directory holds ("flash"); more: further actions
    (flag, help), listed before --list."""
    p = subparsers.add_parser(registry.command, help=help, description=description)
    act = p.add_mutually_exclusive_group()
    act.add_argument("--serve", action="store_true", help=f"run {one} in the foreground until Ctrl-C")
    act.add_argument("--stop", action="store_true", help=f"stop {one}")
    act.add_argument("--status", action="store_true", help=f"show {one} if it runs; do not start it")
    for flag, text in more:
        act.add_argument(flag, action="store_true", help=text)
    act.add_argument("--list", action="store_true", help=f"list running {registry.label}s")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"which {registry.label} (default: %(default)s)")
    p.add_argument("--fs", metavar="DIR", help=f"{fs} directory (default: <cache>/dbch/{registry.kind}/NAME/flash)")
    return p


def announce(args: argparse.Namespace, payload: Callable[[Any], dict]) -> Callable[[Any], None]:
    """The on_ready of --serve: the server's port (or payload(info) with --json), flushed at once
    (whoever started it waits for that line)."""

    def ready(info) -> None:
        emit(args, payload(info), info.port)
        sys.stdout.flush()

    return ready


def run_action(
    args: argparse.Namespace, registry: ServiceRegistry, describe: Callable[[Any], str], start: Callable[[], Any]
) -> int:
    """The --stop, --list and --status actions, or else start(): the server `args.name`, running
    (started if it was not), whose port is printed. describe(info) is the text line of one."""
    if args.stop:
        was = registry.stop(args.name)
        emit(
            args,
            {"name": args.name, "stopped": was},
            f"stopped {args.name}" if was else f"{args.name} was not running",
        )
        return 0
    if args.list:
        found = registry.list_running()
        text = "\n".join(describe(i) for i in found) or f"no {registry.label} runs"
        emit(args, [i.to_json() for i in found], text)
        return 0
    if args.status:
        info = registry.read_state(args.name)
        if info is None:
            emit(args, {"name": args.name, "running": False}, f"{args.name} is not running")
            return 3
        emit(args, info.to_json(), describe(info))
        return 0
    info = start()
    emit(args, info.to_json(), info.port)
    return 0


def command_main(command: str, register: Callable, argv: list[str] | None = None) -> int:
    """`python -m host_tools.cli.COMMAND ...`: `dbch COMMAND ...` with that command alone, which
    starts quicker than dbch with all of them (what ServiceRegistry starts a server with)."""
    parser = DbchParser(prog="dbch")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser))
    return main([command, *(sys.argv[1:] if argv is None else argv)], parser)

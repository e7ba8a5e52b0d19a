"""What the commands of the background servers share, for a
host_tools.servers.registry.ServiceRegistry: `dbch vboard` and `dbch agent` are each a
ServerCommand (the actions --serve, --stop, --status, --list and the options --name, --fs, what
--serve prints once the server is up, the answers to the other actions); `dbch triage` lists and
stops its tools the same way (list_servers, stop_server); each runs alone as `python -m
host_tools.cli.COMMAND` (command_main)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Callable

from host_tools.cli import DbchParser, main
from host_tools.cli.output import add_json_flag, emit
from host_tools.servers.registry import DEFAULT_NAME, ServiceRegistry


@dataclass(frozen=True)
class ServerCommand:
    """`dbch COMMAND` for one kind of server (registry.command): its parser and what it runs.

    help, description: the command's; one: what the actions call the server ("the board"); fs:
    what its directory holds ("flash"); options: the kind's own, (flag, argparse keywords), whose
    values go by name to serve and ensure_running; actions: further ones, (flag, help, run(args)
    -> exit status), listed before --list. --serve runs serve(name, fs=, on_ready=, **options),
    which prints the port (serving(info) with --json: default, the whole record); no action prints
    the port of ensure_running(name, fs=, **options); describe(info) is the text line of one.
    """

    registry: ServiceRegistry
    serve: Callable[..., Any]
    ensure_running: Callable[..., Any]
    describe: Callable[[Any], str]
    help: str
    description: str
    one: str
    fs: str
    options: tuple = ()
    actions: tuple = ()
    serving: Callable[[Any], dict] | None = None

    def register(self, subparsers) -> None:
        """The parser, with the actions (one of them at most) and options every server has."""
        registry, one = self.registry, self.one
        p = subparsers.add_parser(registry.command, help=self.help, description=self.description)
        act = p.add_mutually_exclusive_group()
        act.add_argument("--serve", action="store_true", help=f"run {one} in the foreground until Ctrl-C")
        act.add_argument("--stop", action="store_true", help=f"stop {one}")
        act.add_argument("--status", action="store_true", help=f"show {one} if it runs; do not start it")
        for flag, text, _ in self.actions:
            act.add_argument(flag, action="store_true", help=text)
        act.add_argument("--list", action="store_true", help=f"list running {registry.label}s")
        p.add_argument("--name", default=DEFAULT_NAME, help=f"which {registry.label} (default: %(default)s)")
        p.add_argument(
            "--fs", metavar="DIR", help=f"{self.fs} directory (default: <cache>/dbch/{registry.kind}/NAME/flash)"
        )
        for flag, keywords in self.options:
            p.add_argument(flag, **keywords)
        add_json_flag(p)
        p.set_defaults(func=self.run)

    def run(self, args: argparse.Namespace) -> int:
        options = {_dest(flag): getattr(args, _dest(flag)) for flag, _ in self.options}
        if args.serve:
            return self.serve(args.name, fs=args.fs, on_ready=self._announce(args), **options)
        for flag, _, run in self.actions:
            if getattr(args, _dest(flag)):
                return run(args)
        return self._answer(args, options)

    def _announce(self, args: argparse.Namespace) -> Callable[[Any], None]:
        """The on_ready of --serve: the server's port (or serving(info) with --json), flushed at
        once (whoever started it waits for that line)."""

        def ready(info) -> None:
            emit(args, self.serving(info) if self.serving else info.to_json(), info.port)
            sys.stdout.flush()

        return ready

    def _answer(self, args: argparse.Namespace, options: dict) -> int:
        """The --stop, --list and --status actions, or else the server `args.name`, running
        (started if it was not), whose port is printed."""
        registry, describe = self.registry, self.describe
        if args.stop:
            return stop_server(args, registry)
        if args.list:
            return list_servers(args, registry, describe)
        if args.status:
            info = registry.read_state(args.name)
            if info is None:
                emit(args, {"name": args.name, "running": False}, f"{args.name} is not running")
                return 3
            emit(args, info.to_json(), describe(info))
            return 0
        info = self.ensure_running(args.name, fs=args.fs, **options)
        emit(args, info.to_json(), info.port)
        return 0


def stop_server(args: argparse.Namespace, registry: ServiceRegistry) -> int:
    """Stop the server `args.name`, saying whether it was running."""
    was = registry.stop(args.name)
    emit(args, {"name": args.name, "stopped": was}, f"stopped {args.name}" if was else f"{args.name} was not running")
    return 0


def list_servers(args: argparse.Namespace, registry: ServiceRegistry, describe: Callable[[Any], str]) -> int:
    """The running servers, a line each (describe(info)) or their records with --json."""
    found = registry.list_running()
    text = "\n".join(describe(i) for i in found) or f"no {registry.label} runs"
    emit(args, [i.to_json() for i in found], text)
    return 0


def _dest(flag: str) -> str:
    """Where argparse keeps the value of `flag` ("--max-x": "max_x")."""
    return flag.lstrip("-").replace("-", "_")


def command_main(command: str, register: Callable, argv: list[str] | None = None) -> int:
    """`python -m host_tools.cli.COMMAND ...`: `dbch COMMAND ...` with that command alone, which
    starts quicker than dbch with all of them (what ServiceRegistry starts a server with)."""
    parser = DbchParser(prog="dbch")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser))
    return main([command, *(sys.argv[1:] if argv is None else argv)], parser)

"""`dbch triage serve | connect | dial | enrol | list | stop`: the Triage System Interface
(host_tools.servers.triage; its docstring is the command's --help)."""

from __future__ import annotations

import argparse
import sys
import threading

from host_tools import cli
from host_tools.cli.events import print_event, stopped_by_signals
from host_tools.cli.groups import add_group
from host_tools.cli.options import add_port_args, open_client
from host_tools.cli.output import CommandError, add_json_flag, emit
from host_tools.cli.pki import add_pki_dir
from host_tools.cli.server_args import command_main, list_servers, stop_server
from host_tools.link.agent import checked
from host_tools.security.pki import Pki, normalize_eui
from host_tools.servers import triage as triage_package
from host_tools.servers.triage import dial, enrol, shell, tool
from host_tools.servers.triage.addresses import DEFAULT_LISTEN, parse_hostport, parse_tool_address
from host_tools.servers.triage.credentials import expected_euis, tool_material
from host_tools.servers.triage.registry import (
    DEFAULT_NAME,
    PORT_PREFIX,
    REGISTRY,
    TriageInfo,
    port_name,
    port_spec,
    read_state,
)

# ----------------------------------------------------------------------------- dbch triage serve


def _event_text(kind: str, data: dict) -> str | None:
    if kind == "connected":
        return f"hub {data['eui']} connected from {data['addr']} ({data['version']}, {data['suite']})"
    if kind == "refused":
        return f"refused {data['addr']}: {data['kind']}: {data['detail']}"
    if kind == "dropped" and data.get("reason") == "summary":
        return (
            f"dropped {data['detail']} before authenticating: {data['counts']} ({data['handshakes']} handshakes held)"
        )
    if kind == "dropped":
        return f"dropped {data['addr']} before authenticating: {data['reason']}: {data['detail']}"
    if kind == "disconnected":
        return f"hub {data.get('eui')} disconnected: {data.get('reason')}"
    if kind == "replaced":
        return f"hub {(data.get('old') or {}).get('eui')} replaced by a new session of {data['by']}"
    return None


def _print_ready(args: argparse.Namespace, triage_tool: tool.TriageTool, info) -> None:
    spec = port_spec(info.name)
    if args.json:
        print_event(args, "triage", "ready", {"spec": spec, **info.to_json()}, _event_text)
        return
    print(
        f"triage tool {info.name} ({info.tool}) listening on {info.listen} for hub(s) {', '.join(info.expect)}\n"
        f"technicians: --port {spec}  (pty {info.port})",
        flush=True,
    )
    inc = info.incidents
    if triage_tool.restored and (inc.get("totals") or inc.get("number")):
        state = f"incident #{inc['number']} OPEN ({inc['trigger']})" if inc.get("open") else "none open"
        print(
            f"incidents restored from the last run: {state}, counts {inc.get('window') or {}}, "
            f"lifetime {inc.get('totals') or {}}",
            flush=True,
        )


def cmd_serve(args: argparse.Namespace) -> int:
    REGISTRY.check_name(args.name)
    name, cert, key, ca = tool_material(args.pki, args.tool)
    tool.serve(
        args.name,
        lambda triage_tool, info: _print_ready(args, triage_tool, info),
        tool=name,
        cert=cert,
        key=key,
        ca=ca,
        expect=expected_euis(args.pki, args.expect),
        listen=parse_hostport(args.listen),
        pki=str(Pki(args.pki).dir),
        handshake_timeout=args.handshake_timeout,
        max_handshakes=args.max_handshakes,
        max_handshakes_per_source=args.max_handshakes_per_source,
        on_event=lambda kind, data: print_event(args, "triage", kind, data, _event_text),
    )
    return 0


# ----------------------------------------------------------------------------- dbch triage connect


def _session_text(spec: str, s: dict) -> str:
    hub = s["hub"]
    if hub is None:
        head = f"triage tool {s['tool']} ({s['tool_cert']}) on {s['listen']}: waiting for a hub"
    else:
        head = (
            f"hub {hub['eui']} connected to triage tool {s['tool']} from {hub['addr']}\n"
            f"link      {hub['version']} {hub['suite']}, mutually authenticated\n"
            f"port      --port {spec}  (pty {s['pty']})"
        )
    lines = [head]
    h = s.get("hello")
    if h:
        lines.append(
            f"agent     {h.get('version')} on board {h.get('board')} ({h.get('band')} MHz), boot #{h.get('boot')}"
        )
    if s["refused"]:
        lines.append(f"refused   {s['refused']} connection(s); the last:")
        lines += [f"  {r['addr']} {r['kind']}: {r['detail']}" for r in s["last_refusals"]]
    return "\n".join(lines)


def _run_over(args: argparse.Namespace, words: list[str]) -> int:
    """One dbch command (words, e.g. ["config", "get"]) over the triage port: its exit status."""
    try:
        rc = cli.main(shell.command_argv(words, args.port, args.json, args.timeout))
    except SystemExit as e:  # argparse: a bad command line, already explained on stderr
        rc = int(e.code or 0) if isinstance(e.code, int) else 2
    sys.stdout.flush()
    return rc


def cmd_connect(args: argparse.Namespace) -> int:
    spec = args.port
    name = port_name(spec)
    info = read_state(name)
    if info is None:
        raise CommandError(f"no triage tool {name!r} is running: start it with `dbch triage serve --name {name}`")
    if args.words:
        return _run_over(args, args.words[1:] if args.words[0] == "--" else args.words)
    result = shell.session(info)
    if info.hub is not None:
        client = open_client(argparse.Namespace(port=spec, baud=115200, timeout=args.timeout))
        try:
            result["hello"] = checked(client, "hello").data
        finally:
            client.transport.close()
    emit(args, result, _session_text(spec, result))
    if not (args.interactive or (sys.stdin.isatty() and not args.json)):
        return 0 if info.hub is not None else 3
    interactive = sys.stdin.isatty()

    def read_line() -> str:
        if interactive:
            print(f"{spec}> ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline()

    def show_session() -> bool:
        now = read_state(name)
        if now is None:
            print(f"dbch: triage tool {name!r} has stopped", file=sys.stderr)
            return False
        emit(args, shell.session(now), _session_text(spec, shell.session(now)))
        return True

    return shell.run_shell(
        read_line, lambda words: _run_over(args, words), show_session, lambda text: print(text, file=sys.stderr)
    )


# ----------------------------------------------------------------------------- dial, enrol, list, stop


def cmd_dial(args: argparse.Namespace) -> int:
    options = {"timeout": args.timeout, "sessions": args.sessions, "max_failures": args.max_failures}
    hub = dial.Dial.from_pki(args.pki, args.eui, args.tool, args.connect, args.fs, retry_s=args.retry, **options)
    runtime = "micropython" if args.micropython else "cpython"
    if not args.json:
        print(
            f"hub {hub.eui} ({runtime}) dialling {hub.host}:{hub.port}, expecting triage tool {hub.peer}",
            file=sys.stderr,
            flush=True,
        )
    if args.micropython:
        result = dial.dial_micropython(hub)
        emit(args, result, f"hub {hub.eui} (micropython, {result.get('tls')}): outbox {result.get('outbox')} event(s)")
        return 0
    stopping = threading.Event()
    with stopped_by_signals(stopping):
        result = dial.dial(hub, stopping.is_set)
    number = result["incidents"]["number"]
    emit(args, result, f"hub {hub.eui}: {number} major incident(s), {result['outbox']} event(s) in the outbox")
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    if args.clear and (args.tool or args.hub or args.tool_name):
        raise CommandError(
            "--clear takes no --tool, --hub or --tool-name: it only makes the hub forget its triage link"
        )
    if not args.clear and not args.tool:
        raise CommandError("give --tool HOST:PORT (where the hub dials its Triage Tool), or --clear")
    address = parse_tool_address(args.tool) if not args.clear else None
    hub = normalize_eui(args.hub) if args.hub else None
    port = str(args.port)
    client = open_client(args)
    try:

        def request(op: str, data: dict | None = None):
            return checked(client, op, data)

        if args.clear:
            r = enrol.forget(request, port)
            emit(args, r, f"hub {r['eui']} on {port}: triage link forgotten ({r['rc']})")
            return 0
        r = enrol.enrol(request, port, args.pki, address, hub, args.tool_name)
    finally:
        client.transport.close()
    emit(
        args,
        r,
        f"hub {r['eui']} on {port} enrolled ({r['rc']}): it dials triage tool {r['peer']} at "
        f"{r['host']}:{r['tool_port']} over mutually authenticated TLS",
    )
    return 0


def _describe(i: TriageInfo) -> str:
    return f"{i.name}: {i.listen} as {i.tool}, pty {i.port}, hub {i.hub['eui'] if i.hub else '(none)'}, refused {i.refused}"


def cmd_list(args: argparse.Namespace) -> int:
    return list_servers(args, REGISTRY, _describe)


def cmd_stop(args: argparse.Namespace) -> int:
    return stop_server(args, REGISTRY)


# ----------------------------------------------------------------------------- the parsers


def register(subparsers) -> None:
    sub = add_group(
        subparsers,
        "triage",
        "the Triage System Interface: the facility's Triage Tool and a technician's session over TLS",
        triage_package.__doc__,
    )

    def action(name: str, help: str, func, **kwargs) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, **kwargs)
        p.set_defaults(func=func)
        return p

    p = action(
        "serve", "run the Triage Tool: accept the hub over TLS and expose its link as --port triage[:NAME]", cmd_serve
    )
    p.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="where hubs dial (default %(default)s)"
    )
    add_pki_dir(p)
    p.add_argument("--tool", metavar="NAME", help="the tool certificate to present (default: the only one in the PKI)")
    p.add_argument(
        "--expect",
        action="append",
        metavar="EUI",
        help="a hub EUI-64 to accept (repeatable; default: every hub with a certificate in the PKI)",
    )
    p.add_argument("--name", default=DEFAULT_NAME, help="this tool's name for --port triage:NAME (default %(default)s)")
    p.add_argument(
        "--handshake-timeout",
        type=float,
        default=tool.HANDSHAKE_TIMEOUT_S,
        help="seconds a connection may take to authenticate (default %(default)g)",
    )
    for flag, default, which in (
        ("--max-handshakes", tool.MAX_HANDSHAKES, "; over it the oldest goes"),
        ("--max-handshakes-per-source", tool.MAX_HANDSHAKES_PER_SOURCE, " from one address"),
    ):
        p.add_argument(
            flag,
            type=int,
            default=default,
            metavar="N",
            help=f"unauthenticated connections held at once{which} (default %(default)s)",
        )
    add_json_flag(p)

    p = action(
        "connect",
        "a technician's session over the triage link: the hub's identity, then commands",
        cmd_connect,
        description="Without COMMAND: show the connected hub and the link, then (on a terminal, or with -i) "
        "read commands one per line - status, config get, config set ..., alerts ... - and run them over "
        "the triage link. With COMMAND: run that one command, e.g. `dbch triage connect config get`.",
    )
    p.add_argument("--port", "-p", default=PORT_PREFIX, help="the Triage Tool: triage[:NAME] (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    p.add_argument(
        "-i", "--interactive", action="store_true", help="read commands from stdin even if it is no terminal"
    )
    add_json_flag(p)
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND ...", help="a dbch command to run over the link")

    p = action("dial", "run a simulated hub that dials a Triage Tool (CPython or MicroPython)", cmd_dial)
    p.add_argument(
        "--connect", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="the Triage Tool (default %(default)s)"
    )
    add_pki_dir(p)
    p.add_argument("--eui", help="the hub's EUI-64 (default: the only hub certificate in the PKI)")
    p.add_argument("--tool", metavar="NAME", help="the tool name the hub expects (default: the only tool in the PKI)")
    p.add_argument("--fs", metavar="DIR", help="the hub's storage directory (default: <cache>/dbch/triage-hub/EUI)")
    p.add_argument("--micropython", action="store_true", help="run the hub on the MicroPython unix port (mbedTLS)")
    p.add_argument("--sessions", type=int, help="end after this many sessions (default: dial again for ever)")
    p.add_argument("--max-failures", type=int, help="end after this many failed dials in a row")
    p.add_argument("--retry", type=float, default=5.0, help="seconds between dials (default 5)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for connect and handshake (default 10)")
    add_json_flag(p)

    p = action(
        "enrol",
        "give a hub its triage link: the Triage Tool's address and the hub's credentials from the PKI",
        cmd_enrol,
        description="Send a hub (--port) the configuration it needs to dial its Triage Tool itself: the "
        "tool's address (--tool HOST:PORT), the hub's own certificate and key and the CA from the PKI, and "
        "the name the tool's certificate must carry (one request, triage.set, answered I0). The hub's EUI is "
        "the one the board reports (--hub checks it). --clear makes the hub forget the link (triage.clear).",
    )
    add_port_args(p)
    add_pki_dir(p)
    p.add_argument("--tool", metavar="HOST:PORT", help="where the hub dials its Triage Tool")
    p.add_argument("--hub", metavar="EUI", help="the hub's EUI-64, checked against the board's (default: the board's)")
    p.add_argument(
        "--tool-name",
        metavar="NAME",
        help="the tool certificate name the hub expects (default: the only tool in the PKI)",
    )
    p.add_argument("--clear", action="store_true", help="make the hub forget its triage link instead")
    add_json_flag(p)

    add_json_flag(action("list", "list running Triage Tools", cmd_list))

    p = action("stop", "stop a Triage Tool", cmd_stop)
    p.add_argument("--name", default=DEFAULT_NAME, help="which one (default %(default)s)")
    add_json_flag(p)


if __name__ == "__main__":  # `dbch triage` alone: `python -m host_tools.cli.triage serve ...`
    sys.exit(command_main("triage", register))

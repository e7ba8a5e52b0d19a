"""`dbch ipsec up | down | status | watch | resolve | charon`: IPsec on the triage link
(host_tools.security.ipsec; its docstring is the command's --help)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from agent import incidents
from agent.triage import PolicyError
from host_tools.cli.events import print_event, stopped_by_signals
from host_tools.cli.groups import add_group
from host_tools.cli.output import CommandError, add_json_flag, emit
from host_tools.cli.pki import add_pki_dir
from host_tools.security import ipsec as ipsec_package
from host_tools.security.ipsec import ENV_SOCKET, SYSTEM_SOCKET, IpsecError, default_socket, state_root
from host_tools.security.ipsec.auth_failures import REFUSED_BY_PEER, REFUSED_PEER
from host_tools.security.ipsec.charon import Charon
from host_tools.security.ipsec.config import choose_ids
from host_tools.security.ipsec.connection import IpsecConnection, loaded_conns, terminate, unload
from host_tools.security.ipsec.incidents import STATE_FILE, IncidentStore
from host_tools.security.ipsec.sas import list_sas
from host_tools.security.ipsec.vici_session import as_text, vici_session
from host_tools.security.ipsec.watch import watch
from host_tools.security.pki import Pki


def _session(args: argparse.Namespace):
    return vici_session(args.socket or default_socket(), timeout=args.vici_timeout)


def _sa_text(sa: dict) -> list[str]:
    role = "initiator" if sa["initiator"] else "responder"
    up = f", up {sa['established_s']} s" if sa["established_s"] is not None else ""
    lines = [
        f"IKE_SA {sa['name']} #{sa['uniqueid']} {sa['state']} ({role}) "
        f"{sa['local']['host']}[{sa['local']['id']}] <-> {sa['remote']['host']}[{sa['remote']['id']}], "
        f"{sa['encr_alg']}/{sa['encr_keysize']} {sa['prf_alg']} {sa['dh_group']}{up}"
    ]
    for c in sa["children"]:
        traffic = ""
        if c["bytes_in"] is not None:
            traffic = f", in {c['bytes_in']} B/{c['packets_in'] or 0} pkts, out {c['bytes_out']} B/{c['packets_out'] or 0} pkts"
        encap = ", UDP-encapsulated" if c["encap"] else ""
        lines.append(
            f"  CHILD_SA {c['name']} #{c['uniqueid']} {c['state']} {c['protocol']} {c['mode'].lower()}, "
            f"{c['encr_alg']}/{c['encr_keysize']}{encap}, "
            f"{', '.join(c['local_ts'])} === {', '.join(c['remote_ts'])}{traffic}"
        )
    return lines


def cmd_up(args: argparse.Namespace) -> int:
    if not args.responder and not args.remote_addr:
        raise IpsecError("give --remote-addr (the peer's address) to initiate, or --responder to wait for the peer")
    store = Pki(args.pki)
    local, remote = choose_ids(store, args.responder, args.local, args.remote)
    try:
        conn = IpsecConnection.from_pki(
            store,
            local,
            remote,
            args.local_addr or ["%any"],
            args.remote_addr or ["%any"],
            args.local_ts or ["dynamic"],
            args.remote_ts or ["dynamic"],
            name=args.name,
        )
    except PolicyError as e:
        raise CommandError(str(e)) from e
    session = _session(args)
    print(f"ipsec: loading {args.name} ({conn.local_id} <-> {conn.remote_id}) into charon", file=sys.stderr)
    conn.load(session)
    result: dict = {
        "name": args.name,
        "role": "responder" if args.responder else "initiator",
        "local_id": conn.local_id,
        "remote_id": conn.remote_id,
        "local_addrs": conn.local_addrs,
        "remote_addrs": conn.remote_addrs,
    }
    if args.responder:
        result["sas"] = list_sas(session, args.name)
        text = (
            f"{args.name}: loaded as responder: {conn.local_id} accepts {conn.remote_id} "
            f"from {', '.join(conn.remote_addrs)} (`dbch ipsec watch` records failed authentications)"
        )
    else:
        print(f"ipsec: initiating {args.name} to {', '.join(conn.remote_addrs)}", file=sys.stderr)
        conn.initiate(session, args.timeout)
        conn.wait_installed(session, args.timeout)
        result["sas"] = list_sas(session, args.name)
        text = "\n".join([f"{args.name}: up"] + [line for sa in result["sas"] for line in _sa_text(sa)])
    emit(args, result, text)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    session = _session(args)
    loaded = args.name in loaded_conns(session)
    terminated = terminate(session, args.name, args.timeout)
    if loaded:
        unload(session, args.name)
    left = list_sas(session, args.name)
    result = {"name": args.name, "terminated": terminated, "unloaded": loaded, "sas": left}
    if loaded or terminated:
        text = (
            f"{args.name}: down ("
            + ", ".join(w for w, done in (("SAs terminated", terminated), ("connection unloaded", loaded)) if done)
            + ")"
        )
    else:
        text = f"{args.name} was not up (no such connection or SA in charon)"
    emit(args, result, text)
    return 0


def _incidents_text(s: dict) -> str:
    totals = ", ".join(f"{k} {v}" for k, v in sorted(s["totals"].items())) or "none"
    line = f"security incidents ({s['state']}): failed authentications: {totals}"
    if s["open"]:
        line += (
            f"\nOPEN Major Security Incident #{s['incidents']}: {s['trigger']} {s['window']}"
            f" ({'notified' if s['notified'] else 'announcement pending'}; close it with `dbch ipsec resolve`)"
        )
    for ev in s["last"]:
        line += f"\n  {ev.get('at')} {ev.get('kind')}: {ev.get('what')} {ev.get('remote_id') or '?'}"
        line += f" at {ev.get('remote_host') or '?'}: {ev.get('reason')}"
    return line


def cmd_status(args: argparse.Namespace) -> int:
    path = args.socket or default_socket()
    incidents = IncidentStore(args.state).summary()
    session = _session(args)
    version = {as_text(k): as_text(v) for k, v in session.version().items()}
    conns = loaded_conns(session)
    sas = list_sas(session, args.name)
    result = {
        "socket": str(path),
        "charon": version,
        "conns": conns,
        "sas": sas,
        "incidents": incidents,
    }
    lines = [f"charon {version.get('version', '?')} at {path}; connections loaded: {', '.join(conns) or 'none'}"]
    lines += [line for sa in sas for line in _sa_text(sa)] or ["no SA" + (f" for {args.name}" if args.name else "")]
    lines.append(_incidents_text(incidents))
    emit(args, result, "\n".join(lines))
    return 0


def _event_text(kind: str, data: dict) -> str | None:
    if kind == "ready":
        return f"watching charon at {data['socket']}; incidents in {data['state']} (so far: {data['totals'] or 'none'})"
    if kind == "failure":
        return (
            f"{data['kind']}: {data['what']} {data.get('remote_id') or '?'} at {data.get('remote_host') or '?'}"
            f" ({data.get('ike')}): {data['reason']}; counts {data['totals']}"
        )
    if kind == "lost":
        return f"charon went away ({data['error']}): waiting for it at {data['socket']}"
    if kind == "back":
        return f"charon is back at {data['socket']}"
    return None


def _thresholds(items: list[str] | None) -> dict[str, int]:
    out = {}
    for item in items or []:
        kind, sep, n = item.partition("=")
        if not sep or not kind or not n.isdigit() or int(n) < 1:
            raise IpsecError(f"--threshold {item!r}: give KIND=N, e.g. {incidents.AUTH_FAILED}=5 (N >= 1)")
        out[kind] = int(n)
    return out


def cmd_watch(args: argparse.Namespace) -> int:
    store = IncidentStore(args.state)
    stop = threading.Event()
    timer = threading.Timer(args.duration, stop.set) if args.duration else None
    try:
        with stopped_by_signals(stop):
            store.set_thresholds(_thresholds(args.threshold))
            if timer:
                timer.start()
            recorded = watch(
                args.socket or default_socket(), store, lambda k, d: print_event(args, "ipsec", k, d, _event_text), stop
            )
    except ValueError as e:  # a threshold agent.incidents.Incidents refuses
        raise CommandError(str(e)) from e
    finally:
        if timer:
            timer.cancel()
    summary = store.summary()
    if args.json:
        print(json.dumps({"event": "stopped", "recorded": recorded, **summary}, sort_keys=True), flush=True)
    else:
        print(f"ipsec: stopped; {recorded} failed authentication(s) recorded this run", file=sys.stderr)
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    report = IncidentStore(args.state).resolve()
    text = (
        f"Major Security Incident #{report['incident']} ({report['trigger']}) closed"
        if report
        else "no Major Security Incident is open"
    )
    emit(args, {"closed": report}, text)
    return 0


def cmd_charon(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise IpsecError("a private charon needs root (it installs routes and a TUN device): use sudo")
    workdir = Path(args.dir) if args.dir else state_root() / "charon"
    stop = threading.Event()
    with stopped_by_signals(stop), Charon(workdir, args.netns) as daemon:
        info = {"event": "ready", "socket": str(daemon.socket), "log": str(daemon.log), "netns": args.netns}
        if args.json:
            print(json.dumps(info, sort_keys=True), flush=True)
        else:
            print(f"charon running: --socket {daemon.socket} (log {daemon.log}); Ctrl-C stops it", flush=True)
        while not stop.wait(0.2):
            if daemon.proc is None or daemon.proc.poll() is not None:
                code = daemon.proc.returncode if daemon.proc else None
                raise IpsecError(f"charon exited with {code}: {daemon.diagnostics()}")
    if args.json:
        print(json.dumps({"event": "stopped", "socket": str(daemon.socket)}, sort_keys=True), flush=True)
    else:
        print("charon stopped", flush=True)
    return 0


def register(subparsers) -> None:
    sub = add_group(
        subparsers,
        "ipsec",
        "IPsec on the triage link: strongSwan (charon) over vici, with the `dbch pki` certificates",
        ipsec_package.__doc__,
    )

    def vici_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--socket",
            metavar="PATH",
            help=f"charon's vici socket (default ${ENV_SOCKET}, else {SYSTEM_SOCKET}, "
            "else that of `dbch ipsec charon`)",
        )
        p.add_argument("--vici-timeout", type=float, default=20.0, help=argparse.SUPPRESS)
        add_json_flag(p)

    def state_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state", metavar="FILE", help=f"the incident state file (default {state_root() / STATE_FILE})")

    p = sub.add_parser(
        "up",
        help="load certificates, key and connection into charon; initiate it (or wait as responder)",
        description="Load the triage CA, this end's certificate and key (from `dbch pki`) and the connection "
        "(IKEv2, certificates both ways, AES-GCM) into charon. A hub gateway initiates toward its Triage Tool "
        "and waits for the CHILD_SA; the Triage Tool at the facility uses --responder and waits for hubs.",
    )
    vici_args(p)
    add_pki_dir(p)
    p.add_argument(
        "--local",
        metavar="ID",
        help="this end's certificate: a hub's EUI-64 or a tool's name (default: the only hub in the PKI; "
        "with --responder the only tool)",
    )
    p.add_argument(
        "--remote",
        metavar="ID",
        help="the identity the peer must prove (default: the only tool in the PKI; with --responder the only hub)",
    )
    p.add_argument("--remote-addr", action="append", metavar="ADDR", help="the peer's address (repeatable)")
    p.add_argument("--local-addr", action="append", metavar="ADDR", help="this end's address (default %%any)")
    p.add_argument("--local-ts", action="append", metavar="CIDR", help="local traffic selector (default dynamic)")
    p.add_argument("--remote-ts", action="append", metavar="CIDR", help="remote traffic selector (default dynamic)")
    p.add_argument("--name", default="triage", help="the connection's name in charon (default %(default)s)")
    p.add_argument("--responder", action="store_true", help="load only: the peer initiates")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the SAs (default 15)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="terminate a connection's SAs and unload it")
    vici_args(p)
    p.add_argument("--name", default="triage", help="the connection (default %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the peer's answer (default 10)")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="the IKE and CHILD_SAs charon holds, and the security incidents recorded")
    vici_args(p)
    state_arg(p)
    p.add_argument("--name", help="only this connection's SAs")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "watch",
        help="record failed IKE authentications (from charon's vici events) as security incidents",
        description="Listen to charon's vici events until stopped (SIGTERM, Ctrl-C or --duration); record each "
        f"IKE_SA whose authentication failed: {REFUSED_PEER} when this end refused the peer, {REFUSED_BY_PEER} "
        "when the peer refused this end. A kind that reaches its threshold declares a Major Security Incident, "
        "announced once (stderr, or a JSON line with --json). Counts survive restarts in the state file.",
    )
    vici_args(p)
    state_arg(p)
    p.add_argument(
        "--threshold",
        action="append",
        metavar="KIND=N",
        help=f"events of KIND that declare a Major Security Incident (default {incidents.AUTH_FAILED}="
        f"{incidents.DEFAULT_THRESHOLDS[incidents.AUTH_FAILED]}, {incidents.LINK_REFUSED}="
        f"{incidents.DEFAULT_THRESHOLDS[incidents.LINK_REFUSED]}; kept in the state file)",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("resolve", help="close the open Major Security Incident (acknowledged and resolved)")
    state_arg(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser(
        "charon", help="run a private charon (root) until stopped, for machines without strongSwan's service"
    )
    p.add_argument(
        "--dir", metavar="DIR", help=f"its directory: strongswan.conf, socket, log (default {state_root() / 'charon'})"
    )
    p.add_argument("--netns", metavar="NS", help="run it inside this network namespace")
    add_json_flag(p)
    p.set_defaults(func=cmd_charon)

"""Client commands over the wire: `dbch status`, `dbch config get|set`, `dbch alerts`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from host_tools.cli import CommandError, add_json_flag, emit
from host_tools.link.connect import add_port_args, checked, open_client
from host_tools.paths import cache_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the agent's identity, configuration, channel, duty cycle and outbox")
    add_port_args(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("config", help="read or set the CHF Sub GHz Configuration")
    csub = p.add_subparsers(dest="config_cmd", metavar="get|set", required=True)
    g = csub.add_parser("get", help="print the configuration the agent holds")
    add_port_args(g)
    add_json_flag(g)
    g.set_defaults(func=cmd_config_get)
    s = csub.add_parser(
        "set",
        help="validate and apply a configuration",
        description="Start from --duis FILE (a SetCHFSubGHzConfiguration request), --file FILE (JSON "
        "keyed by DUIS item names) or the agent's current configuration, then apply --page and --set "
        "changes. The agent answers I0 or the DUIS response code (E062801/E062802/E062803).",
    )
    s.add_argument("--duis", metavar="FILE", help="a DUIS SetCHFSubGHzConfiguration request (SRV 6.28)")
    s.add_argument("--file", metavar="FILE", help="a JSON object keyed by DUIS data item names")
    s.add_argument(
        "--page",
        action="append",
        default=[],
        metavar="PAGE=CH,CH",
        help="channels for a page, e.g. --page 28=1,2 (empty: --page 31=)",
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ITEM=VALUE",
        help="one data item, e.g. --set NormalLimitedDutyCycleThreshold=1.3",
    )
    s.add_argument("--region", choices=("North", "Central", "South"), help="the hub's region (for the page 31 warning)")
    add_port_args(s)
    add_json_flag(s)
    s.set_defaults(func=cmd_config_set)

    p = sub.add_parser("alerts", help="receive the agent's upward alerts (acknowledging what is shown)")
    p.add_argument("--follow", "-f", action="store_true", help="keep receiving until interrupted")
    p.add_argument("--wait", type=float, default=2.0, help="seconds to listen without --follow (default 2)")
    p.add_argument("--format", choices=("json", "duis", "text"), default="text", help="how to print each alert")
    p.add_argument("--schema", help="DUIS schema folder, to validate --format duis output (or DBCH_DUIS_SCHEMA_DIR)")
    add_port_args(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_alerts)


# -- status ------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    client = open_client(args)
    r = checked(client, "status")
    if not r.ok:
        raise CommandError(f"status failed: {r.rc} {r.err or ''}")
    d = r.data
    ch = d.get("channel")
    duty = d.get("duty") or {}
    lines = [
        f"device    {d['eui']}  board {d.get('board')} ({d.get('band')} MHz)  agent {d['version']}  boot #{d.get('boot')}",
        f"config    {'masks ' + ' '.join(d['masks']) if d.get('masks') else 'not configured (dbch config set)'}",
        *(
            [f"          the stored configuration was not restored at boot: {d['config_restore']}"]
            if d.get("config_restore")
            else []
        ),
        f"channel   {'page %d channel %d (%.2f MHz)' % (ch['page'], ch['channel'], ch['hz'] / 1e6) if ch else 'none'}"
        f"  changes left this week: {d.get('changes_left')}",
        f"duty      {duty.get('state')} at {duty.get('permille', 0) / 10:.1f} % of the hour",
        f"outbox    {d.get('outbox')} alert(s) waiting for acknowledgement",
    ]
    emit(args, d, "\n".join(lines))
    return 0


# -- config ------------------------------------------------------------------------------------
def cmd_config_get(args: argparse.Namespace) -> int:
    client = open_client(args)
    r = checked(client, "config.get")
    if not r.ok:
        raise CommandError(f"config get failed: {r.rc} {r.err or ''}")
    if r.data is None:
        emit(args, None, "not configured (dbch config set)")
        return 0
    emit(args, r.data, "\n".join(f"{k:38s} {v}" for k, v in r.data.items()))
    return 0


_PAGE_ITEMS = {
    "28": "LowerBandSubGHzChannels0To26",
    "29": "LowerBandSubGHzChannels27To34",
    "30": "LowerBandSubGHzChannels35To61",
    "31": "UpperBandSubGHzChannels0To26",
}


def build_config(args: argparse.Namespace, current: dict | None) -> dict:
    """The configuration to send, from --duis/--file/current plus --page/--set changes."""
    if args.duis and args.file:
        raise CommandError("give --duis or --file, not both")
    if args.duis:
        from host_tools.duis.errors import DuisError
        from host_tools.duis.requests import parse_request

        try:
            req = parse_request(Path(args.duis).read_bytes())
        except (OSError, DuisError) as e:
            raise CommandError(f"cannot read {args.duis}: {e}") from e
        if req.service_reference_variant != "6.28":
            raise CommandError(
                f"{args.duis} is SRV {req.service_reference_variant}, not a SetCHFSubGHzConfiguration (6.28)"
            )
        mapping = dict(req.args)
    elif args.file:
        try:
            mapping = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as e:
            raise CommandError(f"cannot read {args.file}: {e}") from e
        if not isinstance(mapping, dict):
            raise CommandError(f"{args.file} must hold a JSON object keyed by DUIS item names")
    else:
        mapping = dict(current or {})
    for spec in args.page:
        page, _, chans = spec.partition("=")
        if page not in _PAGE_ITEMS or "=" not in spec:
            raise CommandError(f"--page {spec!r}: expected PAGE=CH,CH with PAGE 28-31")
        try:
            mapping[_PAGE_ITEMS[page]] = [int(c) for c in chans.split(",") if c.strip()]
        except ValueError as e:
            raise CommandError(f"--page {spec!r}: channels must be numbers") from e
    for spec in args.set:
        name, eq, value = spec.partition("=")
        if not eq:
            raise CommandError(f"--set {spec!r}: expected ITEM=VALUE")
        mapping[name] = int(value) if value.strip().lstrip("+-").isdigit() and "." not in value else value
    if not mapping:
        raise CommandError("no configuration to send: the agent has none yet, so give --duis FILE or --file FILE")
    return mapping


def cmd_config_set(args: argparse.Namespace) -> int:
    client = open_client(args)
    current = None
    if not (args.duis or args.file):
        current = checked(client, "config.get").data
    mapping = build_config(args, current)
    req = {"config": mapping}
    if args.region:
        req["region"] = args.region
    r = checked(client, "config.set", req)
    result = {"rc": r.rc, **(r.data or {})}
    if args.json:
        emit(args, result)
    else:
        for w in (r.data or {}).get("warnings", []):
            print(f"warning: {w['field']}: {w['message']}", file=sys.stderr)
        if r.ok:
            print(f"{r.rc}: configuration applied")
        elif r.rc == "E49":
            print(
                f"E49: the board could not take this request: {r.err or 'no reason given'}\n"
                "  E49 is the agent's answer to a request whose arguments do not have the operation's format,"
                " or that the board had no memory for. The configuration itself was not judged: check what"
                " is in force with dbch status, and if the board ran out of memory, reboot it (a virtual"
                " board: dbch vboard --reset; or give it a larger --heap) and send the configuration again.",
                file=sys.stderr,
            )
        else:
            print(f"{r.rc}: configuration refused", file=sys.stderr)
            for e in (r.data or {}).get("errors", []):
                print(f"  {e['field']}: {e['message']}", file=sys.stderr)
    return 0 if r.ok else 1


# -- alerts ------------------------------------------------------------------------------------
def seen_key(hello: dict) -> str:
    """Whose seqs a seen-set holds: the device's EUI and its outbox epoch (new on wiped storage)."""
    return hello["eui"].replace("-", "") + ("-" + hello["epoch"] if hello.get("epoch") else "")


def _seen_path(key: str) -> Path:
    return cache_dir("seen") / (key.replace("-", "_") + ".json")


def load_seen(key: str) -> set[int]:
    try:
        return set(json.loads(_seen_path(key).read_text()))
    except (OSError, ValueError):
        return set()


def save_seen(key: str, seen: set[int]) -> None:
    path = _seen_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted(seen)[-2000:]))
    tmp.replace(path)


def render(ev, fmt: str, schema: str | None = None) -> str:
    if fmt == "duis":
        from host_tools.duis.alerts import render_alert

        if ev.kind not in ("N54", "N64"):
            return f"<!-- agent event {ev.kind}: {json.dumps(ev.data, default=str)} -->"
        return render_alert(ev.kind, ev.data).decode()
    if fmt == "json":
        return json.dumps({"seq": ev.seq, "kind": ev.kind, "data": ev.data}, sort_keys=True, default=str)
    d = ev.data
    if ev.kind == "N54":
        from host_tools.duis import dcc_tables

        name = dcc_tables.GBCS_ALERTS.get(int(d["DeviceAlertCode"], 16), ("?",))[0]
        extra = f" {json.dumps(d['payload'], default=str)}" if d.get("payload") is not None else ""
        return f"#{ev.seq} N54 {d['DeviceAlertCode']} {d['rc']:3s} {name}{extra}"
    if ev.kind == "N64":
        return f"#{ev.seq} N64 I0  Comms Hub Firmware Activation: {d['DeviceID']} now runs {d['FirmwareVersion']}"
    return f"#{ev.seq} {ev.kind} {json.dumps(d, default=str)}"


def cmd_alerts(args: argparse.Namespace) -> int:
    client = open_client(args)
    hello = checked(client, "hello", {"events": True})
    if not hello.ok:
        raise CommandError(f"hello failed: {hello.rc} {hello.err or ''}")
    key = seen_key(hello.data)
    client.seen = load_seen(key)
    shown = []
    try:
        while True:
            for ev in client.poll_events(args.wait if not args.follow else 1.0):
                out = {"seq": ev.seq, "kind": ev.kind, "data": ev.data}
                shown.append(out)
                if not args.json:
                    print(render(ev, args.format, args.schema), flush=True)
                client.seen.add(ev.seq)
                save_seen(key, client.seen)
                client.ack(ev.seq)
            if not args.follow:
                break
    except KeyboardInterrupt:
        pass
    finally:
        save_seen(key, client.seen)
    if args.json:
        emit(args, shown)
    elif not shown:
        print("no new alerts", file=sys.stderr)
    return 0

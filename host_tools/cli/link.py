"""Commands over the link to an agent: `dbch status`, `dbch config get|set`, `dbch alerts`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from host_tools.cli.options import open_agent, port_command
from host_tools.cli.output import CommandError, emit
from host_tools.link.client import Event


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the agent's identity, configuration, channel, duty cycle and outbox")
    port_command(p, cmd_status)

    p = sub.add_parser("config", help="read or set the CHF Sub GHz Configuration")
    csub = p.add_subparsers(dest="config_cmd", metavar="get|set", required=True)
    port_command(csub.add_parser("get", help="print the configuration the agent holds"), cmd_config_get)
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
    port_command(s, cmd_config_set)

    p = sub.add_parser("alerts", help="receive the agent's upward alerts (acknowledging what is shown)")
    p.add_argument("--follow", "-f", action="store_true", help="keep receiving until interrupted")
    p.add_argument("--wait", type=float, default=2.0, help="seconds to listen without --follow (default 2)")
    p.add_argument("--format", choices=("json", "duis", "text"), default="text", help="how to print each alert")
    p.add_argument(
        "--schema",
        metavar="DIR",
        help="with --format duis: check each alert against the DUIS schema in DIR (default: "
        "$DBCH_DUIS_SCHEMA_DIR, else the schema of the DCC's npm package, fetched once); an alert "
        "that is not valid is shown as JSON, its errors go to stderr and the exit status is 1",
    )
    port_command(p, cmd_alerts)


# -- status ------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    d = open_agent(args).status()
    ch = d.get("channel")
    duty = d.get("duty") or {}
    radio = f", radio {d['radio']}" if d.get("radio") else ""  # the driver it transmits through
    lines = [
        f"device    {d['eui']}  board {d.get('board')} ({d.get('band')} MHz{radio})  agent {d['version']}  boot #{d.get('boot')}",
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
    config = open_agent(args).config()
    if config is None:
        emit(args, None, "not configured (dbch config set)")
        return 0
    emit(args, config, "\n".join(f"{k:38s} {v}" for k, v in config.items()))
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
    agent = open_agent(args)
    current = None
    if not (args.duis or args.file):
        current = agent.request("config.get").data
    r = agent.set_config(build_config(args, current), args.region)
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
def render(ev: Event, fmt: str, schema=None) -> str:
    """One alert as the user asked for it; DuisRenderError if DUIS XML valid against the schema
    (folder schema, else as host_tools.duis.schema finds one) cannot be made of it."""
    if fmt == "duis":
        from host_tools.duis.alerts import render_alert

        if ev.kind not in ("N54", "N64"):
            return f"<!-- agent event {ev.kind}: {json.dumps(ev.data, default=str)} -->"
        return render_alert(ev.kind, ev.data, schema=schema).decode()
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


def _schema_for(args: argparse.Namespace):
    # the DUIS schema folder --format duis output is checked against (--schema, else
    # $DBCH_DUIS_SCHEMA_DIR, else the copy fetched from the DCC's npm package), or None for the
    # other formats: found before any alert is taken, so that a wrong folder loses nothing
    from host_tools.duis.schema import load_schema, schema_dir

    if args.format != "duis":
        return None
    folder = schema_dir(args.schema)
    load_schema(folder)  # a folder whose schema does not load is refused here too
    return folder


def _problems(ev: Event, fmt: str, schema) -> tuple[str, list[str]]:
    # (what to show, what is wrong with it): an alert is acknowledged once shown, so one that
    # cannot be rendered or is not valid is still shown (as JSON) with the reason
    from host_tools.duis.errors import DuisRenderError

    try:
        text = render(ev, fmt, schema)
    except DuisRenderError as e:
        return render(ev, "json"), [f"cannot be rendered as DUIS: {e}"]
    if schema is None or ev.kind not in ("N54", "N64"):
        return text, []
    from host_tools.duis.schema import validate

    return text, validate(text, schema)


def cmd_alerts(args: argparse.Namespace) -> int:
    schema = _schema_for(args)
    agent = open_agent(args)
    agent.subscribe()
    shown = []
    bad = 0
    try:
        while True:
            for ev in agent.receive(args.wait if not args.follow else 1.0):
                entry = {"seq": ev.seq, "kind": ev.kind, "data": ev.data}
                text, problems = _problems(ev, args.format, schema)
                if args.format == "duis":
                    entry["xml"] = text
                if problems:
                    bad += 1
                    entry["problems"] = problems
                    what = f"{ev.kind} {ev.data.get('DeviceAlertCode', '')}".strip()
                    print(f"dbch: alert #{ev.seq} ({what}): {'; '.join(problems)}", file=sys.stderr)
                shown.append(entry)
                if not args.json:
                    print(text, flush=True)
            if not args.follow:
                break
    except KeyboardInterrupt:
        pass
    if args.json:
        emit(args, shown)
    elif not shown:
        print("no new alerts", file=sys.stderr)
    return 1 if bad else 0

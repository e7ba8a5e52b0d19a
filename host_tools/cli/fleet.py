"""`dbch fleet list|status|alerts|report`: every hub on an MQTT broker, whichever gateway serves it
(host_tools.fleet.view)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from host_tools.cli.events import stopped_by_signals
from host_tools.cli.output import CommandError, add_json_flag, emit
from host_tools.cli.pki import add_pki_dir

BROKER_ENV = "DBCH_BROKER"

DESCRIPTION = """\
The hubs that `dbch gateway` processes serve on an MQTT broker, seen from any machine that can
reach it with a certificate of the fleet's PKI: list (each hub's retained state and availability),
status (asked of each hub now), alerts (as they come, each once) and report (the Communications
Hub part of a SEC H17 report: device ID, make, model and firmware version, as CSV or JSON)."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker",
        default=os.environ.get(BROKER_ENV),
        metavar="mqtts://HOST:PORT",
        help=f"the fleet's MQTT broker (default ${BROKER_ENV})",
    )
    add_pki_dir(p)
    p.add_argument(
        "--identity", metavar="NAME", help="the PKI's tool certificate to connect with (default: the only one)"
    )
    add_json_flag(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fleet",
        help="every hub on an MQTT broker: list, status, alerts, H17 report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fsub = p.add_subparsers(dest="fleet_cmd", metavar="list|status|alerts|report", required=True)
    s = fsub.add_parser("list", help="each hub's availability, gateway, board, firmware and state")
    _common(s)
    s.set_defaults(func=cmd_list)
    s = fsub.add_parser("status", help="ask each online hub (or those named) for its status now")
    s.add_argument("eui", nargs="*", help="the hubs to ask (default: every online hub)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answers (default 10)")
    _common(s)
    s.set_defaults(func=cmd_status)
    s = fsub.add_parser("alerts", help="the alerts of every hub as they come, each once")
    s.add_argument("--follow", "-f", action="store_true", help="until Ctrl-C or SIGTERM")
    s.add_argument("--wait", type=float, default=2.0, help="seconds to listen without --follow (default 2)")
    s.add_argument(
        "--session",
        metavar="NAME",
        help="a persistent session: the broker keeps the alerts that come while this reader is away",
    )
    _common(s)
    s.set_defaults(func=cmd_alerts)
    s = fsub.add_parser("report", help="the Communications Hub part of a SEC H17 report (H17.5), CSV or JSON")
    s.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE (default: standard output)")
    _common(s)
    s.set_defaults(func=cmd_report)


def _view(args: argparse.Namespace, session: str | None = None):
    from host_tools.fleet.broker import Broker
    from host_tools.fleet.view import FleetView

    if not args.broker:
        raise CommandError(f"which broker? give --broker mqtts://HOST:PORT (or set ${BROKER_ENV})", code=2)
    broker = Broker.parse(args.broker)
    return FleetView(broker, broker.identity(args.pki, args.identity), session=session)


def cmd_list(args: argparse.Namespace) -> int:
    view = _view(args)
    try:
        hubs = view.snapshot()
    finally:
        view.close()
    table = [h.to_json() for h in hubs]
    online = sum(1 for h in hubs if h.availability == "online")
    lines = [f"{len(hubs)} hub(s) on {args.broker}: {online} online, {len(hubs) - online} not"]
    for h in table:
        duty = h.get("duty") if isinstance(h.get("duty"), dict) else {}
        lines.append(
            f"  {h['eui']}  {h['availability']:8} {h.get('gateway', ''):16} {h.get('board', '?'):22}"
            f" v{h.get('version', '?')}  {'configured' if h.get('configured') else 'not configured':14}"
            f" duty {duty.get('state', '?')}  outbox {h.get('outbox', '?')}"
        )
    emit(args, {"broker": args.broker, "hubs": table}, "\n".join(lines))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    view = _view(args)
    try:
        euis = [e.upper() for e in args.eui] or [h.eui for h in view.snapshot() if h.availability == "online"]
        answers = view.command(euis, "status", timeout=args.timeout)
    finally:
        view.close()
    failed = [e for e, a in answers.items() if not str(a.get("rc", "")).startswith("I")]
    lines = []
    for eui, a in sorted(answers.items()):
        if eui in failed:
            lines.append(f"  {eui}  {a.get('rc')} {a.get('err') or ''}")
            continue
        d = a.get("data") or {}
        duty = d.get("duty") if isinstance(d.get("duty"), dict) else {}
        lines.append(
            f"  {eui}  boot {d.get('boot', '?')}  channel {d.get('channel', '?')}  duty {duty.get('state', '?')}"
            f"  outbox {d.get('outbox', '?')}"
        )
    head = f"{len(answers)} hub(s) asked, {len(answers) - len(failed)} answered"
    emit(args, {"broker": args.broker, "hubs": answers}, "\n".join([head, *lines]))
    return 1 if failed else 0


def cmd_alerts(args: argparse.Namespace) -> int:
    view = _view(args, session=args.session)
    stop = threading.Event()
    count = 0
    try:
        with stopped_by_signals(stop):
            for alert in view.follow(None if args.follow else args.wait, stop):
                count += 1
                if args.json:
                    print(json.dumps(alert, sort_keys=True), flush=True)
                else:
                    print(f"{alert.get('eui')} #{alert.get('seq')} {alert.get('code')} {alert.get('kind')}", flush=True)
    finally:
        view.close()
    if not args.json:
        print(f"{count} alert(s)", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from host_tools.fleet.report import rows, to_csv

    view = _view(args)
    try:
        table = rows(view.snapshot())
    finally:
        view.close()
    text = json.dumps(table, indent=2) + "\n" if args.json else to_csv(table)
    if args.out:
        args.out.write_text(text)
        print(f"{len(table)} hub(s) written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

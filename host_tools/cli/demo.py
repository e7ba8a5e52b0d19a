"""`dbch demo`: the main job on a virtual board (host_tools.selftest.demo) and its report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from host_tools.cli.options import add_port_args
from host_tools.cli.output import CommandError, add_json_flag, notice, say
from host_tools.selftest import demo
from host_tools.selftest.demo import DEMO_CONFIG, DEMO_REGION, DUIS_KINDS, alert_name


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="flash the virtual board, configure it, drive it into duty-cycle alerts, activate firmware, report",
        description=demo.__doc__,
    )
    add_port_args(p)
    p.add_argument(
        "--no-flash", action="store_true", help="use the agent already on the board (and no firmware update)"
    )
    p.add_argument(
        "--format",
        choices=("table", "duis"),
        default="table",
        help="stdout: a short report (table, the default) or the alerts as DUIS XML documents (duis)",
    )
    p.add_argument("--out", metavar="DIR", help="also write each alert's DUIS document to DIR, e.g. 003-8F20-N54.xml")
    p.add_argument(
        "--schema",
        metavar="DIR",
        help="DUIS schema folder to check the documents against (default: as `dbch duis` finds one)",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    run = demo.run(
        args.port,
        flash=not args.no_flash,
        baud=args.baud,
        timeout=args.timeout,
        out=args.out,
        schema=args.schema,
        say=say,
        notice=notice,
    )
    if args.json:
        print(status_line(run.status), file=sys.stderr)
        print(
            json.dumps(
                {
                    "status": run.status,
                    "config": {
                        "rc": run.config_rc,
                        "region": DEMO_REGION,
                        "config": DEMO_CONFIG,
                        "masks": run.status["masks"],
                    },
                    "alerts": run.alerts,
                    "firmware": run.firmware,
                    "traffic_minutes": run.minutes,
                    "schema": str(run.schema) if run.schema else None,
                    "seconds": round(run.seconds, 1),
                },
                indent=2,
            )
        )
    elif args.format == "duis":
        print(status_line(run.status), file=sys.stderr)
        for a in run.alerts:
            print(a["xml"])
    else:
        print(report(run, args.out))
    if run.files and args.format == "duis":
        print(files_note(args.out, run.files), file=sys.stderr)
    say(f"== done in {run.seconds:.1f} s")
    if run.invalid:
        raise CommandError(
            f"{len(run.invalid)} DUIS document(s) not valid against the schema in {run.schema}: "
            + "; ".join(run.invalid[:5])
        )
    return 0


def status_line(status: dict) -> str:
    ch, duty = status["channel"], status["duty"]
    return (
        f"device {status['eui']} ({status['board']}, {status['band']} MHz), agent {status['version']}, "
        f"masks {' '.join(status['masks'])}, channel page {ch['page']} ch {ch['channel']}, "
        f"duty {duty['state']} {duty['permille'] / 10:.1f} %, outbox {status['outbox']}"
    )


def config_lines(rc: str, masks: list[str]) -> list[str]:
    """The configuration applied, in three lines: its response code, the masks, the limits."""
    from agent import subghz
    from host_tools.duis import dcc_tables

    cfg = DEMO_CONFIG
    pages = "  ".join(
        f"{page}:{mask} (ch {','.join(str(c) for c in cfg[name])})"
        for (name, page), mask in zip(subghz.CHANNEL_ITEMS, masks)
    )
    return [
        f"configuration  {rc} {dcc_tables.response_name(rc) or ''}: the DBCH04 example, region {DEMO_REGION}",
        f"  page:mask    {pages}",
        f"  limits       duty cycle limited at {cfg['NormalLimitedDutyCycleThreshold']} %, "
        f"critical at {cfg['LimitedCriticalDutyCycleThreshold']} % of the hour; "
        f"at most {cfg['MaximumSubGHzChannelChangesPerWeek']} channel changes a week",
    ]


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Plain text columns, each as wide as its widest cell (the last one not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def report(run: demo.Demo, out: str | None) -> str:
    """The default output: what a person reads after the run."""
    status, seen, fw = run.status, run.seen, run.firmware
    lines = [f"device {status['eui']} ({status['board']}, {status['band']} MHz) on {run.port}", ""]
    lines += config_lines(run.config_rc, status["masks"])
    lines.append("")
    rows = [("seq", "GBCS", "DCC", "DUIS", "when (UTC)", "during", "alert")]
    for a in seen:
        d = a.ev.data
        gbcs = f"0x{d['DeviceAlertCode']}" if a.ev.kind == "N54" else "-"
        rc = d.get("rc", "-") if a.ev.kind in DUIS_KINDS else "-"
        when = a.when.strftime("%H:%M:%S")
        rows.append((f"{a.ev.seq:>3}", gbcs, a.ev.kind, rc, when, a.during, alert_name(a.ev)))
    lines += columns(rows) if seen else ["no upward alerts"]
    lines.append("")
    if fw:
        n64 = [a for a in seen if a.ev.kind == "N64"]
        lines.append(
            f"firmware       {fw['from']} -> {fw['to']}, activated by FirmwareHash {fw['hash'][:8]}...{fw['hash'][-8:]}; "
            + (f"N64 {n64[-1].ev.data.get('rc', 'I0')} (seq {n64[-1].ev.seq})" if n64 else "no N64")
        )
    else:
        lines.append("firmware       not updated (--no-flash)")
    ch, duty = status["channel"], status["duty"]
    lines.append(
        f"status         agent {status['version']}, duty cycle {duty['state']} at {duty['permille'] / 10:.1f} %, "
        f"channel page {ch['page']} ch {ch['channel']}, outbox {status['outbox']}"
    )
    if out:
        lines.append(files_note(out, run.files))
    kinds = [a.ev.kind for a in seen if a.ev.kind in DUIS_KINDS]
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in DUIS_KINDS if k in kinds)
    if run.schema is None:
        checked_text = "DUIS not checked (no schema)"
    elif run.invalid:
        checked_text = f"{len(run.invalid)} DUIS document(s) NOT valid"
    else:
        checked_text = f"DUIS valid against the DUIS {schema_version(run.schema)} schema"
    lines += [
        "",
        f"{len(kinds)} alerts ({counts}) in {run.minutes} virtual minutes of traffic; {checked_text}; took {run.seconds:.1f} s",
    ]
    return "\n".join(lines)


def files_note(out: str, files: list[Path]) -> str:
    names = [f.name for f in files]
    text = f"DUIS files     {len(names)} in {out}:"
    lines, line = [], text
    for n in names:
        if len(line) + 1 + len(n) > 100:
            lines.append(line)
            line = " " * 14
        line += " " + n
    return "\n".join([*lines, line])


def schema_version(folder: Path) -> str:
    """The DUIS version of the schema a folder holds ("DUIS Schema V5.4.xsd" -> "5.4"), the
    highest if it holds several."""
    versions = [p.stem.rpartition("V")[2] for p in folder.glob("DUIS Schema V*.xsd")]
    return max(versions, key=lambda v: [int(n) for n in v.split(".") if n.isdigit()], default="?")

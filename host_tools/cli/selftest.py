"""`dbch selftest`: the conformance run (host_tools.selftest.checks) and its table."""

from __future__ import annotations

import argparse
import json

from host_tools.cli.options import port_command
from host_tools.selftest import checks
from host_tools.selftest.harness import FAIL, PASS, SKIP, Report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftest",
        help="conformance checks against a board: response codes, configuration, alerts, reboot",
        description=checks.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--schema", help="DUIS schema folder for the DUIS checks (default: $DBCH_DUIS_SCHEMA_DIR)")
    p.add_argument(
        "--reboot-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the agent after its reboot (default 30)",
    )
    port_command(p, cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    report = checks.run(
        args.port, baud=args.baud, timeout=args.timeout, schema=args.schema, reboot_timeout=args.reboot_timeout
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(format_table(report))
    return 0 if report.ok else 1


def format_table(report: Report) -> str:
    rows = [("check", "expected", "got", "result")]
    rows += [(c.name, c.expected, c.got, c.result) for c in report.checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for i, r in enumerate(rows):
        lines.append(f"{r[0]:{widths[0]}}  {r[1]:{widths[1]}}  {r[2]:{widths[2]}}  {r[3]}")
        if i == 0:
            lines.append("-" * (sum(widths) + 6 + 6))
    grouped: dict[str, list[str]] = {}  # one note per reason, naming every check it explains
    for c in report.checks:
        if c.result in (FAIL, SKIP) and c.detail:
            grouped.setdefault(c.detail, []).append(c.name)
    notes = [f"  {', '.join(names)}: {detail}" for detail, names in grouped.items()]
    if notes:
        lines += ["", "notes:", *notes]
    if report.drained:
        lines += [
            "",
            f"{len(report.drained)} alert(s) were waiting before the run; received and acknowledged:",
            *(f"  #{e['seq']} {e['kind']} {json.dumps(e['data'], default=str)}" for e in report.drained),
        ]
    d = report.device
    lines += [
        "",
        f"device {d.get('eui')} board {d.get('board')} on {report.port}: {report.count(PASS)} passed, "
        f"{report.count(FAIL)} failed, {report.count(SKIP)} skipped in {report.seconds:.1f} s",
    ]
    return "\n".join(lines)

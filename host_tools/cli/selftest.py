"""`dbch selftest`: the conformance run (host_tools.selftest.checks) and its table."""

from __future__ import annotations

import argparse
import json
import sys

from host_tools.cli.options import add_port_args, ports_of
from host_tools.cli.output import add_json_flag
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
    add_port_args(p, many=True)
    add_json_flag(p)
    p.set_defaults(func=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    ports = ports_of(args)
    if len(ports) > 1:
        return _selftest_many(args, ports)
    report = checks.run(
        ports[0], baud=args.baud, timeout=args.timeout, schema=args.schema, reboot_timeout=args.reboot_timeout
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(format_table(report))
    return 0 if report.ok else 1


def _selftest_many(args: argparse.Namespace, ports: list[str]) -> int:
    """Several boards side by side: each board's table under its port (with --json, one JSON
    object a line for each board as it ends), the failed boards named on stderr; exit status 1
    unless every board passed."""
    from functools import partial

    from host_tools.cli import _explanation
    from host_tools.duis.errors import DuisConfigError
    from host_tools.duis.schema import schema_dir
    from host_tools.link.side_by_side import side_by_side

    schema = args.schema
    try:
        schema = str(schema_dir(schema))  # found (or fetched) once, not by every board
    except DuisConfigError:
        pass  # each board's DUIS checks are skipped, saying why

    def done(i: int, report: Report | None, error: BaseException | None) -> None:
        if args.json:
            ev = {"event": "result", "port": str(ports[i]), "ok": report is not None and report.ok}
            ev.update({"report": report.to_json()} if report is not None else {"error": str(error)})
            print(json.dumps(ev, sort_keys=True, default=str), flush=True)

    run = partial(checks.run, baud=args.baud, timeout=args.timeout, schema=schema, reboot_timeout=args.reboot_timeout)
    results = side_by_side([partial(run, p) for p in ports], names=[f"selftest {p}" for p in ports], on_done=done)
    failed = []
    for port, (report, error) in zip(ports, results):
        if not args.json:
            print(f"== {port}\n" + (format_table(report) if report is not None else f"FAILED: {error}") + "\n")
        if report is None:
            why = _explanation(error)
            failed.append(f"  {port}: {error}" + ("\n    " + why.replace("\n", "\n    ") if why else ""))
        elif not report.ok:
            names = ", ".join(c.name for c in report.checks if c.result == FAIL)
            failed.append(f"  {port}: {report.count(FAIL)} check(s) failed: {names}")
    if failed:
        print(f"dbch: {len(failed)} of {len(ports)} boards failed:\n" + "\n".join(failed), file=sys.stderr)
        return 1
    return 0


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

"""`dbch firmware cpl-check`: the firmware versions devices report against the SMI and the Central
Products List (host_tools.firmware.cpl: DCC Alerts N49-N52)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from host_tools.cli.options import add_port_args, open_client
from host_tools.cli.output import CommandError, add_json_flag, emit
from host_tools.firmware import cpl
from host_tools.link.agent import checked


def register(fsub: argparse._SubParsersAction) -> None:
    p = fsub.add_parser(
        "cpl-check",
        help="compare reported firmware versions with the SMI and the CPL (DCC Alerts N49-N52)",
        description=cpl.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cpl", required=True, help="the Central Products List (.csv or .json)")
    p.add_argument("--smi", required=True, help="the devices' SMI records (.csv or .json)")
    p.add_argument(
        "--reported",
        action="append",
        default=[],
        metavar="EUI=VERSION",
        help="a version a device reported (repeatable); without it, ask the agent on --port",
    )
    p.add_argument("--source", choices=cpl.SOURCES, default="read", help="what reported it (default: read)")
    p.add_argument("--format", choices=("json", "duis"), default="json", help="findings as JSON or alerts as DUIS XML")
    p.add_argument("--schema", help="DUIS schema folder for --format duis (default: $DBCH_DUIS_SCHEMA_DIR)")
    add_port_args(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_cpl_check)


def cmd_cpl_check(args: argparse.Namespace) -> int:
    from agent.eui import format_eui, parse_eui

    catalogue = cpl.load_cpl(args.cpl)
    smi = {d.eui: d for d in cpl.load_smi(args.smi)}
    reported: list[tuple[str, str]] = []
    for spec in args.reported:
        eui, eq, version = spec.partition("=")
        if not eq:
            raise CommandError(f"--reported {spec!r}: expected EUI=VERSION")
        try:
            reported.append((format_eui(parse_eui(eui.strip())), version.strip()))
        except ValueError as e:
            raise CommandError(f"--reported {spec!r}: {e}") from e
    if not reported:
        hello = checked(open_client(args), "hello").data
        reported.append((hello["eui"], hello["version"]))
    findings = []
    for eui, version in reported:
        dev = smi.get(eui)
        if dev is None:
            raise CommandError(f"device {eui} is not in the SMI file {args.smi}")
        findings.append(cpl.check(dev, version, catalogue, args.source))
    if args.format == "duis":
        print("".join(cpl.alerts_xml(findings, args.schema)), end="")
    else:
        rows = [asdict(f) for f in findings]
        text = "\n".join(
            f"{f.eui} {f.model} SMI {f.smi_version} reported {f.reported}: {f.alert or 'no alert'} ({f.reason})"
            for f in findings
        )
        emit(args, rows, text if not args.json else None)
    return 1 if any(f.alert for f in findings) else 0

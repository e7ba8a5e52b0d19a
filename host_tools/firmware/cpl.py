"""Firmware versions against the Central Products List (CPL): DCC Alerts N49-N52.

`dbch firmware cpl-check --cpl FILE --smi FILE [--port P | --reported EUI=VERSION ...]
[--source read|activate|alert]` compares the firmware version a device reports with the one the
Smart Metering Inventory (SMI) records for it and, on a mismatch, raises the alert MP260 Table 2
gives (sr:FirmwareVersionMismatch, response code I0):

    N49  mismatch, reported by a Read Firmware Version request, and the reported version is on
         the CPL for the device model with status "Current"
    N50  mismatch (Read Firmware Version, Activate Firmware or the Future Dated Firmware
         Activation Alert), the reported version is on the CPL with status "Removed"
    N51  mismatch (same three sources), the reported version is not on the CPL
    N52  mismatch on a GPF, reported by a Read Firmware Version request

A mismatch reported by Activate Firmware (or its alert) on a "Current" CPL entry raises nothing:
it is the expected outcome of an update (the SMI is then updated). A GPF's N52 takes precedence
over the CPL rules for a read; other sources of a GPF follow N50/N51.

Files (UTF-8; .csv with a header row, or .json):
    CPL  model,version,status[,device_type]     status: Current | Removed
         JSON: [{"model", "version", "status", "device_type"?}] or {"entries": [...]}
    SMI  eui,model,version[,device_type]        device_type: CHF (default), GPF, ESME, ...
         JSON: [{"eui", "model", "version", "device_type"?}] or {"devices": [...]}
Versions are sr:FirmwareVersion strings (1 to 8 characters), compared exactly.
Output: one JSON object per device {eui, model, device_type, smi_version, reported, source,
cpl_status, alert (or null), reason}; with --format duis, each alert as a DCC Alert
(sr:FirmwareVersionMismatch) checked against the DUIS schema. Exit status 1 when an alert is
raised, 0 when none is.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.eui import format_eui, parse_eui
from host_tools.cli import CommandError, add_json_flag, emit
from host_tools.errors import DbchError

STATUSES = ("Current", "Removed")
SOURCES = ("read", "activate", "alert")
DEVICE_TYPES = ("ESME", "GSME", "GPF", "CHF", "HCALCS", "PPMID", "IHD", "CAD")


class CplError(DbchError, ValueError):
    pass


@dataclass(frozen=True)
class CplEntry:
    model: str
    version: str
    status: str
    device_type: str | None = None


@dataclass(frozen=True)
class SmiDevice:
    eui: str
    model: str
    version: str
    device_type: str = "CHF"


@dataclass
class Finding:
    eui: str
    model: str
    device_type: str
    smi_version: str
    reported: str
    source: str
    cpl_status: str | None
    alert: str | None
    reason: str


def _check_version(v: object, where: str) -> str:
    if not isinstance(v, str) or not 1 <= len(v) <= 8:
        raise CplError(f"{where}: firmware version {v!r} is not 1 to 8 characters")
    return v


def _rows(path: Path, list_key: str) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CplError(f"cannot read {path}: {e}") from e
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise CplError(f"{path}: not JSON: {e}") from e
        if isinstance(data, dict):
            data = data.get(list_key)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise CplError(f"{path}: expected a list of objects (or {{{list_key!r}: [...]}})")
        return data
    reader = csv.DictReader(io.StringIO(text))
    return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def load_cpl(path: str | Path) -> list[CplEntry]:
    path = Path(path)
    out = []
    for i, r in enumerate(_rows(path, "entries"), 1):
        where = f"{path} entry {i}"
        model = r.get("model")
        if not isinstance(model, str) or not model:
            raise CplError(f"{where}: no model")
        status = r.get("status")
        if status not in STATUSES:
            raise CplError(f"{where}: status must be Current or Removed, not {status!r}")
        dtype = r.get("device_type") or None
        if dtype is not None and dtype not in DEVICE_TYPES:
            raise CplError(f"{where}: unknown device type {dtype!r}")
        out.append(CplEntry(model, _check_version(r.get("version"), where), status, dtype))
    return out


def load_smi(path: str | Path) -> list[SmiDevice]:
    path = Path(path)
    out = []
    for i, r in enumerate(_rows(path, "devices"), 1):
        where = f"{path} device {i}"
        try:
            eui = format_eui(parse_eui(r.get("eui")))
        except (ValueError, TypeError) as e:
            raise CplError(f"{where}: {e}") from e
        model = r.get("model")
        if not isinstance(model, str) or not model:
            raise CplError(f"{where}: no model")
        dtype = r.get("device_type") or "CHF"
        if dtype not in DEVICE_TYPES:
            raise CplError(f"{where}: unknown device type {dtype!r}")
        out.append(SmiDevice(eui, model, _check_version(r.get("version"), where), dtype))
    return out


def lookup(cpl: list[CplEntry], model: str, version: str, device_type: str | None = None) -> CplEntry | None:
    for e in cpl:
        if e.model == model and e.version == version and (e.device_type in (None, device_type)):
            return e
    return None


def check(device: SmiDevice, reported: str, cpl: list[CplEntry], source: str = "read") -> Finding:
    """The finding (and alert, if any) for one reported version."""
    if source not in SOURCES:
        raise CplError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    _check_version(reported, f"device {device.eui}")
    entry = lookup(cpl, device.model, reported, device.device_type)
    status = entry.status if entry else None

    def f(alert: str | None, reason: str) -> Finding:
        return Finding(
            device.eui, device.model, device.device_type, device.version, reported, source, status, alert, reason
        )

    if reported == device.version:
        return f(None, "the reported version is the one in the SMI")
    if device.device_type == "GPF" and source == "read":
        return f("N52", "mismatch with the SMI on a GPF (Read Firmware Version)")
    if entry is None:
        return f("N51", f"mismatch with the SMI, and {reported} is not on the CPL for {device.model}")
    if entry.status == "Removed":
        return f("N50", f"mismatch with the SMI, and {reported} is on the CPL as Removed")
    if source == "read":
        return f("N49", f"mismatch with the SMI, and {reported} is on the CPL as Current")
    return f(None, f"{reported} is on the CPL as Current: the expected result of an activation (update the SMI)")


def render_xml(finding: Finding, when=None) -> bytes:
    """The DCC Alert (sr:FirmwareVersionMismatch) for a finding with an alert."""
    import xml.etree.ElementTree as ET

    from agent import dcc_tables
    from host_tools.duis import messages as duis

    if finding.alert not in ("N49", "N50", "N51", "N52"):
        raise CplError("no alert to render")
    q, sub = duis._q, duis._sub
    root = ET.Element(q(duis.SR_NS, "Response"), {"schemaVersion": duis.SCHEMA_VERSION})
    header = sub(root, duis.SR_NS, "Header")
    sub(header, duis.SR_NS, "ResponseCode", dcc_tables.allowed_response(finding.alert)[0])
    sub(header, duis.SR_NS, "ResponseDateTime", duis.utc_text(when))
    msg = sub(sub(root, duis.SR_NS, "Body"), duis.SR_NS, "DCCAlertMessage")
    sub(msg, duis.SR_NS, "DCCAlertCode", finding.alert)
    el = sub(sub(msg, duis.SR_NS, "DCCAlert"), duis.SR_NS, "FirmwareVersionMismatch")
    sub(el, duis.SR_NS, "DeviceID", finding.eui)
    sub(el, duis.SR_NS, "DeviceType", finding.device_type)
    sub(el, duis.SR_NS, "FirmwareVersionSMI", finding.smi_version)
    sub(el, duis.SR_NS, "FirmwareVersionDevice", finding.reported)
    return duis._serialise(root)


# -- command -------------------------------------------------------------------------------------
def register(fsub: argparse._SubParsersAction) -> None:
    from host_tools.cli.options import add_port_args

    p = fsub.add_parser(
        "cpl-check",
        help="compare reported firmware versions with the SMI and the CPL (DCC Alerts N49-N52)",
        description=__doc__,
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
    p.add_argument("--source", choices=SOURCES, default="read", help="what reported it (default: read)")
    p.add_argument("--format", choices=("json", "duis"), default="json", help="findings as JSON or alerts as DUIS XML")
    p.add_argument("--schema", help="DUIS schema folder for --format duis (default: $DBCH_DUIS_SCHEMA_DIR)")
    add_port_args(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_cpl_check)


def cmd_cpl_check(args: argparse.Namespace) -> int:
    try:
        cpl = load_cpl(args.cpl)
        smi = {d.eui: d for d in load_smi(args.smi)}
    except CplError as e:
        raise CommandError(str(e)) from e
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
        from host_tools.cli.options import open_client
        from host_tools.link.agent import checked

        r = checked(open_client(args), "hello")
        if not r.ok:
            raise CommandError(f"hello failed: {r.rc} {r.err or ''}")
        reported.append((r.data["eui"], r.data["version"]))
    findings = []
    for eui, version in reported:
        dev = smi.get(eui)
        if dev is None:
            raise CommandError(f"device {eui} is not in the SMI file {args.smi}")
        try:
            findings.append(check(dev, version, cpl, args.source))
        except CplError as e:
            raise CommandError(str(e)) from e
    if args.format == "duis":
        from host_tools.duis import messages as duis

        docs = []
        for fnd in findings:
            if fnd.alert is None:
                continue
            xml = render_xml(fnd)
            try:
                errors = duis.validate(xml, duis.schema_dir(args.schema))
            except duis.DuisConfigError as e:
                raise CommandError(str(e)) from e
            if errors:
                raise CommandError(f"rendered {fnd.alert} does not validate: {errors[0]}")
            docs.append(xml.decode())
        print("".join(docs), end="")
    else:
        rows = [asdict(f) for f in findings]
        text = "\n".join(
            f"{f.eui} {f.model} SMI {f.smi_version} reported {f.reported}: {f.alert or 'no alert'} ({f.reason})"
            for f in findings
        )
        emit(args, rows, text if not args.json else None)
    return 1 if any(f.alert for f in findings) else 0

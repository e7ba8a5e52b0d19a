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

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from agent.eui import format_eui, parse_eui
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


def render_xml(finding: Finding, when=None, schema: str | None = None) -> bytes:
    """The DCC Alert (sr:FirmwareVersionMismatch) for a finding with an alert, checked against
    the DUIS schema (folder schema, else as host_tools.duis.schema finds one); CplError if it
    does not validate."""
    from host_tools.duis import dcc_tables
    from host_tools.duis.alerts import dcc_alert
    from host_tools.duis.errors import DuisRenderError
    from host_tools.duis.schema import checked
    from host_tools.duis.xml import SR_NS, serialise, sub

    if finding.alert not in ("N49", "N50", "N51", "N52"):
        raise CplError("no alert to render")
    root, alert = dcc_alert(finding.alert, dcc_tables.allowed_response(finding.alert)[0], when)
    el = sub(alert, SR_NS, "FirmwareVersionMismatch")
    sub(el, SR_NS, "DeviceID", finding.eui)
    sub(el, SR_NS, "DeviceType", finding.device_type)
    sub(el, SR_NS, "FirmwareVersionSMI", finding.smi_version)
    sub(el, SR_NS, "FirmwareVersionDevice", finding.reported)
    try:
        return checked(serialise(root), schema, f"the {finding.alert} alert")
    except DuisRenderError as e:
        raise CplError(f"rendered {finding.alert} does not validate: {e}") from e


def alerts_xml(findings: list[Finding], schema: str | None = None) -> list[str]:
    """The DCC Alert of each finding that raises one, checked against the DUIS schema (folder
    schema, else $DBCH_DUIS_SCHEMA_DIR); CplError if one does not validate."""
    from host_tools.duis.schema import schema_dir

    folder = schema_dir(schema)
    return [render_xml(fnd, schema=folder).decode() for fnd in findings if fnd.alert is not None]

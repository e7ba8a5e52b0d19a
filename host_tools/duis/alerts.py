"""DCC Alerts: N54 (sr:DualBandCHAlert, the hub's GBCS alerts 0x8F20-0x8F2D) and N64
(sr:CommsHubFirmwareActivation), from the events the agent raises.

sr:Response/sr:Header needs only ResponseCode and ResponseDateTime (RequestID and ResponseID are
optional): a DCC Alert carries those two, plus ResponseID when given.
"""

from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from agent import codes
from host_tools.duis import dcc_tables
from host_tools.duis.config import channel_element, render_config_xml
from host_tools.duis.errors import DuisRenderError
from host_tools.duis.requests import split_request_id
from host_tools.duis.schema import checked
from host_tools.duis.times import utc_text
from host_tools.duis.xml import SR_NS, document, norm_eui, serialise, sub

# sr:CRAFlag: which kind of message the hub discarded. The agent may give the schema's text or a
# bool; a bool reads True -> "Response", False -> "Command" (the hub mostly relays commands to
# devices; the agent should carry the schema's text).
CRA_FLAGS = ("Command", "Response", "Alert")


def dcc_alert(
    alert_code: str, rc: str, when: dt.datetime | str | None = None, response_id: str | None = None
) -> tuple[ET.Element, ET.Element]:
    """The frame of a DCC Alert: (the sr:Response root, its sr:DCCAlert element to fill) - a
    header with ResponseID when given, ResponseCode and ResponseDateTime, and a DCCAlertMessage
    naming the alert code ("N54")."""
    root = document(SR_NS, "Response")
    header = sub(root, SR_NS, "Header")
    if response_id is not None:
        split_request_id(response_id)  # same shape as a RequestID
        sub(header, SR_NS, "ResponseID", response_id)
    sub(header, SR_NS, "ResponseCode", rc)
    sub(header, SR_NS, "ResponseDateTime", utc_text(when))
    message = sub(sub(root, SR_NS, "Body"), SR_NS, "DCCAlertMessage")
    sub(message, SR_NS, "DCCAlertCode", alert_code)
    return root, sub(message, SR_NS, "DCCAlert")


def _cra(value: Any) -> str:
    if isinstance(value, bool):
        return "Response" if value else "Command"
    if value in CRA_FLAGS:
        return value
    raise DuisRenderError("CRAFlag must be one of {} (or a bool), got {!r}".format(", ".join(CRA_FLAGS), value))


def _need(payload: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in payload:
            return payload[name]
    raise DuisRenderError("the payload needs {}, got {!r}".format(" or ".join(names), dict(payload)))


def _n54_payload(parent: ET.Element, code: int, kind: str | None, payload: Any) -> None:
    name = "0x{:04X}".format(code)
    if kind is None:
        if payload not in (None, {}):
            raise DuisRenderError("{} carries no payload, got {!r}".format(name, payload))
        return
    if payload is None and kind == "eui":
        return  # 8F20 with no device to name (only the hub's own traffic): the payload is optional
    if payload is None:
        raise DuisRenderError("{} needs a payload ({})".format(name, kind))
    if not isinstance(payload, Mapping):
        raise DuisRenderError("{} payload must be a mapping, got {!r}".format(name, payload))
    if kind == "eui":
        eui = _need(payload, "DeviceIDToSuspend", "eui")
        if eui is None:
            return  # no device to name: the payload is optional in sr:DualBandCHAlert
        el = sub(parent, SR_NS, "LimitedDutyCycleActionTaken")
        sub(el, SR_NS, "DeviceIDToSuspend", norm_eui(eui, "DeviceIDToSuspend"))
    elif kind == "channel":
        el = sub(parent, SR_NS, "SubGHzChannelChanged")
        channel_element(el, SR_NS, payload)
        sub(el, SR_NS, "ScanTrigger", str(_need(payload, "trigger", "ScanTrigger")))
    elif kind == "scan_outcome":
        el = sub(parent, SR_NS, "SubGHzChannelScanRequestAssessmentOutcome")
        sub(el, SR_NS, "StatusCode", str(_need(payload, "status", "StatusCode")))
        sub(el, SR_NS, "ScanTrigger", str(_need(payload, "trigger", "ScanTrigger")))
    elif kind == "config":
        parent.append(render_config_xml(payload, tag="SubGHzConfigurationChanged"))
    elif kind == "request":
        el = sub(parent, SR_NS, "MessageDiscardedDueToDutyCycleManagement")
        request_id = str(_need(payload, "request_id", "RequestID"))
        split_request_id(request_id)  # DuisParseError -> rendered below as a render error
        sub(el, SR_NS, "RequestID", request_id)
        sub(el, SR_NS, "CRAFlag", _cra(_need(payload, "cra", "CRAFlag")))
    elif kind == "eui_type":
        el = sub(parent, SR_NS, "NoMoreSubGHzDeviceCapacity")
        sub(el, SR_NS, "DeviceID", norm_eui(_need(payload, "DeviceID", "eui"), "DeviceID"))
        if payload.get("DeviceType") is not None:
            sub(el, SR_NS, "DeviceType", str(payload["DeviceType"]))
    else:  # pragma: no cover - dcc_tables.GBCS_ALERTS names only the kinds above
        raise DuisRenderError("{}: unknown payload kind {!r}".format(name, kind))


def _alert_code(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value), 16)
    except ValueError as e:
        raise DuisRenderError("DeviceAlertCode {!r} is not a hex alert code like '8F2A'".format(value)) from e


def event_time(data: Mapping[str, Any]) -> dt.datetime | None:
    """When the device raised an event: its data's "utc" (agent/outbox.py), or None if undated."""
    utc = data.get("utc")
    if utc is None:
        return None
    if isinstance(utc, bool) or not isinstance(utc, int) or not 0 <= utc < 253402300800:  # to 9999
        raise DuisRenderError("the event's time must be UTC seconds since 1970, not {!r}".format(utc))
    return dt.datetime.fromtimestamp(utc, dt.timezone.utc)


def render_alert(
    event_kind: str,
    data: Mapping[str, Any],
    *,
    response_id: str | None = None,
    when: dt.datetime | str | None = None,
    schema: str | os.PathLike[str] | None = None,
) -> bytes:
    """A DCC Alert: sr:Response / sr:Header (ResponseID when given, ResponseCode,
    ResponseDateTime) / sr:Body / sr:DCCAlertMessage (DCCAlertCode, DCCAlert).

    "N54" (sr:DualBandCHAlert), data as agent.alerts.n54 makes it: CHFDeviceID, DeviceAlertCode
    ("8F26"), rc (the one Table 42 allows: I0 or E59) and payload - 8F20 {"DeviceIDToSuspend"},
    8F26 {"page", "channel", "trigger"}, 8F28 {"status", "trigger"}, 8F2A the configuration
    mapping, 8F2C {"request_id", "cra"}, 8F2D {"DeviceID", "DeviceType"?}, others none.
    "N64" (sr:CommsHubFirmwareActivation): {"DeviceID", "FirmwareVersion"}, response code I0.
    ResponseDateTime is `when` if given, else the time the device raised the event (its "utc",
    UTC seconds, agent/outbox.py), else now (an event from an agent that did not date it).
    The alert is checked against the DUIS schema (`schema`, else as host_tools.duis.schema finds
    one) before it is returned: DuisRenderError for anything that would not make a schema-valid
    alert (a DeviceType or ScanTrigger outside the schema's enumeration included), DuisConfigError
    when no schema can be had.
    """
    if not isinstance(data, Mapping):
        raise DuisRenderError("alert data must be a mapping, got {!r}".format(data))
    if when is None:
        when = event_time(data)
    try:
        xml = _render_alert(event_kind, data, response_id, when)
    except DuisRenderError:
        raise
    except ValueError as e:  # a bad EUI, RequestID or time
        raise DuisRenderError("{}: {}".format(event_kind, e)) from e
    return checked(xml, schema, "the {} alert".format(event_kind))


def _render_alert(event_kind: str, data: Mapping[str, Any], response_id: str | None, when: Any) -> bytes:
    if event_kind == "N54":
        code = _alert_code(_need(data, "DeviceAlertCode"))
        entry = dcc_tables.GBCS_ALERTS.get(code)
        if entry is None:
            raise DuisRenderError("0x{:04X} is not a Dual Band CH alert (0x8F20-0x8F2D)".format(code))
        rc = data.get("rc", entry[1])
        if rc != entry[1]:
            raise DuisRenderError("N54 for 0x{:04X} carries {} (Table 42), not {}".format(code, entry[1], rc))
    elif event_kind == "N64":
        rc = data.get("rc", codes.SUCCESS)
        if rc not in dcc_tables.allowed_response("N64"):
            raise DuisRenderError("N64 carries I0, not {}".format(rc))
    else:
        raise DuisRenderError("can render DCC alerts N54 and N64, not {!r}".format(event_kind))
    root, alert = dcc_alert(event_kind, rc, when, response_id)
    if event_kind == "N54":
        el = sub(alert, SR_NS, "DualBandCHAlert")
        sub(el, SR_NS, "CHFDeviceID", norm_eui(_need(data, "CHFDeviceID"), "CHFDeviceID"))
        sub(el, SR_NS, "DeviceAlertCode", dcc_tables.gbcs_alert_hex(code))
        _n54_payload(el, code, entry[2], data.get("payload"))
    else:
        el = sub(alert, SR_NS, "CommsHubFirmwareActivation")
        sub(el, SR_NS, "DeviceID", norm_eui(_need(data, "DeviceID"), "DeviceID"))
        version = _need(data, "FirmwareVersion")
        if not isinstance(version, str) or not 1 <= len(version) <= 8:
            raise DuisRenderError("FirmwareVersion is 1 to 8 characters, got {!r}".format(version))
        sub(el, SR_NS, "FirmwareVersion", version)
    return serialise(root)

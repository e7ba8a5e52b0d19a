"""Reading DUIS Service Requests: the header, the Request ID, the body's arguments and the
signature (parse_request), after the schema when asked (read_request).

Signatures are noted, never verified: parse_request reports "absent", "placeholder" (the DCC
Boxed templates' DigestValue/SignatureValue "ZGVmYXVsdA==", base64 of "default") or "present",
with a warning in each case. Requests written here are unsigned (ds:Signature is optional).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from host_tools.duis.config import config_from_xml
from host_tools.duis.errors import DuisError, DuisParseError, DuisRenderError, DuisValidationError
from host_tools.duis.schema import schema_version, validate
from host_tools.duis.services import HUB_SERVICES, Service
from host_tools.duis.times import has_zone, utc_text
from host_tools.duis.xml import DS_NS, SR_NS, children, norm_eui, parse_xml, q, short_name, split_tag

# 11.3 with this ExecutionDateTime cancels a future dated activation (the DCC Boxed CS06
# cancellation template, CS06_11.3_CANCELLATION_SUCCESS_REQUEST_DUIS.XML, sends it).
CANCEL_EXECUTION = "3000-12-31T00:00:00Z"
SCHEDULE_ITEMS = (
    "ScheduleFrequency",
    "ScheduleStartDate",
    "ScheduleEndDate",
    "ScheduleExecutionStartTime",
    "DSPScheduledServiceReference",
    "DSPScheduledServiceReferenceVariant",
    "DeviceID",
)
PLACEHOLDER_SIGNATURE = "ZGVmYXVsdA=="  # base64 "default", the DCC Boxed templates' placeholder

SIGNATURE_ABSENT = "absent"
SIGNATURE_PLACEHOLDER = "placeholder"
SIGNATURE_PRESENT = "present"


@dataclass
class DuisRequest:
    """A DUIS Service Request as read by parse_request."""

    request_id: str  # "ORIGINATOR-EUI:TARGET-EUI:counter", EUIs upper-case
    originator: str
    target: str
    counter: int
    service_reference: str
    service_reference_variant: str
    command_variant: int
    body: str  # local name of the sr:Body child; "{ns}name" outside the sr namespace; "" if none
    args: dict[str, Any]
    signature: str  # SIGNATURE_ABSENT, SIGNATURE_PLACEHOLDER or SIGNATURE_PRESENT
    warnings: list[str] = field(default_factory=list)
    schema_version: str = ""

    @property
    def service(self) -> Service | None:
        """The hub service named by the Service Reference Variant, if it is one of this hub's."""
        return HUB_SERVICES.get(self.service_reference_variant)


# -- Request IDs -------------------------------------------------------------------------------

_REQUEST_ID = re.compile(r"((?:[0-9A-Fa-f]{2}-){7}[0-9A-Fa-f]{2}):((?:[0-9A-Fa-f]{2}-){7}[0-9A-Fa-f]{2}):([0-9]+)")
_UINT64 = 2**64 - 1


def split_request_id(request_id: str) -> tuple[str, str, int]:
    """'ORIG:TARGET:counter' -> (originator EUI, target EUI, counter); DuisParseError if not one."""
    m = _REQUEST_ID.fullmatch(request_id.strip())
    if not m or int(m.group(3)) > _UINT64:
        raise DuisParseError(
            "RequestID {!r} is not originatorEUI:targetEUI:counter (EUIs as XX-XX-XX-XX-XX-XX-XX-XX, "
            "counter 0..2^64-1)".format(request_id)
        )
    return m.group(1).upper(), m.group(2).upper(), int(m.group(3))


def make_request_id(originator_eui: Any, target_eui: Any, counter: int) -> str:
    if isinstance(counter, bool) or not isinstance(counter, int) or not 0 <= counter <= _UINT64:
        raise DuisRenderError("counter must be an int in 0..2^64-1, got {!r}".format(counter))
    return "{}:{}:{}".format(norm_eui(originator_eui, "originator"), norm_eui(target_eui, "target"), counter)


# -- reading -----------------------------------------------------------------------------------


def _header_text(header: ET.Element, name: str, required: bool = True) -> str | None:
    el = header.find(q(SR_NS, name))
    if el is None or not (el.text or "").strip():
        if required:
            raise DuisParseError("the request header has no sr:{}".format(name))
        return None
    return el.text.strip()


def _signature_state(root: ET.Element) -> str:
    sig = root.find(q(DS_NS, "Signature"))
    if sig is None:
        return SIGNATURE_ABSENT
    values = [
        (el.text or "").strip() for el in sig.iter() if el.tag in (q(DS_NS, "DigestValue"), q(DS_NS, "SignatureValue"))
    ]
    if values and all(v == PLACEHOLDER_SIGNATURE for v in values):
        return SIGNATURE_PLACEHOLDER
    return SIGNATURE_PRESENT


_SIGNATURE_WARNINGS = {
    SIGNATURE_ABSENT: "unsigned request: no ds:Signature (signatures are not verified by this front)",
    SIGNATURE_PLACEHOLDER: (
        "placeholder signature: DigestValue/SignatureValue are the DCC Boxed templates' 'ZGVmYXVsdA==' "
        "(base64 'default'), not a real signature"
    ),
    SIGNATURE_PRESENT: "signature present but not verified (signature verification is out of scope)",
}


def _firmware_args(el: ET.Element, warnings: list[str]) -> dict[str, Any]:
    hash_el = el.find(q(SR_NS, "FirmwareHash"))
    text = (hash_el.text or "").strip() if hash_el is not None else ""
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise DuisParseError("ActivateFirmware: FirmwareHash must be 32 bytes as 64 hex digits, got {!r}".format(text))
    when_el = el.find(q(SR_NS, "ExecutionDateTime"))
    execution = None
    if when_el is not None:
        raw = (when_el.text or "").strip()
        try:
            execution = utc_text(raw)
        except DuisError as e:
            raise DuisParseError("ActivateFirmware: ExecutionDateTime {}".format(e)) from e
        if not has_zone(raw):
            warnings.append("ExecutionDateTime {!r} has no time zone: read as UTC".format(raw))
    return {"hash": digest, "execution": execution, "cancel": execution == CANCEL_EXECUTION}


def _log_period(el: ET.Element) -> dict[str, Any]:
    period = el.find(q(SR_NS, "ReadLogPeriod"))
    out: dict[str, Any] = {}
    for name, key in (("StartDateTime", "start"), ("EndDateTime", "end")):
        item = period.find(q(SR_NS, name)) if period is not None else None
        if item is None:
            raise DuisParseError("ReadCHFSubGHzChannelLog: ReadLogPeriod has no {}".format(name))
        try:
            out[key] = utc_text((item.text or "").strip())
        except DuisError as e:
            raise DuisParseError("ReadCHFSubGHzChannelLog: {} {}".format(name, e)) from e
    if out["end"] < out["start"]:  # same form (UTC, Z): text order is time order
        raise DuisParseError("ReadCHFSubGHzChannelLog: EndDateTime {end} is before StartDateTime {start}".format(**out))
    return out


def _schedule_args(el: ET.Element) -> dict[str, Any]:
    """A CreateSchedule's data items as text: the ones host_tools.duis.schedule validates, the
    scheduled service and device, and the name of the scheduled request element."""
    out: dict[str, Any] = {}
    for child in children(el):
        ns, name = split_tag(child.tag)
        if ns != SR_NS:
            continue
        if name in SCHEDULE_ITEMS:
            out[name] = (child.text or "").strip()
        else:
            out["ScheduledRequest"] = name
    return out


def parse_request(xml: bytes | str) -> DuisRequest:
    """Read a DUIS sr:Request (without checking it against the schema: see validate and
    read_request). DuisParseError when the XML is not well-formed, the root is not sr:Request, a
    header item is missing or malformed, or an ActivateFirmware hash or time cannot be read.

    args by body: SetCHFSubGHzConfiguration -> the configuration mapping (config_from_xml);
    ActivateFirmware -> {"hash": 32 bytes, "execution": UTC ISO text or None, "cancel": bool};
    ReadCHFSubGHzChannelLog -> {"start", "end"}: UTC ISO text; ReadFirmwareVersion ->
    {"execution"} when future dated; CreateSchedule -> its data items as text (SCHEDULE_ITEMS) and
    "ScheduledRequest", the scheduled request's element name; others -> {}.
    """
    root = parse_xml(xml)
    if root.tag != q(SR_NS, "Request"):
        ns, name = split_tag(root.tag)
        raise DuisParseError(
            "not a DUIS request: the root element is {}, expected sr:Request in namespace {}".format(
                short_name(root.tag) if ns else name, SR_NS
            )
        )
    header = root.find(q(SR_NS, "Header"))
    if header is None:
        raise DuisParseError("the request has no sr:Header")
    request_id = _header_text(header, "RequestID")
    originator, target, counter = split_request_id(request_id)
    cv_text = _header_text(header, "CommandVariant")
    if not cv_text.isdigit():
        raise DuisParseError("CommandVariant {!r} is not a number".format(cv_text))
    sr = _header_text(header, "ServiceReference")
    srv = _header_text(header, "ServiceReferenceVariant")
    body_el = root.find(q(SR_NS, "Body"))
    items = children(body_el) if body_el is not None else []
    body, args = "", {}
    warnings: list[str] = []
    if items:
        ns, name = split_tag(items[0].tag)
        body = name if ns == SR_NS else items[0].tag
        if body == "SetCHFSubGHzConfiguration":
            args = config_from_xml(items[0])
        elif body == "ActivateFirmware":
            args = _firmware_args(items[0], warnings)
        elif body == "ReadCHFSubGHzChannelLog":
            args = _log_period(items[0])
        elif body == "ReadFirmwareVersion":
            when_el = items[0].find(q(SR_NS, "ExecutionDateTime"))
            if when_el is not None:
                try:
                    args = {"execution": utc_text((when_el.text or "").strip())}
                except DuisError as e:
                    raise DuisParseError("ReadFirmwareVersion: ExecutionDateTime {}".format(e)) from e
        elif body == "CreateSchedule":
            args = _schedule_args(items[0])
    signature = _signature_state(root)
    warnings.insert(0, _SIGNATURE_WARNINGS[signature])
    return DuisRequest(
        request_id="{}:{}:{}".format(originator, target, counter),
        originator=originator,
        target=target,
        counter=counter,
        service_reference=sr,
        service_reference_variant=srv,
        command_variant=int(cv_text),
        body=body,
        args=args,
        signature=signature,
        warnings=warnings,
        schema_version=root.get("schemaVersion", ""),
    )


def read_request(xml: bytes | str, directory: str | os.PathLike[str] | None = None) -> DuisRequest:
    """parse_request after checking the XML against the schema; DuisValidationError (with the
    schema errors) if it does not validate, DuisParseError if it is not well-formed."""
    parse_xml(xml)  # a malformed document is a parse error, not a schema error
    errors = validate(xml, directory)
    if errors:
        raise DuisValidationError(errors, schema_version(directory))
    return parse_request(xml)

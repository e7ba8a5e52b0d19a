"""Service Responses to a request toward this hub: sr:Response, as DUIS answers every Service
Request, and nothing else (the DCC's DUIS reader, @smartdcc/duis-parser, reads each of them).

Three forms, all sr:Response / sr:Header (RequestID, ResponseID when given, ResponseCode,
ResponseDateTime) / sr:Body / sr:ResponseMessage (ServiceReference, ServiceReferenceVariant, then):
    ACK          nothing more: an Acknowledgement (I99), an error code, or a success without data
                 (6.28, 6.29, 11.3)
    PAYLOAD      sr:GBCSPayload, the device's answer (6.30, 6.31, 6.32, 11.2; and 11.3 when the
                 device refuses the image: GBCS's activateImageResponseCode)
    SCHEDULE_ID  sr:DSPScheduleID, the DCC's answer to CreateSchedule (5.1)

The schema's sr:Response carries a device's answer only as the opaque base64 GBCSPayload, and this
project has no GBCS encoder. So the GBCSPayload here holds the board's answer as canonical CBOR
(RFC 8949, agent/cbor.py): a map naming the DUIS data items it carries, e.g. {"srv": "6.31",
"OperatingSubGHzChannel": {"page": 29, "channel": 3}}. A User's GBCS parser will not read it;
payload_data() reads it back. Every document is checked against the schema before it is returned
(host_tools.duis.schema.checked): DuisRenderError rather than invalid XML.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from agent import cbor, codes
from host_tools.duis.dcc_tables import RESPONSE_CODES
from host_tools.duis.errors import DuisError, DuisParseError, DuisRenderError
from host_tools.duis.requests import DuisRequest, split_request_id
from host_tools.duis.schema import checked
from host_tools.duis.times import utc_text
from host_tools.duis.xml import SR_NS, children, document, parse_xml, q, serialise, split_tag, sub

# render_response body kinds
ACK = "ack"
PAYLOAD = "payload"
SCHEDULE_ID = "schedule_id"
BODY_KINDS = (ACK, PAYLOAD, SCHEDULE_ID)
# the Service Reference Variants whose successful Service Response carries the device's answer
DATA_SERVICES = ("6.30", "6.31", "6.32", "11.2")
SCHEDULE_ID_MAX = 1000000000000  # sr:scheduleID


def payload_bytes(srv: str, data: Mapping[str, Any]) -> bytes:
    """The GBCSPayload's bytes: canonical CBOR of {"srv": srv, **data}."""
    if not isinstance(data, Mapping):
        raise DuisRenderError("a payload is a mapping of DUIS data items, got {!r}".format(data))
    try:
        return cbor.dumps({"srv": srv, **data})
    except (cbor.CBORError, TypeError, ValueError) as e:
        raise DuisRenderError("the payload cannot be encoded: {}".format(e)) from e


def render_response(
    req: DuisRequest,
    rc: str,
    body_kind: str | None = None,
    data: Any = None,
    *,
    when: dt.datetime | str | None = None,
    response_id: str | None = None,
    schema: str | os.PathLike[str] | None = None,
) -> bytes:
    """The sr:Response to `req` with response code `rc`.

    body_kind ACK: no data. PAYLOAD: data is the mapping the GBCSPayload carries (see the module
    notes). SCHEDULE_ID: data is the DSPScheduleID (an int). None: PAYLOAD when data is given
    for an I0 answer to a data service (DATA_SERVICES), else ACK. ResponseDateTime is `when`,
    else now. schema: the folder checked against (else as host_tools.duis.schema finds one).
    """
    if rc not in RESPONSE_CODES:
        raise DuisRenderError("unknown response code {!r}".format(rc))
    try:
        stamp = utc_text(when)
    except DuisError as e:
        raise DuisRenderError("when: {}".format(e)) from e
    srv = req.service_reference_variant
    if body_kind is None:
        body_kind = PAYLOAD if rc == codes.SUCCESS and data is not None and srv in DATA_SERVICES else ACK
    if body_kind not in BODY_KINDS:
        raise DuisRenderError("body_kind must be one of {}, got {!r}".format(", ".join(BODY_KINDS), body_kind))
    if body_kind != ACK and not RESPONSE_CODES[rc][1] == "I":
        raise DuisRenderError("only a success carries data; render {} as {!r}".format(rc, ACK))
    root = document(SR_NS, "Response")
    header = sub(root, SR_NS, "Header")
    sub(header, SR_NS, "RequestID", req.request_id)
    if response_id is not None:
        try:
            split_request_id(response_id)
        except DuisParseError as e:
            raise DuisRenderError("ResponseID: {}".format(e)) from e
        sub(header, SR_NS, "ResponseID", response_id)
    sub(header, SR_NS, "ResponseCode", rc)
    sub(header, SR_NS, "ResponseDateTime", stamp)
    message = sub(sub(root, SR_NS, "Body"), SR_NS, "ResponseMessage")
    sub(message, SR_NS, "ServiceReference", req.service_reference)
    sub(message, SR_NS, "ServiceReferenceVariant", srv)
    if body_kind == PAYLOAD:
        if data is None:
            raise DuisRenderError("a {} response needs the device's answer".format(srv))
        sub(message, SR_NS, "GBCSPayload", base64.b64encode(payload_bytes(srv, data)).decode("ascii"))
    elif body_kind == SCHEDULE_ID:
        if isinstance(data, bool) or not isinstance(data, int) or not 0 <= data <= SCHEDULE_ID_MAX:
            raise DuisRenderError("a DSPScheduleID is an int 0..{}, got {!r}".format(SCHEDULE_ID_MAX, data))
        sub(message, SR_NS, "DSPScheduleID", str(data))
    return checked(serialise(root), schema, "the {} response to {}".format(rc, srv))


def payload_data(xml: bytes | str) -> dict[str, Any] | None:
    """The mapping a Service Response's GBCSPayload carries (as render_response wrote it), or
    None if it carries none; DuisParseError if it is not a response or the payload is not ours."""
    root = parse_xml(xml)
    if root.tag != q(SR_NS, "Response"):
        raise DuisParseError("not an sr:Response: {}".format(root.tag))
    payload = root.find("{0}Body/{0}ResponseMessage/{0}GBCSPayload".format("{%s}" % SR_NS))
    if payload is None:
        return None
    try:
        data = cbor.loads(base64.b64decode((payload.text or "").strip(), validate=True))
    except (ValueError, cbor.CBORError) as e:
        raise DuisParseError("the GBCSPayload is not one this front wrote: {}".format(e)) from e
    if not isinstance(data, dict):
        raise DuisParseError("the GBCSPayload is not a map")
    return data


def response_code(xml: bytes | str) -> str:
    """The ResponseCode of an sr:Response."""
    root = parse_xml(xml)
    header = root.find(q(SR_NS, "Header"))
    for el in children(header) if header is not None else []:
        if split_tag(el.tag)[1] == "ResponseCode":
            return (el.text or "").strip()
    raise DuisParseError("the response has no ResponseCode")

"""Service Responses to a request toward this hub.

The schema's sr:Response carries device data only as an opaque base64 GBCSPayload, and this
project has no GBCS encoder. So acknowledgements, errors and data-less successes are an
sr:Response whose ResponseMessage holds just ServiceReference and ServiceReferenceVariant (the
simplest schema-valid form), while the successful 6.30 and 6.31 responses, which carry data, are
rendered in the form the schema set defines for readable device responses: the MMC
ra:GBCSResponse (namespace ResponseAndAlert, imported by the DUIS schema) with
ReadCHFSubGHzConfigurationRsp or ReadCHFSubGHzChannelRsp - what DCC Users get from a GBCS
payload after parsing it.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

from agent import codes
from host_tools.duis.config import channel_element, fill_config
from host_tools.duis.dcc_tables import RESPONSE_CODES
from host_tools.duis.errors import DuisError, DuisRenderError
from host_tools.duis.requests import DuisRequest
from host_tools.duis.times import utc_text
from host_tools.duis.xml import RA_NS, SR_NS, document, serialise, sub

# render_response body kinds
ACK = "ack"
CONFIG = "config"
CHANNEL = "channel"
BODY_KINDS = (ACK, CONFIG, CHANNEL)


def _mmc_response(req: DuisRequest, rsp: str, stamp: str) -> tuple[ET.Element, ET.Element]:
    root = document(RA_NS, "GBCSResponse")
    header = sub(root, RA_NS, "Header")
    # GBCS responses run from the device to the requester, under the request's counter.
    sub(header, RA_NS, "BusinessOriginatorID", req.target)
    sub(header, RA_NS, "BusinessTargetID", req.originator)
    sub(header, RA_NS, "OriginatorCounter", str(req.counter))
    sub(header, RA_NS, "ServiceReference", req.service_reference)
    sub(header, RA_NS, "ServiceReferenceVariant", req.service_reference_variant)
    sub(header, RA_NS, "Timestamp", stamp)
    message = sub(sub(root, RA_NS, "Body"), RA_NS, "ResponseMessage")
    element = sub(sub(message, RA_NS, "SMETSData"), RA_NS, rsp, MessageSuccess="true")
    return root, element


def render_response(
    req: DuisRequest,
    rc: str,
    body_kind: str | None = None,
    data: Any = None,
    *,
    when: dt.datetime | str | None = None,
) -> bytes:
    """The response to a request.

    body_kind ACK: an sr:Response (RequestID, ResponseCode, ResponseDateTime; a ResponseMessage
    with ServiceReference and ServiceReferenceVariant only) - for I99 acknowledgements, errors
    and successes without data (6.28, 6.29, 11.3).
    body_kind CONFIG (6.30, data = the configuration mapping) and CHANNEL (6.31, data =
    {"page", "channel"}, or None when the hub has no operating channel): an I0 response with its
    data, rendered as the MMC ra:GBCSResponse (see the module notes).
    body_kind None picks CONFIG or CHANNEL for an I0 6.30 or 6.31 response given data, else ACK.
    """
    if rc not in RESPONSE_CODES:
        raise DuisRenderError("unknown response code {!r}".format(rc))
    try:
        stamp = utc_text(when)
    except DuisError as e:
        raise DuisRenderError("when: {}".format(e)) from e
    srv = req.service_reference_variant
    if body_kind is None:
        body_kind = ACK
        if rc == codes.SUCCESS and data is not None:
            body_kind = {"6.30": CONFIG, "6.31": CHANNEL}.get(srv, ACK)
    if body_kind not in BODY_KINDS:
        raise DuisRenderError("body_kind must be one of {}, got {!r}".format(", ".join(BODY_KINDS), body_kind))
    if body_kind == ACK:
        root = document(SR_NS, "Response")
        header = sub(root, SR_NS, "Header")
        sub(header, SR_NS, "RequestID", req.request_id)
        sub(header, SR_NS, "ResponseCode", rc)
        sub(header, SR_NS, "ResponseDateTime", stamp)
        message = sub(sub(root, SR_NS, "Body"), SR_NS, "ResponseMessage")
        sub(message, SR_NS, "ServiceReference", req.service_reference)
        sub(message, SR_NS, "ServiceReferenceVariant", srv)
        return serialise(root)
    wanted = "6.30" if body_kind == CONFIG else "6.31"
    if srv != wanted:
        raise DuisRenderError("a {} response answers SRV {}, not {}".format(body_kind, wanted, srv))
    if rc != codes.SUCCESS:
        raise DuisRenderError("only an I0 response carries data; render {} as {!r}".format(rc, ACK))
    if body_kind == CONFIG:
        if data is None:
            raise DuisRenderError("a config response needs the configuration mapping")
        root, element = _mmc_response(req, "ReadCHFSubGHzConfigurationRsp", stamp)
        fill_config(element, data, RA_NS)
    else:
        root, element = _mmc_response(req, "ReadCHFSubGHzChannelRsp", stamp)
        if data is not None:
            channel_element(element, RA_NS, data)
    return serialise(root)

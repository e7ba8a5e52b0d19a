"""Writing DUIS Service Requests for this hub's services, as a DCC User would send them (unsigned:
ds:Signature is optional). Unlike the responses and alerts dbch sends, a request is not checked
against the schema here: the tests build invalid ones on purpose, and the front checks every
request it reads (host_tools.duis.requests.read_request)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from host_tools.duis.config import render_config_xml
from host_tools.duis.errors import DuisError, DuisRenderError
from host_tools.duis.requests import CANCEL_EXECUTION, make_request_id
from host_tools.duis.services import service
from host_tools.duis.times import utc_text
from host_tools.duis.xml import SR_NS, document, serialise, sub


def request_xml(
    service_name: str,
    target_eui: Any,
    originator_eui: Any,
    counter: int,
    args: Mapping[str, Any] | None = None,
    *,
    command_variant: int | None = None,
) -> bytes:
    """Build an unsigned DUIS sr:Request for one of this hub's services ("6.28", a body name or
    a GBCS use case). args: for 6.28 the configuration mapping; for 11.3 {"hash": 32 bytes or 64
    hex digits, "execution": datetime, ISO text or None, "cancel": true for the cancellation};
    for 6.32 {"start", "end"} (the ReadLogPeriod); for 11.2 {"execution"} or nothing; nothing
    for 6.29, 6.30 and 6.31.
    command_variant defaults to the one this front takes (1, or 4 for 11.3)."""
    svc = service(service_name)
    cv = svc.default_command_variant if command_variant is None else command_variant
    root = document(SR_NS, "Request")
    header = sub(root, SR_NS, "Header")
    sub(header, SR_NS, "RequestID", make_request_id(originator_eui, target_eui, counter))
    sub(header, SR_NS, "CommandVariant", str(cv))
    sub(header, SR_NS, "ServiceReference", svc.sr)
    sub(header, SR_NS, "ServiceReferenceVariant", svc.srv)
    body = sub(root, SR_NS, "Body")
    if svc.srv == "6.28":
        if args is None:
            raise DuisRenderError("6.28 needs the Sub GHz Configuration mapping as args")
        body.append(render_config_xml(args, tag=svc.body))
    elif svc.srv == "11.3":
        args = dict(args or {})
        digest = args.get("hash")
        if isinstance(digest, str):
            try:
                digest = bytes.fromhex(digest)
            except ValueError:
                digest = None
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
            raise DuisRenderError("11.3 needs args['hash']: the 32-byte firmware hash (bytes or 64 hex digits)")
        el = sub(body, SR_NS, svc.body)
        if args.get("cancel"):
            args["execution"] = CANCEL_EXECUTION
        if args.get("execution") is not None:
            try:
                sub(el, SR_NS, "ExecutionDateTime", utc_text(args["execution"]))
            except DuisError as e:
                raise DuisRenderError("11.3 execution: {}".format(e)) from e
        sub(el, SR_NS, "FirmwareHash", bytes(digest).hex().upper())
    elif svc.srv == "6.32":
        args = dict(args or {})
        if args.get("start") is None or args.get("end") is None:
            raise DuisRenderError("6.32 needs args['start'] and args['end']: the ReadLogPeriod (UTC)")
        period = sub(sub(body, SR_NS, svc.body), SR_NS, "ReadLogPeriod")
        try:
            sub(period, SR_NS, "StartDateTime", utc_text(args["start"]))
            sub(period, SR_NS, "EndDateTime", utc_text(args["end"]))
        except DuisError as e:
            raise DuisRenderError("6.32 ReadLogPeriod: {}".format(e)) from e
    elif svc.srv == "11.2" and args and args.get("execution") is not None:
        try:
            sub(sub(body, SR_NS, svc.body), SR_NS, "ExecutionDateTime", utc_text(args["execution"]))
        except DuisError as e:
            raise DuisRenderError("11.2 execution: {}".format(e)) from e
    else:
        if args:
            raise DuisRenderError("{} {} takes no arguments, got {!r}".format(svc.srv, svc.body, dict(args)))
        sub(body, SR_NS, svc.body)
    return serialise(root)

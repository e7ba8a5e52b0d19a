"""The DCC's checks of a Service Request toward this hub (seed Table 1), before it is forwarded.

Precedence of check_request (first failing check wins): E48, E13, E12, E49, E55, E19, E11. The
header must agree with itself before anything can be read from it (E48); then the kind of
request for this endpoint (E13); then the command variant for the service (E12); then the body
against the header (E49). A duplicate of a request still being processed (E55) is judged only for
a well-formed request.
The device checks come last, in the DCC's order: a device must exist (E19) before its device
type can be compared with the service (E11). What each code means for this hub is in the notes
of host_tools.duis.services. Access control (E100, E1-E5) comes before all of these:
host_tools.duis.users.decide runs both.

E13 and the URL a request came to (seed, Appendix AD 3.5.10: "Request Type not valid for the URL,
e.g. a 'Non-Device' Service Request sent to the 'Transform' URL"). The DCC User Interface has one
URL per request type (ENDPOINTS; request_type says which a request is):
    non-device  Non-Device Service Requests: the Service Reference Variants DCC Only (CV 8)
    transform   Critical Service Requests (CV 4-7), which the DCC transforms before they are signed
    send        Non-Critical Service Requests (CV 1-3) and Signed Pre-Commands (and any other
                device request, whose command variant is then judged: E12)
With endpoint None (`dbch duis`, one device endpoint) any device request is taken and a
non-device one is E13.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from host_tools.duis import dcc_tables
from host_tools.duis.requests import DuisRequest
from host_tools.duis.services import BODY_TO_SRV, HUB_SERVICES, NON_DEVICE_SRS, NON_DEVICE_SRVS
from host_tools.duis.xml import norm_eui


def _reject(code: str, why: str) -> tuple[str, str]:
    return code, "{} {}: {}".format(code, dcc_tables.response_name(code), why)


ENDPOINTS = ("send", "transform", "non-device")


def request_type(req: DuisRequest) -> str:
    """Which URL of the DCC User Interface takes this request (ENDPOINTS; see the module notes)."""
    if req.service_reference_variant in NON_DEVICE_SRVS or req.service_reference in NON_DEVICE_SRS:
        return "non-device"
    if req.command_variant in (4, 5, 6, 7) and req.body != "SignedPreCommand":
        return "transform"
    return "send"  # a variant that is not the service's own is then E12


def _hubs(target_eui: Any) -> list[str]:
    if isinstance(target_eui, (str, bytes, bytearray, int)):
        return [norm_eui(target_eui, "target_eui")]
    return [norm_eui(eui, "target_eui") for eui in target_eui]


def check_request(
    req: DuisRequest, *, target_eui: Any, in_process: Container[str] = (), endpoint: str | None = None
) -> tuple[str | None, str]:
    """The DCC-side checks that apply to this hub: (None, message) when the request is accepted,
    else (code, message) with the first failing code in the order E48, E13, E12, E49, E55, E19,
    E11 (see the module notes). in_process: the RequestIDs of the requests still being processed
    (host_tools.duis.front.InFlight): the same RequestID again is a duplicate (E55, seed Table 1:
    "the duplicate of another Request being processed by the DCC Systems"); the caller marks an
    accepted request in process. target_eui: the hub, or several (the hubs behind a front);
    endpoint: the URL the request came to (ENDPOINTS), None for the one device endpoint of
    `dbch duis`."""
    sr, srv = req.service_reference, req.service_reference_variant
    if not (srv == sr or srv.startswith(sr + ".")):
        return _reject("E48", "ServiceReferenceVariant {} is not a variant of ServiceReference {}".format(srv, sr))
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ValueError("endpoint must be one of {} or None, not {!r}".format(", ".join(ENDPOINTS), endpoint))
    kind = request_type(req)
    if endpoint is None and kind == "non-device":
        return _reject(
            "E13", "{} is a non-device request (DCC Only, Command Variant 8); this is a device endpoint".format(srv)
        )
    if endpoint is not None and kind != endpoint:
        return _reject(
            "E13",
            "{} (Command Variant {}) is a {} request, sent to the {} URL".format(
                srv, req.command_variant, kind, endpoint
            ),
        )
    if kind == "non-device":  # not for a device: no command variant, body or device to judge here
        if req.request_id in in_process:
            return _reject("E55", "RequestID {} is already being processed".format(req.request_id))
        return None, "accepted: non-device request {}".format(srv)
    if not req.body:
        return _reject("E13", "the request has no body: a device Service Request is expected")
    if req.body.startswith("{"):
        return _reject("E13", "the body {} is not a DUIS Service Request element".format(req.body))
    svc = req.service
    if svc is not None and req.command_variant not in svc.command_variants:
        return _reject(
            "E12",
            "Command Variant {} is not taken for {} {} (this front takes {})".format(
                req.command_variant, svc.srv, svc.body, " or ".join(str(v) for v in sorted(svc.command_variants))
            ),
        )
    if svc is not None and req.body != svc.body:
        return _reject("E49", "ServiceReferenceVariant {} needs a {} body, not {}".format(srv, svc.body, req.body))
    if svc is None and req.body in BODY_TO_SRV:
        return _reject(
            "E49",
            "a {} body belongs to ServiceReferenceVariant {}, not {}".format(req.body, BODY_TO_SRV[req.body], srv),
        )
    if req.request_id in in_process:
        return _reject("E55", "RequestID {} is already being processed".format(req.request_id))
    hubs = _hubs(target_eui)
    if req.target not in hubs:
        return _reject(
            "E19",
            "target device {} does not exist here (this hub is {})".format(req.target, hubs[0])
            if len(hubs) == 1
            else "target device {} does not exist here (the hubs are {})".format(req.target, ", ".join(hubs)),
        )
    if svc is None:
        return _reject(
            "E11",
            "Service Reference {} is not for a Communications Hub Function (this hub takes {})".format(
                sr, ", ".join(HUB_SERVICES)
            ),
        )
    return None, "accepted: {} {} for {}".format(svc.srv, svc.body, req.target)

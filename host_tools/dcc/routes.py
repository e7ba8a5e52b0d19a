"""The DCC Boxed API paths a User POSTs DUIS requests to, and the URL of the DCC User Interface
each stands for.

The paths are those SmartDCCInnovation's public DCC Boxed clients POST to (its Node-RED nodes'
`dccboxed-send`): `/api/v1/serviceS` (Send Command Service), `/api/v1/serviceD` (Non-Device
Service) and `/api/v1/serviceT` (Transform Service). Each is one of the URLs of
host_tools.duis.checks (ENDPOINTS: "send", "non-device", "transform"), and which requests belong
on which is decided there, in the DCC's order with everything else (host_tools.duis.users.decide):
a request on a path that is not its own is E13, "Request Type not valid for the URL" (seed,
Appendix AD 3.5.10). A path that is none of these is not a DUIS URL at all (HTTP 404).

How this front answers on each path (the synchronous answer, then what is POSTed to the User):
    serviceS, serviceT   I99 (Acknowledgement); the Service Response follows at the receive URL
    serviceD             the result itself (the DCC's refusal, or HTTP 501: this front serves no
                         non-device service yet)
"""

from __future__ import annotations

SEND_COMMAND = "Send Command Service"
NON_DEVICE = "Non-Device Service"
TRANSFORM = "Transform Service"

PATHS = {
    "/api/v1/serviceS": SEND_COMMAND,
    "/api/v1/serviceD": NON_DEVICE,
    "/api/v1/serviceT": TRANSFORM,
}
PATH_OF = {service: path for path, service in PATHS.items()}

# the web service -> the URL of host_tools.duis.checks (ENDPOINTS) it is
ENDPOINT_OF = {SEND_COMMAND: "send", NON_DEVICE: "non-device", TRANSFORM: "transform"}
PATH_OF_ENDPOINT = {endpoint: PATH_OF[service] for service, endpoint in ENDPOINT_OF.items()}

# the web services whose answer is an Acknowledgement, the Service Response following
ACKNOWLEDGED = frozenset((SEND_COMMAND, TRANSFORM))

# where a User's endpoint takes responses and alerts unless told (DCC Boxed's default)
DEFAULT_RECEIVE_PATH = "/smartdcc/duis"


def service_of(path: str) -> str | None:
    """The web service at a path (query string ignored), or None if the path is not an API path."""
    return PATHS.get(path.split("?", 1)[0].rstrip("/") or "/")


def endpoint_of(path: str) -> str | None:
    """The URL of host_tools.duis.checks a path is ("send", "non-device", "transform"), or None."""
    service = service_of(path)
    return ENDPOINT_OF[service] if service else None


def path_for(request) -> str:
    """The path a DuisRequest belongs on (host_tools.duis.checks.request_type)."""
    from host_tools.duis.checks import request_type

    return PATH_OF_ENDPOINT[request_type(request)]

"""The DCC Boxed API paths a User POSTs DUIS requests to, and which kind of request each takes.

The paths are those SmartDCCInnovation's public DCC Boxed clients POST to (its Node-RED nodes'
`dccboxed-send`): `/api/v1/serviceS` (Send Command Service), `/api/v1/serviceD` (Non-Device
Service) and `/api/v1/serviceT` (Transform Service). Which service a request belongs to follows
from its Command Variant, as in the DCC's DUIS reader (@smartdcc/duis-parser, its table of
command variants): 1, 3, 5, 7 send a command to a device; 2, 6 and 8 are non-device (a command
returned for local delivery, or a DCC-only service); 4 asks for a transform. A request on a path
that is not its own is E13, "Request Type not valid for the URL" (seed, Appendix AD 3.5.10).

How this front answers on each path (the synchronous answer, then what is POSTed to the User):
    serviceS, serviceT   I99 (Acknowledgement); the Service Response follows at the receive URL
    serviceD             the result itself (I0 or the error code)
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

# Command Variant -> the web service that takes it
COMMAND_VARIANTS = {
    1: SEND_COMMAND,
    2: NON_DEVICE,
    3: SEND_COMMAND,
    4: TRANSFORM,
    5: SEND_COMMAND,
    6: NON_DEVICE,
    7: SEND_COMMAND,
    8: NON_DEVICE,
}

# the web services whose answer is an Acknowledgement, the Service Response following
ACKNOWLEDGED = frozenset((SEND_COMMAND, TRANSFORM))

# where a User's endpoint takes responses and alerts unless told (DCC Boxed's default)
DEFAULT_RECEIVE_PATH = "/smartdcc/duis"


def service_of(path: str) -> str | None:
    """The web service at a path (query string ignored), or None if the path is not an API path."""
    return PATHS.get(path.split("?", 1)[0].rstrip("/") or "/")


def url_mismatch(path: str, command_variant: int) -> str | None:
    """Why a request with this Command Variant is not valid for this path (E13), or None."""
    here = service_of(path)
    wanted = COMMAND_VARIANTS.get(command_variant)
    if here is None:
        return "{} is not a DUIS API path (POST to {})".format(path, ", ".join(PATHS))
    if wanted is None:
        return "Command Variant {} belongs to no web service (1-8)".format(command_variant)
    if wanted != here:
        return "a Command Variant {} request is a {} request, for {}, not {} ({})".format(
            command_variant, wanted, PATH_OF[wanted], path, here
        )
    return None

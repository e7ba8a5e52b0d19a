"""The DCC's access control of a DUIS Service Request (E100, E1-E5) ahead of its validation
(host_tools.duis.checks: E48, E13, E12, E49, E55, E19, E11), with the User list of
host_tools.duis.userlist (load_users).

Access control, first failing check wins (decide() runs it, then the validation):
    E100  authenticate(): the request is signed by the certificate of the User its RequestID
          names (seed Table 1: "Request failed Authentication (as per checks in clause 3.2.3
          Message Authentication)"); a User ID with no certificate cannot be authenticated.
    E1    the originator is not a User here, is not a valid SEC Party, or holds no User Role
          (Table 1: "User / User Role combination invalid / User is not a valid SEC party").
    E2    none of the User's roles is eligible for the Service Reference Variant (Table 1: "User
          Role not permitted to send Service Reference"); judged for the SRVs in ELIGIBLE only.
    E3    the User's status is not "active" (Table 1: "User Status not permitted to send Service
          Reference").
    E4    the User is not registered for the target device now, or at the execution time of a
          future-dated request (Table 1: "User Role not authorised for Device and required date &
          time").
    E5    the target's SMI status is not one a command may be sent in (Table 1: "Device SMI Status
          incompatible with Service Reference"); judged when the status is known.

E4's precedence. SEC Appendix R clause 8.1.26 (Response Code Tests), as amended by MP260 (seed):
the tests of E11, E13, E19 (and E60, E61 for SMETS1) are run by every User Role, and "In cases
where error is generated, the E4 error takes precedence"; the clause adds that E11 cannot be
reached by the MDR role, which only communicates with an ESME. So authorisation is decided before
any of those validation codes: a request that would be E11, E13 or E19 from a User not registered
for the target device is E4, and an MDR User sending to a Communications Hub gets E4, never E11.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from host_tools.duis import dcc_tables
from host_tools.duis.checks import check_request
from host_tools.duis.errors import DuisParseError
from host_tools.duis.requests import DuisRequest, split_request_id
from host_tools.duis.signing import DuisSignatureError, verify
from host_tools.duis.times import utc
from host_tools.duis.userlist import ELIGIBLE, ROLES, User, UserList, load_users, users_from_json
from host_tools.duis.xml import SR_NS, norm_eui, parse_xml, q

__all__ = [
    "ELIGIBLE",
    "ROLES",
    "User",
    "UserList",
    "load_users",
    "users_from_json",  # the list (userlist)
    "Decision",
    "authenticate",
    "authorise",
    "decide",
    "originator",
]

# SMI statuses (the DUIS schema's sr:DeviceStatus) in which the DCC sends a device a command.
# The seeds name E5 without listing statuses; this front sends to a hub that is commissioned or
# installed and not yet commissioned, and answers E5 in any other status.
COMMAND_STATUSES = frozenset({"Commissioned", "InstalledNotCommissioned"})


@dataclass(frozen=True)
class Decision:
    """The DCC's decision on a request: code None when it passes, else the response code."""

    code: str | None
    message: str
    user: User | None = None

    @property
    def ok(self) -> bool:
        return self.code is None


# -- the decisions ---------------------------------------------------------------------------


def _deny(code: str, why: str, user: User | None = None) -> Decision:
    return Decision(code, "{} {}: {}".format(code, dcc_tables.response_name(code), why), user)


def originator(document: bytes | str) -> str:
    """The User ID in a request's RequestID (DuisParseError if there is none)."""
    root = parse_xml(document)
    request_id = root.findtext("{}/{}".format(q(SR_NS, "Header"), q(SR_NS, "RequestID")))
    if not request_id:
        raise DuisParseError("the message has no sr:Header/sr:RequestID")
    return split_request_id(request_id)[0]


def authenticate(document: bytes | str, users: UserList, *, at: dt.datetime | None = None) -> User:
    """The User whose RequestID originator signed `document` with its own certificate;
    DuisSignatureError (E100) if it is not signed by that certificate, or that User ID has none
    here. DuisParseError if the document has no readable RequestID."""
    eui = originator(document)
    user = users.users.get(eui)
    if user is None or user.certificate is None:
        raise DuisSignatureError(
            "E100 Failed Authentication: no signing certificate for User ID {} (the RequestID's originator)".format(eui)
        )
    verify(document, [user.certificate], at=at)
    return user


def authorise(
    request: DuisRequest,
    users: UserList,
    *,
    at: dt.datetime | None = None,
    device: str | None = None,
    smi_status: str | None = None,
    scheduled: str | None = None,
) -> Decision:
    """The access control of `request` in the DCC's order E1, E2, E3, E4, E5 (module notes).
    at: the time it is received (default now); device: the target (default the RequestID's);
    smi_status: the target's SMI status (default the list's inventory; unknown: E5 not judged);
    scheduled: for 5.1 CreateSchedule, the Service Reference Variant scheduled."""
    now = utc(at)
    user = users.users.get(request.originator)
    if user is None:
        return _deny("E1", "User ID {} is not a DCC User".format(request.originator))
    if not user.sec_party:
        return _deny("E1", "User {} is not a valid SEC Party".format(user.eui), user)
    if not user.roles:
        return _deny("E1", "User {} holds no User Role".format(user.eui), user)
    srv = request.service_reference_variant
    judged = scheduled if srv == "5.1" and scheduled in users.eligible else srv
    eligible = users.eligible.get(judged)
    if eligible is not None and not (user.roles & eligible):
        return _deny(
            "E2",
            "User {} ({}) may not send {}: its Eligible Users are {}".format(
                user.eui, ", ".join(sorted(user.roles)), judged, ", ".join(sorted(eligible))
            ),
            user,
        )
    if user.status != "active":
        return _deny("E3", "User {} is {}".format(user.eui, user.status), user)
    target = norm_eui(device, "device") if device is not None else request.target
    registration = user.registration(target)
    if registration is None:
        return _deny("E4", "User {} is not registered for device {}".format(user.eui, target), user)
    execution = (request.args or {}).get("execution") if isinstance(request.args, dict) else None
    for when, what in ((now, "now"), (utc(execution) if execution else None, "at the execution time")):
        if when is not None and not registration.covers(when):
            return _deny(
                "E4",
                "User {} is not registered for device {} {} ({})".format(user.eui, target, what, when.isoformat()),
                user,
            )
    status = smi_status if smi_status is not None else users.inventory.get(target)
    if status is not None and status not in COMMAND_STATUSES:
        return _deny("E5", "device {} is {} in the inventory".format(target, status), user)
    return Decision(
        None, "authorised: User {} ({}) for {} on {}".format(user.eui, ", ".join(sorted(user.roles)), srv, target), user
    )


def decide(
    request: DuisRequest,
    users: UserList,
    *,
    target_eui: Any,
    in_process: Container[str] = (),
    endpoint: str | None = None,
    at: dt.datetime | None = None,
    device: str | None = None,
    smi_status: str | None = None,
    scheduled: str | None = None,
) -> Decision:
    """The DCC's decision on an authenticated request: authorise() (E1-E5), then the validation
    of host_tools.duis.checks.check_request (E48, E13, E12, E49, E55, E19, E11), first failing
    code wins; E4 therefore precedes E11, E13 and E19 as SEC Appendix R 8.1.26 requires.
    target_eui: the hub(s) behind the front; in_process: the Request IDs still being processed
    (the caller marks an accepted one); endpoint: the URL it came to ("send", "transform",
    "non-device"; None: the one device endpoint of `dbch duis`)."""
    decision = authorise(request, users, at=at, device=device, smi_status=smi_status, scheduled=scheduled)
    if not decision.ok:
        return decision
    code, message = check_request(request, target_eui=target_eui, in_process=in_process, endpoint=endpoint)
    return Decision(code, message if code else decision.message + "; " + message, decision.user)

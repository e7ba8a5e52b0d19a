"""The DUIS User list: the Users (User ID, roles, signing certificate, receive URL, status, the
devices each is registered for), which roles may send which Service Reference Variant (ELIGIBLE),
and the SMI statuses of devices. host_tools.duis.users decides on requests with it.

The User list (a JSON file; load_users) is the DCC's view of who may send what:

    {"users": [{"eui": "90-B3-D5-1F-30-01-00-00",      User ID: the RequestID's originator
                "name": "supplier A",                   (optional)
                "roles": ["IS", "GS"],                  User Roles (ROLES)
                "certificate": "users/90-B3-D5-1F-30-01-00-00/cert.pem",   its signing
                                                        certificate (`dbch pki user EUI`), PEM or
                                                        DER, relative to the file's folder
                "receive_url": "https://host:8443/smartdcc/duis",   where its responses and
                                                        alerts are POSTed (optional)
                "status": "active",                     "active" (default) or "suspended" (E3)
                "sec_party": true,                      false: not a valid SEC Party (E1)
                "devices": {"00-DB-12-34-56-78-90-A2": {"from": "2024-01-01T00:00:00Z",
                                                        "until": null}}}],
                                                        the devices the User is registered for in
                                                        its role, and when (a list of EUIs: always;
                                                        "*": every device) (E4)
     "eligible": {"6.28": ["IS", "GS"]},               (optional) replaces ELIGIBLE rows
     "inventory": {"00-DB-12-34-56-78-90-A2": "Commissioned"}}   (optional) SMI statuses (E5)

Eligible Users (ELIGIBLE: the Service Reference Variant -> the roles that may send it). Sources:
- 4.1.1 and 4.2: the "Eligible Users" rows of DUIS (SEC Appendix AD) 3.8.17 and 3.8.21 as amended
  by MP260 (seed). 4.1.1's MDR is "Only for SMETS1 Devices": not a role for a hub.
- 6.28-6.32, 11.2, 11.3, 5.1: the "Eligible Users" rows of the DUIS service descriptions (SEC
  Appendix AD 3.8), which neither the seeds nor the DUIS schema nor the DCC Boxed packages hold:
  the rows below are this project's reading of those service descriptions, not checked against
  their text here (E2 for these services rests on them). The DCC
  Boxed templates confirm the Import Supplier for 6.28-6.32 and 11.3 (their originator
  90-B3-D5-1F-30-01-00-00 is DCC Boxed's supplier User ID, whose xmlSign certificate is in the
  signing tool's jar). A DCC User with the DUIS version in force corrects a row with the list
  file's "eligible" section. 5.1 CreateSchedule is judged against the Eligible Users of the
  Service Reference Variant it schedules, where that is known (`scheduled`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from host_tools.duis.errors import DuisError
from host_tools.duis.times import utc
from host_tools.duis.xml import norm_eui

ROLES = {
    "IS": "Import Supplier",
    "ES": "Export Supplier",
    "GS": "Gas Supplier",
    "ED": "Electricity Distributor",
    "GT": "Gas Transporter",
    "RSA": "Registered Supplier Agent",
    "MDR": "Meter Data Retriever",
    "OU": "Other User",
}

ELIGIBLE: dict[str, frozenset[str]] = {
    srv: frozenset(roles)
    for srv, roles in (
        ("4.1.1", ("IS", "GS", "ED", "GT", "MDR")),  # seed: DUIS 3.8.17 (MDR: SMETS1 Devices only)
        ("4.2", ("ES", "ED", "MDR")),  # seed: DUIS 3.8.21
        ("5.1", ("IS", "ES", "GS", "ED", "GT", "RSA")),  # CreateSchedule (and the scheduled SRV's own)
        ("6.28", ("IS", "GS")),  # Set CHF Sub GHz Configuration
        ("6.29", ("IS", "GS")),  # Request CHF Sub GHz Channel Scan
        ("6.30", ("IS", "GS", "ED", "GT")),  # Read CHF Sub GHz Configuration
        ("6.31", ("IS", "GS", "ED", "GT")),  # Read CHF Sub GHz Channel
        ("6.32", ("IS", "GS", "ED", "GT")),  # Read CHF Sub GHz Channel Log
        ("11.2", ("IS", "ES", "GS", "ED", "GT")),  # Read Firmware Version
        ("11.3", ("IS", "GS")),  # Activate Firmware
    )
}

DEVICE_STATUSES = frozenset(
    {"Pending", "Whitelisted", "InstalledNotCommissioned", "Commissioned", "Decommissioned"}
    | {"Withdrawn", "Suspended", "Recovery", "Recovered"}
)
STATUSES = ("active", "suspended")


class DuisUsersError(DuisError):
    """A User list that cannot be read; the message says what is wrong and where."""


@dataclass(frozen=True)
class Registration:
    """When a User is registered for a device in its role: [start, end), either end open."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def covers(self, when: dt.datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when < self.end)


ALWAYS = Registration()


@dataclass(frozen=True)
class User:
    eui: str  # the User ID, XX-XX-XX-XX-XX-XX-XX-XX
    roles: frozenset[str]
    certificate: x509.Certificate | None = None
    receive_url: str | None = None
    name: str = ""
    status: str = "active"
    sec_party: bool = True
    devices: Mapping[str, Registration] = field(default_factory=dict)  # "*": every device

    def registration(self, device: str) -> Registration | None:
        return self.devices.get(device) or self.devices.get("*")


@dataclass
class UserList:
    users: dict[str, User]  # by User ID
    eligible: dict[str, frozenset[str]] = field(default_factory=lambda: dict(ELIGIBLE))
    inventory: dict[str, str] = field(default_factory=dict)  # device EUI -> SMI status
    path: Path | None = None

    def get(self, eui: str) -> User | None:
        try:
            return self.users.get(norm_eui(eui, "User ID"))
        except DuisError:
            return None

    def find(self, eui: str) -> User | None:
        """The User whose User ID is `eui` (any EUI-64 spelling), or None."""
        return self.get(eui)

    def alert_recipients(self, hub_eui: str, at: dt.datetime | None = None) -> list[User]:
        """The Users the DCC Alerts of the hub `hub_eui` go to: those that are active, have a
        receive URL and are registered for the hub at `at` (default now)."""
        now = utc(at)
        hub = norm_eui(hub_eui, "hub EUI")
        found = []
        for user in self.users.values():
            registration = user.registration(hub)
            if user.status == "active" and user.receive_url and registration and registration.covers(now):
                found.append(user)
        return found

    def certificates(self) -> list[x509.Certificate]:
        return [u.certificate for u in self.users.values() if u.certificate is not None]


# -- the list file ---------------------------------------------------------------------------


def _when(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return utc(value)
    except DuisError as e:
        raise DuisUsersError("{}: {}".format(where, e)) from e


def _devices(value: Any, where: str) -> dict[str, Registration]:
    if value == "*":
        return {"*": ALWAYS}
    if isinstance(value, list):
        value = {eui: None for eui in value}
    if not isinstance(value, dict):
        raise DuisUsersError(
            '{}: "devices" is a list of EUIs, a mapping EUI -> {{"from", "until"}}, or "*"'.format(where)
        )
    out = {}
    for eui, window in value.items():
        at = "{} device {}".format(where, eui)
        key = "*" if eui == "*" else _eui(eui, at)
        window = window or {}
        if not isinstance(window, dict) or set(window) - {"from", "until"}:
            raise DuisUsersError('{}: give {{"from": TIME, "until": TIME}} (either may be left out)'.format(at))
        reg = Registration(_when(window.get("from"), at + " from"), _when(window.get("until"), at + " until"))
        if reg.start and reg.end and reg.end <= reg.start:
            raise DuisUsersError("{}: until must be later than from".format(at))
        out[key] = reg
    return out


def _eui(value: Any, where: str) -> str:
    try:
        return norm_eui(value, where)
    except DuisError as e:
        raise DuisUsersError(str(e)) from e


def _read_certificate(value: Any, base: Path, where: str) -> x509.Certificate | None:
    if value is None:
        return None
    path = base / str(value)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DuisUsersError("{}: cannot read the certificate {}: {}".format(where, path, e)) from e
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise DuisUsersError("{}: {} is not an X.509 certificate: {}".format(where, path, e)) from e


def _roles(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise DuisUsersError('{}: "roles" is a list such as ["IS", "GS"]'.format(where))
    unknown = sorted(set(value) - set(ROLES))
    if unknown:
        raise DuisUsersError(
            "{}: unknown User Role {} (the roles: {})".format(
                where, ", ".join(unknown), ", ".join("{} {}".format(k, v) for k, v in ROLES.items())
            )
        )
    return frozenset(value)


def _user(item: Any, base: Path, index: int) -> User:
    where = "users[{}]".format(index)
    if not isinstance(item, dict) or "eui" not in item:
        raise DuisUsersError('{}: each User is an object with at least "eui" and "roles"'.format(where))
    known = {"eui", "name", "roles", "certificate", "receive_url", "status", "sec_party", "devices"}
    extra = sorted(set(item) - known)
    if extra:
        raise DuisUsersError(
            "{}: unknown item {} (known: {})".format(where, ", ".join(extra), ", ".join(sorted(known)))
        )
    eui = _eui(item["eui"], where + " eui")
    where = "User {}".format(eui)
    status = item.get("status", "active")
    if status not in STATUSES:
        raise DuisUsersError("{}: status {!r} is not one of {}".format(where, status, ", ".join(STATUSES)))
    url = item.get("receive_url")
    if url is not None and not str(url).startswith(("https://", "http://")):
        raise DuisUsersError("{}: receive_url {!r} is not an http(s) URL".format(where, url))
    return User(
        eui=eui,
        roles=_roles(item.get("roles", []), where),
        certificate=_read_certificate(item.get("certificate"), base, where),
        receive_url=url,
        name=str(item.get("name", "")),
        status=status,
        sec_party=bool(item.get("sec_party", True)),
        devices=_devices(item.get("devices", []), where),
    )


def users_from_json(data: Any, base: str | os.PathLike[str] = ".") -> UserList:
    """A UserList from the list file's JSON (see the module notes); certificate paths are read
    relative to `base`. DuisUsersError says what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("users"), list):
        raise DuisUsersError('a User list is an object with a "users" list (see host_tools.duis.users)')
    users: dict[str, User] = {}
    for i, item in enumerate(data["users"]):
        user = _user(item, Path(base), i)
        if user.eui in users:
            raise DuisUsersError("User {} is listed twice".format(user.eui))
        users[user.eui] = user
    eligible = dict(ELIGIBLE)
    for srv, roles in (data.get("eligible") or {}).items():
        eligible[str(srv)] = _roles(roles, "eligible " + str(srv))
    inventory = {}
    for eui, status in (data.get("inventory") or {}).items():
        if status not in DEVICE_STATUSES:
            raise DuisUsersError(
                "inventory {}: SMI status {!r} is not one of {}".format(eui, status, ", ".join(sorted(DEVICE_STATUSES)))
            )
        inventory[_eui(eui, "inventory")] = status
    return UserList(users, eligible, inventory)


def load_users(path: str | os.PathLike[str]) -> UserList:
    """The User list in the JSON file `path`; DuisUsersError if it cannot be read or is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DuisUsersError("cannot read the User list {}: {}".format(path, e)) from e
    except ValueError as e:
        raise DuisUsersError("the User list {} is not JSON: {}".format(path, e)) from e
    try:
        users = users_from_json(data, path.parent)
    except DuisUsersError as e:
        raise DuisUsersError("{}: {}".format(path, e)) from e
    users.path = path
    return users


def receivers(users: UserList, euis: Iterable[str]) -> list[User]:
    """The Users among `euis` that have a receive URL (where responses and alerts go)."""
    found = (users.get(e) for e in euis)
    return [u for u in found if u is not None and u.receive_url]

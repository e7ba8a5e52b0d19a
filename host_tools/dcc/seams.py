"""Where message authentication and the User list plug into the DCC front and the receiving
endpoint: three small callables, each with a default that does what dbch does without them.

    sign(xml) -> xml           every document the front sends (the synchronous answer, each
                               Service Response and DCC Alert) goes through it once, before it is
                               queued: the queue keeps the signed bytes, and a retry sends them
                               again unchanged. Default: unchanged (unsigned).
    verify(xml) -> None        every request the front takes, and every document the receiving
                               endpoint takes, before anything else is done with it; it raises
                               a DbchError (or ValueError) saying why to refuse: the front answers
                               E100 (Failed Authentication), the endpoint 400. Default: accepts.
    users.find(eui) -> User    the User a request comes from (its RequestID's originator): None
                               is E1 (Failed Authorisation - Invalid User / User Role), since its
                               answers cannot be delivered; users.alert_recipients(hub_eui): the
                               Users each DCC Alert from that hub goes to. Default: a UserBook
                               (a JSON file, or EUI=URL pairs on the command line).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from host_tools.duis.xml import norm_eui
from host_tools.errors import DbchError

Sign = Callable[[bytes], bytes]
Verify = Callable[[bytes], None]


class DccUserError(DbchError):
    """A User list that cannot be read; the message says what to fix."""


@dataclass(frozen=True)
class User:
    """A DCC User as the transport needs it: who (EUI), where its responses and alerts go."""

    eui: str  # XX-XX-XX-XX-XX-XX-XX-XX
    receive_url: str
    alerts: bool = True  # DCC Alerts go to this User too


class Users(Protocol):
    def find(self, eui: str) -> User | None: ...

    def alert_recipients(self, hub_eui: str) -> list[User]: ...


def unsigned(xml: bytes) -> bytes:
    """The default sign: the document as it is."""
    return xml


def accept_all(xml: bytes) -> None:
    """The default verify: every document is taken."""


def _check_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DccUserError("{}: receive URL {!r} is not an https:// (or loopback http://) URL".format(where, url))
    return url


@dataclass
class UserBook:
    """The default User list: a JSON file {"users": [{"eui": ..., "receive_url": ..., "alerts":
    true}]} (or just the list), or EUI=URL pairs."""

    users: dict[str, User] = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: Iterable[dict], where: str = "the User list") -> UserBook:
        book = cls()
        for n, entry in enumerate(entries):
            here = "{} entry {}".format(where, n + 1)
            if not isinstance(entry, dict) or "eui" not in entry or "receive_url" not in entry:
                raise DccUserError('{}: each User needs "eui" and "receive_url", got {!r}'.format(here, entry))
            try:
                eui = norm_eui(entry["eui"], "eui")
            except ValueError as e:
                raise DccUserError("{}: {}".format(here, e)) from e
            book.users[eui] = User(eui, _check_url(str(entry["receive_url"]), here), bool(entry.get("alerts", True)))
        return book

    @classmethod
    def from_file(cls, path: Path | str) -> UserBook:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise DccUserError("cannot read the User list {}: {}".format(path, e)) from e
        entries = data.get("users") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise DccUserError('{}: expected {{"users": [...]}} or a list of Users'.format(path))
        return cls.from_entries(entries, str(path))

    @classmethod
    def from_pairs(cls, pairs: Iterable[str]) -> UserBook:
        entries = []
        for pair in pairs:
            eui, eq, url = pair.partition("=")
            if not eq:
                raise DccUserError(
                    "--user {!r}: expected EUI=URL, e.g. 90-B3-D5-1F-30-01-00-00=https://...".format(pair)
                )
            entries.append({"eui": eui, "receive_url": url})
        return cls.from_entries(entries, "--user")

    def merged(self, other: UserBook) -> UserBook:
        return UserBook({**self.users, **other.users})

    def find(self, eui: str) -> User | None:
        try:
            return self.users.get(norm_eui(eui, "eui"))
        except ValueError:
            return None

    def alert_recipients(self, hub_eui: str) -> list[User]:
        return [u for u in self.users.values() if u.alerts]


@dataclass
class Seams:
    """The three plug points, with their defaults."""

    sign: Sign = unsigned
    verify: Verify = accept_all
    users: Users = field(default_factory=UserBook)

"""Where message authentication and the User list plug into the DCC front and the receiving
endpoint, with the two ways they are put together (Seams.signed, Seams.unsigned).

    sign(xml) -> xml           every document the front sends (the synchronous answer, each
                               Service Response and DCC Alert) goes through it once, before it is
                               queued: the queue keeps the signed bytes, and a retry sends them
                               again unchanged. Signed: the DCC's key (host_tools.duis.signing).
    verify(xml) -> None        every request the front takes, and every document the receiving
                               endpoint takes, before anything else is done with it; it raises
                               a DbchError (or ValueError) saying why to refuse: the front answers
                               E100 (Failed Authentication), the endpoint 400. Signed: the front
                               authenticates a request by the certificate of the User its
                               RequestID names (host_tools.duis.users.authenticate); the
                               endpoint verifies with the DCC's certificate (verify_from).
    users                      the User list (host_tools.duis.userlist.UserList): the DCC's
                               decision on each request (host_tools.duis.users.decide: E1-E5,
                               then the validation codes) and where answers and alerts go
                               (find, alert_recipients).

Seams() - no signing, no verification, no Users - is what the front's parts are tested with;
`dbch dcc serve --unsigned` is Seams.unsigned(users): for User tooling without keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from host_tools.duis.userlist import ALWAYS, ROLES, User, UserList
from host_tools.duis.xml import norm_eui
from host_tools.errors import DbchError

# The DCC's User ID unless told (--dcc-id): DCC Boxed's DCC Service Provider, whose xmlSign
# certificate the DCC Boxed signing tool carries (dsp-xml-sign-90B3D51F30000002-ds.pem in its jar).
# dbch signs with its own key for that ID (`dbch pki user 90-B3-D5-1F-30-00-00-02`), never the tool's.
DCC_USER_ID = "90-B3-D5-1F-30-00-00-02"

Sign = Callable[[bytes], bytes]
Verify = Callable[[bytes], None]


class DccUserError(DbchError):
    """A User given on the command line that cannot be taken; the message says what to fix."""


def unsigned(xml: bytes) -> bytes:
    """The unsigned sign: the document as it is."""
    return xml


def accept_all(xml: bytes) -> None:
    """The unverified verify: every document is taken."""


def signer(key, certificate) -> Sign:
    """sign with `key` (EC P-256), naming `certificate` (the DCC's, from `dbch pki user`)."""
    from host_tools.duis import signing

    return lambda xml: signing.sign(xml, key, certificate)


def verify_from(certificates: list) -> Verify:
    """verify that a document is signed by one of `certificates` (DuisSignatureError if not)."""
    from host_tools.duis import signing

    trusted = list(certificates)

    def verify(xml: bytes) -> None:
        signing.verify(xml, trusted)

    return verify


def authenticator(users: UserList) -> Verify:
    """verify that a request is signed by the certificate of the User its RequestID names."""
    from host_tools.duis.users import authenticate

    return lambda xml: authenticate(xml, users) and None


def unkeyed_user(pair: str) -> User:
    """EUI=URL (`--user`): a User with every role, registered for every device, and no
    certificate - its requests can only be taken unsigned (--unsigned)."""
    eui, eq, url = pair.partition("=")
    if not eq or not url.startswith(("https://", "http://")):
        raise DccUserError("--user {!r}: expected EUI=URL, e.g. 90-B3-D5-1F-30-01-00-00=https://...".format(pair))
    try:
        eui = norm_eui(eui, "--user EUI")
    except ValueError as e:
        raise DccUserError("--user {!r}: {}".format(pair, e)) from e
    return User(eui=eui, roles=frozenset(ROLES), receive_url=url, name="--user", devices={"*": ALWAYS})


@dataclass
class Seams:
    """The plug points: by default nothing is signed or verified and there are no Users."""

    sign: Sign = unsigned
    verify: Verify = accept_all
    users: UserList = field(default_factory=lambda: UserList({}))

    @classmethod
    def signed(cls, users: UserList, key, certificate) -> Seams:
        """The DCC's way: requests authenticated by their Users' certificates, everything sent
        signed with the DCC's key."""
        return cls(signer(key, certificate), authenticator(users), users)

    @classmethod
    def unsigned(cls, users: UserList) -> Seams:
        """For tooling without keys: nothing verified, nothing signed; the Users still decide."""
        return cls(unsigned, accept_all, users)

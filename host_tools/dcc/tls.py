"""The DCC User Interface's TLS (SEC Appendix AD 2.2 as amended by MP260): TLS 1.2 only (RFC 5246),
the one cipher suite TLS_RSA_WITH_AES_128_GCM_SHA256, certificates both ways (DCCKI-like RSA
infrastructure certificates: host_tools.security.dccki). The same parameters serve the front
(Users dial it) and its deliveries (it dials each User's receive URL).

OpenSSL calls the suite AES128-GCM-SHA256. Python's own default cipher list leaves it out (it has
no forward secrecy), so the context names it alone; OpenSSL 3.0's default security level (2)
allows it with 2048-bit RSA keys, and the level is named so that a system-wide setting cannot
change it silently. Plain HTTP is for loopback addresses only, and only when asked
(`loopback_only`).
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from host_tools.errors import DbchError

SUITE = "TLS_RSA_WITH_AES_128_GCM_SHA256"  # its IANA name, as the seed writes it
OPENSSL_SUITE = "AES128-GCM-SHA256"  # the same suite in OpenSSL's names
SECURITY_LEVEL = 2
PROTOCOL = "TLSv1.2"


class DccTlsError(DbchError):
    """TLS cannot be set up as the DCC User Interface needs it; the message says what to do."""


def _context(purpose: ssl.Purpose, cert: Path | str, key: Path | str, ca: Path | str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.set_ciphers("{}:@SECLEVEL={}".format(OPENSSL_SUITE, SECURITY_LEVEL))
    except ssl.SSLError as e:
        raise DccTlsError(
            "this OpenSSL ({}) does not offer {} ({}): the DCC User Interface needs it".format(
                ssl.OPENSSL_VERSION, SUITE, OPENSSL_SUITE
            )
        ) from e
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as e:
        raise DccTlsError(
            "cannot load the infrastructure certificate {} / {} or the CA {}: {} "
            "(issue one with `dbch pki infra NAME`)".format(cert, key, ca, e)
        ) from e
    return ctx


def server_context(cert: Path | str, key: Path | str, ca: Path | str) -> ssl.SSLContext:
    """The context of an endpoint that Users (or the front) dial: a client without a certificate
    issued by `ca` is refused in the handshake."""
    return _context(ssl.Purpose.CLIENT_AUTH, cert, key, ca)


def client_context(cert: Path | str, key: Path | str, ca: Path | str) -> ssl.SSLContext:
    """The context of a client: it shows its certificate and checks the server's against `ca`,
    and its name against the URL's host."""
    ctx = _context(ssl.Purpose.SERVER_AUTH, cert, key, ca)
    ctx.check_hostname = True
    return ctx


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_only(host: str, what: str) -> None:
    """DccTlsError unless plain HTTP to or on `host` stays on this machine."""
    if not is_loopback(host):
        raise DccTlsError(
            "{}: plain HTTP is allowed on loopback only (127.0.0.1, ::1, localhost), not {!r}; "
            "use HTTPS with infrastructure certificates (dbch pki infra NAME)".format(what, host)
        )

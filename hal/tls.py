# Mutually authenticated TLS for the Triage System Interface (SEC G12), on CPython's `ssl`
# (OpenSSL) and on MicroPython's `tls`/`ssl` (mbedTLS), from DER certificate, key and CA bytes.
# Over 400 lines: one policy on two TLS stacks, each building its context its own way, and these
# 30 lines of how the policy holds on each.
#
# Policy enforced here, on both runtimes, or the link does not come up (TriageLinkError):
# - a certificate is required in BOTH directions (verify mode set to CERT_REQUIRED explicitly:
#   MicroPython's ssl defaults to CERT_NONE), chained to the one triage CA given;
# - the peer's identity (subjectAltName dNSName, else CN) must be one of the expected names
#   (a hub's EUI-64 "XX-XX-..-XX" or a triage tool's name);
# - TLS 1.2 minimum, TLS 1.3 where both ends have it; ECDHE with AEAD suites only
#   (AES-GCM, ChaCha20-Poly1305); anything else negotiated is refused after the handshake too.
#
# How the identity is checked:
# - CPython client: OpenSSL's hostname check (server_hostname = expected name, matched against
#   the SAN during the handshake), then the leaf certificate is read back and checked here.
# - CPython server: OpenSSL verifies the client's chain during the handshake; the client's
#   leaf (getpeercert(binary_form=True)) is checked here right after, before any data.
# - MicroPython client: mbedTLS checks server_hostname against the certificate, and the
#   verify callback below checks the leaf again.
# - MicroPython server: mbedTLS has no client-name check, but its SSLContext.verify_callback
#   (cert DER, depth) is called for every certificate of the client's chain; at depth 0 the leaf
#   is parsed here and a wrong identity aborts the handshake. A runtime without verify_callback
#   cannot check the client's identity: server contexts are refused there (chain-to-CA alone is
#   not enough for SEC G12).
# - mbedTLS 3.x has no TLS 1.0/1.1 at all, and the suites configured (ECDHE-ECDSA with GCM or
#   ChaCha20) exist only from TLS 1.2, so the version floor holds even where the socket cannot
#   report its version; where it can (SSLSocket.cipher()), it is checked after the handshake.
#
# Only the CPython path touches a file: its ssl module loads a certificate chain from a path
# only, so cert + key go to a private (0600) temporary file that is deleted at once.

import socket as _socket

from hal.compat import tls_modules
from hal.x509 import cert_identity, identity_matches, tlv

# ssl (None on a port built without TLS), whether it is OpenSSL (CPython), and MicroPython's
# mbedTLS module (None on CPython)
_ssl, _OPENSSL, _mtls = tls_modules()


def ssl_module():
    """The runtime's ssl module (None on a port built without TLS)."""
    return _ssl


_CERT_REQUIRED = 2  # same value in CPython, MicroPython and mbedTLS
_PROTOCOL_TLS_CLIENT = 0  # MicroPython's values; CPython uses its own constants below
_PROTOCOL_TLS_SERVER = 1

# TLS 1.2 suites for OpenSSL (TLS 1.3 suites are all AEAD and left at their defaults).
OPENSSL_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP:!DSS"
# mbedTLS names, best first; only those the build has are configured.
MBEDTLS_CIPHERS = (
    "TLS1-3-AES-256-GCM-SHA384",
    "TLS1-3-CHACHA20-POLY1305-SHA256",
    "TLS1-3-AES-128-GCM-SHA256",
    "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
    "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
    "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
)
VERSIONS = ("TLSv1.2", "TLSv1.3")

# mbedTLS: MBEDTLS_ERR_X509_CERT_VERIFY_FAILED, returned by the verify callback to abort.
_VERIFY_FAILED = -0x2700
# OpenSSL's verify code for a certificate that does not name the expected host.
_X509_V_ERR_HOSTNAME_MISMATCH = 62


class TriageLinkError(Exception):
    """The triage link was refused or broke. `kind` says why:
    config (local material or runtime cannot meet the policy), auth (peer certificate missing,
    untrusted, expired or not yet valid), identity (authenticated, but not the expected peer),
    protocol (handshake failed otherwise: version, suites, plaintext), timeout (the peer went
    silent), weak (negotiated version/suite outside the policy), record (error after the
    handshake: tampered or garbage records), policy (a configuration the policy refuses)."""

    def __init__(self, kind, detail=""):
        super().__init__("{}: {}".format(kind, detail))
        self.kind = kind
        self.detail = detail


def runtime():
    """Which TLS stack this runtime uses: "openssl", "mbedtls" or "none"."""
    if _OPENSSL:
        return "openssl"
    return "mbedtls" if _mtls is not None else "none"


# --- a small DER reader: the names in a certificate ------------------------------------------

# --- errors ---------------------------------------------------------------------------------


_ETIMEDOUT = 110  # MicroPython raises OSError(ETIMEDOUT) when a socket timeout expires


def is_timeout(exc):
    t = getattr(_socket, "timeout", None)  # CPython: TimeoutError / socket.timeout
    if t is not None and isinstance(exc, t):
        return True
    args = getattr(exc, "args", ())
    return isinstance(exc, OSError) and len(args) > 0 and args[0] == _ETIMEDOUT


def classify(exc):
    # A peer certificate problem is an authentication failure; a silent peer is a timeout;
    # the rest is protocol.
    if is_timeout(exc):
        return "timeout"
    text = " ".join(str(a) for a in getattr(exc, "args", ())) + " " + str(getattr(exc, "reason", ""))
    up = text.upper()
    if "CERT" in up or "UNKNOWN_CA" in up or "UNKNOWN CA" in up:
        return "auth"
    return "protocol"


def describe(exc):
    args = getattr(exc, "args", ())
    parts = []
    for a in args:
        a = " ".join(str(a).split())  # mbedTLS messages carry newlines
        if a:
            parts.append(a)
    return "{}({})".format(type(exc).__name__, ", ".join(parts))


def _aead(suite):
    s = suite.upper()
    if "CCM-8" in s or "CCM_8" in s or "CCM8" in s:
        return False
    return "GCM" in s or "CHACHA20" in s or "CCM" in s


def _suite_ok(suite):
    up = suite.upper()
    tls13 = up.startswith("TLS1-3") or up.startswith("TLS_AES_") or up.startswith("TLS_CHACHA20_")
    return _aead(suite) and (tls13 or "ECDHE" in up) and "PSK" not in up and "NULL" not in up


def check_negotiated(version, suite):
    """Raise TriageLinkError('weak') unless (version, suite) meets the policy. None = unknown."""
    if version is not None and version not in VERSIONS:
        raise TriageLinkError("weak", "protocol version {} (need {})".format(version, " or ".join(VERSIONS)))
    if suite is not None:
        if not _suite_ok(suite):
            raise TriageLinkError(
                "weak", "cipher suite {} (need ECDHE with AES-GCM or ChaCha20-Poly1305)".format(suite)
            )


# --- endpoints ------------------------------------------------------------------------------


def _names(peer):
    if isinstance(peer, str):
        peer = [peer]
    names = [p for p in (peer or ()) if isinstance(p, str) and p]
    if not names:
        raise TriageLinkError("config", "no expected peer identity: the peer's EUI or name must be checked")
    return names


def _need_bytes(field, value):
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise TriageLinkError("config", "{} must be non-empty DER bytes".format(field))
    if bytes(value[:5]) == b"-----":
        raise TriageLinkError("config", "{} is PEM: give DER (MicroPython's TLS loads DER only)".format(field))
    return bytes(value)


def _key_pem(key_der):
    # PKCS#8 (version 0 then AlgorithmIdentifier SEQUENCE) or SEC1 (version 1 then OCTET STRING)
    import binascii

    label = "PRIVATE KEY"
    try:
        _, s, e = tlv(key_der, 0, len(key_der))
        _, vs, ve = tlv(key_der, s, e)
        if key_der[ve] == 0x04:
            label = "EC PRIVATE KEY"
    except (ValueError, IndexError):
        raise TriageLinkError("config", "key is not DER")
    b64 = binascii.b2a_base64(key_der).replace(b"\n", b"").decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN {}-----\n{}\n-----END {}-----\n".format(label, "\n".join(lines), label)


class TlsEndpoint:
    """One side of the triage link: client (connects) or server (accepts).

    cert_der, key_der: this end's certificate and private key (DER); ca_der: the triage CA
    (DER) that the peer's certificate must chain to; peer: the expected peer identity, a name
    or a list of names; min_version "1.2" or "1.3"; ciphers: an optional narrower list of
    suite names in the stack's own spelling (OpenSSL or mbedTLS), each ECDHE or TLS 1.3 with
    AEAD. wrap(sock) runs the handshake and returns a TlsLink, or raises TriageLinkError and
    closes the socket. One handshake at a time per endpoint (the mbedTLS identity check keeps
    per-handshake state)."""

    def __init__(self, server_side, cert_der, key_der, ca_der, peer, timeout=10, min_version="1.2", ciphers=None):
        self.server_side = bool(server_side)
        self.peer_names = _names(peer)
        self.timeout = timeout
        if min_version not in ("1.2", "1.3"):
            raise TriageLinkError("config", "min_version must be '1.2' or '1.3', not {!r}".format(min_version))
        self.min_version = min_version
        if ciphers is not None:
            if isinstance(ciphers, str) or not ciphers:
                raise TriageLinkError("config", "ciphers must be a non-empty list of suite names")
            for c in ciphers:
                if not _suite_ok(c):
                    raise TriageLinkError("config", "{} is not an ECDHE or TLS 1.3 AEAD suite".format(c))
        self.ciphers = ciphers
        cert = _need_bytes("cert", cert_der)
        key = _need_bytes("key", key_der)
        ca = _need_bytes("ca", ca_der)
        self._leaf = None
        self._refused = None
        if _OPENSSL:
            self.context = self._openssl_context(cert, key, ca)
        elif _mtls is not None:
            self.context = self._mbedtls_context(cert, key, ca)
        else:
            raise TriageLinkError("config", "this runtime has no TLS")

    # CPython / OpenSSL
    def _openssl_context(self, cert, key, ca):
        ssl = _ssl
        proto = ssl.PROTOCOL_TLS_SERVER if self.server_side else ssl.PROTOCOL_TLS_CLIENT
        ctx = ssl.SSLContext(proto)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = not self.server_side and len(self.peer_names) == 1
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if self.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(OPENSSL_CIPHERS)
        tls12 = [c for c in (self.ciphers or ()) if not (c.startswith("TLS_AES_") or c.startswith("TLS_CHACHA20_"))]
        if tls12:  # OpenSSL names; TLS 1.3 suites (all AEAD) cannot be narrowed from Python
            try:
                ctx.set_ciphers(":".join(tls12))
            except ssl.SSLError as e:
                raise TriageLinkError("config", "cipher suites: " + describe(e))
        if hasattr(ssl, "OP_NO_RENEGOTIATION"):
            ctx.options |= ssl.OP_NO_RENEGOTIATION
        try:
            ctx.load_verify_locations(cadata=ca)
        except (ssl.SSLError, ValueError) as e:
            raise TriageLinkError("config", "CA certificate: " + describe(e))
        import os
        import tempfile

        fd, path = tempfile.mkstemp(prefix="dbch-tls-", suffix=".pem")
        try:
            os.write(fd, (ssl.DER_cert_to_PEM_cert(cert) + _key_pem(key)).encode())
            os.close(fd)
            fd = None
            ctx.load_cert_chain(path)
        except (ssl.SSLError, ValueError) as e:
            raise TriageLinkError("config", "certificate/key: " + describe(e))
        finally:
            if fd is not None:
                os.close(fd)
            os.unlink(path)
        return ctx

    # MicroPython / mbedTLS
    def _mbedtls_context(self, cert, key, ca):
        m = _mtls
        proto = getattr(m, "PROTOCOL_TLS_SERVER" if self.server_side else "PROTOCOL_TLS_CLIENT", None)
        if proto is None:
            proto = _PROTOCOL_TLS_SERVER if self.server_side else _PROTOCOL_TLS_CLIENT
        ctx = m.SSLContext(proto)
        ctx.verify_mode = getattr(m, "CERT_REQUIRED", _CERT_REQUIRED)
        if self.server_side and not hasattr(ctx, "verify_callback"):
            raise TriageLinkError("config", "this TLS stack cannot check the client's identity (no verify_callback)")
        try:
            ctx.load_verify_locations(ca)
        except (OSError, ValueError) as e:
            raise TriageLinkError("config", "CA certificate: " + describe(e))
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ValueError) as e:
            raise TriageLinkError("config", "certificate/key: " + describe(e))
        if not hasattr(ctx, "set_ciphers"):
            raise TriageLinkError("config", "this TLS stack cannot restrict cipher suites to AEAD")
        want = self.ciphers or MBEDTLS_CIPHERS
        if self.min_version == "1.3":
            want = [c for c in want if c.startswith("TLS1-3")]
        have = ctx.get_ciphers() if hasattr(ctx, "get_ciphers") else list(want)
        suites = [c for c in want if c in have]
        if not suites:
            raise TriageLinkError(
                "config", "no allowed cipher suite (TLS {}+, ECDHE AEAD) in this TLS stack".format(self.min_version)
            )
        try:
            ctx.set_ciphers(suites)
        except (OSError, ValueError) as e:
            raise TriageLinkError("config", "cipher suites: " + describe(e))
        self.suites = suites
        if hasattr(ctx, "verify_callback"):
            ctx.verify_callback = self._verify
        return ctx

    def _verify(self, cert, depth):
        # Called by mbedTLS for each certificate of the peer's chain, inside the handshake.
        # Must not raise: return 0 to go on, non-zero to abort the handshake.
        if depth != 0:
            return 0
        try:
            der = bytes(cert)
            self._leaf = der
            if identity_matches(der, self.peer_names):
                return 0
            self._refused = cert_identity(der)
        except Exception:  # nothing may escape into mbedTLS
            self._refused = "(unreadable certificate)"
        return _VERIFY_FAILED

    def wrap(self, sock, timeout=None):
        """Handshake on a connected socket; a TlsLink, or TriageLinkError (socket closed)."""
        t = self.timeout if timeout is None else timeout
        if t is not None and hasattr(sock, "settimeout"):
            sock.settimeout(t)
        self._leaf = None
        self._refused = None
        try:
            if _OPENSSL:
                s = self.context.wrap_socket(
                    sock,
                    server_side=self.server_side,
                    server_hostname=None if self.server_side else self.peer_names[0],
                )
            elif self.server_side:
                s = self.context.wrap_socket(sock, server_side=True)
            else:
                s = self.context.wrap_socket(sock, server_side=False, server_hostname=self.peer_names[0])
        except Exception as e:  # every stack raises its own types
            close_quietly(sock)
            if self._refused is not None:
                raise TriageLinkError(
                    "identity", "peer is {!r}, expected {}".format(self._refused, " or ".join(self.peer_names))
                )
            if isinstance(e, TriageLinkError):
                raise
            if getattr(e, "verify_code", None) == _X509_V_ERR_HOSTNAME_MISMATCH:
                raise TriageLinkError("identity", describe(e))
            raise TriageLinkError(classify(e), describe(e))
        try:
            return self.checked(s)
        except TriageLinkError:
            close_quietly(s)
            raise

    def checked(self, s):
        if _OPENSSL:
            leaf = s.getpeercert(binary_form=True)
            version = s.version()
            c = s.cipher()
            suite = c[0] if c else None
        else:
            leaf = self._leaf
            version = suite = None
            if hasattr(s, "cipher"):
                c = s.cipher()
                if c:
                    suite = c[0]
                    version = c[1] if len(c) > 1 else None
        if not leaf and not self.server_side and not _OPENSSL and not hasattr(self.context, "verify_callback"):
            # no callback to read the leaf: mbedTLS itself matched server_hostname
            return TlsLink(s, self.peer_names[0], version, suite, None)
        if not leaf:
            raise TriageLinkError("auth", "peer sent no certificate")
        if not identity_matches(leaf, self.peer_names):
            raise TriageLinkError(
                "identity", "peer is {!r}, expected {}".format(cert_identity(leaf), " or ".join(self.peer_names))
            )
        check_negotiated(version, suite)
        if self.min_version == "1.3" and version is not None and version != "TLSv1.3":
            raise TriageLinkError("weak", "protocol version {} (TLS 1.3 required)".format(version))
        return TlsLink(s, cert_identity(leaf), version, suite, leaf)


def close_quietly(s):
    try:
        s.close()
    except Exception:
        pass


class TlsLink:
    """An established, checked triage link: peer (its identity), version, suite, peer_cert."""

    def __init__(self, sock, peer, version, suite, peer_cert):
        self.sock = sock
        self.peer = peer
        self.version = version
        self.suite = suite
        self.peer_cert = peer_cert

    def send(self, data):
        try:
            if hasattr(self.sock, "sendall"):
                self.sock.sendall(data)
            else:
                self.sock.write(data)
        except Exception as e:
            self.close()
            raise TriageLinkError("timeout" if is_timeout(e) else "record", describe(e))

    def recv(self, n=1024):
        """Up to n bytes; b"" when the peer closed the link cleanly."""
        try:
            if hasattr(self.sock, "recv"):
                return self.sock.recv(n)
            return self.sock.read(n)
        except Exception as e:
            self.close()
            kind = classify(e)
            raise TriageLinkError(kind if kind != "protocol" else "record", describe(e))

    def settimeout(self, t):
        """Seconds a send/recv may block (None: forever); the handshake timeout until set."""
        if self.sock is not None and hasattr(self.sock, "settimeout"):
            self.sock.settimeout(t)

    def recv_exactly(self, n):
        out = b""
        while len(out) < n:
            chunk = self.recv(n - len(out))
            if not chunk:
                raise TriageLinkError("record", "link closed after {} of {} bytes".format(len(out), n))
            out += chunk
        return out

    def close(self):
        if self.sock is not None:
            close_quietly(self.sock)
            self.sock = None


def client(cert_der, key_der, ca_der, peer, timeout=10, min_version="1.2", ciphers=None):
    """A client endpoint expecting the server to be `peer`."""
    return TlsEndpoint(False, cert_der, key_der, ca_der, peer, timeout, min_version, ciphers)


def server(cert_der, key_der, ca_der, peers, timeout=10, min_version="1.2", ciphers=None):
    """A server endpoint accepting only clients named in `peers`."""
    return TlsEndpoint(True, cert_der, key_der, ca_der, peers, timeout, min_version, ciphers)


def connect(endpoint, host, port, timeout=None):
    """Open a TCP connection to host:port and run the client handshake on it."""
    addr = _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)[0][-1]
    s = _socket.socket()
    t = endpoint.timeout if timeout is None else timeout
    if t is not None and hasattr(s, "settimeout"):
        s.settimeout(t)
    try:
        s.connect(addr)
    except OSError as e:
        close_quietly(s)
        raise TriageLinkError("protocol", "connect to {}:{}: {}".format(host, port, describe(e)))
    return endpoint.wrap(s, timeout)

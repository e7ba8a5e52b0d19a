# The Triage System Interface (SEC G12): link policy as data + checks, and the security
# incident recorder (SEC G3.5 / G3.5AA). Portable, no I/O: hal.tls runs the TLS link,
# host_tools.ipsec the IPsec one; both refuse what check_policy refuses.
#
# A link configuration is a dict:
#   TLS   {"mode": "tls", "cert": DER, "key": DER, "ca": DER, "peer": name or [names],
#          "verify": "required" (default), "min_version": "1.2" (default) or "1.3",
#          "ciphers": [suite names] (optional; each ECDHE + AEAD, or a TLS 1.3 suite)}
#   IPsec {"mode": "ipsec", "ike_version": 2, "local_auth": "pubkey", "remote_auth": "pubkey",
#          "cert": ..., "key": ..., "ca": ..., "remote_id": name,
#          "ike_proposals": ["aes256gcm16-prfsha384-ecp256"], "esp_proposals": ["aes256gcm16-ecp256"]}
# cert/key/ca are DER bytes on the device, or paths (str) on a host. Everything else - "plain",
# TLS without a client certificate, PSK, IKEv1, ESP/IKE without AEAD, AH - is refused.

from hal.compat import const
from hal.tls import TriageLinkError

_MIN_TLS = const(12)  # TLS 1.2 as 10 * major + minor

TLS_VERSIONS = {"1.2": 12, "1.3": 13, "tlsv1.2": 12, "tlsv1.3": 13, "1.0": 10, "1.1": 11, "tlsv1": 10, "tlsv1.1": 11}

# IKE/ESP encryption algorithm keywords (strongSwan names) that are AEAD.
_AEAD_PREFIXES = ("aes128gcm", "aes192gcm", "aes256gcm", "aes128ccm", "aes192ccm", "aes256ccm", "chacha20poly1305")
_WEAK_AEAD = ("gcm8", "ccm8")  # 64-bit ICV: not accepted


class PolicyError(TriageLinkError):
    """A link configuration the policy refuses; `field` names what is wrong."""

    def __init__(self, field, reason):
        super().__init__("policy", "{}: {}".format(field, reason))
        self.field = field
        self.reason = reason


def _present(cfg, field):
    v = cfg.get(field)
    if isinstance(v, (bytes, bytearray, str)) and len(v) > 0:
        return v
    raise PolicyError(field, "missing: mutual authentication needs this end's certificate, key and the CA")


def _names(cfg, field):
    v = cfg.get(field)
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise PolicyError(field, "missing: the peer's identity (EUI or name) must be checked")
    for n in v:
        if not isinstance(n, str) or not n:
            raise PolicyError(field, "not a name: {!r}".format(n))
    return list(v)


def _starts(s, prefixes):
    for p in prefixes:
        if s.startswith(p):
            return True
    return False


def _aead_suite(name):
    up = name.upper()
    if "CCM-8" in up or "CCM_8" in up or "CCM8" in up or "NULL" in up:
        return False
    tls13 = up.startswith("TLS_AES") or up.startswith("TLS_CHACHA20") or up.startswith("TLS1-3")
    aead = "GCM" in up or "CHACHA20" in up or "CCM" in up
    return aead and (tls13 or "ECDHE" in up) and "PSK" not in up


def _check_tls(cfg):
    if "psk" in cfg or "psk_identity" in cfg or "psk_key" in cfg:
        raise PolicyError("psk", "pre-shared keys are not certificate client authentication")
    for f in ("cert", "key", "ca"):
        _present(cfg, f)
    verify = cfg.get("verify", "required")
    if verify != "required":
        raise PolicyError(
            "verify", "must be 'required' (peer certificates in both directions), not {!r}".format(verify)
        )
    mv = cfg.get("min_version", "1.2")
    level = TLS_VERSIONS.get(str(mv).lower())
    if level is None:
        raise PolicyError("min_version", "unknown TLS version {!r}".format(mv))
    if level < _MIN_TLS:
        raise PolicyError("min_version", "TLS {} is below the 1.2 minimum".format(mv))
    ciphers = cfg.get("ciphers")
    if ciphers is not None:
        if isinstance(ciphers, str) or not ciphers:
            raise PolicyError("ciphers", "give a non-empty list of suite names")
        for c in ciphers:
            if not _aead_suite(c):
                raise PolicyError("ciphers", "{} is not an ECDHE AEAD suite".format(c))
    out = {
        "mode": "tls",
        "cert": cfg["cert"],
        "key": cfg["key"],
        "ca": cfg["ca"],
        "peer": _names(cfg, "peer"),
        "verify": "required",
        "min_version": "1.3" if level >= 13 else "1.2",
    }
    if ciphers is not None:
        out["ciphers"] = list(ciphers)
    return out


def proposal_is_aead(proposal, ike):
    """True if a strongSwan proposal ("aes256gcm16-prfsha384-ecp256") uses only AEAD ciphers.
    IKE proposals also need a PRF and a DH group; ESP ones a DH group is optional."""
    if not isinstance(proposal, str) or not proposal:
        return False
    parts = proposal.lower().split("-")
    enc = [p for p in parts if _starts(p, _AEAD_PREFIXES)]
    if not enc:
        return False
    for p in parts:
        if p in ("null", "aes128", "aes192", "aes256", "3des", "cast128", "blowfish", "des"):
            return False  # a non-AEAD cipher mixed in
        if p.startswith("aes") and p not in enc and not p.startswith("aesxcbc") and not p.startswith("aescmac"):
            return False
        for w in _WEAK_AEAD:
            if p.endswith(w):
                return False
    if ike:
        has_prf = False
        has_dh = False
        for p in parts:
            if p.startswith("prf"):
                has_prf = True
            if p.startswith("ecp") or p.startswith("modp") or p in ("curve25519", "x25519", "curve448", "x448"):
                has_dh = True
        return has_prf and has_dh
    return True


def _proposals(cfg, field, ike, default):
    props = cfg.get(field, default)
    if isinstance(props, str):
        props = [props]
    if not props:
        raise PolicyError(field, "no proposal")
    for p in props:
        if not proposal_is_aead(p, ike):
            raise PolicyError(field, "{!r} is not an AEAD proposal".format(p))
    return list(props)


DEFAULT_IKE_PROPOSALS = ("aes256gcm16-prfsha384-ecp256",)
DEFAULT_ESP_PROPOSALS = ("aes256gcm16-ecp256",)


def _check_ipsec(cfg):
    v = cfg.get("ike_version", 2)
    if v not in (2, "2", "ikev2"):
        raise PolicyError("ike_version", "only IKEv2 is allowed, not {!r}".format(v))
    for side in ("local_auth", "remote_auth"):
        a = cfg.get(side, "pubkey")
        if a not in ("pubkey", "ecdsa", "ecdsa-256"):
            raise PolicyError(side, "must be certificate (pubkey) authentication, not {!r}".format(a))
    if "psk" in cfg or "secret" in cfg:
        raise PolicyError("psk", "pre-shared keys are not certificate authentication")
    if cfg.get("ah_proposals"):
        raise PolicyError("ah_proposals", "AH gives no confidentiality: use ESP with AEAD")
    for f in ("cert", "key", "ca"):
        _present(cfg, f)
    return {
        "mode": "ipsec",
        "ike_version": 2,
        "local_auth": "pubkey",
        "remote_auth": "pubkey",
        "cert": cfg["cert"],
        "key": cfg["key"],
        "ca": cfg["ca"],
        "remote_id": _names(cfg, "remote_id")[0],
        "ike_proposals": _proposals(cfg, "ike_proposals", True, DEFAULT_IKE_PROPOSALS),
        "esp_proposals": _proposals(cfg, "esp_proposals", False, DEFAULT_ESP_PROPOSALS),
    }


def check_policy(cfg):
    """The normalised configuration if SEC G12 allows it, else PolicyError naming the field."""
    if not isinstance(cfg, dict):
        raise PolicyError("config", "not a dict")
    mode = cfg.get("mode")
    if mode == "tls":
        return _check_tls(cfg)
    if mode == "ipsec":
        return _check_ipsec(cfg)
    if mode is None:
        raise PolicyError("mode", "missing: must be 'tls' (with client authentication) or 'ipsec'")
    raise PolicyError("mode", "{!r} refused: only 'tls' with client authentication or 'ipsec'".format(mode))


def refusal(cfg):
    """None if the configuration is allowed, else the reason (for reports, no exception)."""
    try:
        check_policy(cfg)
        return None
    except PolicyError as e:
        return str(e)


def tls_endpoint(cfg, server_side, timeout=10):
    """A hal.tls endpoint for an allowed TLS configuration (DER bytes), else PolicyError."""
    c = check_policy(cfg)
    if c["mode"] != "tls":
        raise PolicyError("mode", "not a TLS configuration")
    from hal import tls

    return tls.TlsEndpoint(
        server_side, c["cert"], c["key"], c["ca"], c["peer"], timeout, c["min_version"], c.get("ciphers")
    )


# --- security incidents ----------------------------------------------------------------------

AUTH_FAILED = "auth_failed"  # a peer failed authentication (certificate, identity)
LINK_REFUSED = "link_refused"  # a link refused by policy or protocol (version, suites, plaintext)
BAD_RECORD = "bad_record"  # tampered or garbage data on an established link
TAMPERED_IMAGE = "tampered_image"  # a firmware image failed its hash or signature check
POLICY_VIOLATION = "policy_violation"  # a configuration the policy refuses was attempted
IMAGE_ROLLBACK = "image_rollback"  # a signed image below the minimum security counter (agent.fw_service)

# How many events of a kind, within one open incident window, make a Major Security Incident.
DEFAULT_THRESHOLDS = {
    AUTH_FAILED: 5,
    LINK_REFUSED: 10,
    BAD_RECORD: 5,
    TAMPERED_IMAGE: 1,
    IMAGE_ROLLBACK: 1,
    POLICY_VIOLATION: 3,
}

_LINK_KINDS = {
    "auth": AUTH_FAILED,
    "identity": AUTH_FAILED,
    "record": BAD_RECORD,
    "policy": POLICY_VIOLATION,
    "protocol": LINK_REFUSED,
    "weak": LINK_REFUSED,
    # "config" (our own material) and "timeout" (a silent peer) are not security incidents
}

# A connection that went away is not an attack on authentication: the peer or the network
# closed or reset it, it never came up at TCP level, or it went silent. A Triage Tool that is
# busy, restarting or flooded by others does exactly this, so it is never counted. The
# errno values (Linux and BSD): ECONNRESET, EPIPE, ECONNABORTED, ECONNREFUSED, ENETUNREACH,
# EHOSTUNREACH, ETIMEDOUT, ENOTCONN; mbedTLS: CONN_EOF, NET_CONN_RESET, NET_RECV_FAILED,
# NET_SEND_FAILED.
_GONE_ERRNOS = (104, 54, 32, 103, 53, 111, 61, 101, 51, 113, 65, 110, 60, 107, 57)
_GONE_MBEDTLS = (-0x7280, -0x50, -0x4C, -0x4E)
_GONE_WORDS = (
    "EOF OCCURRED",
    "UNEXPECTED_EOF",
    "SSLEOFERROR",
    "SSLZERORETURNERROR",
    "CONN_EOF",
    "CONN_RESET",
    "CONNECTIONRESET",
    "CONNECTIONREFUSED",
    "CONNECTIONABORTED",
    "BROKENPIPE",
)
# An alert from the peer that names our certificate: it refused us (OpenSSL spells the alert:
# UNKNOWN_CA, BAD_CERTIFICATE, CERTIFICATE_REQUIRED, ...; in TLS 1.3 it arrives after our side
# of the handshake is done, as a "record" error). mbedTLS reports any fatal alert as
# FATAL_ALERT_MESSAGE without saying which; the hub's suites and versions are the ones a Triage
# Tool under the same policy accepts, so in a handshake that alert is the tool refusing us.
_AUTH_ALERTS = ("ALERT_UNKNOWN_CA", "CERTIFICATE", "ALERT_ACCESS_DENIED")
_HANDSHAKE_ALERTS = ("FATAL_ALERT",)


def _errno_in(text):
    # the error number of "OSError(104)", "ConnectionResetError(104, ...)", "OSError(-29312, ...)"
    i = text.find("(")
    if i < 0:
        return None
    j = k = i + 1
    if k < len(text) and text[k] == "-":
        k += 1
    start = k
    while k < len(text) and "0" <= text[k] <= "9":
        k += 1
    return int(text[j:k]) if k > start else None


def link_gone(err):
    """True if a TriageLinkError only says the connection went away (closed, reset, refused at
    TCP level, timed out) rather than that a peer failed authentication or broke the policy."""
    kind = getattr(err, "kind", None)
    if kind == "timeout":
        return True
    if kind not in ("protocol", "record"):
        return False
    detail = str(getattr(err, "detail", "") or "")
    up = detail.upper()
    for w in _GONE_WORDS:
        if w in up:
            return True
    if up.startswith("CONNECT TO "):  # hal.tls.connect: TCP, before any TLS
        return True
    n = _errno_in(detail)
    return n is not None and (n in _GONE_MBEDTLS or (n if n > 0 else -n) in _GONE_ERRNOS)


def incident_kind(err):
    """The incident kind for a TriageLinkError: None for local configuration errors and for a
    connection that went away (link_gone); an alert naming our certificate is AUTH_FAILED."""
    kind = getattr(err, "kind", None)
    if link_gone(err):
        return None
    if kind in ("protocol", "record"):
        up = str(getattr(err, "detail", "") or "").upper()
        for w in _AUTH_ALERTS + (_HANDSHAKE_ALERTS if kind == "protocol" else ()):
            if w in up:
                return AUTH_FAILED
    return _LINK_KINDS.get(kind)


class Incidents:
    """Counts security events by kind and declares a Major Security Incident when a kind
    reaches its threshold. The incident is notified upward once, through notify(report)
    (the hub wires it to the outbox); while it stays open the recipients already know
    (G3.5AA), so it is not notified again, however many events follow. close() ends it and
    clears the flag: the next threshold crossing is a new incident and is notified again.
    If notify raises or returns False the notification is pending and retried by flush()
    or the next record(). snapshot()/restore() keep the state across reboots."""

    def __init__(self, notify=None, thresholds=None):
        self.notify = notify
        self.thresholds = dict(DEFAULT_THRESHOLDS)
        if thresholds:
            for k in thresholds:
                n = thresholds[k]
                if not isinstance(n, int) or n < 1:
                    raise ValueError("threshold for {} must be an int >= 1".format(k))
                self.thresholds[k] = n
        self.totals = {}  # lifetime counts by kind
        self.window = {}  # counts since the last close()
        self.open = False  # a major incident is open
        self.notified = False  # ... and its recipients know
        self.number = 0  # incidents declared so far
        self.trigger = None
        self.last_detail = None

    def count(self, kind):
        return self.totals.get(kind, 0)

    def record(self, kind, detail=None):
        """Count one event; True if a major incident is open after it."""
        if not isinstance(kind, str) or not kind:
            raise ValueError("incident kind must be a non-empty string")
        self.totals[kind] = self.totals.get(kind, 0) + 1
        self.window[kind] = self.window.get(kind, 0) + 1
        self.last_detail = detail
        if not self.open:
            limit = self.thresholds.get(kind)
            if limit is not None and self.window[kind] >= limit:
                self.open = True
                self.notified = False
                self.number += 1
                self.trigger = kind
        if self.open and not self.notified:
            self.flush()
        return self.open

    def record_link_error(self, err):
        """Record a TriageLinkError under its incident kind; returns that kind or None."""
        kind = incident_kind(err)
        if kind is not None:
            self.record(kind, getattr(err, "detail", None))
        return kind

    def report(self):
        counts = {}
        for k in self.window:
            counts[k] = self.window[k]
        return {
            "incident": self.number,
            "trigger": self.trigger,
            "counts": counts,
            "detail": self.last_detail,
        }

    def flush(self):
        """Notify an open, not yet notified incident. True once the recipients know."""
        if not self.open:
            return False
        if self.notified:
            return True
        if self.notify is None:
            return False
        try:
            ok = self.notify(self.report())
        except Exception:  # the outbox failed: stay pending, retry later
            return False
        self.notified = ok is not False
        return self.notified

    def close(self):
        """The incident is closed (acknowledged and resolved): clear the flag and the window."""
        self.open = False
        self.notified = False
        self.trigger = None
        self.window = {}

    def snapshot(self):
        return {
            "totals": dict(self.totals),
            "window": dict(self.window),
            "open": self.open,
            "notified": self.notified,
            "number": self.number,
            "trigger": self.trigger,
        }

    def restore(self, state):
        self.totals = dict(state.get("totals", {}))
        self.window = dict(state.get("window", {}))
        self.open = bool(state.get("open", False))
        self.notified = bool(state.get("notified", False))
        self.number = int(state.get("number", 0))
        self.trigger = state.get("trigger")

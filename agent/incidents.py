# Security incidents (SEC G3.5 / G3.5AA): their kinds, which link errors count as one, and the
# recorder that declares a Major Security Incident when a kind reaches its threshold. Its own
# small module without TLS (a link error is read by its kind and text only), so the firmware
# service records a refused image without loading the triage link's code, also on a board built
# without networking.
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

# The Triage System Interface (SEC G12) on the hub's side: dial the Triage Tool over mutually
# authenticated TLS and serve the agent's protocol on that link. Its own module, so a board that
# never uses it does not load it at boot.
#
# Two ways in:
# - serve_triage(): a hub that only lives on the triage link (`dbch triage dial`, tests).
# - Dialer: the flashed agent's. agent.run polls one beside the console's server when the Store
#   holds a triage configuration (record "triage", put there by the "triage.set" request:
#   `dbch triage enrol --port P --tool HOST:PORT`), so a hub in the field comes up on the triage
#   link by itself, and the console keeps serving while it does. A dial blocks the loop for
#   its TCP connect and TLS handshake (bounded by the configuration's timeout); failed dials in
#   a row back off, so an unreachable tool costs the console little.
from agent.hub import RC_BAD_ARGS, RC_OK, Hub
from agent.server import Server
from hal.compat import sleep_ms, ticks_add, ticks_diff, ticks_ms

CONFIG = "triage"  # Store record: the triage configuration (agent.triage TLS form + host, port)
_INCIDENTS = "incidents"  # Store record: the Incidents state, kept across reboots
_DETAIL = 120  # characters of an error kept in an incident report


def _dial(endpoint, host, port, timeout):
    # TCP first: an unreachable facility is not a security incident (None); the handshake's
    # refusals are (TriageLinkError from endpoint.wrap).
    import socket

    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
        s = socket.socket()
    except OSError:
        return None
    try:
        s.settimeout(timeout)
        s.connect(addr)
    except OSError:
        s.close()
        return None
    return endpoint.wrap(s)


def checked_config(cfg):
    """The configuration as stored: agent.triage's TLS form ("mode" defaults to "tls") with the
    Triage Tool's host and port; PolicyError (a TriageLinkError) names what is wrong."""
    from agent.triage import check_policy
    from hal.tls import TriageLinkError

    if not isinstance(cfg, dict):
        raise TriageLinkError("config", "a dict is needed")
    cfg = dict(cfg)
    if cfg.get("mode") is None:
        cfg["mode"] = "tls"
    check_policy(cfg)
    if cfg["mode"] != "tls":
        raise TriageLinkError("config", "the hub dials its Triage Tool over TLS")
    host = cfg.get("host")
    port = cfg.get("port")
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        raise TriageLinkError("config", "host and port of the Triage Tool are needed")
    return cfg


def record(hub, err):
    """Record a TriageLinkError in hub.incidents when it is a security incident (kept in the
    Store); returns its text as kept."""
    from agent.incidents import incident_kind

    detail = str(err)[:_DETAIL]
    kind = incident_kind(err)
    if kind is not None:
        inc = incidents_of(hub)
        inc.record(kind, detail)
        hub.store.put(_INCIDENTS, inc.snapshot())
    return detail


def incidents_of(hub, thresholds=None):
    """The hub's Incidents recorder (made once, restored from the Store): Major Security
    Incidents become outbox events of kind "incident"."""
    inc = getattr(hub, "incidents", None)
    if inc is None:
        from agent.incidents import Incidents

        inc = Incidents(lambda report: hub.outbox.append("incident", report) is not None, thresholds)
        saved = hub.store.get(_INCIDENTS)
        if isinstance(saved, dict):
            inc.restore(saved)
        hub.incidents = inc
    return inc


class Dialer:
    """Keeps a hub on its Triage Tool, one poll() at a time: dials (TCP, then the TLS handshake,
    bounded by the configuration's timeout), serves the link while it lasts, and dials again
    retry_ms after a failure, or a second after a link that closed. Refused handshakes and
    broken links are recorded in hub.incidents (agent.incidents.incident_kind decides which count)."""

    def __init__(self, hub, cfg, retry_ms=5000, thresholds=None, backoff_max_ms=None):
        from agent.triage import tls_endpoint

        self.hub = hub
        self.cfg = checked_config(cfg)
        self.retry_ms = retry_ms
        self.backoff_max_ms = backoff_max_ms  # failed dials in a row double the wait up to this
        self.incidents = incidents_of(hub, thresholds)
        self.timeout = self.cfg.get("timeout", 10)
        self.endpoint = tls_endpoint(self.cfg, False, self.timeout)
        self.link = None
        self.server = None
        self.failures = 0  # failed dials in a row
        self.sessions = 0  # links that came up
        self.last_error = None
        self._next = ticks_ms()  # the first dial: at once

    def note(self, err):
        self.last_error = record(self.hub, err)

    def _wait(self, ms):
        self._next = ticks_add(ticks_ms(), ms)  # real time: a simulated clock may stand still

    def poll(self):
        """One pass. Returns "up" after a pass on a live link, "dialed" when a dial succeeded,
        "failed" when one failed, "closed" when the link ended, None while waiting to dial."""
        if self.server is not None:
            tl = self.link
            self.server.poll()
            if self.server is None:  # closed while serving (a triage.clear)
                return "closed"
            if not tl.eof and not self.hub.reboot_requested:
                return "up"
            self.close()
            if tl.error is not None:
                self.note(tl.error)
            self._wait(self.retry_ms if self.retry_ms < 1000 else 1000)  # not a tight loop of redials
            return "closed"
        if ticks_diff(ticks_ms(), self._next) < 0:
            return None
        from hal.tls import TriageLinkError
        from hal.tls_stream import TlsStreamLink

        try:
            link = _dial(self.endpoint, self.cfg["host"], self.cfg["port"], self.timeout)
        except TriageLinkError as e:
            self.note(e)
            link = None
        if link is None:
            self.failures += 1
            ms = self.retry_ms
            if self.backoff_max_ms:
                ms = ms << (self.failures - 1 if self.failures < 8 else 7)
                ms = ms if ms < self.backoff_max_ms else self.backoff_max_ms
            self._wait(ms)
            return "failed"
        self.failures = 0
        self.sessions += 1
        self.last_error = None
        self.link = TlsStreamLink(link)
        self.server = Server(self.hub, self.link)
        return "dialed"

    def wait(self, ms):
        if self.link is not None:
            self.link.wait(ms)

    def close(self):
        if self.link is not None:
            self.link.close()
        self.link = None
        self.server = None

    def status(self):
        return {
            "tool": "{}:{}".format(self.cfg["host"], self.cfg["port"]),
            "peer": self.cfg["peer"],
            "up": self.server is not None,
            "sessions": self.sessions,
            "failures": self.failures,
            "error": self.last_error,
            "incidents": self.incidents.snapshot(),
        }


def _pause(hub, ms, stop):
    while ms > 0 and not hub.reboot_requested and not (stop and stop()):
        step = 100 if ms > 100 else ms
        sleep_ms(step)
        ms -= step
        hub.tick()


# Dial the Triage Tool at cfg["host"]:cfg["port"] over mutually authenticated TLS and serve the
# agent's protocol on the link; dial again when it closes. cfg is an agent.triage TLS
# configuration (cert, key, ca as DER; peer = the tool's name, optional timeout in s); the
# policy is checked first and anything else is refused (PolicyError). Refused handshakes and
# broken links go to hub.incidents (kept in the Store across reboots); a Major Security Incident
# becomes an outbox event of kind "incident". Returns the Hub after `sessions` links,
# `max_failures` failed dials in a row, stop() or a reboot request (then hal.reset, if any, runs).
def serve_triage(hal, cfg, board=None, sessions=None, max_failures=None, retry_ms=5000, stop=None, thresholds=None):
    from hal.tls import TriageLinkError

    hub = Hub(hal, board)
    try:
        incidents_of(hub, thresholds)
        try:
            dialer = Dialer(hub, cfg, retry_ms, thresholds)
        except TriageLinkError as e:
            record(hub, e)
            raise
        while not hub.reboot_requested and not (stop and stop()):
            state = dialer.poll()
            if state == "up":
                dialer.wait(20)
            elif state is None:
                _pause(hub, 50, stop)  # until the next dial is due
            elif state == "failed" and max_failures is not None and dialer.failures >= max_failures:
                break
            elif state == "closed" and sessions is not None and dialer.sessions >= sessions:
                break
        dialer.close()
    finally:
        hal.deinit()
    if hub.reboot_requested and getattr(hal, "reset", None):
        hal.reset()
    return hub


# --- the triage.* requests, answered on the local link (agent.run) ------------------------


def start(hub, cfg, dialer, backoff_ms):
    """Put a Dialer for cfg in dialer[0] (closing the one there). A configuration that cannot
    be used is recorded and leaves no Dialer; returns the error text or None."""
    from hal.tls import TriageLinkError

    if dialer[0] is not None:
        dialer[0].close()
        dialer[0] = None
    try:
        dialer[0] = Dialer(hub, cfg, backoff_max_ms=backoff_ms)
    except TriageLinkError as e:
        return record(hub, e)
    return None


def handle(hub, req, dialer, backoff_ms):
    """triage.set {host, port, cert, key, ca, peer[, timeout]} stores a configuration (checked by
    agent.triage's policy: E49 with the reason if refused) and dials with it; triage.clear
    forgets it and hangs up; triage.status says whether the hub is enrolled and how its link
    is."""
    op = req.get("op")
    if op == "triage.status":
        d = dialer[0]
        if d is None:
            return RC_OK, {"enrolled": hub.store.get(CONFIG) is not None, "up": False}, None
        s = d.status()
        s["enrolled"] = True
        return RC_OK, s, None
    if dialer[0] is not None:
        dialer[0].close()
        dialer[0] = None
    if op == "triage.clear":
        hub.store.delete(CONFIG)
        return RC_OK, {"enrolled": False}, None
    from hal.tls import TriageLinkError

    try:
        cfg = checked_config(req.get("a") or {})
    except TriageLinkError as e:
        return RC_BAD_ARGS, None, str(e)
    err = start(hub, cfg, dialer, backoff_ms)  # material that cannot make a TLS endpoint: not kept
    if err is not None:
        return RC_BAD_ARGS, None, err
    hub.store.put(CONFIG, cfg)
    return RC_OK, {"enrolled": True, "tool": "{}:{}".format(cfg["host"], cfg["port"])}, None

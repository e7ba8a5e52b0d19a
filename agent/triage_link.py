# The Triage System Interface (SEC G12) on the hub's side: dial the Triage Tool over mutually
# authenticated TLS and serve the agent's protocol on that link. Its own module, so a board that
# never uses it does not load it at boot.
from agent.hub import Hub
from agent.server import Server

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


def _pause(hub, ms, stop):
    import time

    sleep_ms = getattr(time, "sleep_ms", None)
    while ms > 0 and not hub.reboot_requested and not (stop and stop()):
        step = 100 if ms > 100 else ms
        if sleep_ms:
            sleep_ms(step)
        else:
            time.sleep(step / 1000)
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
    from agent.triage import Incidents, check_policy, incident_kind, tls_endpoint
    from hal.tls import TlsStreamLink, TriageLinkError

    hub = Hub(hal, board)
    incidents = Incidents(lambda report: hub.outbox.append("incident", report) is not None, thresholds)
    saved = hub.store.get(_INCIDENTS)
    if isinstance(saved, dict):
        incidents.restore(saved)
    hub.incidents = incidents

    def note(err):
        kind = incident_kind(err)
        if kind is not None:
            incidents.record(kind, str(err)[:_DETAIL])
            hub.store.put(_INCIDENTS, incidents.snapshot())

    try:
        try:
            check_policy(cfg)
            timeout = cfg.get("timeout", 10)
            endpoint = tls_endpoint(cfg, False, timeout)
            host = cfg.get("host")
            port = cfg.get("port")
            if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
                raise TriageLinkError("config", "host and port of the Triage Tool are needed")
        except TriageLinkError as e:
            note(e)
            raise
        failures = done = 0
        while not hub.reboot_requested and not (stop and stop()):
            try:
                link = _dial(endpoint, host, port, timeout)
            except TriageLinkError as e:
                note(e)
                link = None
            if link is None:
                failures += 1
                if max_failures is not None and failures >= max_failures:
                    break
                _pause(hub, retry_ms, stop)
                continue
            failures = 0
            tl = TlsStreamLink(link)
            server = Server(hub, tl)
            try:
                while not hub.reboot_requested and not tl.eof and not (stop and stop()):
                    server.poll()
                    tl.wait(20)
            finally:
                tl.close()
            if tl.error is not None:
                note(tl.error)
            done += 1
            if sessions is not None and done >= sessions:
                break
            _pause(hub, retry_ms if retry_ms < 1000 else 1000, stop)  # not a tight loop of redials
    finally:
        hal.deinit()
    if hub.reboot_requested and getattr(hal, "reset", None):
        hal.reset()
    return hub

"""A simulated hub that dials a Triage Tool, run by `dbch triage dial --micropython`
(host_tools.servers.triage.dial) on the MicroPython unix port, whose TLS is mbedTLS:

    micropython dial.py PARAMS.json

PARAMS.json holds one JSON object (in a file: the unix port as pip installs it fails on an
argument longer than about 256 bytes): root (the checkout, put first on sys.path), cert, key and ca (the hub's DER files from
the PKI), peer (the tool certificate name it expects), host and port (where the tool listens),
timeout (s, for connect and handshake), fs (the hub's storage directory), eui, sessions and
max_failures (when to end; null: never), retry_ms (between dials).

It prints `DIAL RUNTIME` as it starts, and at its end one of `RESULT AUTH_FAILED MAJOR_INCIDENTS
OUTBOX`, `REFUSED KIND DETAIL` (the hub refused its configuration; exit status 1) or `STOPPED`
(Ctrl-C).
"""

import json
import sys


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def dial(p):
    sys.path.insert(0, p["root"])
    from agent.triage_link import serve_triage
    from boards import sim
    from hal import tls
    from hal.mcu import McuClock
    from hal.sim.clock import FastForwardClock

    cfg = {
        "mode": "tls",
        "cert": _read(p["cert"]),
        "key": _read(p["key"]),
        "ca": _read(p["ca"]),
        "peer": p["peer"],
        "host": p["host"],
        "port": p["port"],
        "timeout": p["timeout"],
    }
    hal = sim.make_hal(storage_dir=p["fs"], eui=p["eui"], clock=FastForwardClock(McuClock()))
    print("DIAL", tls.runtime())
    try:
        hub = serve_triage(
            hal, cfg, board=sim, sessions=p["sessions"], max_failures=p["max_failures"], retry_ms=p["retry_ms"]
        )
    except tls.TriageLinkError as e:
        print("REFUSED", e.kind, e.detail)
        sys.exit(1)
    except KeyboardInterrupt:
        print("STOPPED")
        sys.exit(0)
    print("RESULT", hub.incidents.count("auth_failed"), hub.incidents.number, len(hub.outbox))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        dial(json.load(f))

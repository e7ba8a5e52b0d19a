"""The Triage System Interface as a working link (SEC G12): the Triage Tool at the facility and a
technician's session over it. `dbch triage serve | connect | dial | list | stop`.

Design
- Who dials: the hub (the Triage System side) connects OUT to the facility. A hub sits behind a
  WAN modem with no inbound route; the facility has a fixed address. The facility's Triage Tool
  listens.
- The link: TLS with client authentication, from hal.tls on both runtimes. The hub presents its
  device certificate (identity: its EUI-64) and checks the tool's certificate name; the tool
  requires the hub's certificate, chained to the triage CA and naming one of the expected EUIs.
  TLS 1.2 minimum (1.3 where both ends have it: CPython hubs), ECDHE with AEAD suites only
  (MicroPython/mbedTLS hubs: TLS 1.2 ECDHE-ECDSA-AES-GCM). The hub side is
  agent.triage_link.serve_triage (portable: CPython ssl and MicroPython mbedTLS) running the agent's
  Server over hal.tls_stream.TlsStreamLink, so the agent's wire protocol runs over TLS unchanged.
- `dbch triage serve` is the Triage Tool. One thread accepts TCP connections and runs every
  handshake at once, non-blocking, in an event loop (selectors): a connection that is silent,
  drip-feeds its bytes or stalls holds nothing but its own socket. Each handshake has a deadline
  (--handshake-timeout). Unauthenticated connections are bounded per source address
  (--max-handshakes-per-source) and in all (--max-handshakes); a new connection is always taken,
  and over a bound the oldest unauthenticated one goes - first one that never sent a
  ClientHello (idle or drip-feeding), from the same source, or else from the source holding the
  most. A genuine hub sends its ClientHello at once and is through in a few round trips, so a
  flood of idle connections evicts itself, not the hubs. An authenticated hub's link goes to the
  relay, which copies bytes between it and a local pty, the way `dbch vboard` exposes a board. One hub session at a time: a hub
  that dials again (after a reboot or a dropped route) replaces its older session. The pty path
  is printed and recorded, with the session (hub EUI, TLS version, suite) and the refusals, in
  <XDG_CACHE_HOME or ~/.cache>/dbch/triage/<NAME>/triage.json (host_tools.servers.registry keeps the
  liveness lock), so `--port triage[:NAME]` (host_tools.servers.ports) reaches the hub from every
  command: `dbch status --port triage`, `dbch config set --port triage ...`, `dbch alerts
  --port triage`.
- Refusals - a certificate from another CA, a wrong EUI, no client certificate, plaintext to the
  TLS port, TLS 1.1 or older - are logged, counted in the state file and in the tool's own
  incident recorder (agent.incidents.Incidents, whose Major Security Incidents are reported as
  "incident" events), and the tool goes on listening. After refusing a handshake the tool reads
  and drops what the peer still sends for a moment before closing, so the peer hears the alert
  rather than a reset. Connections that time out, close or reset before authenticating, or are
  evicted, are "dropped": logged (a few per interval, then a summary) and counted, but they are
  not authentication failures and raise no incident. The incident recorder is kept in
  incidents.json next to the state file (written atomically) and restored when the tool starts
  again, so an open incident and its counts survive a restart. When the hub is the one
  refusing (the tool's certificate is not the one it expects), the hub records the incident
  itself and reports it upward through its outbox (events of kind "incident").
- `dbch triage connect` is a technician's session: which hub is connected and how, then
  commands ("status", "config get", "alerts --wait 5", ...) typed one per line, or one command
  given on the command line; each runs the ordinary dbch command over the triage port.
- `dbch triage enrol --port P --tool HOST:PORT` gives a hub (a flashed board, or any agent port)
  what it needs to dial the Triage Tool by itself, in one request (triage.set): the tool's
  address, the hub's certificate and key and the CA from the PKI (DER), the tool's name. `--clear`
  takes it back (triage.clear).
- `dbch triage dial` runs a simulated hub (boards.sim parts, storage in a directory) that dials a
  Triage Tool, on CPython or on the MicroPython unix port (--micropython): the other end, for
  trying the link out and for the tests.

Linux only (ptys, flock), like the virtual boards.
"""

# The parts, one module each: registry (the tools running here, TriageInfo), relay (the pty in
# front of the hub), addresses, credentials (from the PKI), handshakes and incidents (what the
# tool holds and keeps), tool (TriageTool: listening, handshakes, sessions), shell (a
# technician's session), enrol, dial (the simulated hub; the program it runs on the MicroPython
# unix port is host_tools/onboard/dial.py). The command, `dbch triage`, is cli/triage.py; this
# docstring is its --help.

# what other packages use: `--port triage[:NAME]` (host_tools.servers.ports) resolves to the pty
from host_tools.servers.triage.registry import TriageToolError, resolve_port

__all__ = ["TriageToolError", "resolve_port"]

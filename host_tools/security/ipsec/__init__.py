"""IPsec for the Triage System Interface on Linux gateways: strongSwan (charon) driven by vici.

SEC G12 allows IPsec when it gives mutual authentication, confidentiality and integrity. What
this module sets up, and nothing else (agent.triage.check_policy refuses the rest first):
IKEv2, certificate (pubkey) authentication on both ends against one triage CA, AEAD only
(IKE e.g. aes256gcm16-prfsha384-ecp256, ESP aes256gcm16-ecp256), tunnel mode.

Pieces
- `IpsecConnection`: one connection built from PKI files (PEM): the vici `load-conn` message,
  the equivalent swanctl.conf (and a SWANCTL_DIR with x509/, x509ca/, private/, so
  `swanctl --load-all` gives the same result), load / initiate / wait for the CHILD_SA /
  status / terminate / unload over a vici session.
- `Charon`: a private charon daemon, optionally inside a network namespace, with its own /run
  (a private mount namespace: charon's pid file lives there), its own strongswan.conf
  (STRONGSWAN_CONF) and vici socket. It loads `kernel-libipsec` (userland ESP over a TUN
  device, for kernels without ESP/XFRM support; it needs UDP encapsulation, `encap = yes`) before
  `kernel-netlink` (routes and addresses). A gateway that already runs strongSwan as a service
  uses `vici_session()` on its socket instead.

With kernel-libipsec, inner traffic goes through the TUN device: charon installs a route for the
remote traffic selector via that device (routing table 220), with a local address inside the
local traffic selector as source. The remote peer's own address must not be inside the remote
traffic selector (or IKE itself would be routed into the tunnel), so give each side an inner
address of its own (e.g. on `lo`).

The command, `dbch ipsec up | down | status | watch | resolve | charon`
- `up` loads the CA, this end's certificate and key from `dbch pki` and the connection into
  charon, then initiates it and waits for the CHILD_SA (a hub gateway, the default) or leaves it
  loaded for the peer to initiate (`--responder`: the Triage Tool at the facility).
- `down` terminates the connection's SAs and unloads it; `status` lists IKE and CHILD_SAs (peer
  identities, algorithms, bytes and packets) and the security incidents recorded so far.
- `watch` listens to charon's vici events and records failed IKE authentications as security
  incidents (agent.incidents.Incidents). vici has no event of its own for them: the evidence is the
  "log" event stream (charon sends every message up to level 1, whatever its log settings). An
  IKE_SA whose peer this end refuses logs `generating ... [ N(AUTH_FAILED) ]` (the reason just
  before it: "no trusted ECDSA public key found for ...", "subject certificate invalid ...", "no
  matching peer config found"); one refused by its peer logs `parsed ... [ N(AUTH_FAILED) ]` or
  "received AUTHENTICATION_FAILED notify error". Each IKE_SA counts once (its "ikesa-uniqueid"):
  a refused peer as "auth_failed", a refusal by the peer as "link_refused". "ike-updown" and
  "ike-update" events name the peer's address and identity. The counts, the open Major Security
  Incident and the last events live in <XDG_CACHE_HOME or ~/.cache>/dbch/ipsec/incidents.json
  (read-modify-write under a lock, replaced atomically), so they survive restarts; `resolve`
  closes the open incident.
- `charon` runs a private charon (the `Charon` below) for a machine without a strongSwan service.
"""

# The parts, one module each: vici_session (a session on charon's socket), charon (a private
# charon), config and connection (IpsecConnection), sas (what charon holds), incidents (the
# incident state file), auth_failures (failed authentications in charon's events), watch (the
# recorder). The command, `dbch ipsec`, is cli/ipsec.py; this docstring is its --help.

from __future__ import annotations

import os
from pathlib import Path

from host_tools.errors import DbchError
from host_tools.paths import cache_dir

SYSTEM_SOCKET = "/var/run/charon.vici"
ENV_SOCKET = "DBCH_VICI_SOCKET"


class IpsecError(DbchError):
    """IPsec setup or state failure; the message says what failed."""


def state_root() -> Path:
    """<user cache>/dbch/ipsec"""
    return cache_dir("ipsec")


def default_socket() -> str:
    """$DBCH_VICI_SOCKET, else the system charon's socket, else that of `dbch ipsec charon`."""
    env = os.environ.get(ENV_SOCKET)
    if env:
        return env
    private = state_root() / "charon" / "charon.vici"
    if not os.path.exists(SYSTEM_SOCKET) and private.exists():
        return str(private)
    return SYSTEM_SOCKET

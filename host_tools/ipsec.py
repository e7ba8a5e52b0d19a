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

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.incidents import AUTH_FAILED, DEFAULT_THRESHOLDS, LINK_REFUSED, Incidents
from agent.triage import check_policy

CHARON_CANDIDATES = ("/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon", "/usr/lib/strongswan/charon")
# Plugins, in priority order: kernel-libipsec must come before kernel-netlink.
PLUGINS = (
    "random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey constraints "
    "kernel-libipsec kernel-netlink socket-default vici"
)


SYSTEM_SOCKET = "/var/run/charon.vici"
ENV_SOCKET = "DBCH_VICI_SOCKET"
START_HINT = (
    "start strongSwan (`systemctl start strongswan-starter`; scripts/setup-system installs it), "
    "or run a private charon as root with `dbch ipsec charon` and give its --socket"
)


class IpsecError(Exception):
    """IPsec setup or state failure; the message says what failed."""


def find_charon() -> str | None:
    env = os.environ.get("DBCH_CHARON")
    for c in ((env,) if env else ()) + CHARON_CANDIDATES:
        if c and os.access(c, os.X_OK):
            return c
    return None


def vici_session(path: str | Path = "/var/run/charon.vici", timeout: float = 10.0):
    """A vici session on charon's Unix socket."""
    try:
        import vici
    except ImportError as e:
        from host_tools.extras import missing

        raise IpsecError(missing("ipsec") or str(e)) from e
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except OSError as e:
        s.close()
        why = "no vici socket there" if isinstance(e, FileNotFoundError) else e.strerror or str(e)
        raise IpsecError(f"charon is not running or not reachable at {path} ({why}): {START_HINT}") from e
    return vici.Session(s)


def _text(v) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def cert_dns_id(pem_path: str | Path) -> str:
    """The identity a certificate asserts for IKE: its first SAN dNSName, else its CN."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(Path(pem_path).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
        if names:
            return names[0]
    except x509.ExtensionNotFound:
        pass
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns:
        raise IpsecError(f"{pem_path}: certificate has neither a dNSName nor a CN")
    return str(cns[0].value)


@dataclass
class ChildStatus:
    ike_state: str
    child_state: str
    protocol: str
    encr_alg: str
    encr_keysize: str
    encap: bool
    local_ts: list[str]
    remote_ts: list[str]
    bytes_in: int
    bytes_out: int
    remote_id: str
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def installed(self) -> bool:
        return self.ike_state == "ESTABLISHED" and self.child_state == "INSTALLED"

    @property
    def aead(self) -> bool:
        return self.encr_alg.startswith("AES_GCM") or self.encr_alg.startswith("AES_CCM") or "CHACHA20" in self.encr_alg

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("raw")
        d["installed"] = self.installed
        d["aead"] = self.aead
        return d


class IpsecConnection:
    """One triage IPsec connection, from a policy-checked config (see agent.triage):
    {"mode": "ipsec", "cert": PEM path, "key": PEM path, "ca": PEM path, "remote_id": name,
    "ike_proposals": [...], "esp_proposals": [...]} plus the addressing given here."""

    def __init__(
        self,
        cfg: dict,
        local_addrs: list[str],
        remote_addrs: list[str],
        local_ts: list[str],
        remote_ts: list[str],
        name: str = "triage",
        child: str | None = None,
        local_id: str | None = None,
    ):
        self.cfg = check_policy(cfg)
        for f in ("cert", "key", "ca"):
            p = Path(self.cfg[f])
            if not p.is_file():
                raise IpsecError(f"{f} file {p} does not exist (make it with `dbch pki`)")
        self.name = name
        self.child = child or name
        self.local_addrs = list(local_addrs)
        self.remote_addrs = list(remote_addrs)
        self.local_ts = list(local_ts)
        self.remote_ts = list(remote_ts)
        self.local_id = local_id or cert_dns_id(self.cfg["cert"])
        self.remote_id = self.cfg["remote_id"]

    @classmethod
    def from_pki(
        cls,
        store,
        local: str,
        remote_id: str,
        local_addrs: list[str],
        remote_addrs: list[str],
        local_ts: list[str],
        remote_ts: list[str],
        **cfg,
    ) -> IpsecConnection:
        """A connection from a host_tools.pki store: `local` is this end's EUI-64 (a hub's
        gateway) or triage tool name; extra keyword arguments go into the policy config
        (ike_proposals, esp_proposals) or to the constructor (name, child, local_id)."""
        from host_tools.pki import PkiError, normalize_eui

        try:
            issued = store.device(normalize_eui(local))
        except PkiError:
            issued = store.tool(local)
        ctor = {k: cfg.pop(k) for k in ("name", "child", "local_id") if k in cfg}
        policy = {
            "mode": "ipsec",
            "cert": str(issued.cert_pem),
            "key": str(issued.key_pem),
            "ca": str(store.ca().cert_pem),
            "remote_id": remote_id,
            **cfg,
        }
        return cls(policy, local_addrs, remote_addrs, local_ts, remote_ts, **ctor)

    def _read(self, f: str) -> bytes:
        return Path(self.cfg[f]).read_bytes()

    # --- the configuration -------------------------------------------------------------------
    def conn_message(self) -> dict:
        """The vici load-conn message for this connection."""
        return {
            self.name: {
                "version": "2",
                "local_addrs": self.local_addrs,
                "remote_addrs": self.remote_addrs,
                "encap": "yes",
                "mobike": "no",
                "proposals": self.cfg["ike_proposals"],
                "local": {"auth": "pubkey", "id": self.local_id, "certs": [self._read("cert")]},
                "remote": {"auth": "pubkey", "id": self.remote_id, "cacerts": [self._read("ca")]},
                "children": {
                    self.child: {
                        "mode": "tunnel",
                        "local_ts": self.local_ts,
                        "remote_ts": self.remote_ts,
                        "esp_proposals": self.cfg["esp_proposals"],
                        "start_action": "none",
                        "dpd_action": "clear",
                    }
                },
            }
        }

    def swanctl_conf(self) -> str:
        """The same connection as swanctl.conf text (file names relative to SWANCTL_DIR)."""
        j = ", ".join
        return (
            "connections {\n"
            f"  {self.name} {{\n"
            "    version = 2\n"
            f"    local_addrs = {j(self.local_addrs)}\n"
            f"    remote_addrs = {j(self.remote_addrs)}\n"
            "    encap = yes\n"
            "    mobike = no\n"
            f"    proposals = {j(self.cfg['ike_proposals'])}\n"
            "    local {\n"
            "      auth = pubkey\n"
            f"      id = {self.local_id}\n"
            "      certs = triage.crt.pem\n"
            "    }\n"
            "    remote {\n"
            "      auth = pubkey\n"
            f"      id = {self.remote_id}\n"
            "      cacerts = triage-ca.crt.pem\n"
            "    }\n"
            "    children {\n"
            f"      {self.child} {{\n"
            "        mode = tunnel\n"
            f"        local_ts = {j(self.local_ts)}\n"
            f"        remote_ts = {j(self.remote_ts)}\n"
            f"        esp_proposals = {j(self.cfg['esp_proposals'])}\n"
            "        start_action = none\n"
            "        dpd_action = clear\n"
            "      }\n"
            "    }\n"
            "  }\n"
            "}\n"
        )

    def write_swanctl_dir(self, swanctl_dir: str | Path) -> Path:
        """SWANCTL_DIR layout: swanctl.conf, x509/, x509ca/, private/ (key 0600)."""
        d = Path(swanctl_dir)
        for sub in ("x509", "x509ca", "private"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "swanctl.conf").write_text(self.swanctl_conf())
        (d / "x509" / "triage.crt.pem").write_bytes(self._read("cert"))
        (d / "x509ca" / "triage-ca.crt.pem").write_bytes(self._read("ca"))
        key = d / "private" / "triage.key.pem"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self._read("key"))
        return d

    # --- vici --------------------------------------------------------------------------------
    def load(self, session) -> None:
        """Load the CA, this end's certificate and key, and the connection."""
        try:
            session.load_cert({"type": "X509", "flag": "CA", "data": self._read("ca")})
            session.load_cert({"type": "X509", "flag": "NONE", "data": self._read("cert")})
            session.load_key({"type": "any", "data": self._read("key")})
            session.load_conn(self.conn_message())
        except Exception as e:
            raise IpsecError(f"loading {self.name} into charon failed: {e}") from e

    def initiate(self, session, timeout: float = 15.0) -> list[str]:
        """Start IKE + the CHILD_SA; the daemon's log lines. IpsecError if it fails."""
        log: list[str] = []
        try:
            for msg in session.initiate({"child": self.child, "ike": self.name, "timeout": int(timeout * 1000)}):
                log.append(_text(msg.get("msg", b"")))
        except Exception as e:
            tail = "; ".join(log[-4:])
            raise IpsecError(f"initiating {self.name} failed: {e} ({tail})") from e
        return log

    def status(self, session) -> ChildStatus | None:
        """The CHILD_SA of this connection, or None when there is none."""
        for entry in session.list_sas({"ike": self.name}):
            for ike_name, ike in entry.items():
                if _text(ike_name) != self.name:
                    continue
                for child in ike.get("child-sas", {}).values():
                    if _text(child.get("name", b"")) != self.child:
                        continue
                    return ChildStatus(
                        ike_state=_text(ike.get("state", b"")),
                        child_state=_text(child.get("state", b"")),
                        protocol=_text(child.get("protocol", b"")),
                        encr_alg=_text(child.get("encr-alg", b"")),
                        encr_keysize=_text(child.get("encr-keysize", b"")),
                        encap=_text(child.get("encap", b"no")) == "yes",
                        local_ts=[_text(t) for t in child.get("local-ts", [])],
                        remote_ts=[_text(t) for t in child.get("remote-ts", [])],
                        bytes_in=int(_text(child.get("bytes-in", b"0"))),
                        bytes_out=int(_text(child.get("bytes-out", b"0"))),
                        remote_id=_text(ike.get("remote-id", b"")),
                        raw=ike,
                    )
        return None

    def wait_installed(self, session, timeout: float = 15.0) -> ChildStatus:
        """Wait for an INSTALLED CHILD_SA with an AEAD cipher; IpsecError otherwise."""
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status(session)
            if st is not None and st.installed:
                if not st.aead:
                    raise IpsecError(f"{self.name}: CHILD_SA uses {st.encr_alg}, not an AEAD cipher")
                return st
            time.sleep(0.1)
        raise IpsecError(f"{self.name}: no INSTALLED CHILD_SA after {timeout:.0f} s (last: {st})")

    def up(self, session, timeout: float = 15.0) -> ChildStatus:
        """load + initiate + wait_installed."""
        self.load(session)
        self.initiate(session, timeout)
        return self.wait_installed(session, timeout)

    def terminate(self, session, timeout: float = 10.0) -> None:
        terminate(session, self.name, timeout)

    def down(self, session) -> None:
        """Tear the connection down: terminate its SAs and unload it."""
        self.terminate(session)
        self.unload(session)

    def unload(self, session) -> None:
        unload(session, self.name)


def terminate(session, name: str, timeout: float = 10.0) -> bool:
    """Terminate the IKE_SAs (and so the CHILD_SAs) of connection `name`; False if it had none."""
    try:
        for _ in session.terminate({"ike": name, "timeout": int(timeout * 1000)}):
            pass
    except Exception as e:  # nothing to terminate is not an error here
        if "no matching" not in str(e).lower():
            raise IpsecError(f"terminating {name} failed: {e}") from e
        return False
    return True


def unload(session, name: str) -> None:
    try:
        session.unload_conn({"name": name})
    except Exception as e:
        raise IpsecError(f"unloading {name} failed: {e}") from e


def loaded_conns(session) -> list[str]:
    """The names of the connections loaded into charon."""
    return [_text(c) for c in session.get_conns().get("conns", [])]


def strongswan_conf(vici_socket: Path, log_file: Path) -> str:
    return (
        "charon {\n"
        "  load_modular = no\n"
        f"  load = {PLUGINS}\n"
        "  install_routes = yes\n"
        "  install_virtual_ip = no\n"
        "  retransmit_timeout = 1.0\n"
        "  retransmit_base = 1.4\n"
        "  retransmit_tries = 3\n"
        "  plugins {\n"
        "    vici {\n"
        f"      socket = unix://{vici_socket}\n"
        "    }\n"
        "    kernel-libipsec {\n"
        "      allow_peer_ts = no\n"
        "    }\n"
        "  }\n"
        "  syslog {\n"
        "    daemon {\n"
        "      default = -1\n"
        "    }\n"
        "  }\n"
        "  filelog {\n"
        "    dbch {\n"
        f"      path = {log_file}\n"
        "      default = 1\n"
        "      ike = 2\n"
        "      cfg = 2\n"
        "      flush_line = yes\n"
        "      append = no\n"
        "    }\n"
        "  }\n"
        "}\n"
        "swanctl {\n"
        "  load = pem pkcs1 pkcs8 x509 pubkey openssl random nonce\n"
        f"  socket = unix://{vici_socket}\n"
        "}\n"
    )


class Charon:
    """A private charon: own strongswan.conf, vici socket, log and /run, optionally inside the
    network namespace `netns`. Needs root. Use as a context manager or call stop()."""

    def __init__(self, workdir: str | Path, netns: str | None = None, charon: str | None = None):
        self.dir = Path(workdir)
        self.netns = netns
        self.charon = charon or find_charon()
        if self.charon is None:
            raise IpsecError("charon not found: install strongswan-charon (scripts/setup-system)")
        self.conf = self.dir / "strongswan.conf"
        self.socket = self.dir / "charon.vici"
        self.log = self.dir / "charon.log"
        self.run = self.dir / "run"
        self.swanctl_dir = self.dir / "swanctl"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        inner = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount --bind "$1" /run && exec "$2"']
        inner += ["charon", str(self.run), self.charon]
        if self.netns:
            return ["ip", "netns", "exec", self.netns, *inner]
        return inner

    def start(self, timeout: float = 10.0) -> Charon:
        for tool in ("unshare", "mount") + (("ip",) if self.netns else ()):
            if shutil.which(tool) is None:
                raise IpsecError(f"{tool} not found")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(exist_ok=True)
        self.swanctl_dir.mkdir(exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        self.conf.write_text(strongswan_conf(self.socket, self.log))
        env = self.env()
        with open(self.dir / "charon.stderr", "wb") as err:
            self.proc = subprocess.Popen(
                self.command(), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise IpsecError(f"charon exited with {self.proc.returncode}: {self.diagnostics()}")
            if self.socket.exists():
                try:
                    vici_session(self.socket, 2).version()
                    return self
                except Exception:
                    pass
            time.sleep(0.05)
        self.stop()
        raise IpsecError(f"charon did not open {self.socket} within {timeout:.0f} s: {self.diagnostics()}")

    def env(self) -> dict:
        return dict(os.environ, STRONGSWAN_CONF=str(self.conf), SWANCTL_DIR=str(self.swanctl_dir))

    def swanctl(self, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
        """Run swanctl against this charon (its socket, its SWANCTL_DIR)."""
        exe = shutil.which("swanctl") or "/usr/sbin/swanctl"
        return subprocess.run([exe, *args], env=self.env(), capture_output=True, text=True, timeout=timeout)

    def session(self, timeout: float = 20.0):
        return vici_session(self.socket, timeout)

    def diagnostics(self) -> str:
        out = []
        for p in (self.dir / "charon.stderr", self.log):
            if p.exists():
                out.append(p.read_text(errors="replace")[-2000:])
        return " | ".join(out)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def __enter__(self) -> Charon:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ============================================================================ what charon holds


def _int(v) -> int | None:
    try:
        return int(_text(v))
    except (TypeError, ValueError):
        return None


def _child_summary(child: dict) -> dict:
    return {
        "name": _text(child.get("name", b"")),
        "uniqueid": _text(child.get("uniqueid", b"")),
        "state": _text(child.get("state", b"")),
        "mode": _text(child.get("mode", b"")),
        "protocol": _text(child.get("protocol", b"")),
        "encap": _text(child.get("encap", b"no")) == "yes",
        "encr_alg": _text(child.get("encr-alg", b"")),
        "encr_keysize": _text(child.get("encr-keysize", b"")),
        "local_ts": [_text(t) for t in child.get("local-ts", [])],
        "remote_ts": [_text(t) for t in child.get("remote-ts", [])],
        "bytes_in": _int(child.get("bytes-in")),
        "bytes_out": _int(child.get("bytes-out")),
        "packets_in": _int(child.get("packets-in")),
        "packets_out": _int(child.get("packets-out")),
        "installed_s": _int(child.get("install-time")),
        "expires_in_s": _int(child.get("life-time")),
    }


def list_sas(session, name: str | None = None) -> list[dict]:
    """The IKE_SAs charon holds (only connection `name`'s if given), each with its CHILD_SAs."""
    out = []
    for entry in session.list_sas({"ike": name} if name else {}):
        for ike_name, ike in entry.items():
            out.append(
                {
                    "name": _text(ike_name),
                    "uniqueid": _text(ike.get("uniqueid", b"")),
                    "state": _text(ike.get("state", b"")),
                    "version": _text(ike.get("version", b"")),
                    "initiator": _text(ike.get("initiator", b"no")) == "yes",
                    "local": {
                        "host": _text(ike.get("local-host", b"")),
                        "port": _int(ike.get("local-port")),
                        "id": _text(ike.get("local-id", b"")),
                    },
                    "remote": {
                        "host": _text(ike.get("remote-host", b"")),
                        "port": _int(ike.get("remote-port")),
                        "id": _text(ike.get("remote-id", b"")),
                    },
                    "encr_alg": _text(ike.get("encr-alg", b"")),
                    "encr_keysize": _text(ike.get("encr-keysize", b"")),
                    "prf_alg": _text(ike.get("prf-alg", b"")),
                    "dh_group": _text(ike.get("dh-group", b"")),
                    "established_s": _int(ike.get("established")),
                    "children": [_child_summary(c) for c in ike.get("child-sas", {}).values()],
                }
            )
    return out


def _sa_text(sa: dict) -> list[str]:
    role = "initiator" if sa["initiator"] else "responder"
    up = f", up {sa['established_s']} s" if sa["established_s"] is not None else ""
    lines = [
        f"IKE_SA {sa['name']} #{sa['uniqueid']} {sa['state']} ({role}) "
        f"{sa['local']['host']}[{sa['local']['id']}] <-> {sa['remote']['host']}[{sa['remote']['id']}], "
        f"{sa['encr_alg']}/{sa['encr_keysize']} {sa['prf_alg']} {sa['dh_group']}{up}"
    ]
    for c in sa["children"]:
        traffic = ""
        if c["bytes_in"] is not None:
            traffic = f", in {c['bytes_in']} B/{c['packets_in'] or 0} pkts, out {c['bytes_out']} B/{c['packets_out'] or 0} pkts"
        encap = ", UDP-encapsulated" if c["encap"] else ""
        lines.append(
            f"  CHILD_SA {c['name']} #{c['uniqueid']} {c['state']} {c['protocol']} {c['mode'].lower()}, "
            f"{c['encr_alg']}/{c['encr_keysize']}{encap}, "
            f"{', '.join(c['local_ts'])} === {', '.join(c['remote_ts'])}{traffic}"
        )
    return lines


# ============================================================================ security incidents

STATE_FILE = "incidents.json"
KEEP_EVENTS = 20
# the incident kinds a failed IKE authentication is counted under
REFUSED_PEER = AUTH_FAILED  # this end refused the peer's authentication
REFUSED_BY_PEER = LINK_REFUSED  # the peer refused this end's


def state_root() -> Path:
    """<XDG_CACHE_HOME or ~/.cache>/dbch/ipsec"""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "dbch" / "ipsec"


def default_socket() -> str:
    """$DBCH_VICI_SOCKET, else the system charon's socket, else that of `dbch ipsec charon`."""
    env = os.environ.get(ENV_SOCKET)
    if env:
        return env
    private = state_root() / "charon" / "charon.vici"
    if not os.path.exists(SYSTEM_SOCKET) and private.exists():
        return str(private)
    return SYSTEM_SOCKET


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class IncidentStore:
    """The IPsec incident recorder's state file: an agent.incidents.Incidents snapshot, its
    thresholds and the last few failed authentications. Every change is a read-modify-write
    under an exclusive flock on `<file>.lock`, written to a temporary file and renamed over
    the old one, so readers never see half a file and two writers never lose a count."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else state_root() / STATE_FILE
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:
            raise IpsecError(f"incident state {self.path} is unreadable ({e}): move it aside to start afresh") from e
        if not isinstance(data, dict):
            raise IpsecError(f"incident state {self.path} is not a JSON object: move it aside to start afresh")
        data.setdefault("incidents", {})
        data.setdefault("thresholds", {})
        data.setdefault("events", [])
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, data: dict) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @staticmethod
    def recorder(data: dict, notify: Callable[[dict], Any] | None = None) -> Incidents:
        inc = Incidents(notify, data.get("thresholds") or None)
        inc.restore(data.get("incidents") or {})
        return inc

    @contextlib.contextmanager
    def _change(self, notify: Callable[[dict], Any] | None) -> Iterator[tuple[dict, Incidents]]:
        with self._locked():
            data = self.read()
            inc = self.recorder(data, notify)
            yield data, inc
            data["incidents"] = inc.snapshot()
            self._write(data)

    def record(self, failure: dict) -> tuple[dict, list[dict]]:
        """Count one failed authentication (failure["kind"]): the new state, and the Major
        Security Incident reports that became due (to be announced by the caller)."""
        due: list[dict] = []
        with self._change(lambda report: due.append(report)) as (data, inc):
            inc.record(failure["kind"], failure.get("reason"))
            data["events"] = (list(data["events"]) + [failure])[-KEEP_EVENTS:]
        return data, due

    def flush(self) -> list[dict]:
        """An open incident whose announcement is still pending (the recorder stopped before it
        was made) is due now: its report, once."""
        due: list[dict] = []
        with self._change(lambda report: due.append(report)) as (_data, inc):
            inc.flush()
        return due

    def set_thresholds(self, thresholds: dict[str, int]) -> None:
        if not thresholds:
            return
        Incidents(thresholds=thresholds)  # ValueError if one is not an int >= 1
        with self._change(None) as (data, _inc):
            data["thresholds"] = {**data["thresholds"], **thresholds}

    def resolve(self) -> dict | None:
        """Close the open Major Security Incident (acknowledged and resolved): its report, or
        None if none was open. The next threshold crossing is a new incident."""
        if not self.path.exists():
            return None
        with self._change(None) as (_data, inc):
            if not inc.open:
                return None
            report = inc.report()
            inc.close()
        return report

    def summary(self) -> dict:
        data = self.read()
        inc = self.recorder(data)
        return {
            "state": str(self.path),
            "totals": dict(inc.totals),
            "window": dict(inc.window),
            "thresholds": dict(inc.thresholds),
            "open": inc.open,
            "notified": inc.notified,
            "incidents": inc.number,
            "trigger": inc.trigger,
            "last": list(data["events"])[-5:],
        }


_PEER_CONFIGS = re.compile(r"^looking for peer configs matching (\S+)\[(.*)\]\.\.\.(\S+)\[(.*)\]$")
_RECEIVED = re.compile(r"^received packet: from (\S+)\[\d+\]")
_INITIATING = re.compile(r"^initiating IKE_SA \S+ to (\S+)$")
_PEER_CERT = re.compile(r'^received end entity cert "(.*)"$')
_REASON = re.compile(
    r"^(no trusted .* public key found for .*|subject certificate invalid.*|no matching peer config found"
    r"|constraint check failed.*|signature validation failed.*|certificate was revoked.*"
    r"|no issuer certificate found for .*|authentication of .* failed.*|.*config unacceptable.*)$"
)
_WE_REFUSE = re.compile(r"^generating \S+ (request|response) \d+ \[.*\bN\(AUTH_FAILED\)")
_THEY_REFUSE = re.compile(
    r"^(parsed \S+ (request|response) \d+ \[.*\bN\(AUTH_FAILED\)|received AUTHENTICATION_FAILED notify)"
)
_KEEP_SAS = 512


class AuthFailures:
    """Finds failed IKE authentications in charon's vici events: feed() every "log",
    "ike-updown" and "ike-update" event, call due() now and then; each returns the failures
    that are complete, one per IKE_SA.

    What charon logs while an IKE_SA is set up (level 1, which vici always sends) is kept per
    IKE_SA (its uniqueid): the peer's address and identity, its certificate, the reasons given.
    An AUTHENTICATION_FAILED notify this end generates means it refused the peer; one it
    parses, that the peer refused it. Log events reach vici listeners through a queue, so the
    "ike-updown" of the failed IKE_SA (which names the peer's identity, the only place that does
    on an initiator) may come before or after those log lines: a failure is complete when that
    event has come, or `grace` seconds after the notify. Unique ids start again at 1 when
    charon restarts: use a new AuthFailures then."""

    def __init__(self, grace: float = 1.0) -> None:
        self.grace = grace
        self._sas: OrderedDict[str, dict] = OrderedDict()
        self._done: OrderedDict[str, bool] = OrderedDict()
        self._pending: OrderedDict[str, tuple[float, dict]] = OrderedDict()

    def _sa(self, uid: str) -> dict:
        sa = self._sas.get(uid)
        if sa is None:
            sa = self._sas[uid] = {"reasons": []}
            while len(self._sas) > _KEEP_SAS:
                self._sas.popitem(last=False)
        return sa

    def feed(self, label: str, event: dict) -> list[dict]:
        if label == "log":
            return self._log(event)
        complete = []
        if label in ("ike-updown", "ike-update"):
            for ike_name, ike in event.items():
                if not (isinstance(ike, dict) and "uniqueid" in ike):
                    continue
                uid = _text(ike["uniqueid"])
                sa = self._sa(uid)
                if _text(ike_name) != "(unnamed)":
                    sa["ike"] = _text(ike_name)
                for key, name in (("remote-host", "remote_host"), ("remote-id", "remote_id")):
                    v = _text(ike.get(key, b""))
                    if v and v != "%any":
                        sa[name] = v
                if label == "ike-updown":
                    sa["updown"] = True
                    if uid in self._pending:
                        complete.append(self._complete(uid))
        return complete

    def due(self, now: float | None = None, everything: bool = False) -> list[dict]:
        """The failures whose grace period is over (all of them with everything=True)."""
        now = time.monotonic() if now is None else now
        late = [uid for uid, (t, _) in self._pending.items() if everything or now - t >= self.grace]
        return [self._complete(uid) for uid in late]

    def _complete(self, uid: str) -> dict:
        _t, failure = self._pending.pop(uid)
        return self._fill(failure, self._sa(uid))

    @staticmethod
    def _fill(failure: dict, sa: dict) -> dict:
        failure.update(
            ike=sa.get("ike"),
            remote_host=sa.get("remote_host"),
            remote_id=sa.get("remote_id"),
            peer_cert=sa.get("peer_cert"),
            reason="; ".join(sa["reasons"][-3:]) or failure["reason"],
        )
        return failure

    def _log(self, event: dict) -> list[dict]:
        msg = _text(event.get("msg", b"")).strip()
        uid = _text(event["ikesa-uniqueid"]) if "ikesa-uniqueid" in event else None
        sa = self._sa(uid) if uid is not None else {"reasons": []}
        if "ikesa-name" in event and _text(event["ikesa-name"]) != "(unnamed)":
            sa["ike"] = _text(event["ikesa-name"])
        m = _PEER_CONFIGS.match(msg)
        if m:
            sa["remote_host"], sa["remote_id"] = m.group(3), m.group(4)
        elif (m := _RECEIVED.match(msg) or _INITIATING.match(msg)) is not None:
            sa.setdefault("remote_host", m.group(1))
        elif (m := _PEER_CERT.match(msg)) is not None:
            sa["peer_cert"] = m.group(1)
        elif _REASON.match(msg):
            if msg not in sa["reasons"]:
                sa["reasons"].append(msg)
        if _WE_REFUSE.match(msg):
            kind, what = REFUSED_PEER, "refused the peer"
        elif _THEY_REFUSE.match(msg):
            kind, what = REFUSED_BY_PEER, "refused by the peer"
        else:
            return []
        failure = {"kind": kind, "what": what, "uniqueid": uid, "reason": msg, "at": _now()}
        if uid is None:
            return [self._fill(failure, sa)]
        if uid in self._done:
            return []
        self._done[uid] = True
        while len(self._done) > _KEEP_SAS:
            self._done.popitem(last=False)
        self._pending[uid] = (time.monotonic(), failure)
        return [self._complete(uid)] if sa.get("updown") else []


WATCH_EVENTS = ("log", "ike-updown", "ike-update")


def watch(
    socket_path: str | Path,
    store: IncidentStore,
    on_event: Callable[[str, dict], None],
    stop: threading.Event,
    poll: float = 0.5,
    retry: float = 1.0,
) -> int:
    """Record failed IKE authentications from charon's vici events into `store` until `stop`
    is set; the number recorded. on_event(kind, data) hears "ready" (listening), "failure"
    (one recorded, with the counts), "incident" (a Major Security Incident to announce),
    "lost" and "back" (charon went away and returned: the watcher reconnects every `retry`
    seconds). IpsecError if charon cannot be reached at the start."""
    recorded = 0

    def record(failures: list[dict]) -> None:
        nonlocal recorded
        for failure in failures:
            data, due = store.record(failure)
            recorded += 1
            inc = store.recorder(data)
            on_event("failure", {**failure, "totals": inc.totals, "window": inc.window})
            for report in due:
                on_event("incident", report)

    lost = False
    first = True
    while not stop.is_set():
        try:
            session = vici_session(socket_path, timeout=10)
        except IpsecError:
            if first:
                raise
            stop.wait(retry)
            continue
        first = False
        parser = AuthFailures()  # a restarted charon counts its IKE_SAs from 1 again
        ready = False
        try:
            for label, event in session.listen(list(WATCH_EVENTS), timeout=poll):
                if not ready:  # the first answer comes once the registrations are done
                    ready = True
                    if lost:
                        on_event("back", {"socket": str(socket_path)})
                        lost = False
                    else:
                        on_event("ready", {"socket": str(socket_path), **store.summary()})
                    for report in store.flush():
                        on_event("incident", report)
                record(parser.feed(_text(label), event) if label is not None else [])
                record(parser.due())
                if stop.is_set():
                    break
        except Exception as e:  # charon went away (or restarted): wait for it
            if not stop.is_set() and not lost:
                on_event("lost", {"socket": str(socket_path), "error": str(e)})
                lost = True
        finally:
            with contextlib.suppress(Exception):
                session.transport.close()
        record(parser.due(everything=True))  # what was still waiting for its peer's identity
        if not stop.is_set():
            stop.wait(retry)
    return recorded


# ============================================================================ dbch ipsec


def _command_error(e: BaseException):
    from host_tools.cli import CommandError

    return CommandError(str(e))


def _session(args: argparse.Namespace):
    return vici_session(args.socket or default_socket(), timeout=args.vici_timeout)


def _pki_names(store, sub: str) -> list[str]:
    base = store.dir / sub
    if not base.is_dir():
        return []
    return sorted(d.name for d in base.iterdir() if (d / "cert.pem").exists())


def _only(names: list[str], what: str, where: Path, option: str, issue: str) -> str:
    if len(names) == 1:
        return names[0]
    if not names:
        raise IpsecError(f"no {what} certificate in {where}: issue one with `{issue}`, or give {option}")
    raise IpsecError(f"several {what} certificates in {where} ({', '.join(names)}): choose with {option}")


def choose_ids(store, responder: bool, local: str | None, remote: str | None) -> tuple[str, str]:
    """This end's certificate (a hub's EUI or a tool's name) and the peer identity to require.
    A hub gateway initiates toward its Triage Tool; the Triage Tool responds (--responder)."""
    hubs, tools = _pki_names(store, "devices"), _pki_names(store, "tools")
    if responder:
        mine, theirs = (tools, "tool", "tools", "dbch pki tool NAME"), (hubs, "hub", "devices", "dbch pki device EUI")
    else:
        mine, theirs = (hubs, "hub", "devices", "dbch pki device EUI"), (tools, "tool", "tools", "dbch pki tool NAME")
    if local is None:
        local = _only(mine[0], mine[1], store.dir / mine[2], "--local", mine[3])
    if remote is None:
        label = _only(theirs[0], theirs[1], store.dir / theirs[2], "--remote", theirs[3])
        remote = cert_dns_id(store.dir / theirs[2] / label / "cert.pem")
    return local, remote


def cmd_up(args: argparse.Namespace) -> int:
    from agent.triage import PolicyError
    from host_tools.cli import emit
    from host_tools.pki import Pki, PkiError

    try:
        if not args.responder and not args.remote_addr:
            raise IpsecError("give --remote-addr (the peer's address) to initiate, or --responder to wait for the peer")
        store = Pki(args.pki)
        local, remote = choose_ids(store, args.responder, args.local, args.remote)
        conn = IpsecConnection.from_pki(
            store,
            local,
            remote,
            args.local_addr or ["%any"],
            args.remote_addr or ["%any"],
            args.local_ts or ["dynamic"],
            args.remote_ts or ["dynamic"],
            name=args.name,
        )
        session = _session(args)
        print(f"ipsec: loading {args.name} ({conn.local_id} <-> {conn.remote_id}) into charon", file=sys.stderr)
        conn.load(session)
        result: dict = {
            "name": args.name,
            "role": "responder" if args.responder else "initiator",
            "local_id": conn.local_id,
            "remote_id": conn.remote_id,
            "local_addrs": conn.local_addrs,
            "remote_addrs": conn.remote_addrs,
        }
        if args.responder:
            result["sas"] = list_sas(session, args.name)
            text = (
                f"{args.name}: loaded as responder: {conn.local_id} accepts {conn.remote_id} "
                f"from {', '.join(conn.remote_addrs)} (`dbch ipsec watch` records failed authentications)"
            )
        else:
            print(f"ipsec: initiating {args.name} to {', '.join(conn.remote_addrs)}", file=sys.stderr)
            conn.initiate(session, args.timeout)
            conn.wait_installed(session, args.timeout)
            result["sas"] = list_sas(session, args.name)
            text = "\n".join([f"{args.name}: up"] + [line for sa in result["sas"] for line in _sa_text(sa)])
    except (IpsecError, PkiError, PolicyError) as e:
        raise _command_error(e) from e
    emit(args, result, text)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from host_tools.cli import emit

    try:
        session = _session(args)
        loaded = args.name in loaded_conns(session)
        terminated = terminate(session, args.name, args.timeout)
        if loaded:
            unload(session, args.name)
        left = list_sas(session, args.name)
    except IpsecError as e:
        raise _command_error(e) from e
    result = {"name": args.name, "terminated": terminated, "unloaded": loaded, "sas": left}
    if loaded or terminated:
        text = (
            f"{args.name}: down ("
            + ", ".join(w for w, done in (("SAs terminated", terminated), ("connection unloaded", loaded)) if done)
            + ")"
        )
    else:
        text = f"{args.name} was not up (no such connection or SA in charon)"
    emit(args, result, text)
    return 0


def _incidents_text(s: dict) -> str:
    totals = ", ".join(f"{k} {v}" for k, v in sorted(s["totals"].items())) or "none"
    line = f"security incidents ({s['state']}): failed authentications: {totals}"
    if s["open"]:
        line += (
            f"\nOPEN Major Security Incident #{s['incidents']}: {s['trigger']} {s['window']}"
            f" ({'notified' if s['notified'] else 'announcement pending'}; close it with `dbch ipsec resolve`)"
        )
    for ev in s["last"]:
        line += f"\n  {ev.get('at')} {ev.get('kind')}: {ev.get('what')} {ev.get('remote_id') or '?'}"
        line += f" at {ev.get('remote_host') or '?'}: {ev.get('reason')}"
    return line


def cmd_status(args: argparse.Namespace) -> int:
    from host_tools.cli import emit

    path = args.socket or default_socket()
    try:
        incidents = IncidentStore(args.state).summary()
        session = _session(args)
        version = {_text(k): _text(v) for k, v in session.version().items()}
        conns = loaded_conns(session)
        sas = list_sas(session, args.name)
    except IpsecError as e:
        raise _command_error(e) from e
    result = {
        "socket": str(path),
        "charon": version,
        "conns": conns,
        "sas": sas,
        "incidents": incidents,
    }
    lines = [f"charon {version.get('version', '?')} at {path}; connections loaded: {', '.join(conns) or 'none'}"]
    lines += [line for sa in sas for line in _sa_text(sa)] or ["no SA" + (f" for {args.name}" if args.name else "")]
    lines.append(_incidents_text(incidents))
    emit(args, result, "\n".join(lines))
    return 0


def _print_event(args: argparse.Namespace, kind: str, data: dict) -> None:
    if args.json:
        print(json.dumps({"event": kind, **data}, sort_keys=True, default=str), flush=True)
        return
    if kind == "ready":
        text = f"watching charon at {data['socket']}; incidents in {data['state']} (so far: {data['totals'] or 'none'})"
    elif kind == "failure":
        text = (
            f"{data['kind']}: {data['what']} {data.get('remote_id') or '?'} at {data.get('remote_host') or '?'}"
            f" ({data.get('ike')}): {data['reason']}; counts {data['totals']}"
        )
    elif kind == "incident":
        text = (
            f"MAJOR SECURITY INCIDENT #{data['incident']}: {data['trigger']} {data['counts']}"
            " (notify DCC, Panel, SSC: SEC G3.5)"
        )
    elif kind == "lost":
        text = f"charon went away ({data['error']}): waiting for it at {data['socket']}"
    elif kind == "back":
        text = f"charon is back at {data['socket']}"
    else:
        text = f"{kind} {json.dumps(data, default=str)}"
    print(f"ipsec: {text}", file=sys.stderr, flush=True)


def _thresholds(items: list[str] | None) -> dict[str, int]:
    out = {}
    for item in items or []:
        kind, sep, n = item.partition("=")
        if not sep or not kind or not n.isdigit() or int(n) < 1:
            raise IpsecError(f"--threshold {item!r}: give KIND=N, e.g. {AUTH_FAILED}=5 (N >= 1)")
        out[kind] = int(n)
    return out


def cmd_watch(args: argparse.Namespace) -> int:

    store = IncidentStore(args.state)
    stop = threading.Event()

    def on_signal(_signum, _frame) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(args.duration, stop.set) if args.duration else None
    try:
        store.set_thresholds(_thresholds(args.threshold))
        if timer:
            timer.start()
        recorded = watch(args.socket or default_socket(), store, lambda k, d: _print_event(args, k, d), stop)
    except (IpsecError, ValueError) as e:
        raise _command_error(e) from e
    finally:
        if timer:
            timer.cancel()
        for s, handler in old.items():
            signal.signal(s, handler)
    summary = store.summary()
    if args.json:
        print(json.dumps({"event": "stopped", "recorded": recorded, **summary}, sort_keys=True), flush=True)
    else:
        print(f"ipsec: stopped; {recorded} failed authentication(s) recorded this run", file=sys.stderr)
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from host_tools.cli import emit

    try:
        report = IncidentStore(args.state).resolve()
    except IpsecError as e:
        raise _command_error(e) from e
    text = (
        f"Major Security Incident #{report['incident']} ({report['trigger']}) closed"
        if report
        else "no Major Security Incident is open"
    )
    emit(args, {"closed": report}, text)
    return 0


def cmd_charon(args: argparse.Namespace) -> int:

    if os.geteuid() != 0:
        raise _command_error(IpsecError("a private charon needs root (it installs routes and a TUN device): use sudo"))
    workdir = Path(args.dir) if args.dir else state_root() / "charon"
    stop = threading.Event()

    def on_signal(_signum, _frame) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    daemon = None
    try:
        daemon = Charon(workdir, args.netns).start()
        info = {"event": "ready", "socket": str(daemon.socket), "log": str(daemon.log), "netns": args.netns}
        if args.json:
            print(json.dumps(info, sort_keys=True), flush=True)
        else:
            print(f"charon running: --socket {daemon.socket} (log {daemon.log}); Ctrl-C stops it", flush=True)
        while not stop.wait(0.2):
            if daemon.proc is None or daemon.proc.poll() is not None:
                code = daemon.proc.returncode if daemon.proc else None
                raise IpsecError(f"charon exited with {code}: {daemon.diagnostics()}")
    except IpsecError as e:
        raise _command_error(e) from e
    finally:
        if daemon is not None:
            daemon.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    if args.json:
        print(json.dumps({"event": "stopped", "socket": str(daemon.socket)}, sort_keys=True), flush=True)
    else:
        print("charon stopped", flush=True)
    return 0


def register(subparsers) -> None:
    from host_tools.cli import add_json_flag
    from host_tools.pki import ENV_DIR, default_dir

    top = subparsers.add_parser(
        "ipsec",
        help="IPsec on the triage link: strongSwan (charon) over vici, with the `dbch pki` certificates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="ipsec_command", metavar="ACTION")
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])

    def vici_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--socket",
            metavar="PATH",
            help=f"charon's vici socket (default ${ENV_SOCKET}, else {SYSTEM_SOCKET}, "
            "else that of `dbch ipsec charon`)",
        )
        p.add_argument("--vici-timeout", type=float, default=20.0, help=argparse.SUPPRESS)
        add_json_flag(p)

    def state_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state", metavar="FILE", help=f"the incident state file (default {state_root() / STATE_FILE})")

    p = sub.add_parser(
        "up",
        help="load certificates, key and connection into charon; initiate it (or wait as responder)",
        description="Load the triage CA, this end's certificate and key (from `dbch pki`) and the connection "
        "(IKEv2, certificates both ways, AES-GCM) into charon. A hub gateway initiates toward its Triage Tool "
        "and waits for the CHILD_SA; the Triage Tool at the facility uses --responder and waits for hubs.",
    )
    vici_args(p)
    p.add_argument("--pki", metavar="DIR", help=f"PKI directory (default ${ENV_DIR} or {default_dir()})")
    p.add_argument(
        "--local",
        metavar="ID",
        help="this end's certificate: a hub's EUI-64 or a tool's name (default: the only hub in the PKI; "
        "with --responder the only tool)",
    )
    p.add_argument(
        "--remote",
        metavar="ID",
        help="the identity the peer must prove (default: the only tool in the PKI; with --responder the only hub)",
    )
    p.add_argument("--remote-addr", action="append", metavar="ADDR", help="the peer's address (repeatable)")
    p.add_argument("--local-addr", action="append", metavar="ADDR", help="this end's address (default %%any)")
    p.add_argument("--local-ts", action="append", metavar="CIDR", help="local traffic selector (default dynamic)")
    p.add_argument("--remote-ts", action="append", metavar="CIDR", help="remote traffic selector (default dynamic)")
    p.add_argument("--name", default="triage", help="the connection's name in charon (default %(default)s)")
    p.add_argument("--responder", action="store_true", help="load only: the peer initiates")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the SAs (default 15)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="terminate a connection's SAs and unload it")
    vici_args(p)
    p.add_argument("--name", default="triage", help="the connection (default %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the peer's answer (default 10)")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="the IKE and CHILD_SAs charon holds, and the security incidents recorded")
    vici_args(p)
    state_arg(p)
    p.add_argument("--name", help="only this connection's SAs")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "watch",
        help="record failed IKE authentications (from charon's vici events) as security incidents",
        description="Listen to charon's vici events until stopped (SIGTERM, Ctrl-C or --duration); record each "
        f"IKE_SA whose authentication failed: {REFUSED_PEER} when this end refused the peer, {REFUSED_BY_PEER} "
        "when the peer refused this end. A kind that reaches its threshold declares a Major Security Incident, "
        "announced once (stderr, or a JSON line with --json). Counts survive restarts in the state file.",
    )
    vici_args(p)
    state_arg(p)
    p.add_argument(
        "--threshold",
        action="append",
        metavar="KIND=N",
        help=f"events of KIND that declare a Major Security Incident (default {AUTH_FAILED}="
        f"{DEFAULT_THRESHOLDS[AUTH_FAILED]}, {LINK_REFUSED}="
        f"{DEFAULT_THRESHOLDS[LINK_REFUSED]}; kept in the state file)",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("resolve", help="close the open Major Security Incident (acknowledged and resolved)")
    state_arg(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser(
        "charon", help="run a private charon (root) until stopped, for machines without strongSwan's service"
    )
    p.add_argument(
        "--dir", metavar="DIR", help=f"its directory: strongswan.conf, socket, log (default {state_root() / 'charon'})"
    )
    p.add_argument("--netns", metavar="NS", help="run it inside this network namespace")
    add_json_flag(p)
    p.set_defaults(func=cmd_charon)


if __name__ == "__main__":
    from host_tools import cli

    sys.exit(cli.main(["ipsec", *sys.argv[1:]]))

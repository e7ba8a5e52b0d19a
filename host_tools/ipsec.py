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
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.triage import check_policy

CHARON_CANDIDATES = ("/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon", "/usr/lib/strongswan/charon")
# Plugins, in priority order: kernel-libipsec must come before kernel-netlink.
PLUGINS = (
    "random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey constraints "
    "kernel-libipsec kernel-netlink socket-default vici"
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
        raise IpsecError(f"cannot reach charon's vici socket {path}: {e}") from e
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
        try:
            for _ in session.terminate({"ike": self.name, "timeout": int(timeout * 1000)}):
                pass
        except Exception as e:  # nothing to terminate is not an error here
            if "no matching" not in str(e).lower():
                raise IpsecError(f"terminating {self.name} failed: {e}") from e

    def down(self, session) -> None:
        """Tear the connection down: terminate its SAs and unload it."""
        self.terminate(session)
        self.unload(session)

    def unload(self, session) -> None:
        try:
            session.unload_conn({"name": self.name})
        except Exception as e:
            raise IpsecError(f"unloading {self.name} failed: {e}") from e


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

"""A private charon daemon (strongSwan's IKE daemon) for a machine without strongSwan's service:
its strongswan.conf, its process in its own mount (and optionally network) namespace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from host_tools.security.ipsec import IpsecError
from host_tools.security.ipsec.vici_session import vici_session

CHARON_CANDIDATES = ("/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon", "/usr/lib/strongswan/charon")
# Plugins, in priority order: kernel-libipsec must come before kernel-netlink.
PLUGINS = (
    "random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey constraints "
    "kernel-libipsec kernel-netlink socket-default vici"
)


def find_charon() -> str | None:
    env = os.environ.get("DBCH_CHARON")
    for c in ((env,) if env else ()) + CHARON_CANDIDATES:
        if c and os.access(c, os.X_OK):
            return c
    return None


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

"""Mosquitto (the Debian package) on a free loopback port with mutual TLS, for the fleet tests:
the broker's certificate is a `dbch pki` tool certificate named localhost, and every client must
show a certificate of the same CA (require_certificate true; its CN is its user name). With
plain=True, a second loopback port without TLS (anonymous), as a lab broker without certificates."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

INSTALL = "Mosquitto is not installed: run scripts/setup-system (it installs the Debian package mosquitto)"
SBIN = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")  # where Debian puts it: not on every PATH


def mosquitto_binary() -> str:
    """The mosquitto program; AssertionError saying how to install it when there is none (a
    fleet test fails, it does not skip)."""
    found = shutil.which("mosquitto") or next((p for p in SBIN if Path(p).exists()), None)
    assert found, INSTALL
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A broker in `directory` (its config and log there) on 127.0.0.1:port; start() and stop()
    may be called again (a broker restart keeps its port)."""

    def __init__(
        self,
        directory: Path,
        ca: Path,
        cert: Path,
        key: Path,
        port: int | None = None,
        settings: tuple[str, ...] = (),
        plain: bool = False,
    ):
        self.binary = mosquitto_binary()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.plain_port = free_port() if plain else None
        plain_listener = [f"listener {self.plain_port} 127.0.0.1", "allow_anonymous true"] if plain else []
        self.config = self.directory / "mosquitto.conf"
        self.log = self.directory / "mosquitto.log"
        self.config.write_text(
            "\n".join(
                [
                    "per_listener_settings true",
                    # kept across a restart: retained messages, and the sessions of clients that
                    # ask for one (a subscriber's subscriptions and the messages queued for it)
                    "persistence true",
                    f"persistence_location {self.directory}/",
                    # as root it would become the user mosquitto, who cannot read the key
                    "user root" if _is_root() else "",
                    f"listener {self.port} 127.0.0.1",
                    f"cafile {ca}",
                    f"certfile {cert}",
                    f"keyfile {key}",
                    "require_certificate true",
                    "use_identity_as_username true",
                    "allow_anonymous false",
                    *plain_listener,
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    *settings,
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}"

    @property
    def plain_url(self) -> str:
        return f"mqtt://localhost:{self.plain_port}"

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the broker is already running"
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(
            f"mosquitto did not listen on {self.port} within {timeout:g} s: {self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab(tmp: Path, **options) -> tuple[Path, Mosquitto]:
    """A fleet lab's PKI in tmp/pki, made with the dbch commands (`dbch pki init`, and tool
    certificates for the broker, named localhost, a gateway and a watcher), and a broker (not
    started) with the broker's certificate: (the PKI directory, the broker). options: Mosquitto's."""
    from host_tools.cli import main
    from host_tools.security.pki import Pki

    pki_dir = tmp / "pki"
    assert main(["pki", "init", "--dir", str(pki_dir)]) == 0
    for name in ("localhost", "gateway", "watcher"):
        assert main(["pki", "tool", name, "--dir", str(pki_dir)]) == 0
    pki = Pki(pki_dir)
    server = pki.tool("localhost")
    return pki_dir, Mosquitto(tmp / "broker", pki.ca_dir / "ca.crt.pem", server.cert_pem, server.key_pem, **options)

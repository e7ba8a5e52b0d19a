"""What the DCC front's host tests share (host only: pytest): a CPython agent on a pty as the hub
behind the front, in the module's private cache; a free loopback port; POSTing DUIS XML; waiting
for a condition; RequestID counters no two tests reuse; infrastructure certificates and the TLS
contexts made of them; a dbch command run to its end, or in its own process with its JSON lines
collected as they come."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.cachekit import private_cache

COUNTERS = itertools.count(int(time.time() * 1000))
ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def sim_hub(tmp_path_factory: pytest.TempPathFactory, name: str, eui: str) -> Iterator[str]:
    """The --port value of a CPython agent `name` with EUI `eui`, in a private cache; stopped after."""
    from host_tools.servers import simagent

    with private_cache(tmp_path_factory):
        simagent.ensure_running(name, fs=tmp_path_factory.mktemp("simfs"), eui=eui)
        yield f"sim:{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, path: str, body: bytes, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """(HTTP status, body) of POSTing `body` as application/xml to url + path (https with `context`)."""
    host, port = url.split("://")[1].rsplit(":", 1)
    if url.startswith("https"):
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, int(port), timeout=30, context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/xml"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 20.0, step: float = 0.05):
    """predicate()'s first true value within `timeout` s; AssertionError if none."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("not within {} s".format(timeout))


def issue_infra(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Infrastructure certificates for the tests: "front" and "user" from one DCCKI CA, "rogue"
    from another (each answering as localhost and 127.0.0.1)."""
    from host_tools.security.dccki import Dccki

    base = tmp_path_factory.mktemp("pki")
    good = Dccki(base / "good")
    rogue = Dccki(base / "rogue")
    return {
        "front": good.issue("dcc-front", ["localhost", "127.0.0.1"]),
        "user": good.issue("dcc-user", ["localhost", "127.0.0.1"]),
        "rogue": rogue.issue("dcc-user", ["localhost", "127.0.0.1"]),
    }


def server_ctx(infra) -> ssl.SSLContext:
    from host_tools.dcc import tls

    return tls.server_context(infra.cert_pem, infra.key_pem, infra.ca_pem)


def client_ctx(infra) -> ssl.SSLContext:
    from host_tools.dcc import tls

    return tls.client_context(infra.cert_pem, infra.key_pem, infra.ca_pem)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def dbch(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "host_tools.cli", *argv], capture_output=True, text=True, timeout=timeout, env=_env()
    )


class Running:
    """A dbch command in its own process; its stdout lines collected as they come."""

    def __init__(self, *argv: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def next_json(self, timeout: float = 60) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError("no output; stderr: " + self.proc.stderr.read()) from None
        self.seen.append(line)
        return json.loads(line)

    def stop(self, sig=signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, self.proc.stderr.read()

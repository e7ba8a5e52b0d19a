"""The Triage System Interface as a working link: a hub (agent.triage_link.serve_triage, on CPython in a
thread or on the MicroPython unix port) dials `dbch triage serve` over mutually authenticated
TLS, and the ordinary dbch commands reach it through --port triage:NAME.

Every bad hub must be REFUSED by the Triage Tool, which must then serve the next good hub."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from agent import incidents, triage
from agent.examples import DBCH04_CONFIG
from agent.triage_link import serve_triage
from boards import sim
from hal import tls
from hal.tls_stream import TlsStreamLink
from host_tools import cli
from host_tools.link.client import AgentClient
from host_tools.link.ports import SerialTransport
from host_tools.security.pki import Pki, PkiError
from host_tools.servers.simagent import SimAgent
from host_tools.servers.triage.enrol import enrol_config
from host_tools.servers.triage.incidents import INCIDENTS_FILE
from host_tools.servers.triage.registry import REGISTRY, read_state
from tests.kits.cachekit import private_cache

ROOT = Path(__file__).resolve().parents[2]
EUI = "00-1B-C5-0C-00-00-12-34"
OTHER_EUI = "00-1B-C5-0C-00-00-99-99"
TOOL = "triage-1"
NAME = "t1"
SPEC = f"triage:{NAME}"
MICROPYTHON = shutil.which("micropython")


class Material:
    def __init__(self, issued):
        self.cert_der = issued.cert_der.read_bytes()
        self.key_der = issued.key_der.read_bytes()
        self.cert_pem = str(issued.cert_pem)
        self.key_pem = str(issued.key_pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    good = Pki(base / "good")
    good.init_ca()
    rogue = Pki(base / "rogue")
    rogue.init_ca("rogue CA")
    return {
        "dir": str(good.dir),
        "ca_der": good.ca().cert_der.read_bytes(),
        "device": Material(good.issue_device(EUI)),
        "device_other": Material(good.issue_device(OTHER_EUI)),
        "device_rogue": Material(rogue.issue_device(EUI)),
        "tool": Material(good.issue_tool(TOOL)),
        "tool_other": Material(good.issue_tool("triage-2")),
    }


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Our own XDG_CACHE_HOME, for this process (in-process dbch commands) and the tool."""
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


def _env(cache) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Facility:
    """`dbch triage serve` in a subprocess; its --json event lines are collected in a queue."""

    def __init__(self, pki, cache, name=NAME, extra=()):
        cmd = [sys.executable, "-m", "host_tools.cli.triage", "serve", "--pki", pki["dir"], "--tool", TOOL]
        cmd += ["--expect", EUI, "--listen", "127.0.0.1:0", "--name", name, "--handshake-timeout", "3", "--json"]
        cmd += list(extra)
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(cache), cwd=str(ROOT)
        )
        first = self.proc.stdout.readline()
        if not first:
            raise AssertionError("triage serve did not start: " + self.proc.stderr.read())
        self.ready = json.loads(first)
        self.host, port = self.ready["listen"].rsplit(":", 1)
        self.port = int(port)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, kind: str, timeout: float = 10.0) -> dict:
        """The next event of `kind` (events of other kinds before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind!r} event from the triage tool")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev["event"] == kind:
                return ev

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def facility(pki, cache):
    f = Facility(pki, cache)
    yield f
    f.close()
    assert read_state(NAME) is None  # the state file goes with the tool


def hub_cfg(pki, facility, who="device", peer=TOOL) -> dict:
    m = pki[who]
    return {"mode": "tls", "cert": m.cert_der, "key": m.key_der, "ca": pki["ca_der"], "peer": peer,
            "host": facility.host, "port": facility.port, "timeout": 5}  # fmt: skip


class CpyHub:
    """agent.triage_link.serve_triage on boards.sim parts, in a thread (CPython ssl)."""

    def __init__(self, storage: Path, cfg: dict, **kw):
        storage.mkdir(parents=True, exist_ok=True)
        self.hal = sim.make_hal(storage_dir=str(storage), eui=EUI)
        self.cfg = cfg
        self.kw = dict(kw)
        self.stop = threading.Event()
        self.hub = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.hub = serve_triage(self.hal, self.cfg, board=sim, stop=self.stop.is_set, **self.kw)
        except Exception as e:  # reported by join()
            self.error = e

    def join(self, timeout=15.0, stop=True):
        if stop:
            self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "serve_triage did not end"
        if self.error is not None:
            raise self.error
        return self.hub


def dbch(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def agent_client(timeout=5.0) -> AgentClient:
    info = read_state(NAME)
    assert info is not None and info.hub is not None, info
    return AgentClient(SerialTransport(info.port), timeout=timeout, port=SPEC)


def connected_hub(facility, tmp_path, pki, name="hub") -> tuple[CpyHub, dict]:
    hub = CpyHub(tmp_path / name, hub_cfg(pki, facility), retry_ms=200)
    ev = facility.wait_for("connected")
    return hub, ev


def end_hub(facility, hub: CpyHub):
    h = hub.join()
    facility.wait_for("disconnected")
    return h


# --- CPython hub, both ends TLS 1.3 ----------------------------------------------------------


def test_cpython_hub_end_to_end_over_tls13(facility, pki, tmp_path, capsys):
    hub, ev = connected_hub(facility, tmp_path, pki)
    try:
        assert ev["eui"] == EUI and ev["version"] == "TLSv1.3"
        assert "GCM" in ev["suite"] or "CHACHA20" in ev["suite"]
        state = read_state(NAME)
        assert state.hub["eui"] == EUI and state.sessions >= 1 and state.tool == TOOL

        client = agent_client()
        try:
            r = client.hello(events=False)
            assert r.ok and r.data["eui"] == EUI and r.data["board"] == "sim"
            r = client.request("status")
            assert r.ok and r.data["configured"] is False
            r = client.request("config.set", {"config": DBCH04_CONFIG})
            assert r.rc == "I0", r
            r = client.request("config.set", {"config": dict(DBCH04_CONFIG, LowerBandSubGHzChannels0To26=[99])})
            assert r.rc == "E062801" and "channel 99" in r.err, r  # a refusal travels back as well
            r = client.hello(events=True)
            assert r.ok
            events = list(client.poll_events(2.0))
            codes = [e.data.get("DeviceAlertCode") for e in events if e.kind == "N54"]
            assert "8F2A" in codes, events  # the configuration-applied alert, over the link
            for e in events:
                client.ack(e.seq)
        finally:
            client.transport.close()

        # the ordinary commands, --port triage:NAME
        rc, out, _ = dbch(capsys, "status", "--port", SPEC, "--json")
        assert rc == 0 and json.loads(out)["eui"] == EUI and json.loads(out)["configured"] is True
        rc, out, _ = dbch(capsys, "config", "get", "--port", SPEC, "--json")
        assert rc == 0 and json.loads(out)["GSMECurfew"] == DBCH04_CONFIG["GSMECurfew"]
        rc, out, _ = dbch(capsys, "config", "set", "--port", SPEC, "--set", "GSMECurfew=8", "--json")
        assert rc == 0 and json.loads(out)["rc"] == "I0"
        rc, out, _ = dbch(capsys, "alerts", "--port", SPEC, "--json", "--wait", "2")
        assert rc == 0 and any(a["kind"] == "N54" for a in json.loads(out)), out

        # a technician's session
        rc, out, _ = dbch(capsys, "triage", "connect", "--port", SPEC, "--json")
        s = json.loads(out)
        assert rc == 0 and s["hub"]["eui"] == EUI and s["hello"]["eui"] == EUI and s["hub"]["version"] == "TLSv1.3"
        rc, out, _ = dbch(capsys, "triage", "connect", "--port", SPEC, "config", "get", "--json")
        assert rc == 0 and json.loads(out)["GSMECurfew"] == 8
        rc, out, _ = dbch(capsys, "triage", "connect", "--port", SPEC)
        assert rc == 0 and f"hub {EUI} connected" in out and "TLSv1.3" in out
    finally:
        h = end_hub(facility, hub)
    assert h.incidents.count(incidents.AUTH_FAILED) == 0 and len(h.outbox) == 0


def test_connect_reads_commands_from_stdin(facility, pki, tmp_path, cache):
    hub, _ = connected_hub(facility, tmp_path, pki)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "host_tools.cli.triage", "connect", "--port", SPEC, "-i", "--json"],
            input="status\n# a comment\nnonsense-command\nconfig get\nquit\nstatus\n",
            capture_output=True,
            text=True,
            env=_env(cache),
            timeout=30,
        )
    finally:
        end_hub(facility, hub)
    assert r.returncode == 0, r.stderr  # the status of the last command, as in a shell
    docs = _json_docs(r.stdout)
    assert docs[0]["hub"]["eui"] == EUI  # the session first
    assert docs[1]["eui"] == EUI and "uptime_ms" in docs[1]  # status
    assert docs[2] is None  # config get: this hub's storage is new, so no configuration
    assert len(docs) == 3  # nothing after quit
    assert "invalid choice" in r.stderr  # the bad command is explained, the session goes on


def _json_docs(text: str) -> list:
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        doc, i = dec.raw_decode(text, i)
        out.append(doc)


def test_no_hub_or_no_tool_is_a_clear_error(facility, capsys):
    rc, _, err = dbch(capsys, "status", "--port", SPEC)
    assert rc == 1 and "no hub is connected" in err and facility.ready["listen"] in err
    rc, _, err = dbch(capsys, "status", "--port", "triage:nobody")
    assert rc == 1 and "no triage tool 'nobody' is running" in err
    rc, out, _ = dbch(capsys, "triage", "connect", "--port", SPEC, "--json")
    assert rc == 3 and json.loads(out)["hub"] is None
    rc, _, err = dbch(capsys, "triage", "connect", "--port", "sim")
    assert rc == 1 and "not a triage port" in err
    rc, out, _ = dbch(capsys, "triage", "list", "--json")
    assert [t["name"] for t in json.loads(out)] == [NAME]


# --- MicroPython hub: TLS 1.2, ECDHE-ECDSA-AES-GCM (mbedTLS) ---------------------------------


@pytest.mark.skipif(MICROPYTHON is None, reason="micropython (unix port) not installed")
def test_micropython_hub_over_tls12(facility, pki, tmp_path, cache, capsys):
    cmd = [sys.executable, "-m", "host_tools.cli.triage", "dial", "--micropython", "--pki", pki["dir"]]
    cmd += ["--eui", EUI, "--tool", TOOL, "--connect", f"{facility.host}:{facility.port}"]
    cmd += ["--fs", str(tmp_path / "upy"), "--sessions", "1", "--retry", "0.2", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(cache))
    try:
        try:
            ev = facility.wait_for("connected", timeout=20)
        except AssertionError:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the MicroPython hub did not connect: {out} {err}") from None
        assert ev["eui"] == EUI and ev["version"] == "TLSv1.2"
        assert ev["suite"].startswith("ECDHE-ECDSA-AES") and "GCM" in ev["suite"], ev
        client = agent_client(timeout=10)
        try:
            r = client.hello()
            assert r.ok and r.data["eui"] == EUI and r.data["board"] == "sim"
            r = client.request("status")
            assert r.ok and r.data["eui"] == EUI and r.data["configured"] is False
            r = client.request("config.set", {"config": DBCH04_CONFIG})
            assert r.rc == "I0", r
        finally:
            client.transport.close()
        rc, out, _ = dbch(capsys, "config", "get", "--port", SPEC, "--json")
        assert rc == 0 and json.loads(out)["MaximumSubGHzChannelChangesPerWeek"] == 5
        client = agent_client(timeout=10)
        try:
            assert client.request("reboot").ok  # ends the MicroPython hub's session
        finally:
            client.transport.close()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["runtime"] == "micropython" and result["tls"] == "mbedtls"
    assert result["auth_failed"] == 0 and result["outbox"] >= 1  # the alerts of config.set
    facility.wait_for("disconnected")


# --- refusals: each refused, the tool goes on, a good hub follows -----------------------------


def tls_client(pki, facility, who, maxv=None):
    """A hub that breaks the policy; returns what it got back (data or the exception)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki["ca_der"])
    if who:
        ctx.load_cert_chain(pki[who].cert_pem, pki[who].key_pem)
    if maxv is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = maxv
    try:
        with socket.create_connection((facility.host, facility.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=TOOL) as t:
                t.sendall(b"\x1c hello")
                data = t.recv(64)
                return data if data else ConnectionError("closed without data")
    except (OSError, ssl.SSLError) as e:
        return e


def plaintext(pki, facility, who=None, maxv=None):
    with socket.create_connection((facility.host, facility.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            return s.recv(64) or ConnectionError("closed without data")
        except OSError as e:
            return e


REFUSALS = [
    # id, how, who, max TLS version, the tool's verdict
    ("other-ca", tls_client, "device_rogue", None, "auth"),
    ("wrong-eui", tls_client, "device_other", None, "identity"),
    ("no-client-cert", tls_client, None, None, "auth"),
    ("plaintext", plaintext, None, None, "protocol"),
    ("tls11", tls_client, "device", ssl.TLSVersion.TLSv1_1, "protocol"),
]


@pytest.mark.parametrize("how,who,maxv,kind", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_bad_hub_is_refused_and_a_good_one_follows(facility, pki, tmp_path, how, who, maxv, kind):
    before = read_state(NAME)
    result = how(pki, facility, who, maxv)
    assert isinstance(result, Exception), result  # never an answer
    ev = facility.wait_for("refused")
    assert ev["kind"] == kind, ev
    if maxv is not None:
        assert "VERSION" in ev["detail"].upper() or "PROTOCOL" in ev["detail"].upper(), ev
    after = read_state(NAME)
    assert after is not None and after.hub is None  # still serving, no session from it
    assert after.refused == before.refused + 1 and after.refusals[-1]["kind"] == kind
    assert sum(after.incidents["totals"].values()) == sum(before.incidents["totals"].values()) + 1

    hub, ev = connected_hub(facility, tmp_path, pki)
    try:
        client = agent_client()
        try:
            r = client.request("status")
            assert r.ok and r.data["eui"] == EUI
        finally:
            client.transport.close()
    finally:
        end_hub(facility, hub)


def test_garbage_on_an_established_link_ends_only_that_session(facility, pki, tmp_path):
    m = pki["device"]
    link = tls.connect(tls.client(m.cert_der, m.key_der, pki["ca_der"], TOOL, timeout=5), facility.host, facility.port)
    assert facility.wait_for("connected")["eui"] == EUI
    raw = socket.socket(fileno=os.dup(link.sock.fileno()))
    raw.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))  # a forged record under the TLS layer
    raw.close()
    ev = facility.wait_for("disconnected")
    assert ev["reason"].startswith("record"), ev
    link.close()
    assert read_state(NAME).incidents["totals"].get(incidents.BAD_RECORD, 0) >= 1
    hub, _ = connected_hub(facility, tmp_path, pki)
    end_hub(facility, hub)


# --- the hub refusing: incidents go upward through its outbox -------------------------------


def test_hub_refuses_the_wrong_tool_and_reports_the_incident(facility, pki, tmp_path, capsys):
    storage = tmp_path / "hub"
    bad = hub_cfg(pki, facility, peer="triage-2")  # the facility is triage-1
    hub = CpyHub(storage, bad, max_failures=2, retry_ms=50, thresholds={incidents.AUTH_FAILED: 2}).join(stop=False)
    assert hub.incidents.count(incidents.AUTH_FAILED) == 2 and hub.incidents.number == 1
    pending = list(hub.outbox.pending())
    assert [(k, d["trigger"]) for _, k, d in pending] == [("incident", incidents.AUTH_FAILED)]
    assert "identity" in pending[0][2]["detail"] or "auth" in pending[0][2]["detail"]
    facility.wait_for("refused")  # the tool saw the hub hang up on it, and goes on

    # the same hub, now configured right: the incident is delivered over the triage link
    good = CpyHub(storage, hub_cfg(pki, facility), retry_ms=200)
    facility.wait_for("connected")
    try:
        rc, out, _ = dbch(capsys, "alerts", "--port", SPEC, "--json", "--wait", "2")
        got = [a for a in json.loads(out) if a["kind"] == "incident"]
        assert rc == 0 and len(got) == 1 and got[0]["data"]["trigger"] == incidents.AUTH_FAILED, out
        assert got[0]["data"]["counts"] == {incidents.AUTH_FAILED: 2}
    finally:
        h = end_hub(facility, good)
    assert h.incidents.number == 1 and h.incidents.notified  # restored from storage, not notified twice
    assert len(h.outbox) == 0  # acknowledged by the technician's dbch alerts


def test_hub_refuses_a_link_that_is_not_mutually_authenticated(pki, tmp_path):
    base = {"mode": "tls", "cert": pki["device"].cert_der, "key": pki["device"].key_der, "ca": pki["ca_der"],
            "peer": TOOL, "host": "127.0.0.1", "port": 9}  # fmt: skip
    bad = [
        (dict(base, verify="none"), "verify"),
        ({k: v for k, v in base.items() if k != "cert"}, "cert"),
        (dict(base, mode="plain"), "mode"),
        (dict(base, min_version="1.1"), "min_version"),
        (dict(base, psk=b"secret"), "psk"),
        (dict(base, ciphers=["ECDHE-ECDSA-AES128-SHA256"]), "ciphers"),
    ]
    storage = tmp_path / "hub"
    storage.mkdir()
    for cfg, fld in bad:
        hal = sim.make_hal(storage_dir=str(storage), eui=EUI)
        with pytest.raises(triage.PolicyError) as ei:
            serve_triage(hal, cfg, board=sim, max_failures=1, retry_ms=0)
        assert ei.value.field == fld
    hal = sim.make_hal(storage_dir=str(storage), eui=EUI)
    with pytest.raises(tls.TriageLinkError) as ei:
        serve_triage(hal, dict(base, port=None), board=sim, max_failures=1, retry_ms=0)
    assert ei.value.kind == "config"
    # each refusal was counted (kept in the hub's storage); the third opened an incident
    hub = serve_triage(sim.make_hal(storage_dir=str(storage), eui=EUI), base, board=sim, max_failures=1, retry_ms=0)
    assert hub.incidents.count(incidents.POLICY_VIOLATION) == len(bad)
    assert [k for _, k, _ in hub.outbox.pending()] == ["incident"]


# --- the Link over TLS (CPython) ----------------------------------------------------------------


def _pair(pki):
    a, b = socket.socketpair()
    t, d = pki["tool"], pki["device"]
    srv = tls.server(t.cert_der, t.key_der, pki["ca_der"], [EUI], timeout=5)
    cli_ep = tls.client(d.cert_der, d.key_der, pki["ca_der"], TOOL, timeout=5)
    box = {}
    th = threading.Thread(target=lambda: box.update(s=srv.wrap(a)))
    th.start()
    c = cli_ep.wrap(b)
    th.join(10)
    return TlsStreamLink(box["s"]), TlsStreamLink(c)


def test_tls_stream_link_is_a_non_blocking_link(pki):
    s, c = _pair(pki)
    try:
        assert (c.peer, s.peer) == (TOOL, EUI)
        assert c.read(100) == b"" and c.wait(50) is False and not c.eof  # nothing yet: no blocking
        s.write(b"abc")
        assert c.wait(2000) is True
        assert c.read(2) == b"ab"
        assert c.wait(0) is True  # decrypted but unread bytes count as ready
        assert c.read(100) == b"c"
        big = os.urandom(200_000)
        got = bytearray()
        th = threading.Thread(target=s.write, args=(big,))
        th.start()
        while len(got) < len(big):
            assert c.wait(2000)
            got += c.read(65536)
        th.join(10)
        assert bytes(got) == big
        s.close()
        assert c.wait(2000)
        while not c.eof:
            assert c.read(10) == b""
            c.wait(100)
        assert c.error is None  # a close is not an incident
        c.write(b"dropped")  # writes on a closed link are dropped, not raised
    finally:
        s.close()
        c.close()


def test_tls_stream_link_reports_a_forged_record(pki):
    s, c = _pair(pki)
    try:
        raw = socket.socket(fileno=os.dup(c.sock.fileno()))
        raw.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
        raw.close()
        assert s.wait(2000)
        while not s.eof:
            s.read(100)
            s.wait(100)
        assert isinstance(s.error, tls.TriageLinkError) and s.error.kind == "record"
        assert incidents.incident_kind(s.error) == incidents.BAD_RECORD
    finally:
        s.close()
        c.close()


# --- defaults from the PKI, `dial` on CPython, `stop` -------------------------------------------


def test_serve_defaults_dial_and_stop(pki, tmp_path, cache, capsys):
    rc, _, err = dbch(capsys, "triage", "serve", "--pki", pki["dir"], "--name", "t2", "--listen", "127.0.0.1:0")
    assert rc == 1 and "several tool certificates" in err and "--tool" in err  # triage-1 and triage-2
    cmd = [sys.executable, "-m", "host_tools.cli.triage", "serve", "--pki", pki["dir"], "--tool", TOOL]
    cmd += ["--name", "t2", "--listen", "127.0.0.1:0", "--json"]
    serve = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(cache))
    dial = None
    try:
        ready = json.loads(serve.stdout.readline())
        assert ready["expect"] == sorted([EUI, OTHER_EUI])  # every hub the PKI has a certificate for
        cmd = [sys.executable, "-m", "host_tools.cli.triage", "dial", "--pki", pki["dir"], "--eui", OTHER_EUI]
        cmd += ["--tool", TOOL, "--connect", ready["listen"], "--fs", str(tmp_path / "h2"), "--sessions", "1"]
        dial = subprocess.Popen(
            cmd + ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(cache)
        )
        assert json.loads(serve.stdout.readline())["event"] == "connected"
        rc, out, _ = dbch(capsys, "triage", "connect", "--port", "triage:t2", "--json")
        assert rc == 0 and json.loads(out)["hello"]["eui"] == OTHER_EUI
        rc, out, _ = dbch(capsys, "triage", "stop", "--name", "t2", "--json")
        assert rc == 0 and json.loads(out)["stopped"] is True
        assert read_state("t2") is None
        out, err = dial.communicate(timeout=20)  # the tool went away: the hub's one session ended
        assert dial.returncode == 0, err
        result = json.loads(out)
        assert result["eui"] == OTHER_EUI and result["runtime"] == "cpython" and result["incidents"]["number"] == 0
        assert serve.wait(10) == 0
    finally:
        for p in (serve, dial):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()


# --- the tool's incidents survive a restart -----------------------------------------------------


def test_incidents_survive_a_restart_of_the_tool(pki, cache):
    name = "t-restart"
    record = REGISTRY.server_dir(name) / INCIDENTS_FILE
    f = Facility(pki, cache, name=name)
    try:
        assert f.ready["incidents"]["totals"] == {} and not record.exists()  # a first start: nothing kept
        seen = []
        for _ in range(6):  # a hub whose certificate is from another CA: 5 make a Major Security Incident
            assert isinstance(tls_client(pki, f, "device_rogue"), Exception)
            seen.append(f.events.get(timeout=10))
            if seen[-1]["event"] == "incident":
                seen.append(f.events.get(timeout=10))
        assert [e["event"] for e in seen] == ["refused"] * 4 + ["incident", "refused", "refused"], seen
        assert all(e["kind"] == "auth" for e in seen if e["event"] == "refused")
        assert seen[4]["incident"] == 1 and seen[4]["trigger"] == incidents.AUTH_FAILED
        plaintext(pki, f)  # and one link refused by protocol
        f.wait_for("refused")
    finally:
        f.close()
    assert f.proc.returncode == 0
    kept = json.loads(record.read_text())
    assert kept["open"] is True and kept["number"] == 1 and kept["window"][incidents.AUTH_FAILED] == 6
    assert not list(record.parent.glob("*.tmp"))  # written whole, then renamed

    f = Facility(pki, cache, name=name)  # the tool starts again
    try:
        inc = f.ready["incidents"]
        assert inc["open"] is True and inc["notified"] is True and inc["number"] == 1
        assert inc["trigger"] == incidents.AUTH_FAILED
        assert inc["totals"] == {incidents.AUTH_FAILED: 6, incidents.LINK_REFUSED: 1}
        assert inc["window"] == {incidents.AUTH_FAILED: 6, incidents.LINK_REFUSED: 1}
        assert isinstance(tls_client(pki, f, "device_rogue"), Exception)
        f.wait_for("refused")
        state = read_state(name)
        assert state.incidents["totals"][incidents.AUTH_FAILED] == 7 and state.incidents["number"] == 1
        with pytest.raises(AssertionError):  # still the same open incident: not notified again
            f.wait_for("incident", timeout=1.0)
    finally:
        f.close()
    assert json.loads(record.read_text())["totals"][incidents.AUTH_FAILED] == 7

    record.write_text("{not json")  # a damaged record: the tool says so rather than start from zero
    r = subprocess.run(
        [sys.executable, "-m", "host_tools.cli.triage", "serve", "--pki", pki["dir"], "--tool", TOOL, "--expect", EUI,
         "--listen", "127.0.0.1:0", "--name", name],
        capture_output=True, text=True, env=_env(cache), timeout=30,
    )  # fmt: skip
    assert r.returncode == 1 and str(record) in r.stderr and "move it aside" in r.stderr, r.stderr


# --- dbch triage enrol: a hub on its console gets its triage link -------------------------------


class ConsoleHub:
    """The CPython agent (agent.run.serve, as flashed boards run it) on a pty, in a thread."""

    def __init__(self, storage: Path):
        self.agent = SimAgent(storage, eui=EUI)
        self.port = self.agent.open()
        self.thread = threading.Thread(target=self.agent.run, daemon=True)
        self.thread.start()

    def client(self) -> AgentClient:
        return AgentClient(SerialTransport(self.port), timeout=10, port=self.port)

    def close(self):
        self.agent.request_stop()
        self.thread.join(15)
        self.agent.close()


def test_enrol_gives_a_hub_its_triage_link_and_clear_takes_it_back(facility, pki, tmp_path, capsys):
    hub = ConsoleHub(tmp_path / "flash")
    where = f"{facility.host}:{facility.port}"
    base = ["triage", "enrol", "--port", hub.port, "--pki", pki["dir"]]
    try:
        # what is wrong is said before anything is sent
        rc, _, err = dbch(capsys, *base, "--tool", where)
        assert rc == 1 and "several tool certificates" in err and "--tool" in err  # triage-1 and triage-2
        rc, _, err = dbch(capsys, *base)
        assert rc == 1 and "--tool HOST:PORT" in err and "--clear" in err
        rc, _, err = dbch(capsys, *base, "--tool", "4460", "--tool-name", TOOL)
        assert rc == 1 and "HOST:PORT" in err
        rc, _, err = dbch(capsys, *base, "--tool", "127.0.0.1:0", "--tool-name", TOOL)
        assert rc == 1 and "1-65535" in err
        rc, _, err = dbch(capsys, *base, "--clear", "--tool", where)
        assert rc == 1 and "--clear takes no --tool" in err
        rc, _, err = dbch(capsys, *base, "--tool", where, "--tool-name", TOOL, "--hub", OTHER_EUI)
        assert rc == 1 and f"is {EUI}, not {OTHER_EUI}" in err
        with pytest.raises(queue.Empty):
            facility.events.get(timeout=0.5)  # nothing dialled
        client = hub.client()
        try:
            assert client.request("triage.status").data["enrolled"] is False
        finally:
            client.transport.close()

        rc, out, err = dbch(capsys, *base, "--tool", where, "--tool-name", TOOL, "--hub", EUI, "--json")
        assert rc == 0, err
        got = json.loads(out)
        assert got["rc"] == "I0" and got["op"] == "triage.set" and got["eui"] == EUI and got["peer"] == TOOL
        assert (got["host"], got["tool_port"]) == (facility.host, facility.port)
        assert "key" not in got and "cert" not in got  # the credentials are not printed
        ev = facility.wait_for("connected", timeout=20)  # the hub dials by itself
        assert ev["eui"] == EUI
        client = hub.client()
        try:
            s = client.request("triage.status").data
            assert s["enrolled"] is True and s["up"] is True and s["tool"] == where and s["peer"] == TOOL
        finally:
            client.transport.close()
        rc, out, _ = dbch(capsys, "status", "--port", SPEC, "--json")  # the facility reaches it
        assert rc == 0 and json.loads(out)["eui"] == EUI

        rc, out, err = dbch(capsys, *base, "--clear")
        assert rc == 0 and "forgotten" in out and "I0" in out, err
        facility.wait_for("disconnected")
        client = hub.client()
        try:
            assert client.request("triage.status").data == {"enrolled": False, "up": False}
        finally:
            client.transport.close()
    finally:
        hub.close()


def test_enrol_sends_the_configuration_the_hub_checks(pki):
    cfg = enrol_config(pki["dir"], EUI, TOOL, "192.0.2.10", 4460)
    assert sorted(cfg) == ["ca", "cert", "host", "key", "mode", "peer", "port"]
    assert cfg["mode"] == "tls" and cfg["peer"] == TOOL and (cfg["host"], cfg["port"]) == ("192.0.2.10", 4460)
    assert cfg["cert"] == pki["device"].cert_der and cfg["key"] == pki["device"].key_der
    assert cfg["ca"] == pki["ca_der"]
    assert triage.check_policy(cfg)["peer"] == [TOOL]  # the hub's own policy takes it as it is
    with pytest.raises(PkiError, match="dbch pki device"):
        enrol_config(pki["dir"], "00-1B-C5-0C-00-00-00-01", TOOL, "192.0.2.10", 4460)


# --- the tool refusing the hub: the hub hears it as an authentication failure -------------------

_UPY_ROGUE = """
import sys
sys.path.insert(0, {root!r})
from agent import incidents
from hal import tls
ep = tls.client({cert!r}, {key!r}, {ca!r}, {tool!r}, 5)
try:
    tls.connect(ep, {host!r}, {port})
    print("CONNECTED")
except tls.TriageLinkError as e:
    print("KIND", incidents.incident_kind(e), e.detail)
"""


def test_a_hub_whose_certificate_the_tool_refuses_counts_an_auth_failure(facility, pki, tmp_path):
    # CPython, TLS 1.3: the tool's alert (unknown CA) arrives after the hub's side of the handshake
    h = CpyHub(tmp_path / "rogue", hub_cfg(pki, facility, who="device_rogue"), sessions=2, retry_ms=50).join(stop=False)
    assert h.incidents.count(incidents.AUTH_FAILED) == 2 and h.incidents.totals == {incidents.AUTH_FAILED: 2}
    assert facility.wait_for("refused")["kind"] == "auth"
    assert facility.wait_for("refused")["kind"] == "auth"
    if MICROPYTHON is None:
        return
    # MicroPython, TLS 1.2: the tool reads what the hub still sends before closing, so mbedTLS
    # hears the alert instead of a broken pipe
    m = pki["device_rogue"]
    script = _UPY_ROGUE.format(root=str(ROOT), cert=m.cert_der, key=m.key_der, ca=pki["ca_der"], tool=TOOL,
                               host=facility.host, port=facility.port)  # fmt: skip
    r = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True, timeout=30)
    assert r.stdout.startswith("KIND " + incidents.AUTH_FAILED), (r.stdout, r.stderr)
    assert facility.wait_for("refused")["kind"] == "auth"

"""The Triage System Interface over TLS (hal/tls.py): mutual authentication on CPython and on
the MicroPython unix port, against each other and against `openssl s_client` / `s_server`.

Every bad case must be REFUSED by the server, and the server must then serve the next good
client."""

from __future__ import annotations

import datetime as dt
import os
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

from agent import incidents, triage
from hal import tls
from host_tools.security.pki import Pki

ROOT = Path(__file__).resolve().parents[2]
EUI = "00-1B-C5-0C-00-00-12-34"
OTHER_EUI = "00-1B-C5-0C-00-00-99-99"
TOOL = "triage-1"
MICROPYTHON = shutil.which("micropython")
OPENSSL = shutil.which("openssl")
needs_micropython = pytest.mark.skipif(MICROPYTHON is None, reason="micropython (unix port) not installed")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")


class Material:
    """Paths of one certificate + key (DER and PEM)."""

    def __init__(self, issued):
        self.cert_der = issued.cert_der.read_bytes()
        self.key_der = issued.key_der.read_bytes()
        self.cert_pem = str(issued.cert_pem)
        self.key_pem = str(issued.key_pem)
        self.dir = str(issued.directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.timezone.utc)
    good = Pki(base / "good")
    good.init_ca()
    rogue = Pki(base / "rogue")
    rogue.init_ca("rogue CA")
    past = {"not_before": now - dt.timedelta(days=30), "not_after": now - dt.timedelta(days=1)}
    future = {"not_before": now + dt.timedelta(days=1)}
    m = {
        "ca_der": good.ca().cert_der.read_bytes(),
        "ca_pem": str(good.ca().cert_pem),
        "rogue_ca_der": rogue.ca().cert_der.read_bytes(),
        "device": Material(good.issue_device(EUI)),
        "device_other": Material(good.issue_device(OTHER_EUI)),
        "device_expired": Material(good.issue_device(EUI, label="expired", **past)),
        "device_future": Material(good.issue_device(EUI, label="future", **future)),
        "device_rogue": Material(rogue.issue_device(EUI)),
        "tool": Material(good.issue_tool(TOOL)),
        "tool_other": Material(good.issue_tool("triage-2")),
        "tool_expired": Material(good.issue_tool(TOOL, label="expired", **past)),
        "tool_future": Material(good.issue_tool(TOOL, label="future", **future)),
        "tool_rogue": Material(rogue.issue_tool(TOOL)),
    }
    return m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EchoServer:
    """hal.tls server on 127.0.0.1 in a thread: handshake, read one message, send it back
    prefixed "echo:". Each connection's outcome goes to `outcomes`: ("ok", peer, version,
    suite, data) or ("refused", kind, detail)."""

    def __init__(self, endpoint: tls.TlsEndpoint):
        self.endpoint = endpoint
        self.wrap_timeout: float | None = 5
        self.outcomes: queue.Queue = queue.Queue()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                link = self.endpoint.wrap(conn, timeout=self.wrap_timeout)
            except tls.TriageLinkError as e:
                self.outcomes.put(("refused", e.kind, e.detail))
                continue
            try:
                data = link.recv(256)
                link.send(b"echo:" + data)
                self.outcomes.put(("ok", link.peer, link.version, link.suite, data))
            except tls.TriageLinkError as e:
                self.outcomes.put(("refused", e.kind, e.detail))
            finally:
                link.close()

    def next(self, timeout=10.0):
        return self.outcomes.get(timeout=timeout)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def tool_server(pki):
    """The triage tool listening; it accepts only the hub EUI."""
    t = pki["tool"]
    srv = EchoServer(tls.server(t.cert_der, t.key_der, pki["ca_der"], [EUI]))
    yield srv
    srv.close()


@pytest.fixture
def hub_server(pki):
    """The hub listening (CPython); it accepts only the triage tool."""
    d = pki["device"]
    srv = EchoServer(tls.server(d.cert_der, d.key_der, pki["ca_der"], TOOL))
    yield srv
    srv.close()


def hal_client(pki, who: str, port: int, peer: str, ca: str = "ca_der", msg: bytes = b"hello"):
    m = pki[who]
    ep = tls.client(m.cert_der, m.key_der, pki[ca], peer, timeout=5)
    link = tls.connect(ep, "127.0.0.1", port)
    try:
        link.send(msg)
        return link, link.recv_exactly(len(b"echo:" + msg))
    finally:
        link.close()


def raw_client(pki, port: int, who: str | None, server_name: str, maxv=None, seclevel0=False):
    """A CPython ssl client that may break the policy (no cert, old TLS); returns the reply or
    the exception it got."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki["ca_der"])
    if who:
        ctx.load_cert_chain(pki[who].cert_pem, pki[who].key_pem)
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if maxv is not None:
        with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = maxv
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=server_name) as t:
                t.sendall(b"hello")
                data = t.recv(64)
                return data if data else ConnectionError("closed without data")
    except (OSError, ssl.SSLError) as e:
        return e


def no_reply(link: tls.TlsLink) -> bool:
    """The server dropped the link: an error or a close, never data."""
    try:
        data = link.recv(64)
    except tls.TriageLinkError:
        data = b""
    link.close()
    return data == b""


def assert_good(server: EchoServer, pki, who="device", peer=TOOL, expect_peer=EUI):
    link, reply = hal_client(pki, who, server.port, peer)
    assert reply == b"echo:hello"
    assert link.peer == peer
    out = server.next()
    assert out[0] == "ok" and out[1] == expect_peer and out[4] == b"hello", out
    return out


# --- CPython <-> CPython ---------------------------------------------------------------------


def test_openssl_runtime_is_selected():
    assert tls.runtime() == "openssl"


def test_good_handshake_hub_to_tool_and_data_flows(pki, tool_server):
    out = assert_good(tool_server, pki)
    assert out[2] == "TLSv1.3"  # both ends have it
    assert "GCM" in out[3] or "CHACHA20" in out[3]


def test_good_handshake_tool_to_hub(pki, hub_server):
    link, reply = hal_client(pki, "tool", hub_server.port, EUI)
    assert reply == b"echo:hello"
    assert link.peer == EUI
    out = hub_server.next()
    assert out[:2] == ("ok", TOOL)


def test_eui_is_matched_case_insensitively(pki, tool_server):
    link, reply = hal_client(pki, "device", tool_server.port, TOOL.upper())
    assert reply == b"echo:hello"
    tool_server.next()


def test_tls12_only_client_gets_an_aead_suite(pki, tool_server):
    reply = None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki["ca_der"])
    ctx.load_cert_chain(pki["device"].cert_pem, pki["device"].key_pem)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tool_server.port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=TOOL) as t:
            assert t.version() == "TLSv1.2"
            assert "ECDHE-ECDSA" in t.cipher()[0] and "GCM" in t.cipher()[0]
            t.sendall(b"hello")
            reply = t.recv(64)
    assert reply == b"echo:hello"
    out = tool_server.next()
    assert out[2] == "TLSv1.2"


def test_tls12_client_offering_only_cbc_is_refused(pki, tool_server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki["ca_der"])
    ctx.load_cert_chain(pki["device"].cert_pem, pki["device"].key_pem)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", tool_server.port), timeout=5) as s:
            ctx.wrap_socket(s, server_hostname=TOOL)
    assert tool_server.next()[:2] == ("refused", "protocol")
    assert_good(tool_server, pki)


BAD_CLIENTS = [
    # (id, who, expected server-side kind)
    ("no-client-cert", None, "auth"),
    ("other-ca", "device_rogue", "auth"),
    ("expired", "device_expired", "auth"),
    ("not-yet-valid", "device_future", "auth"),
    ("wrong-eui", "device_other", "identity"),
]


@pytest.mark.parametrize("who,kind", [c[1:] for c in BAD_CLIENTS], ids=[c[0] for c in BAD_CLIENTS])
def test_bad_client_is_refused_and_server_goes_on(pki, tool_server, who, kind):
    result = raw_client(pki, tool_server.port, who, TOOL)
    assert isinstance(result, Exception), result  # the client never gets an echo
    out = tool_server.next()
    assert out[0] == "refused" and out[1] == kind, out
    assert_good(tool_server, pki)


def test_tls11_offered_is_refused(pki, tool_server):
    result = raw_client(pki, tool_server.port, "device", TOOL, maxv=ssl.TLSVersion.TLSv1_1, seclevel0=True)
    assert isinstance(result, ssl.SSLError), result
    out = tool_server.next()
    assert out[:2] == ("refused", "protocol")
    assert "UNSUPPORTED_PROTOCOL" in out[2] or "VERSION" in out[2].upper(), out
    assert_good(tool_server, pki)


def test_tls10_offered_is_refused(pki, tool_server):
    result = raw_client(pki, tool_server.port, "device", TOOL, maxv=ssl.TLSVersion.TLSv1, seclevel0=True)
    assert isinstance(result, ssl.SSLError), result
    assert tool_server.next()[:2] == ("refused", "protocol")
    assert_good(tool_server, pki)


def test_plaintext_to_the_tls_port_is_refused(pki, tool_server):
    with socket.create_connection(("127.0.0.1", tool_server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            reply = s.recv(64)
        except ConnectionResetError:
            reply = b""
    assert b"HTTP" not in reply
    assert tool_server.next()[:2] == ("refused", "protocol")
    assert_good(tool_server, pki)


@pytest.mark.parametrize(
    "garbage",
    [b"\x17\x03\x03\x00\x20" + os.urandom(32), b"this is not a TLS record at all\n"],
    ids=["forged-record", "plaintext"],
)
def test_garbage_after_the_handshake_is_refused(pki, tool_server, garbage):
    m = pki["device"]
    ep = tls.client(m.cert_der, m.key_der, pki["ca_der"], TOOL, timeout=5)
    link = tls.connect(ep, "127.0.0.1", tool_server.port)
    # write straight onto the TCP stream, under the TLS layer
    raw = socket.socket(fileno=os.dup(link.sock.fileno()))
    raw.sendall(garbage)
    raw.close()
    assert no_reply(link)
    out = tool_server.next()
    assert out[:2] == ("refused", "record"), out
    assert_good(tool_server, pki)


def test_silent_client_times_out_and_server_goes_on(pki):
    t = pki["tool"]
    srv = EchoServer(tls.server(t.cert_der, t.key_der, pki["ca_der"], [EUI], timeout=0.5))
    srv.wrap_timeout = None  # keep the endpoint's own 0.5 s
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            out = srv.next()
            assert out[:2] == ("refused", "timeout"), out
            assert s.recv(16) == b""  # the server hung up
        assert_good(srv, pki)
    finally:
        srv.close()


def test_min_version_13_refuses_a_tls12_client(pki):
    t = pki["tool"]
    srv = EchoServer(tls.server(t.cert_der, t.key_der, pki["ca_der"], [EUI], min_version="1.3"))
    try:
        result = raw_client(pki, srv.port, "device", TOOL, maxv=ssl.TLSVersion.TLSv1_2)
        assert isinstance(result, ssl.SSLError), result
        assert srv.next()[:2] == ("refused", "protocol")
        assert assert_good(srv, pki)[2] == "TLSv1.3"
    finally:
        srv.close()


def test_narrowed_cipher_list_is_used(pki):
    t = pki["tool"]
    suite = "ECDHE-ECDSA-AES128-GCM-SHA256"
    srv = EchoServer(tls.server(t.cert_der, t.key_der, pki["ca_der"], [EUI], ciphers=[suite]))
    try:
        d = pki["device"]
        ep = tls.client(d.cert_der, d.key_der, pki["ca_der"], TOOL)
        ep.context.maximum_version = ssl.TLSVersion.TLSv1_2
        link = tls.connect(ep, "127.0.0.1", srv.port)
        assert (link.version, link.suite) == ("TLSv1.2", suite)
        link.send(b"hello")
        assert link.recv_exactly(10) == b"echo:hello"
        link.close()
        assert srv.next()[3] == suite
    finally:
        srv.close()
    for bad in (["ECDHE-ECDSA-AES128-SHA256"], ["AES128-GCM-SHA256"], ["PSK-AES128-GCM-SHA256"], []):
        with pytest.raises(tls.TriageLinkError, match="suite"):
            tls.server(t.cert_der, t.key_der, pki["ca_der"], [EUI], ciphers=bad)


def test_link_from_a_policy_checked_config(pki, tool_server):
    d = pki["device"]
    cfg = {"mode": "tls", "cert": d.cert_der, "key": d.key_der, "ca": pki["ca_der"], "peer": TOOL}
    link = tls.connect(triage.tls_endpoint(cfg, server_side=False), "127.0.0.1", tool_server.port)
    link.send(b"hello")
    assert link.recv_exactly(10) == b"echo:hello"
    link.close()
    assert tool_server.next()[:2] == ("ok", EUI)
    with pytest.raises(triage.PolicyError):
        triage.tls_endpoint(dict(cfg, verify="none"), server_side=False)


def test_incidents_count_refused_links(pki, tool_server):
    sent = []
    inc = incidents.Incidents(sent.append, thresholds={incidents.AUTH_FAILED: 2})
    for who in ("device_rogue", "device_other", "device_expired"):
        raw_client(pki, tool_server.port, who, TOOL)
        out = tool_server.next()
        inc.record_link_error(tls.TriageLinkError(out[1], out[2]))
    assert inc.count(incidents.AUTH_FAILED) == 3
    assert len(sent) == 1 and sent[0]["trigger"] == incidents.AUTH_FAILED


BAD_SERVERS = [
    ("other-ca", "tool_rogue", "auth"),
    ("expired", "tool_expired", "auth"),
    ("not-yet-valid", "tool_future", "auth"),
    ("wrong-name", "tool_other", "identity"),
]


@pytest.mark.parametrize("who,kind", [c[1:] for c in BAD_SERVERS], ids=[c[0] for c in BAD_SERVERS])
def test_client_refuses_a_bad_server(pki, who, kind):
    m = pki[who]
    srv = EchoServer(tls.server(m.cert_der, m.key_der, pki["ca_der"], [EUI]))
    try:
        with pytest.raises(tls.TriageLinkError) as ei:
            hal_client(pki, "device", srv.port, TOOL)
        assert ei.value.kind == kind, ei.value
        assert srv.next()[0] == "refused"
    finally:
        srv.close()


def test_config_errors_are_clear(pki):
    d = pki["device"]
    with pytest.raises(tls.TriageLinkError, match="PEM"):
        tls.client(Path(d.cert_pem).read_bytes(), d.key_der, pki["ca_der"], TOOL)
    with pytest.raises(tls.TriageLinkError, match="certificate/key"):
        tls.client(d.cert_der, pki["tool"].key_der, pki["ca_der"], TOOL)  # key of another cert
    with pytest.raises(tls.TriageLinkError, match="CA"):
        tls.client(d.cert_der, d.key_der, b"\x30\x03\x02\x01\x00", TOOL)
    with pytest.raises(tls.TriageLinkError, match="peer"):
        tls.server(d.cert_der, d.key_der, pki["ca_der"], None)


def test_connect_to_nothing_is_a_link_error(pki):
    d = pki["device"]
    ep = tls.client(d.cert_der, d.key_der, pki["ca_der"], TOOL, timeout=2)
    with pytest.raises(tls.TriageLinkError) as ei:
        tls.connect(ep, "127.0.0.1", free_port())
    assert ei.value.kind == "protocol"


def test_openssl_context_policy(pki):
    d = pki["device"]
    for ep in (
        tls.client(d.cert_der, d.key_der, pki["ca_der"], TOOL),
        tls.server(d.cert_der, d.key_der, pki["ca_der"], TOOL),
    ):
        assert ep.context.verify_mode == ssl.CERT_REQUIRED
        assert ep.context.minimum_version == ssl.TLSVersion.TLSv1_2
        names = {c["name"] for c in ep.context.get_ciphers() if c["protocol"] == "TLSv1.2"}
        assert names and all(("GCM" in n or "CHACHA20" in n) and "ECDHE" in n for n in names), names


# --- MicroPython (the hub agent) -----------------------------------------------------------

UPY_CLIENT = """
import sys
sys.path.insert(0, {root!r})
from agent import triage
from hal import tls

def rd(p):
    with open(p, "rb") as f:
        return f.read()

print("runtime", tls.runtime())
for d, ca, peer in {cases!r}:
    try:
        ep = tls.client(rd(d + "/cert.der"), rd(d + "/key.der"), rd(ca), peer, timeout=5)
        link = tls.connect(ep, "127.0.0.1", {port})
        link.send(b"hello")
        reply = link.recv_exactly(10)
        print("OK", link.peer, link.version, link.suite, reply.decode())
        link.close()
    except tls.TriageLinkError as e:
        print("REFUSED", e.kind, e.detail)
"""

UPY_SERVER = """
import sys, socket
sys.path.insert(0, {root!r})
from agent import triage
from hal import tls

def rd(p):
    with open(p, "rb") as f:
        return f.read()

d = {dev!r}
ep = tls.server(rd(d + "/cert.der"), rd(d + "/key.der"), rd({ca!r}), {peer!r}, timeout=2)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(socket.getaddrinfo("127.0.0.1", {port})[0][-1])
s.listen(4)
print("READY", tls.runtime())
for i in range({n}):
    c, a = s.accept()
    try:
        link = ep.wrap(c)
    except tls.TriageLinkError as e:
        print("REFUSED", e.kind, e.detail)
        continue
    try:
        data = link.recv(64)
        link.send(b"echo:" + data)
        print("OK", link.peer, link.version, link.suite, data.decode().strip())
    except tls.TriageLinkError as e:
        print("REFUSED", e.kind, e.detail)
    link.close()
s.close()
"""


@needs_micropython
def test_micropython_endpoint_policy(pki, tmp_path):
    ca = str(Path(pki["ca_pem"]).with_suffix(".der"))
    d = pki["device"].dir
    script = tmp_path / "policy.py"
    script.write_text(
        f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import tls as m
from hal import tls

def rd(p):
    with open(p, "rb") as f:
        return f.read()

args = (rd({d!r} + "/cert.der"), rd({d!r} + "/key.der"), rd({ca!r}), "triage-1")
for side in (False, True):
    ep = tls.TlsEndpoint(side, *args)
    print("verify", ep.context.verify_mode == m.CERT_REQUIRED, "suites", ",".join(ep.suites))
have13 = [c for c in m.SSLContext(m.PROTOCOL_TLS_CLIENT).get_ciphers() if c.startswith("TLS1-3")]
try:
    tls.client(*args, min_version="1.3")
    print("tls13", "ok", bool(have13))
except tls.TriageLinkError as e:
    print("tls13", e.kind, bool(have13))
try:
    tls.client(rd({d!r} + "/cert.pem"), rd({d!r} + "/key.der"), rd({ca!r}), "triage-1")
except tls.TriageLinkError as e:
    print("pem", e.kind)
"""
    )
    r = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    for line in lines[:2]:
        verify, ok, _, suites = line.split()
        assert ok == "True"  # CERT_REQUIRED set explicitly on both sides
        assert suites and all("GCM" in x or "CHACHA20" in x for x in suites.split(","))
        assert all("ECDHE-ECDSA" in x or x.startswith("TLS1-3") for x in suites.split(","))
    assert lines[2] in ("tls13 ok True", "tls13 config False")  # TLS 1.3 only where the build has it
    assert lines[3] == "pem config"


@needs_micropython
def test_micropython_client_to_cpython_server(pki, tool_server, tmp_path):
    ca = str(Path(pki["ca_pem"]).with_suffix(".der"))
    cases = [
        (pki["device"].dir, ca, TOOL),  # good
        (pki["device"].dir, ca, "triage-2"),  # expects another tool: client refuses
        (pki["device_expired"].dir, ca, TOOL),  # server refuses
        (pki["device_rogue"].dir, ca, TOOL),  # server refuses
        (pki["device_other"].dir, ca, TOOL),  # wrong EUI: server refuses
        (pki["device"].dir, ca, TOOL),  # good again
    ]
    script = tmp_path / "client.py"
    script.write_text(UPY_CLIENT.format(root=str(ROOT), cases=cases, port=tool_server.port))
    r = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    assert lines[0] == "runtime mbedtls"
    res = lines[1:]
    assert len(res) == 6, lines
    assert res[0].split()[:4] == ["OK", TOOL, "TLSv1.2", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"]
    assert res[0].endswith("echo:hello")
    assert res[1].startswith("REFUSED identity"), res[1]
    for line in res[2:5]:
        assert line.startswith("REFUSED"), line
    assert res[5].startswith("OK " + TOOL)
    server_side = [tool_server.next()[:3] for _ in range(6)]
    assert server_side[0] == ("ok", EUI, "TLSv1.2")
    # the hub refused the server's name: the server sees the hub's alert
    assert server_side[1][:2] == ("refused", "protocol") and "ACCESS_DENIED" in server_side[1][2]
    assert [o[:2] for o in server_side[2:5]] == [("refused", "auth"), ("refused", "auth"), ("refused", "identity")]
    assert server_side[5] == ("ok", EUI, "TLSv1.2")


class UpyServer:
    def __init__(self, script: Path, port: int):
        self.port = port
        self.proc = subprocess.Popen(
            [MICROPYTHON, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        first = self.proc.stdout.readline()
        assert first.startswith("READY mbedtls"), first + self.proc.stderr.read()

    def line(self) -> str:
        text = self.proc.stdout.readline()
        if not text:  # the server died: say how
            self.proc.wait(5)
            raise AssertionError(f"micropython server exited {self.proc.returncode}: {self.proc.stderr.read()}")
        return text.strip()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def upy_hub(pki, tmp_path):
    if MICROPYTHON is None:
        pytest.skip("micropython (unix port) not installed")
    port = free_port()
    ca = str(Path(pki["ca_pem"]).with_suffix(".der"))
    script = tmp_path / "server.py"
    script.write_text(UPY_SERVER.format(root=str(ROOT), dev=pki["device"].dir, ca=ca, peer=TOOL, port=port, n=20))
    srv = UpyServer(script, port)
    yield srv
    srv.close()


def upy_good(pki, srv: UpyServer):
    link, reply = hal_client(pki, "tool", srv.port, EUI)
    assert reply == b"echo:hello"
    assert link.peer == EUI and link.version == "TLSv1.2"
    line = srv.line()
    assert line.startswith("OK " + TOOL + " TLSv1.2 TLS-ECDHE-ECDSA-WITH-AES-"), line
    assert line.endswith("hello")


UPY_BAD_CLIENTS = [
    ("no-client-cert", None, "auth"),
    ("other-ca", "tool_rogue", "auth"),
    ("expired", "tool_expired", "auth"),
    ("not-yet-valid", "tool_future", "auth"),
    ("wrong-name", "tool_other", "identity"),
]


@needs_micropython
def test_micropython_hub_server_refuses_bad_clients_and_goes_on(pki, upy_hub):
    upy_good(pki, upy_hub)
    for name, who, kind in UPY_BAD_CLIENTS:
        result = raw_client(pki, upy_hub.port, who, EUI)
        assert isinstance(result, Exception), (name, result)
        line = upy_hub.line()
        assert line.startswith("REFUSED " + kind), (name, line)
        upy_good(pki, upy_hub)


@needs_micropython
def test_micropython_hub_server_refuses_old_tls_plaintext_and_garbage(pki, upy_hub):
    result = raw_client(pki, upy_hub.port, "tool", EUI, maxv=ssl.TLSVersion.TLSv1_1, seclevel0=True)
    assert isinstance(result, ssl.SSLError), result
    assert upy_hub.line().startswith("REFUSED protocol")
    upy_good(pki, upy_hub)

    with socket.create_connection(("127.0.0.1", upy_hub.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            s.recv(64)
        except ConnectionResetError:
            pass
    assert upy_hub.line().startswith("REFUSED protocol")
    upy_good(pki, upy_hub)

    m = pki["tool"]
    link = tls.connect(tls.client(m.cert_der, m.key_der, pki["ca_der"], EUI, timeout=5), "127.0.0.1", upy_hub.port)
    raw = socket.socket(fileno=os.dup(link.sock.fileno()))
    raw.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
    raw.close()
    assert no_reply(link)
    assert upy_hub.line().startswith("REFUSED record")
    upy_good(pki, upy_hub)

    with socket.create_connection(("127.0.0.1", upy_hub.port), timeout=10) as s:
        assert upy_hub.line().startswith("REFUSED timeout")  # a silent client: 2 s
    upy_good(pki, upy_hub)


# --- peers nobody here wrote: openssl s_server / s_client ----------------------------------


class SServer:
    def __init__(self, pki, who: str, extra=()):
        self.port = free_port()
        m = pki[who]
        cmd = [OPENSSL, "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", m.cert_pem, "-key", m.key_pem]
        cmd += ["-CAfile", pki["ca_pem"], "-Verify", "1", "-verify_return_error", "-rev", *extra]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.05)
        else:
            self.close()
            raise AssertionError("openssl s_server did not start")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        out = self.proc.communicate(timeout=5)[0]
        return out.decode(errors="replace")


def sserver_roundtrip(link: tls.TlsLink) -> bytes:
    link.send(b"hello\n")
    return link.recv_exactly(6)


@needs_openssl
def test_cpython_client_against_openssl_s_server(pki):
    srv = SServer(pki, "tool")
    try:
        m = pki["device"]
        link = tls.connect(tls.client(m.cert_der, m.key_der, pki["ca_der"], TOOL, timeout=5), "127.0.0.1", srv.port)
        assert link.peer == TOOL and link.version == "TLSv1.3"
        assert sserver_roundtrip(link) == b"olleh\n"
        link.close()
        # no client certificate: s_server (-Verify 1) refuses; the client never gets data
        result = raw_client(pki, srv.port, None, TOOL)
        assert isinstance(result, Exception), result
    finally:
        log = srv.close()
    assert "did not return a certificate" in log or "peer did not return" in log.lower(), log


@needs_openssl
@needs_micropython
def test_micropython_client_against_openssl_s_server(pki, tmp_path):
    srv = SServer(pki, "tool")
    try:
        ca = str(Path(pki["ca_pem"]).with_suffix(".der"))
        script = tmp_path / "client.py"
        body = UPY_CLIENT.replace('link.send(b"hello")', 'link.send(b"hello\\n")').replace(
            "recv_exactly(10)", "recv_exactly(6)"
        )
        script.write_text(body.format(root=str(ROOT), cases=[(pki["device"].dir, ca, TOOL)], port=srv.port))
        r = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60)
    finally:
        srv.close()
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    assert lines[1].startswith("OK " + TOOL + " TLSv1.2 TLS-ECDHE-ECDSA-WITH-AES-"), lines
    assert lines[1].endswith("olleh")


def s_client(pki, port: int, who: str | None, name: str, data: bytes = b"hello\n"):
    cmd = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", pki["ca_pem"]]
    cmd += ["-verify_return_error", "-verify_hostname", name, "-quiet"]
    if who:
        cmd += ["-cert", pki[who].cert_pem, "-key", pki[who].key_pem]
    return subprocess.run(cmd, input=data, capture_output=True, timeout=20)


@needs_openssl
def test_openssl_s_client_against_cpython_server(pki, hub_server):
    r = s_client(pki, hub_server.port, "tool", EUI)
    assert b"echo:hello\n" in r.stdout, r.stderr
    out = hub_server.next()
    assert out[:2] == ("ok", TOOL) and out[2] == "TLSv1.3"
    r = s_client(pki, hub_server.port, None, EUI)
    assert b"echo:" not in r.stdout
    assert hub_server.next()[:2] == ("refused", "auth")
    r = s_client(pki, hub_server.port, "tool_rogue", EUI)
    assert b"echo:" not in r.stdout
    assert hub_server.next()[:2] == ("refused", "auth")
    r = s_client(pki, hub_server.port, "tool", EUI)
    assert b"echo:hello\n" in r.stdout
    assert hub_server.next()[:2] == ("ok", TOOL)


@needs_openssl
@needs_micropython
def test_openssl_s_client_against_micropython_hub(pki, upy_hub):
    r = s_client(pki, upy_hub.port, "tool", EUI)
    assert b"echo:hello\n" in r.stdout, r.stderr
    assert upy_hub.line().startswith("OK " + TOOL + " TLSv1.2")
    r = s_client(pki, upy_hub.port, None, EUI)
    assert b"echo:" not in r.stdout
    assert upy_hub.line().startswith("REFUSED auth")
    r = s_client(pki, upy_hub.port, "tool_other", EUI)
    assert b"echo:" not in r.stdout
    assert upy_hub.line().startswith("REFUSED identity")
    upy_good(pki, upy_hub)

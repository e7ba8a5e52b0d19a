"""`dbch ipsec up | down | status | watch | resolve | charon` run as a user runs them (`python -m
host_tools.cli` in a subprocess) against real charon daemons in network namespaces
(tests/host/ipseckit.py): a tunnel goes up, shows in status, goes down; a hub with a certificate
from another CA is refused and the Triage Tool's watcher records it from charon's vici events,
with counts and the Major Security Incident kept across restarts of the watcher.

The charon tests need root, `ip netns`, /dev/net/tun, strongSwan and vici (as test_ipsec.py)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host_tools.security.ipsec import ENV_SOCKET, IpsecError
from host_tools.security.ipsec.auth_failures import AuthFailures
from host_tools.security.ipsec.charon import Charon
from host_tools.security.ipsec.incidents import KEEP_EVENTS, IncidentStore
from host_tools.security.pki import Pki
from tests.kits import ipseckit
from tests.kits.ipseckit import EUI, INNER_A, INNER_B, OUTER_A, OUTER_B, TOOL

ROOT = Path(__file__).resolve().parents[2]
_REASON = ipseckit.unavailable()
needs_ipsec = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def _env(cache: Path) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    env.pop(ENV_SOCKET, None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def dbch(cache: Path, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "host_tools.cli", "ipsec", *argv],
        capture_output=True,
        text=True,
        env=_env(cache),
        cwd=str(ROOT),
        timeout=timeout,
    )


def dbch_json(cache: Path, *argv: str) -> dict:
    r = dbch(cache, *argv, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


class Background:
    """A long-running `dbch ipsec ...` (watch, charon) with --json: its event lines in a queue."""

    def __init__(self, cache: Path, *argv: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "ipsec", *argv, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(cache),
            cwd=str(ROOT),
        )
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.strip():
                self.events.put(json.loads(line))
        self.events.put(None)

    def wait_for(self, kind: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self.events.get(timeout=max(left, 0.01))
            except queue.Empty:
                ev = None
                left = 0
            if ev is None:
                self.proc.poll()
                raise AssertionError(
                    f"no {kind!r} event ({'exited ' + str(self.proc.returncode) if left > 0 else 'timed out'}); "
                    f"seen {self.seen}; stderr: {self._stderr()}"
                )
            self.seen.append(ev)
            if ev.get("event") == kind:
                return ev

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read()

    def stop(self) -> tuple[int, list[dict]]:
        """SIGTERM; the exit status and the events not yet read."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        rest = []
        while True:
            try:
                ev = self.events.get(timeout=5)
            except queue.Empty:
                break
            if ev is None:
                break
            rest.append(ev)
        self.seen += rest
        self.proc.stderr.close()
        return rc, rest


@pytest.fixture(scope="module")
def pkis(tmp_path_factory) -> dict[str, Path]:
    """The development PKI (a hub and the triage tool), and a rogue one: another CA that issued
    a certificate for the same hub EUI."""
    base = tmp_path_factory.mktemp("ipsec-cli-pki")
    good = Pki(base / "good")
    good.init_ca()
    good.issue_device(EUI)
    good.issue_tool(TOOL)
    rogue = Pki(base / "rogue")
    rogue.init_ca("rogue CA")
    rogue.issue_device(EUI)
    rogue.issue_tool(TOOL)
    return {"good": good.dir, "rogue": rogue.dir}


@pytest.fixture
def charons(tmp_path):
    with ipseckit.netpair() as pair, ipseckit.charons(pair, tmp_path) as started:
        yield started


def tool_up(cache: Path, charon: Charon, pki: Path) -> dict:
    """The Triage Tool (side A) waits for hubs."""
    return dbch_json(
        cache,
        "up",
        "--socket",
        str(charon.socket),
        "--pki",
        str(pki),
        "--responder",
        "--local-ts",
        f"{INNER_A}/32",
        "--remote-ts",
        f"{INNER_B}/32",
    )


def hub_up(cache: Path, charon: Charon, pki: Path) -> subprocess.CompletedProcess:
    """A hub gateway (side B) dials the Triage Tool."""
    return dbch(
        cache,
        "up",
        "--socket",
        str(charon.socket),
        "--pki",
        str(pki),
        "--remote-addr",
        OUTER_A,
        "--local-ts",
        f"{INNER_B}/32",
        "--remote-ts",
        f"{INNER_A}/32",
        "--timeout",
        "10",
        "--json",
    )


def sas(cache: Path, charon: Charon) -> list[dict]:
    return dbch_json(cache, "status", "--socket", str(charon.socket))["sas"]


@needs_ipsec
def test_up_status_down(pkis, charons, tmp_path):
    tool, hub = charons
    cache = tmp_path / "cache"
    watcher = Background(cache, "watch", "--socket", str(tool.socket))
    try:
        watcher.wait_for("ready")
        loaded = tool_up(cache, tool, pkis["good"])
        assert (loaded["role"], loaded["local_id"], loaded["remote_id"]) == ("responder", TOOL, EUI)
        assert loaded["sas"] == []

        r = hub_up(cache, hub, pkis["good"])
        assert r.returncode == 0, r.stdout + r.stderr
        up = json.loads(r.stdout)
        assert (up["role"], up["local_id"], up["remote_id"]) == ("initiator", EUI, TOOL)
        assert "initiating triage" in r.stderr  # progress goes to stderr

        # some traffic through the tunnel: a TCP SYN to a closed port, answered by a RST
        knock = "import socket; s = socket.socket(); s.settimeout(3); print(s.connect_ex((%r, 9)))" % INNER_A
        subprocess.run(["ip", "netns", "exec", hub.netns, sys.executable, "-c", knock], timeout=20, check=True)

        (sa,) = sas(cache, hub)
        assert (sa["name"], sa["state"], sa["version"], sa["initiator"]) == ("triage", "ESTABLISHED", "2", True)
        assert sa["local"] == {"host": OUTER_B, "port": 4500, "id": EUI}
        assert sa["remote"] == {"host": OUTER_A, "port": 4500, "id": TOOL}
        assert (sa["encr_alg"], sa["prf_alg"], sa["dh_group"]) == ("AES_GCM_16", "PRF_HMAC_SHA2_384", "ECP_256")
        (child,) = sa["children"]
        assert (child["state"], child["protocol"], child["mode"], child["encap"]) == (
            "INSTALLED",
            "ESP",
            "TUNNEL",
            True,
        )
        assert (child["local_ts"], child["remote_ts"]) == ([f"{INNER_B}/32"], [f"{INNER_A}/32"])
        assert child["packets_out"] >= 1 and child["bytes_out"] > 0 and child["packets_in"] >= 1, child
        (other,) = sas(cache, tool)
        assert other["remote"]["id"] == EUI and other["initiator"] is False
        text = dbch(cache, "status", "--socket", str(hub.socket)).stdout
        assert f"IKE_SA triage #{sa['uniqueid']} ESTABLISHED (initiator)" in text and "CHILD_SA triage" in text

        down = dbch_json(cache, "down", "--socket", str(hub.socket))
        assert down == {"name": "triage", "terminated": True, "unloaded": True, "sas": []}
        status = dbch_json(cache, "status", "--socket", str(hub.socket))
        assert status["sas"] == [] and status["conns"] == []
        assert "no SA" in dbch(cache, "status", "--socket", str(hub.socket)).stdout
        deadline = time.monotonic() + 10  # the tool saw the delete
        while sas(cache, tool) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sas(cache, tool) == []
        again = dbch(cache, "down", "--socket", str(hub.socket))
        assert again.returncode == 0 and "was not up" in again.stdout
    finally:
        rc, _ = watcher.stop()
    assert rc == 0
    stopped = [e for e in watcher.seen if e["event"] == "stopped"]
    assert stopped and stopped[0]["recorded"] == 0 and stopped[0]["totals"] == {}, watcher.seen
    assert not [e for e in watcher.seen if e["event"] == "failure"], watcher.seen


@needs_ipsec
def test_a_hub_with_a_certificate_from_another_ca_is_an_incident_that_outlives_the_watcher(pkis, charons, tmp_path):
    tool, hub = charons
    cache = tmp_path / "cache"
    state = cache / "dbch" / "ipsec" / "incidents.json"  # the default place
    tool_up(cache, tool, pkis["good"])

    def refused_hub() -> dict:
        r = hub_up(cache, hub, pkis["rogue"])
        assert r.returncode == 1, r.stdout + r.stderr
        assert "AUTHENTICATION_FAILED" in r.stderr and "initiating triage failed" in r.stderr
        return {}

    watcher = Background(cache, "watch", "--socket", str(tool.socket), "--threshold", "auth_failed=2")
    try:
        ready = watcher.wait_for("ready")
        assert ready["totals"] == {} and ready["state"] == str(state)
        refused_hub()
        failure = watcher.wait_for("failure")
    finally:
        rc, _ = watcher.stop()
    assert rc == 0
    assert (failure["kind"], failure["what"]) == ("auth_failed", "refused the peer")
    assert (failure["remote_id"], failure["remote_host"], failure["ike"]) == (EUI, OUTER_B, "triage")
    assert failure["peer_cert"] == f"CN={EUI}"
    assert "rogue CA" in failure["reason"] or "no trusted" in failure["reason"], failure
    assert failure["totals"] == {"auth_failed": 1}
    assert not [e for e in watcher.seen if e["event"] == "incident"]
    saved = json.loads(state.read_text())
    assert saved["incidents"]["totals"] == {"auth_failed": 1} and saved["thresholds"] == {"auth_failed": 2}

    # a new watcher goes on from the saved counts: the second refusal is the threshold
    watcher = Background(cache, "watch", "--socket", str(tool.socket))
    try:
        assert watcher.wait_for("ready")["totals"] == {"auth_failed": 1}
        refused_hub()
        second = watcher.wait_for("failure")
        incident = watcher.wait_for("incident")
    finally:
        rc, _ = watcher.stop()
    assert rc == 0
    assert second["totals"] == {"auth_failed": 2} and second["uniqueid"] != failure["uniqueid"]
    assert (incident["incident"], incident["trigger"], incident["counts"]) == (1, "auth_failed", {"auth_failed": 2})

    status = dbch_json(cache, "status", "--socket", str(tool.socket))
    inc = status["incidents"]
    assert inc["totals"] == {"auth_failed": 2} and inc["open"] and inc["notified"] and inc["incidents"] == 1
    assert [e["remote_id"] for e in inc["last"]] == [EUI, EUI]
    assert status["sas"] == []  # the rogue hub got no SA
    text = dbch(cache, "status", "--socket", str(tool.socket)).stdout
    assert "auth_failed 2" in text and "OPEN Major Security Incident #1" in text

    # announced once: a restarted watcher does not announce it again
    watcher = Background(cache, "watch", "--socket", str(tool.socket))
    try:
        watcher.wait_for("ready")
    finally:
        rc, _ = watcher.stop()
    assert rc == 0 and not [e for e in watcher.seen if e["event"] == "incident"], watcher.seen

    closed = dbch_json(cache, "resolve")
    assert closed["closed"]["incident"] == 1
    inc = dbch_json(cache, "status", "--socket", str(tool.socket))["incidents"]
    assert not inc["open"] and inc["totals"] == {"auth_failed": 2} and inc["window"] == {}
    assert dbch_json(cache, "resolve") == {"closed": None}


@needs_ipsec
def test_the_hub_that_is_refused_records_that_too(pkis, charons, tmp_path):
    """The other end's view: a hub whose own certificate the Triage Tool refuses counts a
    link_refused (a tool from another CA is refused the same way, as auth_failed at the hub)."""
    tool, hub = charons
    cache = tmp_path / "cache"
    tool_up(cache, tool, pkis["rogue"])  # a tool that trusts only the rogue CA
    watcher = Background(cache, "watch", "--socket", str(hub.socket), "--state", str(tmp_path / "hub.json"))
    try:
        watcher.wait_for("ready")
        r = hub_up(cache, hub, pkis["good"])
        assert r.returncode == 1
        failure = watcher.wait_for("failure")
    finally:
        watcher.stop()
    assert (failure["kind"], failure["what"], failure["remote_id"]) == ("link_refused", "refused by the peer", TOOL)
    assert json.loads((tmp_path / "hub.json").read_text())["incidents"]["totals"] == {"link_refused": 1}


@needs_ipsec
def test_private_charon_command(tmp_path):
    cache = tmp_path / "cache"
    with ipseckit.netpair() as (ns, _):
        daemon = Background(cache, "charon", "--netns", ns, "--dir", str(tmp_path / "charon"))
        try:
            ready = daemon.wait_for("ready")
            assert ready["socket"] == str(tmp_path / "charon" / "charon.vici")
            status = dbch_json(cache, "status", "--socket", ready["socket"])
            assert status["sas"] == [] and status["charon"]["daemon"] == "charon"
        finally:
            rc, rest = daemon.stop()
    assert rc == 0 and rest and rest[-1]["event"] == "stopped"
    r = dbch(cache, "status", "--socket", ready["socket"])
    assert r.returncode == 1 and "charon is not running" in r.stderr


# --- no charon, no vici (no root needed) ------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["down"],
        ["watch"],
        ["up", "--remote-addr", OUTER_A],
    ],
    ids=["status", "down", "watch", "up"],
)
def test_no_charon_says_how_to_start_one(argv, pkis, tmp_path):
    pytest.importorskip("vici")
    sock = tmp_path / "nothing.vici"
    extra = ["--pki", str(pkis["good"])] if argv[0] == "up" else []
    r = dbch(tmp_path / "cache", *argv, *extra, "--socket", str(sock))
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith(f"dbch: charon is not running or not reachable at {sock}"), r.stderr
    assert "systemctl start strongswan-starter" in r.stderr and "dbch ipsec charon" in r.stderr


def test_the_default_socket_is_the_environment_s(tmp_path):
    env = _env(tmp_path / "cache")
    env[ENV_SOCKET] = str(tmp_path / "from-env.vici")
    r = subprocess.run(
        [sys.executable, "-m", "host_tools.cli", "ipsec", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=30,
    )
    assert r.returncode == 1 and str(tmp_path / "from-env.vici") in r.stderr


def test_up_says_what_is_missing(tmp_path):
    cache = tmp_path / "cache"
    r = dbch(cache, "up", "--pki", str(tmp_path / "empty"), "--socket", str(tmp_path / "x.vici"))
    assert r.returncode == 1 and "give --remote-addr" in r.stderr and "--responder" in r.stderr
    r = dbch(cache, "up", "--pki", str(tmp_path / "empty"), "--remote-addr", OUTER_A)
    assert r.returncode == 1 and "no hub certificate" in r.stderr and "dbch pki device" in r.stderr
    r = dbch(cache, "watch", "--threshold", "auth_failed=0", "--state", str(tmp_path / "s.json"))
    assert r.returncode == 1 and "KIND=N" in r.stderr


_NO_VICI = "import sys; sys.modules['vici'] = None; from host_tools.cli import main; sys.exit(main(sys.argv[1:]))"


def test_without_vici_help_works_and_commands_say_what_to_install(tmp_path):
    env = _env(tmp_path / "cache")
    run = [sys.executable, "-c", _NO_VICI]
    r = subprocess.run([*run, "--help"], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=30)
    assert r.returncode == 0 and "ipsec" in r.stdout, r.stderr
    r = subprocess.run([*run, "ipsec", "--help"], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=30)
    assert r.returncode == 0 and "watch" in r.stdout
    r = subprocess.run(
        [*run, "ipsec", "status", "--socket", str(tmp_path / "x.vici")],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=30,
    )
    assert r.returncode == 1 and "pip install 'dbch[ipsec]'" in r.stderr, r.stderr


# --- the event reading, on charon 5.9.8's own words ---------------------------------------------


def _log(uid: str, msg: str, name: str = "triage") -> dict:
    return {
        "group": b"IKE",
        "level": b"1",
        "ikesa-name": name.encode(),
        "ikesa-uniqueid": uid.encode(),
        "msg": msg.encode(),
    }


def _updown(uid: str, remote_id: str, remote_host: str) -> dict:
    return {
        "triage": {
            "uniqueid": uid.encode(),
            "state": b"CONNECTING",
            "remote-host": remote_host.encode(),
            "remote-id": remote_id.encode(),
        }
    }


def test_one_failure_per_ike_sa_with_the_peer_from_a_later_updown():
    af = AuthFailures(grace=60)
    seen = []
    for msg in (
        "initiating IKE_SA triage[1] to 10.99.0.2",
        "parsed IKE_AUTH response 1 [ N(AUTH_FAILED) ]",
        "received AUTHENTICATION_FAILED notify error",
    ):
        seen += af.feed("log", _log("1", msg))
    assert seen == [] and af.due() == []  # waiting for the peer's identity
    (f,) = af.feed("ike-updown", _updown("1", TOOL, "10.99.0.2"))
    assert (f["kind"], f["remote_id"], f["remote_host"], f["uniqueid"]) == ("link_refused", TOOL, "10.99.0.2", "1")
    assert af.feed("log", _log("1", "generating INFORMATIONAL request 2 [ N(AUTH_FAILED) ]")) == []

    # a responder that refuses: the reasons charon gave, the peer from its own log lines
    for msg in (
        "received packet: from 10.99.0.1[4500] to 10.99.0.2[4500] (839 bytes)",
        'received end entity cert "CN=00-1B-C5-0C-00-00-12-34"',
        "looking for peer configs matching 10.99.0.2[triage-1]...10.99.0.1[00-1B-C5-0C-00-00-12-34]",
        'no issuer certificate found for "CN=00-1B-C5-0C-00-00-12-34"',
        "no trusted ECDSA public key found for '00-1B-C5-0C-00-00-12-34'",
    ):
        assert af.feed("log", _log("2", msg)) == []
    assert af.feed("log", _log("2", "generating IKE_AUTH response 1 [ N(AUTH_FAILED) ]")) == []
    (g,) = af.due(everything=True)
    assert (g["kind"], g["remote_id"], g["remote_host"], g["peer_cert"]) == (
        "auth_failed",
        EUI,
        "10.99.0.1",
        f"CN={EUI}",
    )
    assert g["reason"].startswith("no issuer certificate found") and "no trusted ECDSA" in g["reason"]
    # an established SA and its rekeying are no failures
    for msg in (
        "authentication of 'triage-1' with ECDSA_WITH_SHA256_DER successful",
        "generating CREATE_CHILD_SA request 3 [ N(REKEY_SA) SA No TSi TSr ]",
    ):
        assert af.feed("log", _log("3", msg)) == []
    assert af.due(everything=True) == []


def test_the_state_file_is_replaced_whole_and_counts_add_up(tmp_path):
    store = IncidentStore(tmp_path / "s" / "incidents.json")
    threads = [
        threading.Thread(target=lambda: [store.record({"kind": "auth_failed", "reason": "x"}) for _ in range(10)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.summary()["totals"] == {"auth_failed": 40}
    assert len(json.loads(store.path.read_text())["events"]) == KEEP_EVENTS
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["incidents.json", "incidents.json.lock"]
    store.path.write_text("{not json")
    with pytest.raises(IpsecError, match="move it aside"):
        store.summary()
    shutil.rmtree(store.path.parent)

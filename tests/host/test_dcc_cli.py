"""`dbch dcc serve` and `dbch dcc receive` as a User runs them, each its own process, over TLS 1.2
with `dbch pki infra` certificates: requests acknowledged while the User's endpoint is down, the
front killed with its deliveries queued, then started again with the endpoint up: every Service
Response arrives, once. And `openssl s_client` as the other end: the one suite is taken, others
are refused. Loopback only."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("serial")

from agent.examples import DBCH04_CONFIG  # noqa: E402
from host_tools.dcc import tls  # noqa: E402
from host_tools.dcc.documents import facts  # noqa: E402
from host_tools.duis.compose import request_xml  # noqa: E402
from host_tools.security.dccki import Dccki  # noqa: E402
from tests.kits.dcckit import COUNTERS, Running, dbch, free_port, post, sim_hub  # noqa: E402

NAME = "dcccli"
HUB = "00-DB-12-34-56-78-90-D2"
USER = "90-B3-D5-1F-30-01-00-01"
OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with sim_hub(tmp_path_factory, NAME, HUB) as port:
        yield port


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    for name in ("dcc-front", "dcc-user"):
        r = dbch("pki", "infra", name, "--host", "127.0.0.1", "--dir", str(d), "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["key"] == "RSA 2048"
    shown = json.loads(dbch("pki", "show", "--dir", str(d), "--json").stdout)
    assert [(i["name"], i["hosts"]) for i in shown["infra"]] == [
        ("dcc-front", ["dcc-front", "127.0.0.1"]),
        ("dcc-user", ["dcc-user", "127.0.0.1"]),
    ]
    return d


def serve(hub, pki_dir, state, receive_port) -> tuple[Running, str]:
    front = Running(
        "dcc", "serve", "--listen", "127.0.0.1:0", "--pki", str(pki_dir), "--cert", "dcc-front",
        "--user", f"{USER}=https://127.0.0.1:{receive_port}/smartdcc/duis", "--unsigned", "--state", str(state),
        "--port", hub, "--retry-base", "0.1", "--retry-cap", "0.5", "--json",
    )  # fmt: skip
    started = front.next_json()
    assert started["event"] == "serving" and started["hubs"] == [HUB], started
    return front, started["url"]


def user_context(pki_dir: Path) -> ssl.SSLContext:
    infra = Dccki(pki_dir).infra("dcc-user")
    return tls.client_context(infra.cert_pem, infra.key_pem, infra.ca_pem)


def test_responses_queued_while_the_user_is_down_survive_a_killed_front(hub, pki_dir, tmp_path):
    receive_port = free_port()
    state = tmp_path / "state"
    front, url = serve(hub, pki_dir, state, receive_port)
    asked = []
    try:
        for _ in range(2):
            body = request_xml("6.28", HUB, USER, next(COUNTERS), dict(DBCH04_CONFIG))
            status, answer = post(url, "/api/v1/serviceS", body, user_context(pki_dir))
            ack = facts(answer)
            assert status == 200
            assert ack.response_code == "I99"
            asked.append(ack.request_id)
        # the endpoint is down: both responses wait on disk, tried and tried again
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = [json.loads(p.read_text()) for p in (state / "queue").glob("*.json")]
            if sorted(r["response_id"].split(":")[0] for r in records if r["attempts"] >= 2).count(HUB) >= 2:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the responses were not queued and retried")
    finally:
        front.stop(signal.SIGKILL)  # the front dies: no clean stop
    inbox = tmp_path / "inbox"
    receiver = Running(
        "dcc", "receive", "--listen", f"127.0.0.1:{receive_port}", "--pki", str(pki_dir), "--cert", "dcc-user",
        "--unsigned", "--out", str(inbox), "--json",
    )  # fmt: skip
    front, url = serve(hub, pki_dir, state, receive_port)
    try:
        got = {}
        while set(got) != set(asked):
            record = receiver.next_json()
            if record["request_id"] in asked:
                assert not record["duplicate"]
                assert record["request_id"] not in got, "taken twice"
                got[record["request_id"]] = record
                assert record["response_code"] == "I0" and record["peer"] == "dcc-front"
                assert record["response_id"].startswith(HUB + ":" + USER + ":")
    finally:
        rc, err = front.stop()
        rrc, rerr = receiver.stop()
    assert rc == 0, err
    assert rrc == 0, rerr
    stopped = front.next_json(timeout=10)
    assert stopped["event"] == "stopped" and stopped["delivered"] >= 2, stopped  # alerts may still wait
    files = {p.stem for p in inbox.glob("*.xml")}
    assert {r["response_id"].replace(":", "_") for r in got.values()} <= files
    seen = (inbox / "seen").read_text().split()
    assert len(seen) == len(set(seen))  # each taken once


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
def test_openssl_client_gets_the_one_suite_and_nothing_else(pki_dir, tmp_path):
    receive_port = free_port()
    receiver = Running(
        "dcc", "receive", "--listen", f"127.0.0.1:{receive_port}", "--pki", str(pki_dir), "--cert", "dcc-user",
        "--unsigned", "--json",
    )  # fmt: skip
    infra = Dccki(pki_dir).infra("dcc-front")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", receive_port)) == 0:
                    break
            time.sleep(0.1)

        def s_client(*options: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [OPENSSL, "s_client", "-connect", f"127.0.0.1:{receive_port}", "-CAfile", str(infra.ca_pem),
                 "-cert", str(infra.cert_pem), "-key", str(infra.key_pem), *options],
                input="", capture_output=True, text=True, timeout=30,
            )  # fmt: skip

        good = s_client("-tls1_2", "-cipher", "AES128-GCM-SHA256")
        assert "Cipher is AES128-GCM-SHA256" in good.stdout and "Verify return code: 0 (ok)" in good.stdout, good
        for options, alert in (
            (("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"), "handshake failure"),
            (("-tls1_2", "-cipher", "AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"), "handshake failure"),
            (("-tls1_3",), "protocol version"),
        ):
            bad = s_client(*options)
            assert "Cipher is (NONE)" in bad.stdout and alert in bad.stdout + bad.stderr, (options, bad)
        nocert = subprocess.run(
            [OPENSSL, "s_client", "-connect", f"127.0.0.1:{receive_port}", "-CAfile", str(infra.ca_pem), "-tls1_2",
             "-cipher", "AES128-GCM-SHA256"],
            input="", capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        # TLS 1.2: the server refuses the handshake without a client certificate (alert 40)
        assert "alert handshake failure" in nocert.stdout + nocert.stderr, nocert
    finally:
        receiver.stop()

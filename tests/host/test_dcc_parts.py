"""The DCC front's parts on their own: the DCC User Interface's TLS (TLS 1.2 only, the one suite,
a client certificate required), plain HTTP on loopback only, the delivery queue on a fast clock
(an hour down), events kept when no DCC Alert is made of them, and the receiving endpoint's
checks and its memory of what it took. No hub; everything on loopback."""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from agent.examples import DBCH04_CONFIG
from host_tools.cli import main
from host_tools.dcc import tls
from host_tools.dcc.deliver import Deliverer
from host_tools.dcc.documents import facts
from host_tools.dcc.front import DccFront, FrontOptions
from host_tools.dcc.httpd import Answer, DuisHttpServer, Posted
from host_tools.dcc.queue import DeliveryQueue
from host_tools.dcc.receiver import Receiver
from host_tools.dcc.seams import Seams, unkeyed_user
from host_tools.duis.compose import request_xml
from host_tools.duis.userlist import UserList
from tests.kits.dcckit import client_ctx, issue_infra, server_ctx, wait_for

HUB = "00-DB-12-34-56-78-90-D1"
USER = "90-B3-D5-1F-30-01-00-00"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return issue_infra(tmp_path_factory)


def config_request() -> bytes:
    return request_xml("6.28", HUB, USER, 1, dict(DBCH04_CONFIG))


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(pki):
    server = DuisHttpServer("127.0.0.1", 0, lambda p: Answer(204), server_ctx(pki["front"]))
    server.start()
    yield server
    server.shutdown()
    server.server_close()


def handshake(port: int, ctx: ssl.SSLContext) -> tuple:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n")
            head = s.recv(100)
            return s.version(), s.cipher()[0], head


def test_tls_is_1_2_with_the_one_suite_and_certificates_both_ways(tls_server, pki):
    version, cipher, head = handshake(tls_server.port, client_ctx(pki["user"]))
    assert (version, cipher) == ("TLSv1.2", "AES128-GCM-SHA256")
    assert head.startswith(b"HTTP/1.1 204")
    # the server offers nothing else: its context lists the one TLS 1.2 suite
    ctx = server_ctx(pki["front"])
    assert [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"] == ["AES128-GCM-SHA256"]
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2


def _refused(port: int, ctx: ssl.SSLContext) -> bool:
    try:
        handshake(port, ctx)
    except (ssl.SSLError, ConnectionError):
        return True
    return False


def test_tls_refuses_a_client_without_a_certificate(tls_server, pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(tls.OPENSSL_SUITE)
    ctx.load_verify_locations(cafile=str(pki["front"].ca_pem))
    assert _refused(tls_server.port, ctx)
    refused = wait_for(lambda: tls_server.refused, timeout=5)
    assert any("certificate" in why.lower() for why in refused), refused


def test_tls_refuses_other_suites_other_versions_and_other_cas(tls_server, pki):
    user = pki["user"]
    for suites in ("ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA256"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(suites)
        ctx.load_cert_chain(user.cert_pem, user.key_pem)
        ctx.load_verify_locations(cafile=str(user.ca_pem))
        assert _refused(tls_server.port, ctx), suites
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(user.cert_pem, user.key_pem)
    ctx.load_verify_locations(cafile=str(user.ca_pem))
    assert _refused(tls_server.port, ctx), "TLS 1.3"
    rogue = tls.client_context(pki["rogue"].cert_pem, pki["rogue"].key_pem, user.ca_pem)
    assert _refused(tls_server.port, rogue), "a certificate from another CA"
    # and the server still serves the next good client
    assert handshake(tls_server.port, client_ctx(user))[1] == "AES128-GCM-SHA256"


def test_plain_http_only_on_loopback(capsys):
    with pytest.raises(tls.DccTlsError, match="loopback"):
        DuisHttpServer("0.0.0.0", 0, lambda p: Answer(204), None)
    rc = main(["dcc", "receive", "--insecure-http", "--unsigned", "--listen", "0.0.0.0:0", "--for", "0"])
    assert rc == 1 and "loopback" in capsys.readouterr().err


# -- the queue on a fast clock -----------------------------------------------------------------


def test_an_hour_down_loses_nothing_and_sends_once(tmp_path):
    now = [1_000_000.0]
    queue = DeliveryQueue(tmp_path / "queue", base=1.0, cap=300.0, clock=lambda: now[0])
    sent = []

    def post(url, body):
        if now[0] < 1_000_000.0 + 3600:
            raise ConnectionRefusedError("down")
        sent.append(body)
        return 204

    queue.put("00-00-00-00-00-00-00-01:00-00-00-00-00-00-00-02:1", "http://127.0.0.1:9/x", b"<a/>")
    deliverer = Deliverer(queue, post)
    tries = 0
    while now[0] < 1_000_000.0 + 4000:
        before = deliverer.failures + deliverer.delivered
        deliverer.run_once()
        tries += deliverer.failures + deliverer.delivered - before
        now[0] += 1.0
    assert sent == [b"<a/>"] and queue.pending() == []
    # backoff: 1, 2, 4 ... 256, then every 300 s: about 20 tries in an hour, not 3600
    assert 12 <= tries <= 25, tries
    # and a queue read again from disk (a restart) keeps the schedule
    queue.put("00-00-00-00-00-00-00-01:00-00-00-00-00-00-00-02:2", "http://127.0.0.1:9/x", b"<b/>")
    d = queue.pending()[0]
    queue.failed(d, "down")
    assert DeliveryQueue(tmp_path / "queue").pending()[0].due == pytest.approx(now[0] + 1.0)


def test_events_no_dcc_alert_is_made_of_are_kept_not_lost(tmp_path):
    from host_tools.link.client import Event

    users = UserList({USER: unkeyed_user(USER + "=http://127.0.0.1:9/smartdcc/duis")})
    front = DccFront([], FrontOptions(state=tmp_path / "state", seams=Seams(users=users)))
    try:
        front._take_alert(HUB, Event(7, "incident", {"kind": "tls", "count": 3}))
        front.opt.seams.users = UserList({})
        front._take_alert(HUB, Event(8, "N64", {"DeviceID": HUB, "FirmwareVersion": "1.2.0"}))
    finally:
        front.server.server_close()
    held = {p.name: json.loads(p.read_text()) for p in (tmp_path / "state" / "held").glob("*.json")}
    assert set(held) == {HUB.replace("-", "") + "-7.json", HUB.replace("-", "") + "-8.json"}
    assert held[HUB.replace("-", "") + "-7.json"]["data"] == {"kind": "tls", "count": 3}
    assert "no User" in held[HUB.replace("-", "") + "-8.json"]["why"]
    assert front.queue.pending() == []


def test_the_receiver_refuses_what_is_not_valid_and_remembers_what_it_took(duis_schema_dir, tmp_path):
    from host_tools.dcc.documents import with_response_id
    from host_tools.duis.requests import parse_request
    from host_tools.duis.responses import render_response

    req = parse_request(config_request())
    rid = f"{HUB}:{USER}:42"
    doc = with_response_id(render_response(req, "I0"), rid)
    assert facts(doc).response_id == rid

    def take(receiver, body, path="/smartdcc/duis", ctype="application/xml"):
        return receiver.take(Posted(path, ctype, body, "test")).status

    first = Receiver(schema=duis_schema_dir, store=tmp_path / "inbox")
    assert take(first, doc.replace(b"<sr:ResponseCode>I0", b"<sr:ResponseCode>I7")) == 400  # not in the schema
    assert take(first, b"<not-xml") == 400
    assert take(first, doc, ctype="text/plain") == 415
    assert take(first, doc, path="/elsewhere") == 404
    assert (first.taken, first.refused) == (0, 2)
    assert take(first, doc) == 204 and first.taken == 1
    # a receiver started again on the same folder drops the second copy, and still answers 204
    again = Receiver(schema=duis_schema_dir, store=tmp_path / "inbox")
    assert take(again, doc) == 204
    assert (again.taken, again.duplicates) == (0, 1)
    assert [p.name for p in (tmp_path / "inbox").glob("*.xml")] == [rid.replace(":", "_") + ".xml"]


def test_alerts_go_to_the_active_users_registered_for_the_hub_with_a_receive_url():
    from host_tools.duis.userlist import users_from_json

    def user(eui, **more):
        return {"eui": eui, "roles": ["IS"], "receive_url": "https://127.0.0.1:9/r", "devices": [HUB], **more}

    users = users_from_json(
        {
            "users": [
                user("90-B3-D5-1F-30-01-00-01"),
                user("90-B3-D5-1F-30-01-00-02", devices={HUB: {"until": "2020-01-01T00:00:00Z"}}),  # no longer
                user("90-B3-D5-1F-30-01-00-03", status="suspended"),
                user("90-B3-D5-1F-30-01-00-04", receive_url=None),
                user("90-B3-D5-1F-30-01-00-05", devices=["00-DB-12-34-56-78-90-D9"]),
                user("90-B3-D5-1F-30-01-00-06", devices="*"),
            ]
        }
    )
    assert [u.eui[-2:] for u in users.alert_recipients(HUB.replace("-", ""))] == ["01", "06"]
    assert users.find("90b3d51f30010006").eui == "90-B3-D5-1F-30-01-00-06"
    assert users.find("not an EUI") is None and users.find("90-B3-D5-1F-30-01-00-09") is None


def test_a_user_without_a_certificate_needs_unsigned(capsys, tmp_path):
    url = USER + "=https://127.0.0.1:9/smartdcc/duis"
    rc = main(["dcc", "serve", "--insecure-http", "--user", url, "--state", str(tmp_path), "--for", "0"])
    assert rc == 1 and "--unsigned" in capsys.readouterr().err
    # signed, the DCC's key must be there: what to run says so
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": [{"eui": USER, "roles": ["IS"]}]}))
    rc = main(["dcc", "serve", "--users", str(users), "--pki", str(tmp_path / "pki"), "--for", "0"])
    assert rc == 1 and "dbch pki user 90-B3-D5-1F-30-00-00-02" in capsys.readouterr().err
    rc = main(["dcc", "receive", "--insecure-http", "--pki", str(tmp_path / "pki"), "--for", "0"])
    assert rc == 1 and "--dcc-cert FILE" in capsys.readouterr().err

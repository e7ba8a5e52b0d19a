"""Issue 16's Done-when, as far as the hub's services are answered: a User script signs its
requests with the DCC Boxed signing tool (its own `dbch pki user` key), POSTs 6.28-6.32, 11.2 and
11.3 to `dbch dcc serve` (its own process, the CPython agent behind it) over TLS 1.2 with
TLS_RSA_WITH_AES_128_GCM_SHA256 and `dbch pki infra` certificates both ways, and takes every
answer, Service Response and DCC Alert at its own `dbch dcc receive`: each signed by the DCC
(checked by the signing tool and by host_tools.duis.signing) and valid against the DUIS schema.
A tampered request is E100; a User without the role E2; a User not registered for the device E4,
where a registered User's same request is E11, E13 or E19 (SEC Appendix R 8.1.26). Loopback only.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time

import pytest

pytest.importorskip("serial")

from agent.examples import DBCH04_CONFIG  # noqa: E402
from host_tools.dcc import routes  # noqa: E402
from host_tools.dcc.documents import facts  # noqa: E402
from host_tools.dcc.seams import DCC_USER_ID  # noqa: E402
from host_tools.duis import signing, signtool  # noqa: E402
from host_tools.duis.compose import request_xml  # noqa: E402
from host_tools.duis.requests import parse_request  # noqa: E402
from host_tools.duis.responses import payload_data  # noqa: E402
from host_tools.duis.schema import validate  # noqa: E402
from host_tools.security.dccki import Dccki  # noqa: E402
from host_tools.security.pki import Pki  # noqa: E402
from tests.kits import duisreader  # noqa: E402
from tests.kits.dcckit import COUNTERS, Running, client_ctx, dbch, free_port, sim_hub, wait_for  # noqa: E402

NAME = "dcce2e"
HUB = "00-DB-12-34-56-78-90-D4"
ELSEWHERE = "00-DB-12-34-56-78-90-D5"  # a device that is not behind this front (E19)
SUPPLIER = "90-B3-D5-1F-30-01-00-00"  # IS, GS: registered for HUB and ELSEWHERE; receives
DISTRIBUTOR = "90-B3-D5-1F-30-02-00-00"  # ED: registered for HUB (not eligible for 6.28: E2)
STRANGER = "90-B3-D5-1F-30-03-00-00"  # IS: registered for no device (E4)
SUITE = "AES128-GCM-SHA256"  # OpenSSL's name for TLS_RSA_WITH_AES_128_GCM_SHA256
SR = "http://www.dccinterface.co.uk/ServiceUserGateway"


def _raw(srv: str, body: str, originator: str = SUPPLIER, target: str = HUB, cv: int = 1) -> bytes:
    """A request built by hand (the services host_tools.duis.compose does not write yet)."""
    sr = srv if srv.count(".") == 1 else srv.rsplit(".", 1)[0]
    return (
        '<sr:Request xmlns:sr="{}" schemaVersion="5.4"><sr:Header><sr:RequestID>{}:{}:{}</sr:RequestID>'
        "<sr:CommandVariant>{}</sr:CommandVariant><sr:ServiceReference>{}</sr:ServiceReference>"
        "<sr:ServiceReferenceVariant>{}</sr:ServiceReferenceVariant></sr:Header><sr:Body>{}</sr:Body>"
        "</sr:Request>".format(SR, originator, target, next(COUNTERS), cv, sr, srv, body)
    ).encode()


def make_request(srv: str, originator: str = SUPPLIER, target: str = HUB) -> bytes:
    if srv == "6.28":
        return request_xml(srv, target, originator, next(COUNTERS), dict(DBCH04_CONFIG))
    if srv == "11.3":
        return request_xml(srv, target, originator, next(COUNTERS), {"hash": "AB" * 32})
    if srv == "11.3 future-dated":
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
        return request_xml("11.3", target, originator, next(COUNTERS), {"hash": "AB" * 32, "execution": later})
    if srv == "6.32":
        period = "<sr:StartDateTime>2026-01-01T00:00:00Z</sr:StartDateTime><sr:EndDateTime>2026-01-02T00:00:00Z</sr:EndDateTime>"
        return _raw(
            srv,
            "<sr:ReadCHFSubGHzChannelLog><sr:ReadLogPeriod>{}</sr:ReadLogPeriod></sr:ReadCHFSubGHzChannelLog>".format(
                period
            ),
            originator,
            target,
        )
    if srv == "11.2":
        return _raw(srv, "<sr:ReadFirmwareVersion/>", originator, target)
    if srv == "4.1.1":  # a meter's service: not for a Communications Hub Function (E11)
        return _raw(srv, "<sr:ReadInstantaneousImportRegisters/>", originator, target)
    return request_xml(srv, target, originator, next(COUNTERS))


class Dcc:
    """The PKI, the User list, the User's receiving endpoint and the front, each as a User runs them."""

    def __init__(self, tmp, hub: str):
        self.pki_dir = tmp / "pki"
        d = str(self.pki_dir)
        for argv in (
            ("pki", "init"),
            ("pki", "infra", "dcc-front", "--host", "127.0.0.1"),
            ("pki", "infra", "dcc-user", "--host", "127.0.0.1"),
            ("pki", "user", DCC_USER_ID),
            *(("pki", "user", eui) for eui in (SUPPLIER, DISTRIBUTOR, STRANGER)),
        ):
            done = dbch(*argv, "--dir", d)
            assert done.returncode == 0, (argv, done.stderr)
        self.pki = Pki(self.pki_dir)
        receive_port = free_port()
        users = {
            "users": [
                {
                    "eui": SUPPLIER,
                    "roles": ["IS", "GS"],
                    "devices": [HUB, ELSEWHERE],
                    "certificate": "users/{}/cert.pem".format(SUPPLIER),
                    "receive_url": "https://127.0.0.1:{}/smartdcc/duis".format(receive_port),
                },
                {"eui": DISTRIBUTOR, "roles": ["ED"], "devices": [HUB], "certificate": "users/{}/cert.pem".format(DISTRIBUTOR)},
                {"eui": STRANGER, "roles": ["IS"], "devices": [], "certificate": "users/{}/cert.pem".format(STRANGER)},
            ]
        }  # fmt: skip
        (self.pki_dir / "users.json").write_text(json.dumps(users))
        self.receiver = Running(
            "dcc", "receive", "--listen", "127.0.0.1:{}".format(receive_port), "--pki", d, "--cert", "dcc-user",
            "--dcc-id", DCC_USER_ID, "--out", str(tmp / "inbox"), "--json",
        )  # fmt: skip
        self.front = Running(
            "dcc", "serve", "--listen", "127.0.0.1:0", "--pki", d, "--cert", "dcc-front",
            "--users", str(self.pki_dir / "users.json"), "--dcc-id", DCC_USER_ID, "--state", str(tmp / "state"),
            "--port", hub, "--retry-base", "0.2", "--retry-cap", "1", "--json",
        )  # fmt: skip
        started = self.front.next_json()
        assert started["event"] == "serving" and started["hubs"] == [HUB], started
        assert started["signed"] and started["dcc_id"] == DCC_USER_ID
        self.url = started["url"]
        self.taken: list[dict] = []
        self.answers: list[bytes] = []  # the synchronous answers, as the User got them
        self._lock = threading.Lock()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        while self.receiver.proc.poll() is None:
            try:
                record = self.receiver.next_json(timeout=3600)
            except (AssertionError, ValueError):
                return
            with self._lock:
                self.taken.append(record)

    def received(self, predicate) -> list[dict]:
        with self._lock:
            return [r for r in self.taken if predicate(r)]

    def sign(self, xml: bytes, eui: str) -> bytes:
        """What the User's tooling does: the DCC Boxed signing tool, with the User's key."""
        user = self.pki.user(eui)
        return signtool.tool_sign(xml, user.cert_pem, user.directory / "key.pem")

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        host, port = self.url.split("://")[1].rsplit(":", 1)
        infra = Dccki(self.pki_dir).infra("dcc-user")
        conn = http.client.HTTPSConnection(host, int(port), timeout=60, context=client_ctx(infra))
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/xml"})
            answer = conn.getresponse()
            name, version, _bits = conn.sock.cipher()
            assert (version, name) == ("TLSv1.2", SUITE)
            return answer.status, answer.read()
        finally:
            conn.close()

    def ask(self, xml: bytes, eui: str = SUPPLIER, path: str | None = None) -> str:
        """The synchronous answer's response code, once it is checked as signed by the DCC and valid."""
        status, body = self.post(path or routes.path_for(parse_request(xml)), self.sign(xml, eui))
        assert status == 200, body
        self.check(body, with_tool=False)
        self.answers.append(body)
        return facts(body).response_code

    def check(self, xml: bytes, with_tool: bool = True) -> None:
        """Signed by the DCC (host_tools.duis.signing, and the DCC Boxed signing tool) and schema-valid."""
        dcc = self.pki.user(DCC_USER_ID)
        assert signing.verify(xml, [dcc.cert]) == dcc.cert
        assert validate(xml, self.schema) == []
        if with_tool:
            assert b"Signature" not in signtool.tool_validate(xml, dcc.cert_pem)

    def stop(self):
        rc, err = self.front.stop()
        rrc, rerr = self.receiver.stop()
        assert rc == 0, err
        assert rrc == 0, rerr


@pytest.fixture(scope="module")
def dcc(tmp_path_factory, duis_sign_tool, duis_schema_dir):
    with sim_hub(tmp_path_factory, NAME, HUB) as hub:
        running = Dcc(tmp_path_factory.mktemp("dcc"), hub)
        running.schema = duis_schema_dir
        try:
            yield running
        finally:
            running.stop()


SERVICES = ["6.28", "6.29", "6.30", "6.31", "6.32", "11.2", "11.3", "11.3 future-dated"]


@pytest.mark.parametrize("srv", SERVICES)
def test_a_signed_request_is_acknowledged_and_its_signed_response_reaches_the_user(dcc, srv):
    xml = make_request(srv)
    request_id = facts(xml).request_id
    assert dcc.ask(xml) == "I99"
    got = wait_for(lambda: dcc.received(lambda r: r["request_id"] == request_id), timeout=20)
    assert len(got) == 1 and not got[0]["duplicate"]
    assert got[0]["response_id"].startswith("{}:{}:".format(HUB, SUPPLIER))
    dcc.check(got[0]["xml"].encode())
    # the hub's own answer, I0; for 11.3 it holds no image with that hash: GBCS's outcome in the payload
    assert got[0]["response_code"] == "I0", got[0]["response_code"]
    outcome = (payload_data(got[0]["xml"]) or {}).get("activateImageResponseCode")
    assert (outcome == "noImageHeld") == srv.startswith("11.3"), outcome


def test_a_tampered_request_is_e100(dcc):
    signed = dcc.sign(make_request("6.28"), SUPPLIER)
    tampered = signed.replace(b"<sr:GSMECurfew>7<", b"<sr:GSMECurfew>8<", 1)  # still valid DUIS
    assert tampered != signed
    status, body = dcc.post("/api/v1/serviceS", tampered)
    assert status == 200 and facts(body).response_code == "E100"
    dcc.check(body, with_tool=False)
    # another User's signature on SUPPLIER's request: E100 too
    status, body = dcc.post("/api/v1/serviceS", dcc.sign(make_request("6.30"), DISTRIBUTOR))
    assert facts(body).response_code == "E100"


def test_a_user_without_the_role_is_e2(dcc):
    assert dcc.ask(make_request("6.28", originator=DISTRIBUTOR), DISTRIBUTOR) == "E2"
    assert dcc.ask(make_request("6.29", originator=DISTRIBUTOR), DISTRIBUTOR) == "E2"


@pytest.mark.parametrize(
    "code, make, path",
    [
        ("E19", lambda who: make_request("6.30", who, target=ELSEWHERE), None),
        ("E13", lambda who: make_request("6.30", who), "/api/v1/serviceD"),
        ("E11", lambda who: make_request("4.1.1", who), None),
    ],
)
def test_a_user_not_registered_for_the_device_is_e4_before_e11_e13_e19(dcc, code, make, path):
    assert dcc.ask(make(SUPPLIER), SUPPLIER, path) == code
    assert dcc.ask(make(STRANGER), STRANGER, path) == "E4"


def test_every_dcc_alert_reaches_the_user_signed(dcc):
    # 6.28 changed the hub's configuration: its alerts come from its outbox to SUPPLIER
    alerts = wait_for(lambda: dcc.received(lambda r: r["alert_code"]), timeout=30)
    time.sleep(1.0)  # any that follow at once
    for alert in dcc.received(lambda r: r["alert_code"]):
        assert alert["response_id"].startswith("{}:{}:".format(HUB, SUPPLIER))
        dcc.check(alert["xml"].encode())
    assert {a["alert_code"] for a in alerts} >= {"N54"}


def test_the_dccs_duis_reader_parses_every_document_the_user_got(dcc, tmp_path):
    # last in this module: every synchronous answer and every delivered Service Response and DCC
    # Alert of the tests above, signed as they were sent, read by the DCC's own DUIS reader
    docs = [("answer {}".format(i), xml) for i, xml in enumerate(dcc.answers)]
    docs += [("delivered {}".format(r["response_id"]), r["xml"].encode()) for r in dcc.received(lambda r: True)]
    assert len(docs) >= 20 and any(r["alert_code"] for r in dcc.received(lambda r: True))
    readings = duisreader.read_all(docs, tmp_path / "docs")
    refused = [(r.name, r.error) for r in readings if not r.ok]
    assert not refused and len(readings) == len(docs), refused

"""The Response Code Tests (SEC Appendix R 8.1.26, as amended by MP260) as a DCC User runs them:
the DCC front (host_tools.dcc.front) on loopback HTTPS with the board behind it, driven by a User
that signs its requests (host_tools.duis.signing) and takes its Service Responses, signed by the
DCC, at its own endpoint (host_tools.dcc.receiver). Everything is made for the run and thrown away
after it: a development PKI (the DCC's and two Users' signing keys, DCCKI-like TLS certificates),
the User list, the front's queue.

Checks (each names the part that answered: "front", the DCC's decision made before any device is
asked; "hub", the board's own answer in the Service Response):
    front: 6.28 answered by the hub      I99 from the front, then I0 in the Service Response
    front: E11 ... E13 ... E19           a User registered for the device: the DCC's validation
    front: E4 before E11, E13, E19       the same requests from a User registered for no device:
                                         E4, which "takes precedence" (8.1.26)
A board that answers only `hello` passes the front's decisions (they are the DCC's, as the clause
tests them) and fails the first check: its Service Response is its refusal, not I0.
"""

from __future__ import annotations

import http.client
import tempfile
import threading
import time
from pathlib import Path

from host_tools.dcc import routes, tls
from host_tools.dcc.documents import facts
from host_tools.dcc.front import DccFront, FrontOptions
from host_tools.dcc.httpd import DuisHttpServer
from host_tools.dcc.receiver import Receiver
from host_tools.dcc.seams import DCC_USER_ID, Seams, verify_from
from host_tools.duis import signing
from host_tools.duis.compose import request_xml
from host_tools.duis.requests import parse_request
from host_tools.duis.userlist import ALWAYS, User, UserList
from host_tools.duis.xml import SR_NS
from host_tools.security.dccki import Dccki
from host_tools.security.pki import Pki

USER = "90-B3-D5-1F-30-01-00-00"  # IS, GS: registered for the board and for a device not behind the front
STRANGER = "90-B3-D5-1F-30-03-00-00"  # IS: registered for no device
FRONT_CHECKS = (  # each with what is expected: the code and the part that answers it
    ("front: 6.28 answered by the hub", "I99 front, I0 hub"),
    ("front: E11 service for another device type", "E11 front"),
    ("front: E13 request type not valid for the URL", "E13 front"),
    ("front: E19 device doesn't exist", "E19 front"),
    ("front: E4 before E11", "E4 front"),
    ("front: E4 before E13", "E4 front"),
    ("front: E4 before E19", "E4 front"),
)


def _request(srv: str, body: str, originator: str, target: str, counter: int) -> bytes:
    return (
        '<sr:Request xmlns:sr="{}" schemaVersion="5.4"><sr:Header><sr:RequestID>{}:{}:{}</sr:RequestID>'
        "<sr:CommandVariant>1</sr:CommandVariant><sr:ServiceReference>{}</sr:ServiceReference>"
        "<sr:ServiceReferenceVariant>{}</sr:ServiceReferenceVariant></sr:Header><sr:Body>{}</sr:Body>"
        "</sr:Request>".format(SR_NS, originator, target, counter, srv, srv, body)
    ).encode()


def elsewhere(eui: str) -> str:
    """A device next to the board's EUI that is not behind the front."""
    raw = bytes.fromhex(eui.replace("-", ""))
    return "-".join("{:02X}".format(b) for b in raw[:7] + bytes([raw[7] ^ 0xFF]))


class UserRun:
    """The front with `agent` behind it and a User's endpoint, for the length of a `with`."""

    def __init__(self, agent, hub_eui: str, schema, wait: float = 20.0):
        self.agent = agent
        self.hub = hub_eui
        self.schema = schema
        self.wait = wait
        self.taken: list = []
        self._arrived = threading.Condition()

    def __enter__(self) -> UserRun:
        self._tmp = tempfile.TemporaryDirectory(prefix="dbch-selftest-dcc-")
        try:
            self._start(Path(self._tmp.name))
        except BaseException:
            self._tmp.cleanup()
            raise
        return self

    def _start(self, base: Path) -> None:
        pki = Pki(base)
        pki.init_ca()
        for eui in (DCC_USER_ID, USER, STRANGER):
            pki.issue_user(eui)
        dccki = Dccki(base)
        front_tls = dccki.issue("dcc-front", ["127.0.0.1"])
        user_tls = dccki.issue("dcc-user", ["127.0.0.1"])
        dcc = pki.user(DCC_USER_ID)
        self.dcc_cert = dcc.cert
        receiver = Receiver(schema=self.schema, verify=verify_from([dcc.cert]), on_message=self._took)
        context = tls.server_context(user_tls.cert_pem, user_tls.key_pem, user_tls.ca_pem)
        self.endpoint = DuisHttpServer("127.0.0.1", 0, receiver.take, context)
        self.endpoint.start()
        url = "https://127.0.0.1:{}{}".format(self.endpoint.port, routes.DEFAULT_RECEIVE_PATH)
        devices = {self.hub: ALWAYS, elsewhere(self.hub): ALWAYS}
        users = UserList(
            {
                USER: User(USER, frozenset({"IS", "GS"}), pki.user(USER).cert, url, devices=devices),
                STRANGER: User(STRANGER, frozenset({"IS"}), pki.user(STRANGER).cert),
            }
        )
        self.keys = {eui: (pki.user_key(eui), pki.user(eui).cert) for eui in (USER, STRANGER)}
        self.user_context = tls.client_context(user_tls.cert_pem, user_tls.key_pem, user_tls.ca_pem)
        options = FrontOptions(
            context=tls.server_context(front_tls.cert_pem, front_tls.key_pem, front_tls.ca_pem),
            client_context=tls.client_context(front_tls.cert_pem, front_tls.key_pem, front_tls.ca_pem),
            state=base / "state",
            schema=self.schema,
            retry_base=0.2,
            retry_cap=1.0,
            seams=Seams.signed(users, pki.user_key(DCC_USER_ID), dcc.cert),
        )
        try:
            self.front = DccFront([self.agent], options).start()
        except BaseException:
            self._stop_endpoint()
            raise

    def _stop_endpoint(self) -> None:
        self.endpoint.shutdown()
        self.endpoint.server_close()

    def __exit__(self, *exc) -> None:
        try:
            self.front.stop()  # the board's link stays open: the run goes on with it
        finally:
            self._stop_endpoint()
            self._tmp.cleanup()

    def _took(self, received) -> None:
        with self._arrived:
            self.taken.append(received)
            self._arrived.notify_all()

    def ask(self, xml: bytes, who: str = USER, path: str | None = None) -> str:
        """The response code of the front's synchronous answer to `xml`, signed by `who`."""
        key, cert = self.keys[who]
        signed = signing.sign(xml, key, cert)
        host, port = "127.0.0.1", self.front.server.port
        conn = http.client.HTTPSConnection(host, port, timeout=self.wait, context=self.user_context)
        try:
            conn.request(
                "POST",
                path or routes.path_for(parse_request(xml)),
                body=signed,
                headers={"Content-Type": "application/xml"},
            )
            answer = conn.getresponse()
            body = answer.read()
        finally:
            conn.close()
        if answer.status != 200:
            return "HTTP {}".format(answer.status)
        signing.verify(body, [self.dcc_cert])  # signed by the DCC, or DuisSignatureError
        return facts(body).response_code or "-"

    def response_to(self, request_id: str):
        """The Service Response to `request_id` taken at the User's endpoint, or None in time."""
        deadline = time.monotonic() + self.wait
        with self._arrived:
            while True:
                for r in self.taken:
                    if r.facts.request_id == request_id:
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(left)


def check_front(harness, schema, config: dict) -> None:
    """Add FRONT_CHECKS to the harness's report: the board behind a front, a User in front of it.
    config: the Sub GHz Configuration the 6.28 sends (the one the board holds, so nothing changes)."""
    hub = harness.report.device["eui"]
    counter = int(time.time() * 1000)
    with UserRun(harness.agent, hub, schema, wait=max(10.0, 3 * harness.timeout)) as run:
        name, expected = FRONT_CHECKS[0]
        xml = request_xml("6.28", hub, USER, counter, config)
        ack = run.ask(xml)
        got = run.response_to(facts(xml).request_id) if ack == "I99" else None
        code = got.facts.response_code if got is not None else "none"
        detail = "front: {}; hub: {}".format(
            ack, "the Service Response {}".format(code) if got is not None else "no Service Response in time"
        )
        harness.add(name, expected, "{} front, {} hub".format(ack, code), ack == "I99" and code == "I0", detail)
        cases = (
            ("E11", _request("7.4", "<sr:ReadSupplyStatus/>", USER, hub, 0), None, "7.4 ReadSupplyStatus to the hub"),
            ("E13", request_xml("6.31", hub, USER, 0), routes.PATH_OF[routes.NON_DEVICE], "6.31 to serviceD"),
            ("E19", request_xml("6.31", elsewhere(hub), USER, 0), None, "6.31 for " + elsewhere(hub)),
        )
        for i, (code, template, path, what) in enumerate(cases):
            for who, at, want in ((USER, 1 + i, code), (STRANGER, 4 + i, "E4")):
                name, expected = FRONT_CHECKS[at]
                counter += 1
                xml = _retarget(template, who, counter)
                got = run.ask(xml, who, path)
                harness.add(name, expected, got + " front", got == want, "front: {} from {}".format(what, who))


def _retarget(template: bytes, who: str, counter: int) -> bytes:
    """The template with `who` as originator and a fresh counter."""
    req = parse_request(template)
    old = req.request_id.encode()
    new = "{}:{}:{}".format(who, req.target, counter).encode()
    return template.replace(old, new, 1)

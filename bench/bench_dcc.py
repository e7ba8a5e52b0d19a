"""The DCC front's costs, each against a baseline measured in the same run, on 127.0.0.1:

- a delivery POST over the DCC User Interface's TLS (a new TLS 1.2 connection each, RSA key
  exchange, AES128-GCM-SHA256, certificates both ways) against the same POST over plain HTTP;
- queueing a delivery durably (file and directory synced) against writing the same file unsynced;
- a request through the front, with the CPython agent behind it: the Acknowledgement (I99) and the
  Service Response at the User's endpoint, against host_tools.duis.front.answer called directly
  on the same agent (what the front adds: HTTP, the DCC's decision, the queue, the delivery);
- the same with DUIS message signatures (the request signed by the User, verified by the front;
  the answer and the Service Response signed by the DCC, verified at the endpoint) against it
  unsigned (--unsigned).

    python3 bench/bench_dcc.py [--posts N] [--requests N]

Prints absolute numbers and the ratios; asserts nothing (machines are noisy)."""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.examples import DBCH04_CONFIG  # noqa: E402
from host_tools.dcc import tls  # noqa: E402
from host_tools.dcc.httpd import Answer, DuisHttpServer  # noqa: E402
from host_tools.dcc.queue import DeliveryQueue  # noqa: E402
from host_tools.files import write_json  # noqa: E402
from host_tools.security.dccki import Dccki  # noqa: E402

HUB = "00-DB-12-34-56-78-90-BE"
USER = "90-B3-D5-1F-30-01-00-BE"


def _post(port: int, body: bytes, context=None) -> int:
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request("POST", "/smartdcc/duis", body=body, headers={"Content-Type": "application/xml"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def posts(pki: Path, n: int, body: bytes) -> tuple[float, float]:
    """(ms per POST over TLS, ms per POST over plain HTTP), each on a new connection."""
    dccki = Dccki(pki)
    server_infra = dccki.issue("bench-user", ["127.0.0.1"])
    client_infra = dccki.issue("bench-front", ["127.0.0.1"])
    servers = {
        "tls": DuisHttpServer(
            "127.0.0.1",
            0,
            lambda p: Answer(204),
            tls.server_context(server_infra.cert_pem, server_infra.key_pem, server_infra.ca_pem),
        ),
        "http": DuisHttpServer("127.0.0.1", 0, lambda p: Answer(204), None),
    }
    for s in servers.values():
        s.start()
    ctx = tls.client_context(client_infra.cert_pem, client_infra.key_pem, client_infra.ca_pem)
    out = {}
    try:
        for name, context in (("tls", ctx), ("http", None), ("tls", ctx), ("http", None)):  # warm, then timed
            t0 = time.perf_counter()
            for _ in range(n):
                assert _post(servers[name].port, body, context) == 204
            out[name] = (time.perf_counter() - t0) * 1000 / n
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()
    return out["tls"], out["http"]


def queueing(directory: Path, n: int, body: bytes) -> tuple[float, float]:
    """(ms per durable put, ms per unsynced write of the same record)."""
    q = DeliveryQueue(directory / "queue")
    t0 = time.perf_counter()
    for i in range(n):
        q.put("{}:{}:{}".format(HUB, USER, i), "https://127.0.0.1:1/smartdcc/duis", body)
    durable = (time.perf_counter() - t0) * 1000 / n
    record = q.pending()[0].record()
    t0 = time.perf_counter()
    for i in range(n):
        write_json(directory / "plain" / "{}.json".format(i), record, indent=None)
    plain = (time.perf_counter() - t0) * 1000 / n
    return durable, plain


def _through_front(directory: Path, schema, counters, n: int, signed: bool) -> tuple[list[float], list[float]]:
    """(ms to the I99, ms to the Service Response at the User's endpoint) of n 6.28 requests."""
    from host_tools.dcc.documents import facts
    from host_tools.dcc.front import DccFront, FrontOptions
    from host_tools.dcc.receiver import Receiver
    from host_tools.dcc.seams import DCC_USER_ID, Seams, accept_all, unkeyed_user, verify_from
    from host_tools.duis import signing
    from host_tools.duis.compose import request_xml
    from host_tools.duis.userlist import UserList
    from host_tools.link.agent import Agent, connect
    from host_tools.security.pki import Pki

    arrived: dict[str, float] = {}
    pki = Pki(directory / "duis-pki")
    if signed and not pki.has_ca():
        pki.init_ca()
        pki.issue_user(DCC_USER_ID)
        pki.issue_user(USER)
    dcc_cert = pki.user(DCC_USER_ID).cert if signed else None
    receiver = Receiver(
        schema=schema,
        verify=verify_from([dcc_cert]) if signed else accept_all,
        on_message=lambda r: arrived.setdefault(r.facts.request_id, time.perf_counter()),
    )
    endpoint = DuisHttpServer("127.0.0.1", 0, receiver.take, None)
    endpoint.start()
    user = unkeyed_user("{}=http://127.0.0.1:{}/smartdcc/duis".format(USER, endpoint.port))
    if signed:
        user = dataclasses.replace(user, certificate=pki.user(USER).cert)
    users = UserList({USER: user})
    users.alert_recipients = lambda hub_eui: []  # the alerts wait in the hub's outbox
    seams = Seams.signed(users, pki.user_key(DCC_USER_ID), dcc_cert) if signed else Seams.unsigned(users)
    agent = Agent(connect("sim:bench-dcc", timeout=10))
    state = directory / ("state-signed" if signed else "state-unsigned")
    front = DccFront([agent], FrontOptions(allow_http=True, state=state, schema=schema, seams=seams)).start()
    acks, responses = [], []
    try:
        for _ in range(n):
            xml = request_xml("6.28", HUB, USER, next(counters), dict(DBCH04_CONFIG))
            t0 = time.perf_counter()
            if signed:
                xml = signing.sign(xml, pki.user_key(USER), user.certificate)
            conn = http.client.HTTPConnection("127.0.0.1", front.server.port, timeout=30)
            conn.request("POST", "/api/v1/serviceS", body=xml, headers={"Content-Type": "application/xml"})
            ack = facts(conn.getresponse().read())
            conn.close()
            t_ack = time.perf_counter()
            assert ack.response_code == "I99", ack
            while ack.request_id not in arrived:
                time.sleep(0.001)
            acks.append((t_ack - t0) * 1000)
            responses.append((arrived[ack.request_id] - t0) * 1000)
    finally:
        front.stop()
        agent.close()
        endpoint.shutdown()
        endpoint.server_close()
    return acks, responses


def requests(directory: Path, n: int) -> dict:
    from host_tools.duis.compose import request_xml
    from host_tools.duis.front import answer
    from host_tools.duis.schema import load_schema, schema_dir
    from host_tools.link.agent import Agent, connect
    from host_tools.servers import simagent

    schema = schema_dir(None)
    load_schema(schema)
    counters = itertools.count(int(time.time() * 1000))
    simagent.ensure_running("bench-dcc", fs=directory / "simfs", eui=HUB)
    try:
        # baseline: the DCC Data Systems' stand-in called directly on the agent
        agent = Agent(connect("sim:bench-dcc", timeout=10))
        direct = []
        for _ in range(n):
            xml = request_xml("6.28", HUB, USER, next(counters), dict(DBCH04_CONFIG))
            t0 = time.perf_counter()
            rc, _out, _w = answer(agent.client, xml, schema)
            direct.append((time.perf_counter() - t0) * 1000)
            assert rc == "I0", rc
        agent.close()
        acks, responses = _through_front(directory, schema, counters, n, signed=False)
        signed_acks, signed_responses = _through_front(directory, schema, counters, n, signed=True)
    finally:
        simagent.stop("bench-dcc")
    return {
        "direct": statistics.median(direct),
        "ack": statistics.median(acks),
        "response": statistics.median(responses),
        "signed_ack": statistics.median(signed_acks),
        "signed_response": statistics.median(signed_responses),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=100)
    ap.add_argument("--requests", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        body = request_xml_body()
        t_tls, t_http = posts(tmp / "pki", args.posts, body)
        print(
            "delivery POST, new connection each ({} each): TLS 1.2 AES128-GCM-SHA256 {:.2f} ms, "
            "plain HTTP {:.2f} ms: ratio {:.1f}".format(args.posts, t_tls, t_http, t_tls / t_http)
        )
        durable, plain = queueing(tmp, args.posts, body)
        print(
            "queue a delivery ({} each): durable (synced) {:.2f} ms, unsynced write {:.2f} ms: ratio {:.1f}".format(
                args.posts, durable, plain, durable / plain
            )
        )
        r = requests(tmp, args.requests)
        print(
            "6.28 through the front, CPython agent behind it (median of {}): I99 after {:.1f} ms, Service Response "
            "at the User's endpoint after {:.1f} ms; front.answer called directly {:.1f} ms: ratio {:.2f}".format(
                args.requests, r["ack"], r["response"], r["direct"], r["response"] / r["direct"]
            )
        )
        print(
            "the same signed (User signs, front verifies, DCC signs the I99 and the Service Response, endpoint "
            "verifies): I99 after {:.1f} ms, Service Response after {:.1f} ms; unsigned {:.1f} ms: ratio {:.2f}".format(
                r["signed_ack"], r["signed_response"], r["response"], r["signed_response"] / r["response"]
            )
        )


def request_xml_body() -> bytes:
    from host_tools.duis.compose import request_xml

    return request_xml("6.28", HUB, USER, 1, dict(DBCH04_CONFIG))


if __name__ == "__main__":
    main()

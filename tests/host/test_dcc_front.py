"""The DCC front (`dbch dcc serve`) with hubs behind it: the DCC Boxed paths (E13), I99 then the
Service Response at the User's receive URL, DCC Alerts from the hub's outbox, and deliveries that
survive a User's endpoint being down and the front restarting, each taken once. The hub behind
the front is the CPython agent on a pty; everything is on loopback."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("serial")

from agent.examples import DBCH04_CONFIG  # noqa: E402
from host_tools.dcc.documents import facts  # noqa: E402
from host_tools.dcc.front import DccFront, FrontOptions  # noqa: E402
from host_tools.dcc.httpd import Answer, DuisHttpServer, Posted  # noqa: E402
from host_tools.dcc.receiver import Receiver  # noqa: E402
from host_tools.dcc.seams import Seams, unkeyed_user  # noqa: E402
from host_tools.duis.compose import request_xml  # noqa: E402
from host_tools.duis.userlist import UserList  # noqa: E402
from host_tools.link.agent import Agent, connect  # noqa: E402
from tests.kits.dcckit import (  # noqa: E402
    COUNTERS,
    client_ctx,
    free_port,
    issue_infra,
    post,
    server_ctx,
    sim_hub,
    wait_for,
)

NAME = "dccfront"
HUB = "00-DB-12-34-56-78-90-D1"
OTHER_HUB = "00-DB-12-34-56-78-90-D3"
USER = "90-B3-D5-1F-30-01-00-00"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with sim_hub(tmp_path_factory, NAME, HUB) as port:
        yield port


@pytest.fixture(scope="module")
def second_hub(hub, tmp_path_factory):
    # in the same private cache as `hub`: stopped with it
    from host_tools.servers import simagent

    simagent.ensure_running(NAME + "-b", fs=tmp_path_factory.mktemp("simfs-b"), eui=OTHER_HUB)
    return f"sim:{NAME}-b"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return issue_infra(tmp_path_factory)


def config_request(target: str = HUB) -> bytes:
    # 6.28: its answer is an sr:Response (the 6.30 and 6.31 answers with data are the MMC form,
    # which has no ResponseID)
    return request_xml("6.28", target, USER, next(COUNTERS), dict(DBCH04_CONFIG))


class Endpoint:
    """A User's receiving endpoint on loopback (TLS or plain HTTP), started and stopped by the test."""

    def __init__(self, port: int, schema, context=None, store=None, fail_first: int = 0):
        self.messages = []
        self.receiver = Receiver(schema=schema, store=store, on_message=self.messages.append)
        self.fail_first = fail_first  # answer 500 after taking the first N documents (a lost 2xx)
        self.answers = []
        self.server = DuisHttpServer("127.0.0.1", port, self.take, context)
        self.server.start()

    def take(self, posted: Posted) -> Answer:
        answer = self.receiver.take(posted)
        if self.fail_first > 0 and answer.status == 204:
            self.fail_first -= 1
            answer = Answer(500, b"lost on its way back\n", "text/plain")
        self.answers.append(answer.status)
        return answer

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def users_of(receive_url: str, alerts: bool = True) -> UserList:
    """USER with every role, registered for every hub (dbch dcc serve --user USER=URL); alerts=False:
    the hubs' DCC Alerts go to nobody (they wait in the hub's outbox)."""
    users = UserList({USER: unkeyed_user(f"{USER}={receive_url}")})
    if not alerts:
        users.alert_recipients = lambda hub_eui: []
    return users


def make_front(hub, state, schema, receive_url, *, context=None, client_context=None, base=0.05, cap=0.2, alerts=False):
    agents = [Agent(connect(h, timeout=5)) for h in ([hub] if isinstance(hub, str) else hub)]
    options = FrontOptions(
        context=context,
        client_context=client_context,
        allow_http=context is None,
        state=state,
        schema=schema,
        retry_base=base,
        retry_cap=cap,
        seams=Seams.unsigned(users_of(receive_url, alerts)),
    )
    notes = []
    front = DccFront(agents, options, note=notes.append).start()
    front.notes = notes
    front.agents = agents
    return front


def stop_front(front):
    front.stop()
    for agent in front.agents:
        agent.close()


# -- the front ---------------------------------------------------------------------------------


def test_wrong_path_is_e13_and_request_is_acknowledged_then_answered(hub, pki, duis_schema_dir, tmp_path):
    port = free_port()
    endpoint = Endpoint(port, duis_schema_dir, server_ctx(pki["user"]))
    front = make_front(
        hub,
        tmp_path / "state",
        duis_schema_dir,
        f"https://127.0.0.1:{port}/smartdcc/duis",
        context=server_ctx(pki["front"]),
        client_context=client_ctx(pki["front"]),
    )
    user = client_ctx(pki["user"])
    try:
        for path in ("/api/v1/serviceT", "/api/v1/serviceD"):
            status, body = post(front.url, path, config_request(), user)
            assert status == 200 and facts(body).response_code == "E13", (path, body)
        assert post(front.url, "/api/v1/other", config_request(), user)[0] == 404  # not a DUIS URL
        request = config_request()
        status, body = post(front.url, "/api/v1/serviceS", request, user)
        ack = facts(body)
        assert status == 200 and ack.response_code == "I99", body
        got = wait_for(lambda: endpoint.messages)
        response = got[0]
        assert response.facts.request_id == ack.request_id
        assert response.facts.response_id and response.facts.response_id.startswith(HUB + ":" + USER + ":")
        assert response.peer == "dcc-front"  # the front dialled with its certificate
        wait_for(lambda: not front.queue.pending())  # the 204 took it off the queue
        # E55 is a RequestID still in process: while the hub has not answered, the same request
        # again is E55 at once; once it has, the RequestID is free again
        asked = threading.Event()
        release = threading.Event()
        answer = front.hubs[0].answer

        def held(client, xml, schema):
            asked.set()
            release.wait(20)
            return answer(client, xml, schema)

        front.hubs[0].answer = held
        request = config_request()
        assert facts(post(front.url, "/api/v1/serviceS", request, user)[1]).response_code == "I99"
        assert asked.wait(20)
        assert facts(post(front.url, "/api/v1/serviceS", request, user)[1]).response_code == "E55"
        release.set()
        wait_for(lambda: endpoint.messages[1:])
        wait_for(lambda: not front.in_process)
        front.hubs[0].answer = answer
        assert facts(post(front.url, "/api/v1/serviceS", request, user)[1]).response_code == "I99"
        third = wait_for(lambda: endpoint.messages[2:])
        assert [m.facts.response_code for m in endpoint.messages] == ["I0", "I0", "I0"]
        assert third[0].facts.request_id == facts(request).request_id
    finally:
        stop_front(front)
        endpoint.stop()


def test_receiver_down_then_up_gets_each_response_once(hub, duis_schema_dir, tmp_path):
    port = free_port()
    front = make_front(hub, tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis")
    try:
        status, body = post(front.url, "/api/v1/serviceS", config_request())
        assert facts(body).response_code == "I99"
        wait_for(lambda: [d for d in front.queue.pending() if d.attempts >= 3])  # refused, and refused again
        endpoint = Endpoint(port, duis_schema_dir, store=tmp_path / "inbox")
        try:
            wait_for(lambda: not front.queue.pending())
            time.sleep(0.5)  # nothing more comes
            assert len(endpoint.messages) == 1 and endpoint.answers == [204]
            assert len(list((tmp_path / "inbox").glob("*.xml"))) == 1
        finally:
            endpoint.stop()
    finally:
        stop_front(front)


def test_front_restart_delivers_what_was_queued(hub, duis_schema_dir, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/smartdcc/duis"
    front = make_front(hub, tmp_path / "state", duis_schema_dir, url, base=0.05, cap=0.1)
    try:
        ids = []
        for _ in range(3):
            ids.append(facts(post(front.url, "/api/v1/serviceS", config_request())[1]).request_id)
        wait_for(lambda: len(front.queue.pending()) == 3)
    finally:
        stop_front(front)
    endpoint = Endpoint(port, duis_schema_dir)
    again = make_front(hub, tmp_path / "state", duis_schema_dir, url)
    try:
        wait_for(lambda: len(endpoint.messages) == 3)
        assert sorted(m.facts.request_id for m in endpoint.messages) == sorted(ids)
        assert again.queue.pending() == []
    finally:
        stop_front(again)
        endpoint.stop()


def test_a_lost_acknowledgement_is_sent_again_and_dropped_as_a_duplicate(hub, duis_schema_dir, tmp_path):
    port = free_port()
    endpoint = Endpoint(port, duis_schema_dir, fail_first=1)
    front = make_front(hub, tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis")
    try:
        post(front.url, "/api/v1/serviceS", config_request())
        wait_for(lambda: endpoint.answers[-1:] == [204] and not front.queue.pending())
        assert endpoint.answers == [500, 204]
        assert len(endpoint.messages) == 1
        assert endpoint.receiver.duplicates == 1
    finally:
        stop_front(front)
        endpoint.stop()


def test_alerts_from_the_hub_reach_the_user_before_they_are_acknowledged(hub, duis_schema_dir, tmp_path):
    agent = Agent(connect(hub, timeout=5))
    try:
        assert agent.set_config(dict(DBCH04_CONFIG)).rc == "I0"  # its 8F2A waits in the outbox
        waiting = agent.status()["outbox"]
        assert waiting >= 1
    finally:
        agent.close()
    port = free_port()
    # a front that cannot queue them (its disk is full): the hub keeps them, unacknowledged
    front = make_front(hub, tmp_path / "full", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis", alerts=True)

    def disk_full(hub_eui):
        raise OSError(28, "No space left on device")

    try:
        front.opt.seams.users.alert_recipients = disk_full
        wait_for(lambda: [n for n in front.notes if "not queued" in n and "No space left" in n])
    finally:
        stop_front(front)
    agent = Agent(connect(hub, timeout=5))
    try:
        assert agent.status()["outbox"] == waiting
    finally:
        agent.close()
    front = make_front(hub, tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis", alerts=True)
    try:
        alerts = wait_for(lambda: [d for d in front.queue.pending() if "DCCAlertCode" in d.xml])
        assert "8F2A" in alerts[0].xml
    finally:
        stop_front(front)
    endpoint = Endpoint(port, duis_schema_dir)
    again = make_front(hub, tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis", alerts=True)
    try:
        got = wait_for(lambda: [m for m in endpoint.messages if m.facts.alert_code == "N54"])
        assert got[0].facts.response_id.startswith(HUB + ":" + USER + ":")
    finally:
        stop_front(again)
        endpoint.stop()
    agent = Agent(connect(hub, timeout=5))
    try:
        assert agent.status()["outbox"] == 0
    finally:
        agent.close()


def test_seams_refuse_with_e100_and_e1_and_the_dcc_decides_at_once(hub, duis_schema_dir, tmp_path):
    port = free_port()
    front = make_front(hub, tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis")
    signed = []
    try:
        # verify: a document it refuses is E100 (Failed Authentication), before anything else is done
        def refuse_tampered(xml: bytes) -> None:
            if b"tampered" in xml:
                raise ValueError("the signature does not match")

        front.opt.seams.verify = refuse_tampered
        front.opt.seams.sign = lambda xml: signed.append(xml) or xml
        tampered = config_request().replace(b"<sr:Body>", b"<!-- tampered --><sr:Body>")
        status, body = post(front.url, "/api/v1/serviceS", tampered)
        assert (status, facts(body).response_code) == (200, "E100")
        assert signed and signed[-1] == body  # what is sent went through sign
        # users: a request from no known User is E1
        stranger = request_xml("6.28", HUB, "90-B3-D5-1F-30-01-00-99", next(COUNTERS), dict(DBCH04_CONFIG))
        assert facts(post(front.url, "/api/v1/serviceS", stranger)[1]).response_code == "E1"
        # the DCC's order, decided at once: a Command Variant 2 6.28 is a device request (E13 on
        # serviceD), whose variant this front does not take (E12 on serviceS)
        local = request_xml("6.28", HUB, USER, next(COUNTERS), dict(DBCH04_CONFIG), command_variant=2)
        assert facts(post(front.url, "/api/v1/serviceD", local)[1]).response_code == "E13"
        assert facts(post(front.url, "/api/v1/serviceS", local)[1]).response_code == "E12"
        # a non-device request (8.2, DCC Only): E13 on serviceS; on serviceD, decided, then HTTP 501
        inventory = local.decode()
        for old, new in (
            ("<sr:CommandVariant>2<", "<sr:CommandVariant>8<"),
            ("<sr:ServiceReference>6.28<", "<sr:ServiceReference>8.2<"),
            ("<sr:ServiceReferenceVariant>6.28<", "<sr:ServiceReferenceVariant>8.2<"),
        ):
            inventory = inventory.replace(old, new)
        start, end = inventory.index("<sr:SetCHFSubGHzConfiguration"), inventory.index("</sr:Body>")
        inventory = (
            inventory[:start]
            + f"<sr:ReadInventory><sr:DeviceID>{HUB}</sr:DeviceID></sr:ReadInventory>"
            + inventory[end:]
        ).encode()
        assert facts(post(front.url, "/api/v1/serviceS", inventory)[1]).response_code == "E13"
        assert post(front.url, "/api/v1/serviceD", inventory)[0] == 501
        assert not front.in_process
        # not DUIS at all: HTTP 400, nothing queued
        assert post(front.url, "/api/v1/serviceS", b"<x/>")[0] == 400
        assert front.queue.pending() == []
    finally:
        stop_front(front)


def test_one_front_a_state_folder(hub, duis_schema_dir, tmp_path):
    from host_tools.dcc.front import DccFrontError

    front = make_front(hub, tmp_path / "state", duis_schema_dir, "http://127.0.0.1:9/smartdcc/duis")
    try:
        with pytest.raises(DccFrontError, match="another dbch dcc serve"):
            DccFront([], FrontOptions(state=tmp_path / "state")).start()
    finally:
        stop_front(front)


def test_each_request_goes_to_the_hub_it_names(hub, second_hub, duis_schema_dir, tmp_path):
    port = free_port()
    endpoint = Endpoint(port, duis_schema_dir)
    front = make_front([hub, second_hub], tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis")
    try:
        assert [h.eui for h in front.hubs] == [HUB, OTHER_HUB]
        for target in (OTHER_HUB, HUB):
            assert facts(post(front.url, "/api/v1/serviceS", config_request(target))[1]).response_code == "I99"
        nobody = "00-DB-12-34-56-78-90-FF"
        assert facts(post(front.url, "/api/v1/serviceS", config_request(nobody))[1]).response_code == "E19"
        got = wait_for(lambda: endpoint.messages if len(endpoint.messages) == 2 else None)
        # each answered by its own hub: the ResponseID names the hub that answered, the RequestID the one asked
        assert sorted((m.facts.response_id.split(":")[0], m.facts.request_id.split(":")[1]) for m in got) == [
            (HUB, HUB),
            (OTHER_HUB, OTHER_HUB),
        ]
    finally:
        stop_front(front)
        endpoint.stop()


def test_a_hub_that_does_not_answer_is_e21_at_the_users_endpoint(hub, duis_schema_dir, tmp_path):
    from host_tools.link.client import AgentTimeout, LinkError

    port = free_port()
    endpoint = Endpoint(port, duis_schema_dir)
    front = make_front(hub, tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis")
    failures = [AgentTimeout("no answer to 'config.set' within 5 s"), LinkError("the port went away")]

    def fails(client, xml, schema):
        raise failures.pop(0)

    try:
        front.hubs[0].answer = fails
        for _ in range(2):
            assert facts(post(front.url, "/api/v1/serviceS", config_request())[1]).response_code == "I99"
        got = wait_for(lambda: endpoint.messages if len(endpoint.messages) == 2 else None)
        assert sorted(m.facts.response_code for m in got) == ["E20", "E21"]
    finally:
        stop_front(front)
        endpoint.stop()


def test_a_service_response_that_is_not_valid_duis_is_kept_not_sent(hub, duis_schema_dir, tmp_path):
    port = free_port()
    endpoint = Endpoint(port, duis_schema_dir)
    front = make_front(hub, tmp_path / "state", duis_schema_dir, f"http://127.0.0.1:{port}/smartdcc/duis")
    front.hubs[0].answer = lambda client, xml, schema: ("I0", b"<Response>not DUIS</Response>", [])
    try:
        request = config_request()
        assert facts(post(front.url, "/api/v1/serviceS", request)[1]).response_code == "I99"
        held = wait_for(lambda: list((tmp_path / "state" / "held").glob("*.json")))
        record = json.loads(held[0].read_text())
        assert record["request_id"] == facts(request).request_id and "not valid DUIS" in record["why"]
        assert front.queue.pending() == [] and endpoint.messages == []
        assert front.status()["held"] == 1 and not front.in_process
    finally:
        stop_front(front)
        endpoint.stop()

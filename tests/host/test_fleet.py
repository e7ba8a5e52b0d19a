"""The fleet on one broker: six simulated hubs (host_tools.servers.simfleet, one process) served by
three `dbch gateway` processes on Mosquitto with mutual TLS; `dbch fleet` sees them whole, and the
`dbch` commands reach a hub through --port mqtts://HOST:PORT/EUI as through any other port."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.examples import DBCH04_CONFIG
from host_tools.cli import main
from host_tools.security.pki import Pki
from tests.kits import mosquittokit
from tests.kits.cachekit import private_cache
from tests.kits.jsonlines import JsonLines

ROOT = Path(__file__).resolve().parents[2]
HUBS = 6
GATEWAYS = 3
FIRST = "00-DB-00-00-00-00-0F-00"


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _eui(i: int) -> str:
    return FIRST[:-2] + f"{i:02X}"


class Fleet:
    def __init__(self, tmp: Path):
        self.pki_dir, self.broker = mosquittokit.lab(tmp, plain=True)
        pki = Pki(self.pki_dir)
        pki.make_signing_key()
        self.signing = pki.signing_dir
        self.tmp = tmp
        self.farm: JsonLines | None = None
        self.gateways: list[JsonLines] = []
        self.ports: list[str] = []

    def start(self) -> None:
        self.broker.start()
        cmd = [sys.executable, "-m", "host_tools.servers.simfleet", "--dir", str(self.tmp / "hubs")]
        cmd += ["--signing-key", str(self.signing / "pub.bin")]
        self.farm = JsonLines(cmd + ["--count", str(HUBS), "--first-eui", FIRST])
        hubs = self.farm.wait_for(lambda x: "hubs" in x, 60, "the hubs up")["hubs"]
        assert [h["eui"] for h in hubs] == [_eui(i) for i in range(HUBS)]
        self.ports = [h["port"] for h in hubs]
        for g in range(GATEWAYS):
            self.gateways.append(self.start_gateway(g))

    def start_gateway(self, g: int) -> JsonLines:
        per = HUBS // GATEWAYS
        cmd = [sys.executable, "-m", "host_tools.cli", "gateway", "--broker", self.broker.url, "--json"]
        cmd += ["--pki", str(self.pki_dir), "--identity", "gateway", "--name", f"gw{g}"]
        for port in self.ports[g * per : (g + 1) * per]:
            cmd += ["--port", port]
        gw = JsonLines(cmd)
        gw.wait_for(lambda x: x.get("event") == "ready", 60, f"gateway {g} ready")
        gw.wait_for(lambda x: gw.count(lambda y: y.get("event") == "connected") >= per, 30, f"gateway {g} on")
        return gw

    def url(self, i: int) -> str:
        return f"{self.broker.url}/{_eui(i)}?identity=watcher&pki={self.pki_dir}"

    def fleet(self, *argv: str) -> list[str]:
        return ["fleet", *argv, "--broker", self.broker.url, "--pki", str(self.pki_dir), "--identity", "watcher"]

    def stop(self) -> None:
        for gw in self.gateways:
            gw.stop()
        if self.farm:
            self.farm.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with private_cache(tmp_path_factory):
        f = Fleet(tmp_path_factory.mktemp("fleet"))
        try:
            f.start()
            yield f
        finally:
            f.stop()


def _json(capsys, argv: list[str], code: int = 0):
    assert main(argv) == code, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _settled(fleet: Fleet, capsys, pred, what: str, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        hubs = _json(capsys, [*fleet.fleet("list"), "--json"])["hubs"]
        if pred(hubs) or time.monotonic() > deadline:
            assert pred(hubs), f"{what}: {hubs}"
            return hubs
        time.sleep(0.3)


# ----------------------------------------------------------------------------- the fleet whole


def test_fleet_list_shows_every_hub_of_three_gateways(fleet, capsys):
    hubs = _settled(
        fleet,
        capsys,
        lambda hubs: len(hubs) == HUBS and all(h["availability"] == "online" and "gateway" in h for h in hubs),
        "every hub online with its state",
    )
    assert [h["eui"] for h in hubs] == [_eui(i) for i in range(HUBS)]
    assert {h["gateway"] for h in hubs} == {f"gw{g}" for g in range(GATEWAYS)}
    assert {h["board"] for h in hubs} == {"sim"} and all(h["version"] for h in hubs)
    assert main(fleet.fleet("list")) == 0
    out = capsys.readouterr().out
    assert f"{HUBS} hub(s)" in out and f"{HUBS} online" in out and _eui(5) in out


def test_fleet_status_asks_every_online_hub(fleet, capsys):
    answers = _json(capsys, [*fleet.fleet("status"), "--json"])["hubs"]
    assert sorted(answers) == [_eui(i) for i in range(HUBS)]
    assert all(a["rc"] == "I0" and a["data"]["eui"] == eui for eui, a in answers.items())
    stray = "00-DB-00-00-00-00-0F-77"  # no gateway serves it: no answer, said so, exit 1
    answers = _json(capsys, [*fleet.fleet("status", _eui(0), stray), "--timeout", "2", "--json"], code=1)["hubs"]
    assert answers[_eui(0)]["rc"] == "I0" and answers[stray]["rc"] == "E49" and "gateway" in answers[stray]["err"]


def test_fleet_report_has_the_h17_columns_for_each_hub(fleet, capsys, tmp_path):
    out = tmp_path / "h17.csv"
    assert main([*fleet.fleet("report"), "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["device_id"] for r in rows] == [_eui(i) for i in range(HUBS)]
    state = {h["eui"]: h for h in _json(capsys, [*fleet.fleet("list"), "--json"])["hubs"]}
    for r in rows:
        assert (r["make"], r["model"]) == ("dbch", "simulated hub (CPython)")
        assert r["firmware_version"] == state[r["device_id"]]["version"]
        assert r["availability"] == "online" and r["gateway"].startswith("gw")
    table = _json(capsys, [*fleet.fleet("report"), "--json"])
    assert [r["device_id"] for r in table] == [r["device_id"] for r in rows]


# ----------------------------------------------------------------------------- --port mqtts://


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "dbch04.json"
    path.write_text(json.dumps(DBCH04_CONFIG))
    return path


def test_every_agent_command_works_through_the_broker(fleet, capsys, tmp_path):
    url = fleet.url(1)
    status = _json(capsys, ["status", "--port", url, "--json"])
    assert status["eui"] == _eui(1) and status["board"] == "sim" and not status["configured"]
    assert main(["config", "set", "--page", "30=1,2,3", "--port", url]) == 1  # refused, with its code
    assert "E062801" in capsys.readouterr().err
    assert main(["config", "set", "--file", str(_config_file(tmp_path)), "--port", url]) == 0, capsys.readouterr().err
    capsys.readouterr()
    config = _json(capsys, ["config", "get", "--port", url, "--json"])
    assert {k: config.get(k) for k in DBCH04_CONFIG} == DBCH04_CONFIG
    assert _json(capsys, ["status", "--port", url, "--json"])["configured"] is True
    fw = _json(capsys, ["firmware", "status", "--port", url, "--json"])
    assert fw["version"] == status["version"] and fw["boot"]["active"] == "a"
    assert main(["han", "add", "00-11-22-33-44-55-66-01", "IHD", "--port", url, "--json"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    han = _json(capsys, ["han", "list", "--port", url, "--json"])
    assert han["capacity"] == 24 and "00-11-22-33-44-55-66-01" in json.dumps(han)


def test_a_signed_firmware_image_is_sent_and_activated_through_the_broker(fleet, capsys, tmp_path):
    url = fleet.url(3)
    image = tmp_path / "0.2.0.img"
    build = ["firmware", "build", "--board", "sim", "--version", "0.2.0", "--key", str(fleet.signing / "key.pem")]
    assert main([*build, "--out", str(image)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    sent = _json(capsys, ["firmware", "send", str(image), "--port", url, "--quiet", "--json"])
    assert sent["slot"] == "b"
    watch = JsonLines([sys.executable, "-m", "host_tools.cli", *fleet.fleet("alerts"), "--follow", "--json"])
    try:
        time.sleep(1.5)  # subscribed
        assert main(["firmware", "activate", str(image), "--port", url]) == 0, capsys.readouterr().err
        capsys.readouterr()
        # the hub boots into it, its gateway says hello again, and the N64 (DCC Alert: Comms Hub
        # firmware activated) comes up through the broker
        n64 = watch.wait_for(lambda a: a.get("eui") == _eui(3) and a.get("kind") == "N64", 30, "the N64")
    finally:
        watch.stop()
    assert n64["data"]["FirmwareVersion"] == "0.2.0"
    status = _json(capsys, ["firmware", "status", "--port", url, "--json"])
    assert (status["version"], status["slot"]) == ("0.2.0", "b")


def test_alerts_come_through_the_broker_once_each(fleet, capsys, tmp_path):
    url = fleet.url(2)
    cmd = [sys.executable, "-m", "host_tools.cli", "alerts", "--wait", "6", "--json", "--port", url]
    reader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    try:
        time.sleep(2.0)  # subscribed
        config = ["config", "set", "--file", str(_config_file(tmp_path)), "--port", url]
        assert main(config) == 0, capsys.readouterr().err
        capsys.readouterr()
        out, err = reader.communicate(timeout=30)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    alerts = json.loads(out)
    seqs = [a["seq"] for a in alerts]
    assert seqs and len(seqs) == len(set(seqs)), alerts
    assert "8F2A" in [a["data"].get("DeviceAlertCode") for a in alerts]
    answer = _json(capsys, [*fleet.fleet("status", _eui(2)), "--json"])["hubs"][_eui(2)]
    assert answer["data"]["outbox"] == 0  # each acknowledged to the outbox by the gateway


def test_a_reader_with_a_session_gets_the_alerts_raised_while_it_was_away(fleet, capsys, tmp_path):
    session = [*fleet.fleet("alerts"), "--session", "ops-desk", "--wait", "1", "--json"]
    assert main(session) == 0  # the session is made, with its subscription
    capsys.readouterr()
    config = ["config", "set", "--file", str(_config_file(tmp_path)), "--port", fleet.url(0)]
    assert main(config) == 0, capsys.readouterr().err  # raises 8F2A while the reader is away
    capsys.readouterr()
    time.sleep(1.0)
    assert main([*session[:-3], "--wait", "2", "--json"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [a for a in alerts if a["eui"] == _eui(0)]
    assert "8F2A" in [a["code"] for a in mine], alerts
    assert len({a["seq"] for a in mine}) == len(mine)


def test_a_hub_no_gateway_serves_is_refused_saying_what_to_do(fleet, capsys):
    assert (
        main(["status", "--port", f"{fleet.broker.url}/00-DB-00-00-00-00-0F-77?identity=watcher&pki={fleet.pki_dir}"])
        != 0
    )
    err = capsys.readouterr().err
    assert "not online" in err and "dbch fleet list" in err
    assert main(["status", "--port", f"mqtt://broker.example/{_eui(0)}"]) != 0  # refused before any connection
    assert "loopback" in capsys.readouterr().err


def test_a_lab_broker_without_tls_on_loopback(fleet, capsys):
    # the same broker's plain loopback listener: a tool without certificates reaches the fleet
    status = _json(capsys, ["status", "--port", f"{fleet.broker.plain_url}/{_eui(0)}", "--json"])
    assert status["eui"] == _eui(0)
    hubs = _json(capsys, ["fleet", "list", "--broker", fleet.broker.plain_url, "--json"])["hubs"]
    assert len(hubs) == HUBS


def test_a_killed_gateway_leaves_its_hubs_offline_and_a_new_one_brings_them_back(fleet, capsys):
    fleet.gateways[2].stop(signal.SIGKILL)
    gone = {_eui(4), _eui(5)}
    _settled(
        fleet,
        capsys,
        lambda hubs: {h["eui"] for h in hubs if h["availability"] == "offline"} == gone,
        "the killed gateway's hubs offline (its will), the others online",
        timeout=60,  # the broker notices the dead connections at 1.5 keep-alives at the latest
    )
    fleet.gateways[2] = fleet.start_gateway(2)
    _settled(fleet, capsys, lambda hubs: all(h["availability"] == "online" for h in hubs), "all online again")


# ----------------------------------------------------------------------------- the DCC front


def test_the_dcc_front_reaches_hubs_through_the_broker(fleet, duis_schema_dir, tmp_path):
    from host_tools.dcc.documents import facts
    from host_tools.dcc.front import DccFront, FrontOptions
    from host_tools.dcc.httpd import DuisHttpServer
    from host_tools.dcc.receiver import Receiver
    from host_tools.dcc.seams import Seams, unkeyed_user
    from host_tools.duis.compose import request_xml
    from host_tools.duis.userlist import UserList
    from host_tools.link.agent import Agent, connect
    from tests.kits.dcckit import COUNTERS, free_port, post, wait_for

    user = "90-B3-D5-1F-30-01-00-00"
    port = free_port()
    got = []
    receiver = Receiver(schema=duis_schema_dir, on_message=got.append)
    endpoint = DuisHttpServer("127.0.0.1", port, receiver.take, None)
    endpoint.start()
    agents = [Agent(connect(fleet.url(i), timeout=5)) for i in (4, 5)]  # not local: on the broker
    users = UserList({user: unkeyed_user(f"{user}=http://127.0.0.1:{port}/smartdcc/duis")})
    options = FrontOptions(
        allow_http=True, state=tmp_path / "state", schema=duis_schema_dir, seams=Seams.unsigned(users)
    )
    front = DccFront(agents, options).start()
    try:
        for i in (4, 5):
            xml = request_xml("6.28", _eui(i), user, next(COUNTERS), dict(DBCH04_CONFIG))
            status, body = post(front.url, "/api/v1/serviceS", xml)
            assert status == 200 and facts(body).response_code == "I99", body
        wait_for(lambda: len([m for m in got if m.facts.response_code == "I0"]) >= 2, timeout=30)
        answered = {m.facts.response_id.split(":")[0] for m in got if m.facts.response_code == "I0"}
        assert answered == {_eui(4), _eui(5)}
    finally:
        front.stop()
        for agent in agents:
            agent.close()
        endpoint.shutdown()
        endpoint.server_close()

"""dbch gateway: CPython agents (dbch agent --serve) bridged by a gateway process to Mosquitto on
loopback with mutual TLS (tests/kits/mosquittokit.py), watched by a paho-mqtt subscriber."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from agent import codes
from agent.examples import DBCH04_CONFIG
from agent.hub import RC_UNKNOWN_OP, Hub
from host_tools.cli import main
from host_tools.fleet.broker import Broker, FleetError, Identity, new_client
from host_tools.servers.simagent import SimAgent
from tests.kits import mosquittokit
from tests.kits.cachekit import private_cache

ROOT = Path(__file__).resolve().parents[2]
EUIS = ("00-DB-12-34-56-78-90-F1", "00-DB-12-34-56-78-90-F2")
NAMES = ("fleet-a", "fleet-b")


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g} s: {what}")


class Watcher:
    """A paho-mqtt subscriber to dbch/# and its replies topic, with a persistent session (its
    subscriptions and queued messages survive a broker restart), keeping every message."""

    def __init__(self, broker: Broker, identity: Identity, name: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.mqtt_mod, self.Properties, self.PacketTypes = mqtt, Properties, PacketTypes
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool, object, float]] = []
        self.replies = f"lab/replies/{name}"
        self.client = new_client(name, identity)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.subscribed = threading.Event()
        self.client.loop_start()
        assert self.subscribed.wait(10), "the watcher did not subscribe"

    def _on_connect(self, client, _u, _flags, reason, _props):
        assert not reason.is_failure, reason
        client.subscribe([("dbch/#", 1), (self.replies, 1)])
        self.subscribed.set()

    def _on_message(self, _client, _u, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain, msg.properties, time.monotonic()))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(m[1], m[2]) for m in self.messages if m[0] == topic]

    def alerts(self, eui: str, code: str) -> list[dict]:
        return [json.loads(p) for p, _ in self.on(f"dbch/{eui}/alert/{code}")]

    def every_alert(self, eui: str) -> list[dict]:
        with self.lock:
            return [json.loads(m[1]) for m in self.messages if m[0].startswith(f"dbch/{eui}/alert/")]

    def command(self, eui: str, command: str, payload: dict | None = None, timeout: float = 10.0) -> dict:
        """The answer to dbch/EUI/cmd/COMMAND, matched by its correlation data."""
        correlation = uuid.uuid4().bytes
        props = self.Properties(self.PacketTypes.PUBLISH)
        props.ResponseTopic = self.replies
        props.CorrelationData = correlation
        body = json.dumps(payload) if payload is not None else ""
        self.client.publish(f"dbch/{eui}/cmd/{command}", body, qos=1, properties=props)

        def answer():
            with self.lock:
                for t, p, _r, pr, _t in self.messages:
                    if t == self.replies and getattr(pr, "CorrelationData", None) == correlation:
                        return json.loads(p)
            return None

        return wait_until(answer, timeout, f"an answer to {command} from {eui}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class GatewayProcess:
    """`dbch gateway --json` as a process; its JSON lines are read by a thread."""

    def __init__(self, lab: Lab, ports=tuple(f"sim:{name}" for name in NAMES), euis=EUIS):
        cmd = [sys.executable, "-m", "host_tools.cli", "gateway", "--broker", lab.broker.url, "--json"]
        cmd += ["--pki", str(lab.pki_dir), "--identity", "gateway"]
        for port in ports:
            cmd += ["--port", port]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
        self.events: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        ready = wait_until(
            lambda: next((e for e in self.events if e["event"] == "ready"), None) or self.proc.poll() is not None,
            30,
            "the gateway ready",
        )
        assert ready is not True, f"the gateway exited {self.proc.returncode}: {self.proc.stderr.read()}"
        assert sorted(h["eui"] for h in ready["hubs"]) == sorted(euis)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(5)


class Lab:
    def __init__(self, tmp: Path):
        self.pki_dir, self.broker = mosquittokit.lab(tmp)
        self.agents: list[subprocess.Popen] = []
        self.gateway: GatewayProcess | None = None
        self.watcher: Watcher | None = None
        self.tmp = tmp

    def start_agents(self) -> None:
        for i in range(len(NAMES)):
            self.agents.append(self.start_agent(i))

    def start_agent(self, i: int) -> subprocess.Popen:
        name, eui = NAMES[i], EUIS[i]
        cmd = [sys.executable, "-m", "host_tools.cli", "agent", "--serve", "--json", "--name", name]
        cmd += ["--fs", str(self.tmp / name), "--eui", eui]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
        lines: list[str] = []
        while not lines or lines[-1] != "}\n":
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        assert json.loads("".join(lines))["eui"] == eui
        return proc

    def identity(self, name: str) -> Identity:
        return Identity.from_pki(self.pki_dir, name)

    def stop(self) -> None:
        if self.watcher:
            self.watcher.close()
        if self.gateway:
            self.gateway.stop(signal.SIGKILL)
        for proc in self.agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.broker.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("serial")
    with private_cache(tmp_path_factory):
        lab = Lab(tmp_path_factory.mktemp("fleet"))
        try:
            lab.broker.start()
            lab.start_agents()
            lab.gateway = GatewayProcess(lab)
            lab.watcher = Watcher(Broker.parse(lab.broker.url), lab.identity("watcher"), "watcher")
            yield lab
        finally:
            lab.stop()


# ----------------------------------------------------------------------------- without a broker


def test_the_broker_address_is_checked():
    assert Broker.parse("mqtts://localhost:1234") == Broker("localhost", 1234)
    assert Broker.parse("mqtts://broker.lab") == Broker("broker.lab", 8883)
    assert Broker.parse("mqtt://localhost") == Broker("localhost", 1883, tls=False)  # loopback only
    assert Broker.parse("mqtt://127.0.0.1:1884") == Broker("127.0.0.1", 1884, tls=False)
    for bad in ("mqtt://broker.lab:1883", "localhost:8883", "mqtts://", "mqtts://h:99999", "mqtts://h:1/x"):
        with pytest.raises(FleetError, match="mqtts://HOST:PORT"):
            Broker.parse(bad)


def test_a_gateway_without_a_pki_says_how_to_make_one(tmp_path, capsys):
    rc = main(["gateway", "--port", "sim:none", "--broker", "mqtts://localhost:1", "--pki", str(tmp_path / "no")])
    assert rc == 1
    assert "dbch pki init" in capsys.readouterr().err


def test_without_mosquitto_the_kit_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(mosquittokit.shutil, "which", lambda _name: None)
    monkeypatch.setattr(mosquittokit, "SBIN", ())
    with pytest.raises(AssertionError, match="scripts/setup-system"):
        mosquittokit.mosquitto_binary()


# ----------------------------------------------------------------------------- through the broker


def test_each_hub_has_its_retained_state_and_is_online(lab):
    for eui in EUIS:  # published once the gateway is connected and the hub has answered its status
        wait_until(lambda eui=eui: lab.watcher.on(f"dbch/{eui}/state"), 10, f"the state of {eui}")
    # a subscriber that connects after that gets them as retained messages
    late = Watcher(Broker.parse(lab.broker.url), lab.identity("watcher"), "late-watcher")
    try:
        for eui in EUIS:
            # retained (a state published while it subscribes may also come live, not retained)
            state = wait_until(
                lambda eui=eui: [m for m in late.on(f"dbch/{eui}/state") if m[1]], 10, f"the retained state of {eui}"
            )
            state = json.loads(state[-1][0])
            assert state["eui"] == eui and state["board"] == "sim"
            assert state["version"] and "masks" in state and set(state["duty"]) >= {"state", "permille"}
            availability = wait_until(lambda eui=eui: late.on(f"dbch/{eui}/availability"), 10, "availability")
            assert availability[-1] == (b"online", True)
    finally:
        late.close()


def test_a_command_is_answered_on_its_response_topic_with_its_correlation_data(lab):
    for eui in EUIS:
        answer = lab.watcher.command(eui, "status")
        assert answer["rc"] == "I0" and answer["data"]["eui"] == eui
    answer = lab.watcher.command(EUIS[0], "config/get")
    assert answer["rc"].startswith("I")
    answer = lab.watcher.command(EUIS[0], "reboot-everything")  # passed on: the agent's own answer
    assert answer["rc"] == RC_UNKNOWN_OP and "reboot-everything" in answer["err"]
    answer = lab.watcher.command(EUIS[0], "repl")  # would take the hub's line from its gateway
    assert answer["rc"] == "E403" and "gateway" in answer["err"]


def test_an_alert_arrives_once_and_leaves_the_outbox(lab):
    eui = EUIS[0]
    answer = lab.watcher.command(eui, "config/set", {"config": DBCH04_CONFIG})
    assert answer["rc"] == "I0", answer
    alerts = wait_until(lambda: lab.watcher.alerts(eui, "8F2A"), 10, "8F2A on the broker")
    time.sleep(3)  # longer than the agent's resend interval (2 s): nothing comes twice
    alerts = lab.watcher.alerts(eui, "8F2A")
    assert len(alerts) == 1 and alerts[0]["data"]["DeviceAlertCode"] == "8F2A" and alerts[0]["eui"] == eui
    assert lab.watcher.alerts(EUIS[1], "8F2A") == []
    every = lab.watcher.every_alert(eui)
    assert len({(a["epoch"], a["seq"]) for a in every}) == len(every)
    assert lab.watcher.command(eui, "status")["data"]["outbox"] == 0
    state = wait_until(
        lambda: [s for s in lab.watcher.on(f"dbch/{eui}/state") if json.loads(s[0])["configured"]], 10, "new state"
    )
    assert json.loads(state[-1][0])["masks"]


def test_an_alert_raised_while_gateway_and_broker_are_down_arrives_once_after(lab, capsys):
    eui, name = EUIS[1], NAMES[1]
    assert lab.gateway.stop() == 0  # it leaves cleanly: the hubs' ports are free
    wait_until(lambda: lab.watcher.on(f"dbch/{eui}/availability")[-1][0] == b"offline", 10, "offline")
    lab.broker.stop()
    assert main(["config", "set", "--port", f"sim:{name}", "--file", str(_config_file(lab.tmp)), "--json"]) == 0
    before = len(lab.watcher.every_alert(eui))
    assert main(["status", "--port", f"sim:{name}", "--json"]) == 0
    waiting = json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")["outbox"]
    assert waiting >= 1  # 8F2A, and what the configuration's channel change raises
    # a gateway that takes the alerts while the broker is down, and is killed before it comes back:
    # no PUBACK came, so nothing was acknowledged to the hub
    lab.gateway = GatewayProcess(lab)
    time.sleep(2)
    assert lab.gateway.stop(signal.SIGKILL) == -signal.SIGKILL
    assert main(["status", "--port", f"sim:{name}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outbox"] == waiting
    # the next one holds them until the broker is back
    lab.gateway = GatewayProcess(lab)
    time.sleep(2)
    assert lab.watcher.alerts(eui, "8F2A") == []
    lab.broker.start()
    alerts = wait_until(lambda: lab.watcher.alerts(eui, "8F2A"), 20, "8F2A after the broker came back")
    time.sleep(3)
    alerts = lab.watcher.alerts(eui, "8F2A")
    assert len(alerts) == 1, alerts
    every = lab.watcher.every_alert(eui)
    assert len(every) - before == waiting, every  # each of them, once
    assert len({(a["epoch"], a["seq"]) for a in every}) == len(every)
    assert wait_until(lambda: lab.watcher.command(eui, "status")["data"]["outbox"] == 0, 10, "an empty outbox")


def _config_file(tmp: Path) -> Path:
    path = tmp / "config.json"
    path.write_text(json.dumps(DBCH04_CONFIG))
    return path


def test_a_hub_whose_agent_restarts_is_attached_again(lab):
    eui = EUIS[1]

    def last_availability():
        seen = lab.watcher.on(f"dbch/{eui}/availability")
        return seen[-1][0] if seen else None

    wait_until(lambda: last_availability() == b"online", 10, "online")
    lab.agents[1].terminate()  # its pty goes with it
    lab.agents[1].wait(10)
    wait_until(lambda: last_availability() == b"offline", 10, "offline once its port is lost")
    assert lab.watcher.command(eui, "status")["rc"] == "E49"  # said at once, not a silence
    lab.agents[1] = lab.start_agent(1)  # the same name, storage and EUI, on a new pty
    wait_until(lambda: last_availability() == b"online", 20, "online again")
    assert lab.watcher.command(eui, "status")["data"]["eui"] == eui
    kinds = [e["event"] for e in lab.gateway.events if e.get("eui") == eui]
    assert "hub-lost" in kinds and "hub-back" in kinds


def _turn_until(gateway, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        gateway.turn()


def test_a_connection_closed_inside_a_publication_is_made_again(lab, tmp_path):
    # the gateway's loop turned by the test itself, on a hub of its own (a CPython agent served by
    # a thread here), so that the connection can die exactly where paho finds it: in publish()
    from host_tools.fleet.gateway import Gateway

    eui = "00-DB-12-34-56-78-90-F9"
    agent = SimAgent(tmp_path / "hub", eui=eui)
    port = agent.open()
    served = threading.Thread(target=agent.run, daemon=True)
    served.start()
    gateway = Gateway([port], Broker.parse(lab.broker.url), lab.identity("gateway"), name="in-test")
    hub = gateway.hubs[0]
    try:
        _turn_until(gateway, hub.connected.is_set, 10, "connected")
        hub.mqtt.socket().shutdown(socket.SHUT_RDWR)  # the connection dies under the loop...
        hub.mqtt.publish(f"dbch/{eui}/probe", "x", qos=1)  # ...and a publication finds it first
        assert hub.mqtt.socket() is None and hub.mqtt_fd is None  # no longer watched
        assert hub.reconnect_at is not None  # and made again: before, the hub stayed off for good
        _turn_until(gateway, hub.connected.is_set, 10, "connected again")
        answers = []
        corr = uuid.uuid4().bytes
        props = lab.watcher.Properties(lab.watcher.PacketTypes.PUBLISH)
        props.ResponseTopic, props.CorrelationData = lab.watcher.replies, corr
        command = json.dumps({"config": DBCH04_CONFIG})
        lab.watcher.client.publish(f"dbch/{eui}/cmd/config/set", command, 1, properties=props)

        def configured_and_alerted() -> bool:
            answers[:] = [
                json.loads(m[1])
                for m in list(lab.watcher.messages)
                if m[0] == lab.watcher.replies and getattr(m[3], "CorrelationData", None) == corr
            ]
            return bool(answers) and bool(lab.watcher.alerts(eui, "8F2A"))

        _turn_until(gateway, configured_and_alerted, 15, "the command answered and its alert on the broker")
        assert answers[0]["rc"] == "I0"
    finally:
        for h in gateway.hubs:
            h.close()
        agent.request_stop()
        served.join(10)
        agent.close()


def test_a_killed_gateway_leaves_its_hubs_offline_through_the_will(lab):
    def last_availability(eui):
        seen = lab.watcher.on(f"dbch/{eui}/availability")
        return seen[-1][0] if seen else None

    for eui in EUIS:
        wait_until(lambda eui=eui: last_availability(eui) == b"online", 10, f"{eui} online")
    lab.gateway.stop(signal.SIGKILL)
    for eui in EUIS:
        wait_until(lambda eui=eui: last_availability(eui) == b"offline", 10, f"{eui} offline by the will")


def test_an_alert_raised_while_the_broker_is_down_arrives_once_after_it_is_back(lab, tmp_path, monkeypatch):
    # a hub served by a thread of this process, so that the test can raise an alert on it while the
    # gateway holds its port: the alert is raised by the hub's own loop (Hub.tick), as its own are
    eui = "00-DB-12-34-56-78-90-F3"
    raise_now = threading.Event()
    tick = Hub.tick
    served: list[Hub] = []  # the hub being served (SimAgent.hub is set when its boot ends)

    def tick_and_raise(hub):
        if not served:
            served.append(hub)
        if raise_now.is_set():
            raise_now.clear()
            hub.raise_alerts([(codes.ALERT_BELOW_NORMAL_LIMITED, None)])
        return tick(hub)

    monkeypatch.setattr(Hub, "tick", tick_and_raise)
    agent = SimAgent(tmp_path / "flash", eui=eui)
    port = agent.open()
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    gateway = None
    try:
        gateway = GatewayProcess(lab, ports=(port,), euis=(eui,))
        wait_until(lambda: lab.watcher.on(f"dbch/{eui}/state"), 10, "its state")
        lab.broker.stop()
        raise_now.set()
        wait_until(lambda: not raise_now.is_set(), 5, "the alert raised")
        time.sleep(2)  # the gateway has it, and the broker is down
        assert len(served[0].outbox) == 1 and lab.watcher.alerts(eui, "8F21") == []
        lab.broker.start()
        wait_until(lambda: lab.watcher.alerts(eui, "8F21"), 20, "8F21 after the broker came back")
        wait_until(lambda: len(served[0].outbox) == 0, 10, "the outbox emptied by the PUBACK")
        time.sleep(3)
        alerts = lab.watcher.alerts(eui, "8F21")
        assert len(alerts) == 1 and alerts[0]["data"]["DeviceAlertCode"] == "8F21", alerts
    finally:
        if gateway is not None:
            assert gateway.stop() == 0
        agent.request_stop()
        thread.join(10)
        agent.close()
    assert not thread.is_alive()

"""The CPython agent on a pty (dbch agent, --port sim[:NAME]): the agent's own code on boards.sim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import tty
from pathlib import Path

import pytest

pytest.importorskip("serial")

from host_tools.cli import main  # noqa: E402
from host_tools.link.client import AgentClient, LinkError  # noqa: E402
from host_tools.link.ports import SerialTransport, resolve  # noqa: E402
from host_tools.servers import simagent  # noqa: E402
from host_tools.servers.ptys import PtyWriter  # noqa: E402
from host_tools.servers.simagent import SimAgent, SimAgentError  # noqa: E402
from tests.kits.cachekit import private_cache  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HUB = "00-DB-12-34-56-78-90-A2"
CONFIG = {
    "LowerBandSubGHzChannels0To26": [3, 4],
    "LowerBandSubGHzChannels27To34": [],
    "LowerBandSubGHzChannels35To61": [],
    "UpperBandSubGHzChannels0To26": [],
    "NormalLimitedDutyCycleThreshold": "1.0",
    "LimitedCriticalDutyCycleThreshold": "2.0",
    "MaximumSubGHzChannelChangesPerWeek": 3,
    "GSMECurfew": 7,
    "ChannelQuieterThreshold": 7,
    "ChannelNoisierThreshold": 12,
    "NonGSMEPoorCommsPercentageThreshold": "60.00",
    "NonGSMEPoorCommsMeasurementPeriods": 130,
    "LocalCHNoiseMeasurementPeriod": 100,
    "LocalCHFailurePercentage": "40.00",
    "LocalCHRetryPercentage": "30.00",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Every agent of this file lives under a private XDG_CACHE_HOME."""
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


class Running:
    """A SimAgent served by a thread of this process (stopped by request_stop)."""

    def __init__(self, agent: SimAgent):
        self.agent = agent
        self.port = agent.open()
        self.thread = threading.Thread(target=agent.run, daemon=True)
        self.thread.start()

    def client(self, timeout: float = 5.0) -> AgentClient:
        return AgentClient(SerialTransport(self.port), timeout=timeout, port=self.port)

    def stop(self) -> None:
        self.agent.request_stop()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the agent did not stop"
        self.agent.close()


@pytest.fixture
def running(tmp_path):
    r = Running(SimAgent(tmp_path / "flash"))
    yield r
    if r.thread.is_alive():
        r.stop()


# ----------------------------------------------------------------------------- pieces


def test_names_and_euis_are_checked():
    for bad in ("", ".hidden", "-x", "a/b", "x" * 65):
        with pytest.raises(SimAgentError, match="invalid agent name"):
            simagent.REGISTRY.check_name(bad)
    assert simagent.check_eui(HUB) == bytes.fromhex(HUB.replace("-", ""))
    assert simagent.check_eui(b"\x01" * 8) == b"\x01" * 8
    assert simagent.check_eui(None) is None
    for bad in ("00-DB", "zz-DB-12-34-56-78-90-A2", "00-DB-12-34-56-78-90-A2-00"):
        with pytest.raises(SimAgentError, match="invalid EUI-64"):
            simagent.check_eui(bad)


def test_provision_keeps_the_identity_in_the_storage(tmp_path):
    fs = tmp_path / "fs"
    assert simagent.provision(fs) == bytes.fromhex(HUB.replace("-", ""))  # the templates' hub
    other = bytes.fromhex("0123456789ABCDEF")
    assert simagent.provision(fs, other) == other
    assert simagent.provision(fs) == other  # kept
    assert (fs / "eui").read_bytes() == other


def test_pty_writer_drops_output_nobody_reads():
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        os.set_blocking(master, False)
        w = PtyWriter(master, wait_s=0.05)
        data = b"x" * (2 * 1024 * 1024)
        assert w.write(data) == len(data)
        assert 0 < w.dropped < len(data)  # the pty took what fits, the rest was dropped
        os.set_blocking(slave, False)
        got = 0
        while True:
            try:
                chunk = os.read(slave, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            got += len(chunk)
        assert got == len(data) - w.dropped
    finally:
        os.close(master)
        os.close(slave)


# ----------------------------------------------------------------------------- the agent in a thread


def test_the_agent_answers_on_its_pty(running):
    assert running.port.startswith("/dev/pts/")
    c = running.client()
    r = c.request("hello")
    assert r.rc == "I0"
    assert r.data["eui"] == HUB and r.data["board"] == "sim" and r.data["boot"] == 1
    assert c.request("no.such.op").rc == "E13"
    assert c.request("config.set", {"config": 5}).rc == "E49"
    r = c.request("status")
    assert r.rc == "I0" and r.data["configured"] is False


def test_reboot_starts_a_new_hub_on_the_same_storage_and_port(running):
    c = running.client()
    assert c.request("config.set", {"config": CONFIG}).rc == "I0"
    assert c.request("reboot").rc == "I0"
    r = c.request("hello")  # same port, same open file: the agent came back behind it
    assert r.data["boot"] == 2
    assert c.request("config.get").data == CONFIG
    assert running.agent.boots == 2
    running.stop()
    # a new process on the same storage: the third boot, the configuration and the outbox kept
    again = Running(SimAgent(running.agent.fs))
    try:
        c = again.client()
        assert c.request("hello", {"events": True}).data["boot"] == 3
        assert c.request("config.get").data == CONFIG
        kinds = []
        for ev in c.poll_events(1.0):
            kinds.append(ev.data.get("DeviceAlertCode"))
            c.ack(ev.seq)
            c.seen.add(ev.seq)
        assert "8F2A" in kinds  # raised before the reboots, delivered after them
    finally:
        again.stop()


def test_a_stop_ends_the_run(running):
    c = running.client()
    assert c.request("hello").rc == "I0"
    running.stop()  # the thread ends (asserted there): one boot, no reboot
    assert running.agent.boots == 1 and running.agent.hub.reboot_requested is False
    with pytest.raises((LinkError, OSError)):  # the pty is gone (or is someone else's by now)
        c.request("hello", timeout=0.5)


def test_eui_given_to_a_new_agent_replaces_the_stored_one(tmp_path):
    r = Running(SimAgent(tmp_path / "fs", eui="00-DB-12-34-56-78-90-C3"))
    try:
        assert r.client().request("hello").data["eui"] == "00-DB-12-34-56-78-90-C3"
    finally:
        r.stop()
    r = Running(SimAgent(tmp_path / "fs"))
    try:
        assert r.client().request("hello").data["eui"] == "00-DB-12-34-56-78-90-C3"
    finally:
        r.stop()


# ----------------------------------------------------------------------------- background agents


def test_ensure_running_starts_one_and_port_sim_finds_it(cache, tmp_path, capsys):
    fs = tmp_path / "fs"
    info = simagent.ensure_running("bg", fs=fs)
    try:
        assert info.port.startswith("/dev/pts/") and Path(info.fs) == fs.resolve() and info.eui == HUB
        state = json.loads(simagent.REGISTRY.state_path("bg").read_text())
        assert state["port"] == info.port and state["pid"] == info.pid
        assert simagent.ensure_running("bg") == info  # reused
        assert resolve("sim:bg") == info.port
        assert resolve("sim:bg", start=False) == info.port
        with pytest.raises(SimAgentError, match="running on"):
            simagent.ensure_running("bg", fs=tmp_path / "other")
        with pytest.raises(SimAgentError, match="running as"):
            simagent.ensure_running("bg", eui="00-DB-12-34-56-78-90-FF")

        assert main(["status", "--port", "sim:bg", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["board"] == "sim" and status["eui"] == HUB

        assert main(["agent", "--status", "--name", "bg", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["pid"] == info.pid
        assert main(["agent", "--list"]) == 0
        assert f"bg: {info.port}" in capsys.readouterr().out
    finally:
        assert main(["agent", "--stop", "--name", "bg"]) == 0
    assert "stopped bg" in capsys.readouterr().out
    assert simagent.read_state("bg") is None and not simagent.REGISTRY.state_path("bg").exists()
    assert main(["agent", "--status", "--name", "bg"]) == 3
    with pytest.raises(SimAgentError, match="not running"):
        resolve("sim:bg", start=False)


def test_cli_port_sim_starts_the_default_agent(cache, capsys):
    try:
        assert main(["status", "--port", "sim", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["board"] == "sim"
        info = simagent.read_state("default")
        assert info is not None and Path(info.fs) == simagent.REGISTRY.default_fs("default")
    finally:
        simagent.stop("default")


def test_serve_in_the_foreground_prints_the_port_and_ends_on_sigterm(cache, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    fs = tmp_path / "fs"
    cmd = [sys.executable, "-m", "host_tools.cli", "agent", "--serve", "--json", "--name", "fg", "--fs", str(fs)]
    cmd += ["--eui", "00-db-12-34-56-78-90-d4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        lines = []
        while not lines or lines[-1] != "}\n":
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        ready = json.loads("".join(lines))
        assert set(ready) >= {"port", "pid", "fs"} and ready["pid"] == proc.pid
        assert ready["fs"] == str(fs.resolve()) and ready["eui"] == "00-DB-12-34-56-78-90-D4"
        c = AgentClient(SerialTransport(ready["port"]), timeout=5)
        assert c.request("hello").data["eui"] == "00-DB-12-34-56-78-90-D4"
        c.transport.close()
        assert simagent.read_state("fg").pid == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not simagent.REGISTRY.state_path("fg").exists()
    assert simagent.read_state("fg") is None


def test_a_second_server_for_the_same_name_is_refused(cache, tmp_path):
    info = simagent.ensure_running("twice", fs=tmp_path / "fs")
    try:
        with pytest.raises(SimAgentError, match="already running"):
            simagent.serve("twice", fs=tmp_path / "fs")
    finally:
        assert simagent.stop("twice") is True
    assert simagent.stop("twice") is False
    assert simagent.read_state("twice") is None and info.pid > 0

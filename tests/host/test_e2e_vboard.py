"""End to end: the host tools against the MicroPython agent flashed to a virtual board, and the same
client tests against the CPython agent on a pty (--port sim:NAME).

One flashed virtual board and one simulated agent serve the whole module; every board lives under
a private XDG_CACHE_HOME and is stopped at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("serial")
pytest.importorskip("mpremote")

from agent.eui import parse_eui  # noqa: E402
from host_tools.cli import main  # noqa: E402
from host_tools.duis.config import canonical_config  # noqa: E402
from host_tools.duis.requests import parse_request  # noqa: E402
from host_tools.firmware import flash, handover, romfs  # noqa: E402
from host_tools.link.agent import alerts_seen, seen_key  # noqa: E402
from host_tools.link.client import AgentClient, LinkError  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.servers import (
    simagent,  # noqa: E402
    vboard,  # noqa: E402
)
from tests.kits.cachekit import private_cache  # noqa: E402

TEMPLATE = "DBCH04_6.28_SUCCESS_REQUEST_DUIS.XML"  # in the duis_templates_dir fixture's folder
NAME = "e2e"
FRESH = "e2e-fresh"
# distinct devices: the host's seen-set of alerts is kept per EUI
VBOARD_EUI = "00-DB-12-34-56-78-90-A3"
SIM_EUI = "00-DB-12-34-56-78-90-A4"
CONFIG = {
    "LowerBandSubGHzChannels0To26": [5, 6, 7],
    "LowerBandSubGHzChannels27To34": [],
    "LowerBandSubGHzChannels35To61": [40, 41],
    "UpperBandSubGHzChannels0To26": [],
    "NormalLimitedDutyCycleThreshold": "1.1",
    "LimitedCriticalDutyCycleThreshold": "2.3",
    "MaximumSubGHzChannelChangesPerWeek": 4,
    "GSMECurfew": 9,
    "ChannelQuieterThreshold": 6,
    "ChannelNoisierThreshold": 11,
    "NonGSMEPoorCommsPercentageThreshold": "55.00",
    "NonGSMEPoorCommsMeasurementPeriods": 120,
    "LocalCHNoiseMeasurementPeriod": 90,
    "LocalCHFailurePercentage": "35.00",
    "LocalCHRetryPercentage": "25.00",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


@pytest.fixture(scope="module")
def flashed(cache, tmp_path_factory):
    """The virtual board with the agent flashed (the real mpremote path)."""
    info = vboard.ensure_running(NAME, fs=tmp_path_factory.mktemp("flash"))
    result = flash.flash(info.port, "unix", eui=parse_eui(VBOARD_EUI))
    return info, result


@pytest.fixture(scope="module")
def sim(cache, tmp_path_factory):
    return simagent.ensure_running(NAME, fs=tmp_path_factory.mktemp("simfs"), eui=SIM_EUI)


@dataclass
class Target:
    kind: str
    spec: str  # the --port value
    port: str  # the pty path
    eui: str


@pytest.fixture(params=["vboard", "sim"])
def target(request):
    if request.param == "vboard":
        info, _ = request.getfixturevalue("flashed")
        agent_up(info.port)
        return Target("vboard", f"vboard:{NAME}", info.port, VBOARD_EUI)
    info = request.getfixturevalue("sim")
    return Target("sim", f"sim:{NAME}", info.port, SIM_EUI)


def client(port: str, timeout: float = 5.0) -> AgentClient:
    return AgentClient(SerialTransport(port), timeout=timeout, port=port)


def hello(port: str, wait: float = 20.0) -> dict:
    """The agent's hello, waiting for it to come up (after a reboot or a flash)."""
    deadline = time.monotonic() + wait
    last = None
    while time.monotonic() < deadline:
        try:
            c = client(port, 1.0)
        except LinkError as e:
            last = e
            time.sleep(0.1)
            continue
        try:
            r = c.request("hello")
            if r.ok:
                return r.data
        except LinkError as e:
            last = e
        finally:
            c.transport.close()
    raise AssertionError(f"no hello from {port} within {wait} s: {last}")


def agent_up(port: str) -> None:
    """Flash the virtual board again if an earlier test left it without a running agent."""
    try:
        hello(port, 2.0)
    except AssertionError:
        flash.flash(port, "unix")


def reboot(port: str) -> dict:
    before = hello(port)["boot"]
    c = client(port)
    try:
        assert c.request("reboot").rc == "I0"
    finally:
        c.transport.close()
    time.sleep(0.2)
    after = hello(port, 10.0)
    assert after["boot"] == before + 1, (before, after)
    return after


def dbch(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def drain_alerts(capsys, spec: str) -> list[dict]:
    rc, out, err = dbch(capsys, "alerts", "--port", spec, "--json", "--wait", "1")
    assert rc == 0, err
    return json.loads(out)


# ----------------------------------------------------------------------------- flashing


def test_flash_puts_the_agent_on_the_board(flashed):
    info, res = flashed
    assert res.hello["board"] == "unix" and res.hello["eui"] == VBOARD_EUI and res.hello["boot"] == 1
    assert "main.py" in res.written and res.bytes_written > 10000
    # the virtual board's default: slot A's modules in one ROMFS image, imported in place
    assert res.layout == "romfs" and romfs.IMAGE_FILE in res.written
    fs = Path(info.fs)
    assert (fs / "main.py").read_text().startswith("# Written by dbch flash")
    assert (fs / romfs.IMAGE_FILE).stat().st_size > 10000  # what was written is in the board's flash
    assert not list(fs.glob("slots/a/**/*.mpy"))
    assert (fs / "data" / "eui").read_bytes() == parse_eui(VBOARD_EUI)


def test_reflash_of_a_running_board_writes_nothing_and_leaves_it_running(flashed):
    info, first = flashed
    agent_up(info.port)
    boot = hello(info.port)["boot"]
    res = flash.flash(info.port, "unix")
    assert res.written == [] and res.removed == [] and res.bytes_written == 0
    assert res.unchanged == len(first.written) + first.unchanged
    # the agent said what is flashed: no hand-over to the REPL, no reboot
    assert res.hello["boot"] == boot and res.hello["eui"] == VBOARD_EUI


def test_mpremote_works_while_the_agent_runs(flashed):
    info, _ = flashed
    agent_up(info.port)
    assert hello(info.port)["board"] == "unix"
    assert handover.hand_over(info.port)  # Ctrl-C is data to the agent: it gives the line on request
    r = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", info.port, "exec", "print(1+1)"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"
    # the agent left for the REPL; a re-flash (or reset) brings it back
    res = flash.flash(info.port, "unix")
    assert res.written == [] and res.hello["eui"] == VBOARD_EUI
    c = client(info.port)
    try:
        assert c.request("status").rc == "I0"
    finally:
        c.transport.close()


# ----------------------------------------------------------------------------- client tests, both agents


def test_config_over_serial_with_the_cli(target, capsys, duis_templates_dir):
    template = duis_templates_dir / TEMPLATE
    rc, out, err = dbch(capsys, "config", "set", "--port", target.spec, "--duis", str(template))
    assert rc == 0, err
    assert "I0: configuration applied" in out
    rc, out, _ = dbch(capsys, "config", "get", "--port", target.spec, "--json")
    assert rc == 0
    assert json.loads(out) == canonical_config(parse_request(template.read_bytes()).args)
    # a refused change names the code and the field, and changes nothing
    rc, out, err = dbch(capsys, "config", "set", "--port", target.spec, "--page", "28=1")
    assert rc == 1 and "E062802" in err and "LowerBandSubGHzChannels0To26" in err
    rc, out, _ = dbch(capsys, "config", "get", "--port", target.spec, "--json")
    assert json.loads(out)["LowerBandSubGHzChannels0To26"] == [1, 2]
    rc, out, _ = dbch(capsys, "status", "--port", target.spec)
    assert rc == 0 and target.eui in out and "masks" in out


def test_config_survives_a_reboot(target):
    c = client(target.port)
    try:
        r = c.request("config.set", {"config": CONFIG})
        assert r.rc == "I0", r.err
    finally:
        c.transport.close()
    reboot(target.port)
    c = client(target.port)
    try:
        assert c.request("config.get").data == CONFIG
        assert c.request("status").data["configured"] is True
    finally:
        c.transport.close()


def test_config_survives_a_reflash(flashed):
    info, _ = flashed
    agent_up(info.port)
    c = client(info.port)
    try:
        assert c.request("config.set", {"config": CONFIG}).rc == "I0"
    finally:
        c.transport.close()
    res = flash.flash(info.port, "unix")
    c = client(info.port)
    try:
        assert c.request("config.get").data == CONFIG
        assert c.request("hello").data["boot"] == res.hello["boot"]
    finally:
        c.transport.close()


def test_alerts_arrive_exactly_once_across_a_reboot(target, capsys):
    drain_alerts(capsys, target.spec)
    c = client(target.port)
    try:
        for _ in range(3):  # three configurations: at least three 8F2A alerts waiting
            assert c.request("config.set", {"config": CONFIG}).rc == "I0"
        waiting = c.request("status").data["outbox"]
        assert waiting >= 3
        # a host receives three, records them as seen, and dies after acknowledging two
        hello = c.request("hello", {"events": True})
        assert hello.rc == "I0"
        key = seen_key(hello.data)
        first = []
        for ev in c.poll_events(5.0):
            first.append(ev)
            if len(first) == 3:
                break
        assert len(first) == 3
        store = alerts_seen(key)
        store.items |= {ev.seq for ev in first}
        store.save()
        for ev in first[:2]:
            c.ack(ev.seq)
        time.sleep(0.2)  # let the acknowledgements reach the agent
    finally:
        c.transport.close()
    reboot(target.port)
    rest = drain_alerts(capsys, target.spec)
    shown = [ev["seq"] for ev in rest]
    assert len(shown) == len(set(shown))  # none twice in one run
    assert not set(shown) & {ev.seq for ev in first}  # none of the ones already seen
    assert len(shown) + 3 >= waiting  # the rest arrived (possibly with alerts of the reboot)
    codes = [ev.data.get("DeviceAlertCode") for ev in first] + [ev["data"].get("DeviceAlertCode") for ev in rest]
    assert codes.count("8F2A") >= 3
    # the third one, delivered again after the reboot, was acknowledged without being shown
    c = client(target.port)
    try:
        assert c.request("status").data["outbox"] == 0
    finally:
        c.transport.close()
    stored = json.loads(alerts_seen(key).path.read_text())
    assert {ev.seq for ev in first} | set(shown) <= set(stored)
    assert drain_alerts(capsys, target.spec) == []  # and nothing comes a second time


# ----------------------------------------------------------------------------- errors a user meets


def test_no_such_port_is_a_clear_error(capsys):
    rc, out, err = dbch(capsys, "status", "--port", "/dev/nonexistent")
    assert rc == 1 and out == ""
    assert "cannot open /dev/nonexistent" in err and "Traceback" not in err


def test_a_board_without_the_agent_says_to_flash_it(cache, tmp_path, capsys):
    info = vboard.ensure_running(FRESH, fs=tmp_path / "empty")
    try:
        rc, out, err = dbch(capsys, "status", "--port", f"vboard:{FRESH}", "--timeout", "1.5")
        assert rc == 1 and out == ""
        assert "no answer to 'status'" in err and "is the agent flashed" in err and "dbch flash" in err
        assert not (Path(info.fs) / "main.py").exists()
    finally:
        vboard.stop(FRESH)


def test_port_names_that_cannot_work_are_clear_errors(cache, capsys):
    from host_tools.link.ports import resolve

    rc, out, err = dbch(capsys, "status", "--port", "vboard:..bad")
    assert rc == 1 and "invalid virtual board name" in err and "Traceback" not in err
    rc, out, err = dbch(capsys, "status", "--port", "sim:..bad")
    assert rc == 1 and "invalid agent name" in err
    with pytest.raises(vboard.VBoardError, match="is not running"):
        resolve("vboard:e2e-never", start=False)  # and it is not started by asking
    assert vboard.read_state("e2e-never") is None

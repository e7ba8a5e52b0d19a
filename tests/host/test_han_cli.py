"""`dbch han list|add|remove|script|push` on a virtual board (the agent flashed on the MicroPython
unix port, its simulated devices beside it) and on the CPython agent: devices join over the
simulated radio, the table shows them, a flood drives the hub into Limited and 8F20 names the
flooding device, a device past the board's capacity is refused with 8F2D, and bad input gets a
clear error."""

from __future__ import annotations

import json
import shutil

import pytest

from agent.eui import parse_eui
from agent.examples import DBCH04_CONFIG
from host_tools.cli import main
from host_tools.link.agent import Agent
from host_tools.servers import simagent, vboard
from tests.kits.cachekit import private_cache

NAME = "han"
VBOARD_EUI = "00-DB-12-34-56-78-90-B7"
SIM_EUI = "00-DB-12-34-56-78-90-B8"
ESME = "00-00-00-00-00-00-05-01"
IHD = "00-00-00-00-00-00-05-02"
# DBCH04 on page 30 alone: channels held to 2.5 % (README "Regulated duty-cycle limits"), above
# the configured thresholds, so a flood makes the hub Limited before anything else binds
PAGE_30_CONFIG = dict(
    DBCH04_CONFIG, LowerBandSubGHzChannels0To26=[], LowerBandSubGHzChannels27To34=[], UpperBandSubGHzChannels0To26=[]
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


@pytest.fixture(scope="module", params=["vboard", "sim"])
def port(request, cache, tmp_path_factory):
    """A configured hub on a fresh board of each kind: its --port value."""
    if request.param == "vboard":
        if shutil.which("micropython") is None:
            pytest.skip("needs the MicroPython unix port")
        from host_tools.firmware import flash

        info = vboard.ensure_running(NAME, fs=tmp_path_factory.mktemp("flash"))
        flash.flash(info.port, "unix", eui=parse_eui(VBOARD_EUI))
        spec = f"vboard:{NAME}"
    else:
        simagent.ensure_running(NAME, fs=tmp_path_factory.mktemp("simfs"), eui=SIM_EUI)
        spec = f"sim:{NAME}"
    agent = Agent.open(spec, timeout=20)
    try:
        assert agent.set_config(PAGE_30_CONFIG).ok
        agent.subscribe()
        list(agent.receive(0.5))  # the configuration's alerts
    finally:
        agent.close()
    yield spec
    if request.param == "vboard":
        vboard.stop(NAME)
    else:
        simagent.stop(NAME)


def dbch(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def alerts(spec):
    agent = Agent.open(spec, timeout=20)
    try:
        agent.subscribe()
        return [(ev.data["DeviceAlertCode"], ev.data.get("payload")) for ev in agent.receive(1.0) if ev.kind == "N54"]
    finally:
        agent.close()


def test_devices_join_and_are_listed(port, capsys):
    rc, out, err = dbch(capsys, "han", "add", ESME, "ESME", "--port", port)
    assert rc == 0, err
    assert out.strip() == f"{ESME} ESME: joined, normal"
    rc, out, err = dbch(capsys, "han", "add", IHD, "IHD", "--port", port, "--json")
    assert rc == 0 and json.loads(out)["joined"] is True, err
    rc, out, err = dbch(capsys, "han", "list", "--port", port, "--json")
    data = json.loads(out)
    rows = {r["eui"]: r for r in data["devices"]}
    assert {ESME, IHD} <= set(rows)
    assert rows[IHD]["type"] == "IHD" and rows[IHD]["joined"] and not rows[IHD]["suspended"]
    assert {d["eui"] for d in data["simulated"]} >= {ESME, IHD}
    rc, out, err = dbch(capsys, "han", "list", "--port", port)
    assert rc == 0 and "device(s) joined; duty cycle normal" in out.splitlines()[0], out
    assert any(line.startswith(f"{IHD}  IHD    yes     no") for line in out.splitlines()), out


def test_a_noisy_channel_moves_the_hub(port, capsys):
    # before the flood: a hub whose duty cycle is over Normal refuses a scan (8F28
    # DutyCycleUsageIsTooHigh, agent/agility.py)
    agent = Agent.open(port, timeout=20)
    try:
        before = agent.request("channel").data
    finally:
        agent.close()
    rc, out, err = dbch(
        capsys,
        "han",
        "noise",
        str(before["page"]),
        str(before["channel"]),
        "-60",
        "--minutes",
        "5",
        "--port",
        port,
        "--json",
    )
    assert rc == 0, err
    d = json.loads(out)
    assert d["interference"] == [[before["page"], before["channel"], -60]]
    assert (d["channel"]["page"], d["channel"]["channel"]) != (before["page"], before["channel"])
    moved = [p for c, p in alerts(port) if c == "8F26"]
    assert moved and (moved[-1]["page"], moved[-1]["channel"]) == (d["channel"]["page"], d["channel"]["channel"])
    rc, out, err = dbch(capsys, "han", "noise", str(before["page"]), str(before["channel"]), "--port", port)
    assert rc == 0 and out.startswith("interference: none;"), out


def test_a_flood_is_suspended_by_its_eui(port, capsys):
    rc, out, err = dbch(capsys, "han", "script", IHD, "flood", "--minutes", "12", "--port", port, "--json")
    assert rc == 0, err
    assert json.loads(out)["duty"] in ("limited", "critical"), out
    got = alerts(port)
    assert ("8F20", {"DeviceIDToSuspend": IHD}) in got, got
    rc, out, err = dbch(capsys, "han", "list", "--port", port, "--json")
    rows = {r["eui"]: r for r in json.loads(out)["devices"]}
    assert rows[IHD]["suspended"] and rows[IHD]["airtime_us"] > rows[ESME]["airtime_us"], rows
    assert dbch(capsys, "han", "script", IHD, "normal", "--port", port)[0] == 0


def test_past_capacity_a_device_is_refused_with_8F2D(port, capsys):
    rc, out, err = dbch(capsys, "han", "list", "--port", port, "--json")
    data = json.loads(out)
    free = data["capacity"] - len(data["devices"])
    for i in range(free):
        assert dbch(capsys, "han", "add", f"00-00-00-00-00-00-06-{i:02X}", "PPMID", "--port", port)[0] == 0
    late = "00-00-00-00-00-00-07-00"
    rc, out, err = dbch(capsys, "han", "add", late, "CAD", "--port", port)
    assert rc == 0 and out.strip() == f"{late} CAD: refused 1x (no capacity), normal", out
    assert ("8F2D", {"DeviceID": late, "DeviceType": "CAD"}) in alerts(port)
    rc, out, err = dbch(capsys, "han", "remove", late, "--port", port)
    assert rc == 0 and out.strip() == f"{late} left"


def test_bad_input_gets_a_clear_error(port, capsys):
    rc, out, err = dbch(capsys, "han", "add", "01-02", "ESME", "--port", port)
    assert rc == 1 and "is not an EUI-64" in err and "00-00-00-00-00-00-01-01" in err
    rc, out, err = dbch(capsys, "han", "remove", "00-00-00-00-00-00-09-09", "--port", port)
    assert rc == 1 and "han remove 00-00-00-00-00-00-09-09 failed: E49 no such device" in err
    rc, out, err = dbch(capsys, "han", "push", "00-00-00-00-00-00-09-09", "--port", port)
    assert rc == 1 and "has not joined this hub" in err
    with pytest.raises(SystemExit):
        main(["han", "add", ESME, "TOASTER", "--port", port])

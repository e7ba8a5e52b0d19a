"""`dbch selftest` against the MicroPython agent on a virtual board and the CPython agent on a pty."""

from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("serial")
pytest.importorskip("mpremote")

from agent.eui import parse_eui  # noqa: E402
from host_tools.cli import main  # noqa: E402
from host_tools.cli.selftest import format_table  # noqa: E402
from host_tools.duis import assets as duis_assets  # noqa: E402
from host_tools.firmware import flash  # noqa: E402
from host_tools.link.client import AgentClient  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.selftest import checks as selftest  # noqa: E402
from host_tools.selftest.harness import FAIL, PASS, SKIP, Check, Report  # noqa: E402
from host_tools.servers import (
    simagent,  # noqa: E402
    vboard,  # noqa: E402
)
from tests.kits.cachekit import private_cache  # noqa: E402

NAME = "selftest"
VBOARD_EUI = "00-DB-12-34-56-78-90-B5"
SIM_EUI = "00-DB-12-34-56-78-90-B6"
EXPECTED = {
    "protocol: unknown operation": "E13",
    "protocol: missing argument": "E49",
    "protocol: argument of the wrong type": "E49",
    "DUIS 6.30 read configuration": "I0",
    "DUIS E11 service for another device type": "E11",
    "DUIS E13 request type not valid for the URL": "E13",
    "DUIS E19 device doesn't exist": "E19",
    "DUIS E55 duplicate request ID": "E55",
    "front: 6.28 answered by the hub": "I99 front, I0 hub",
    "front: E11 service for another device type": "E11 front",
    "front: E13 request type not valid for the URL": "E13 front",
    "front: E19 device doesn't exist": "E19 front",
    "front: E4 before E11": "E4 front",
    "front: E4 before E13": "E4 front",
    "front: E4 before E19": "E4 front",
    "config: valid configuration": "I0",
    "config: one channel on a used page": "E062802",
    "config: channel outside its page": "E062801",
    "config: parameter out of range": "E062803",
    "reboot: acknowledged": "I0",
}
DUTY = ("alert: limited duty cycle", "alert: critical duty cycle", "alert: duty cycle back to normal")
ORIGINAL = {
    "LowerBandSubGHzChannels0To26": [10, 11],
    "LowerBandSubGHzChannels27To34": [30, 31],
    "LowerBandSubGHzChannels35To61": [],
    "UpperBandSubGHzChannels0To26": [],
    "NormalLimitedDutyCycleThreshold": "1.0",
    "LimitedCriticalDutyCycleThreshold": "2.0",
    "MaximumSubGHzChannelChangesPerWeek": 2,
    "GSMECurfew": 30,
    "ChannelQuieterThreshold": 5,
    "ChannelNoisierThreshold": 10,
    "NonGSMEPoorCommsPercentageThreshold": "50.00",
    "NonGSMEPoorCommsMeasurementPeriods": 100,
    "LocalCHNoiseMeasurementPeriod": 120,
    "LocalCHFailurePercentage": "30.00",
    "LocalCHRetryPercentage": "20.00",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


@pytest.fixture(scope="module")
def vboard_spec(cache, tmp_path_factory):
    info = vboard.ensure_running(NAME, fs=tmp_path_factory.mktemp("flash"))
    flash.flash(info.port, "unix", eui=parse_eui(VBOARD_EUI))
    return f"vboard:{NAME}"


@pytest.fixture(scope="module")
def sim_spec(cache, tmp_path_factory):
    simagent.ensure_running(NAME, fs=tmp_path_factory.mktemp("simfs"), eui=SIM_EUI)
    return f"sim:{NAME}"


def run_cli(capsys, *argv: str) -> tuple[int, dict | str, str]:
    capsys.readouterr()
    rc = main(["selftest", "--reboot-timeout", "10", *argv])
    out = capsys.readouterr()
    try:
        return rc, json.loads(out.out), out.err
    except ValueError:
        return rc, out.out, out.err


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def request(port: str, op: str, args: dict | None = None):
    c = AgentClient(SerialTransport(port), timeout=5, port=port)
    try:
        return c.request(op, args)
    finally:
        c.transport.close()


def assert_all_pass(report: dict, eui: str) -> None:
    """Every check passed (the restore row is judged by the caller)."""
    checks = {n: c for n, c in by_name(report).items() if not n.startswith("restore")}
    failed = {n: c for n, c in checks.items() if c["result"] != PASS}
    assert not failed, failed
    for name, rc in EXPECTED.items():
        assert checks[name]["expected"] == rc and checks[name]["got"] == rc, checks[name]
    for name in DUTY:
        assert checks[name]["result"] == PASS
    assert checks["alert: limited duty cycle"]["got"].startswith("N54 8F20 E59")
    assert checks["alert: critical duty cycle"]["got"] == "N54 8F22 E59"
    assert checks["reboot: boot count + 1"]["result"] == PASS
    assert checks["reboot: configuration kept"]["got"] == "same"
    assert report["failed"] == 0 and report["device"]["eui"] == eui


def test_selftest_passes_on_the_virtual_board(vboard_spec, capsys, duis_schema_dir):
    rc, report, err = run_cli(capsys, "--port", vboard_spec, "--schema", str(duis_schema_dir), "--json")
    assert rc == 0, report
    assert_all_pass(report, VBOARD_EUI)
    assert report["device"]["board"] == "unix"
    # a new board had no configuration: there is none to go back to, and the report says so
    restore = by_name(report)["restore: original configuration"]
    assert restore["result"] == SKIP and "no configuration before the run" in restore["detail"]
    assert report["skipped"] == 1


def test_selftest_passes_on_the_cpython_agent_and_restores_the_configuration(sim_spec, capsys, duis_schema_dir):
    port = simagent.read_state(NAME).port
    assert request(port, "config.set", {"config": ORIGINAL}).rc == "I0"  # its 8F2A waits in the outbox
    rc, report, err = run_cli(capsys, "--port", sim_spec, "--schema", str(duis_schema_dir), "--json")
    assert rc == 0, report
    assert report["device"]["board"] == "sim"
    assert_all_pass(report, SIM_EUI)
    assert report["skipped"] == 0
    restore = by_name(report)["restore: original configuration"]
    assert restore["result"] == PASS and restore["got"] == "I0"
    assert request(port, "config.get").data == ORIGINAL
    status = request(port, "status").data
    assert status["duty"]["state"] == "normal"
    # the alert that was waiting before the run is listed, not lost unseen
    assert any(e["kind"] == "N54" and e["data"]["DeviceAlertCode"] == "8F2A" for e in report["drained"])


def test_without_a_schema_the_duis_checks_skip(sim_spec, capsys, monkeypatch, tmp_path):
    # none given, none fetched, and no npm to fetch one with
    monkeypatch.delenv("DBCH_DUIS_SCHEMA_DIR", raising=False)
    monkeypatch.setattr(duis_assets, "cache_root", lambda: tmp_path / "cache")
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    rc, out, err = run_cli(capsys, "--port", sim_spec)
    assert rc == 0, out
    table = out.splitlines()
    duis_rows = [line for line in table if line.startswith(("DUIS ", "front: "))]
    assert len(duis_rows) == 12 and all(line.rstrip().endswith(SKIP) for line in duis_rows)
    assert "no DUIS schema: cannot fetch" in out and "install Node.js's npm" in out and "--schema DIR" in out
    assert any(line.startswith("config: valid configuration") and line.endswith(PASS) for line in table)
    assert "0 failed, 12 skipped" in out


def test_a_real_time_clock_skips_the_duty_cycle_alerts(cache, tmp_path, duis_schema_dir):
    from hal.mcu import McuClock

    agent = simagent.SimAgent(tmp_path / "fs", make_clock=McuClock)
    port = agent.open()
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        report = selftest.Selftest(port, schema=str(duis_schema_dir)).run()
    finally:
        agent.request_stop()
        thread.join(5)
        agent.close()
    checks = {c.name: c for c in report.checks}
    for name in DUTY:
        assert checks[name].result == SKIP and "real time" in checks[name].detail
    assert checks["alert: configuration changed"].result == PASS
    assert checks["reboot: boot count + 1"].result == PASS
    assert report.ok and report.count(FAIL) == 0
    # no configuration before the run: nothing to restore, and the table says so
    assert checks["restore: original configuration"].result == SKIP


def test_a_failing_check_fails_the_run(sim_spec, capsys, monkeypatch, duis_schema_dir):
    bad = dict(selftest.SELFTEST_CONFIG, NormalLimitedDutyCycleThreshold="2.5")
    monkeypatch.setattr(selftest, "SELFTEST_CONFIG", bad)
    monkeypatch.setenv("DBCH_DUIS_SCHEMA_DIR", str(duis_schema_dir))
    rc, out, err = run_cli(capsys, "--port", sim_spec)
    assert rc == 1
    row = next(line for line in out.splitlines() if line.startswith("config: valid configuration"))
    assert "E062803" in row and row.endswith(FAIL)
    assert "failed" in out.splitlines()[-1]


def test_no_board_is_a_clear_error(capsys):
    rc, out, err = run_cli(capsys, "--port", "/dev/nonexistent")
    assert rc == 1 and out == ""
    assert "cannot open /dev/nonexistent" in err


def test_the_table_and_the_report():
    report = Report(port="p", device={"eui": "X", "board": "b"})
    report.checks = [
        Check("one", "I0", "I0", PASS),
        Check("two", "E13", "E49", FAIL, "wrong code"),
        Check("three", "N54", "-", SKIP, "no clock"),
        Check("four", "N54", "-", SKIP, "no clock"),
    ]
    assert not report.ok and (report.count(PASS), report.count(FAIL), report.count(SKIP)) == (1, 1, 2)
    text = format_table(report)
    lines = text.splitlines()
    assert lines[0].split() == ["check", "expected", "got", "result"]
    assert lines[2].split() == ["one", "I0", "I0", PASS] and lines[3].split() == ["two", "E13", "E49", FAIL]
    assert "  two: wrong code" in text and "  three, four: no clock" in text  # one note per reason
    assert lines[-1].endswith("1 passed, 1 failed, 2 skipped in 0.0 s")
    data = report.to_json()
    assert data["failed"] == 1 and data["checks"][1] == {
        "name": "two",
        "expected": "E13",
        "got": "E49",
        "result": FAIL,
        "detail": "wrong code",
    }
    report.checks.pop(1)
    assert report.ok

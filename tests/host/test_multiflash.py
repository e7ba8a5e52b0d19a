"""`dbch flash` with several ports: the boards are flashed side by side from one compiled image,
each one's progress and result keyed by its port; one board that fails does not stop the others,
and the exit status and the summary say which failed and why."""

from __future__ import annotations

import argparse
import io
import json
import os

import pytest

from agent import VERSION
from host_tools.cli.board_lines import BoardLines
from host_tools.cli.options import ports_of
from host_tools.cli.output import CommandError
from host_tools.firmware import flash, many
from host_tools.firmware.flash import FlashError, FlashResult
from host_tools.pytest_plugin import run_dbch

# ----------------------------------------------------------------------------- the --port values


def _ports(port):
    return ports_of(argparse.Namespace(port=port, start=False))


def test_ports_repeated_and_comma_lists_keep_their_order():
    assert _ports(["vboard:a,vboard:b", "/dev/ttyUSB0"]) == ["vboard:a", "vboard:b", "/dev/ttyUSB0"]
    assert _ports("sim") == ["sim"]  # given before the command: one value
    started = ports_of(argparse.Namespace(port=["vboard:x"], start=True))
    assert started == ["vboard:x"] and started[0].start


@pytest.mark.parametrize("given, says", [(["a,,b"], "empty port"), (["a", "b,a"], "given twice")])
def test_bad_port_lists_are_refused(given, says):
    with pytest.raises(CommandError, match=says):
        _ports(given)


# ----------------------------------------------------------------------------- many boards, no hardware


def test_one_compile_for_all_boards_and_a_failing_board_stops_no_other(monkeypatch):
    compiles = []
    real_slot_files = flash.slot_files

    def slot_files(board, version, debug=False):
        compiles.append(board)
        return real_slot_files(board, version, debug)

    def fake_flash(port, board, *, progress, slot, **_kw):
        assert slot and all(p.startswith(flash.SLOT + "/") for p in slot)
        progress("compiled 1 modules")
        if port == "/dev/bad":
            raise FlashError(f"cannot open {port}: no such device")
        for path, data in sorted(slot.items())[:3]:
            progress(f"  write {path} ({len(data)} bytes)")
        progress("rebooted; waiting for the agent's hello")
        res = FlashResult(port=port, board=board, bytes_written=sum(len(d) for d in slot.values()))
        res.hello = {"eui": f"EUI-{port}"}
        return res

    monkeypatch.setattr(flash, "slot_files", slot_files)
    monkeypatch.setattr(flash, "flash", fake_flash)
    events = []
    targets = [
        ("one", "/dev/one"),
        ("bad", "/dev/bad"),
        ("gone", LookupError("no board named gone")),
        ("two", "/dev/two"),
    ]
    outcomes = many.flash_many(targets, "unix", on_event=events.append)

    assert compiles == ["unix"]
    assert [o.port for o in outcomes] == ["one", "bad", "gone", "two"]
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[1].error == "cannot open /dev/bad: no such device"
    assert outcomes[2].error == "LookupError: no board named gone"
    results = {e["port"]: e for e in events if e["event"] == "result"}
    assert sorted(results) == ["bad", "gone", "one", "two"]  # one result per board
    assert results["one"]["eui"] == "EUI-/dev/one" and results["one"]["ok"]
    writes = [e for e in events if e["port"] == "two" and e.get("phase") == "write"]
    assert len(writes) == 3 and writes[-1]["bytes"] > writes[0]["bytes"] > 0
    total = many.image_total(real_slot_files("unix", VERSION), "unix", None)
    assert all(e["total"] == total and e["percent"] == round(100 * e["bytes"] / total, 1) for e in writes)
    assert all(json.loads(json.dumps(e, default=str)) for e in events)


def test_board_lines_redraw_in_place_on_a_terminal_and_write_plain_lines_elsewhere():
    events = [
        {
            "event": "progress",
            "port": "a",
            "phase": "write",
            "message": "write x.mpy (5 bytes)",
            "bytes": 5,
            "total": 10,
            "percent": 50.0,
        },
        {
            "event": "progress",
            "port": "b",
            "phase": "connect",
            "message": "compiled 2 modules",
            "bytes": 0,
            "total": 10,
            "percent": 0.0,
        },
        {"event": "result", "port": "b", "ok": False, "error": "cannot open b"},
    ]
    live, plain = io.StringIO(), io.StringIO()
    draw, log = BoardLines(["a", "b"], live, live=True), BoardLines(["a", "b"], plain, live=False)
    for ev in events:
        draw(ev)
        log(ev)
    screens = live.getvalue().split("\x1b[2F")  # each redraw goes back up the two boards' lines
    assert len(screens) == 3
    last = screens[-1].split("\n")
    assert last[0].startswith("\x1b[2Ka: write") and "5/10 bytes" in last[0] and "50.0%" in last[0]
    assert last[1] == "\x1b[2Kb: FAILED: cannot open b"
    assert plain.getvalue().splitlines() == [
        "a: write x.mpy (5 bytes) [50%]",
        "b: compiled 2 modules [0%]",
        "b: FAILED: cannot open b",
    ]


# ----------------------------------------------------------------------------- virtual boards


@pytest.fixture(scope="module")
def boards(tmp_path_factory):
    """Three running virtual boards with empty flash, under a private XDG_CACHE_HOME; (names, env)."""
    pytest.importorskip("mpremote")
    from host_tools.extras import missing

    if missing("vboard"):
        pytest.skip(missing("vboard"))
    from host_tools.servers import vboard

    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(cache))
    names = [f"mf{i}-{os.getpid()}" for i in range(3)]
    try:
        for name in names:
            vboard.ensure_running(name, fs=tmp_path_factory.mktemp(name))
        yield names, dict(os.environ)
    finally:
        for name in names:
            vboard.stop(name)
        mp.undo()


def _hello(name: str) -> dict:
    from host_tools.link.client import AgentClient
    from host_tools.link.ports import SerialTransport, resolve

    client = AgentClient(SerialTransport(resolve(f"vboard:{name}")), timeout=5.0)
    try:
        r = client.hello()
        assert r.ok, r
        return r.data
    finally:
        client.transport.close()


def test_three_virtual_boards_at_once_with_json_events(boards):
    names, env = boards
    ports = [f"vboard:{n}" for n in names]
    done = run_dbch("flash", "--port", ",".join(ports[:2]), "--port", ports[2], "--json", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {e["port"] for e in events} == set(ports)
    results = {e["port"]: e for e in events if e["event"] == "result"}
    assert sorted(results) == sorted(ports) and all(r["ok"] for r in results.values())
    for port, name in zip(ports, names):
        mine = [e for e in events if e["port"] == port]
        assert mine[-1]["event"] == "result" and mine[-1]["flash"]["written"]
        assert any(e.get("phase") == "write" for e in mine) and any(e.get("phase") == "reboot" for e in mine)
        hello = _hello(name)  # the agent runs on each board: its hello, with the EUI the result gave
        assert hello["board"] == "unix" and hello["eui"] == results[port]["eui"]
    assert len({r["eui"] for r in results.values()}) == 3


def test_a_bad_port_among_good_ones_is_named_and_fails_the_command(boards):
    names, env = boards
    bad = f"vboard:nosuch-{os.getpid()}"
    done = run_dbch("flash", "--port", f"vboard:{names[0]},{bad}", "--port", f"vboard:{names[1]}", env=env, timeout=300)
    assert done.returncode != 0
    for name in names[:2]:
        assert f"flashed unix on vboard:{name}:" in done.stdout
        assert _hello(name)["board"] == "unix"
    summary = done.stderr[done.stderr.index("dbch: 1 of 3 boards failed:") :]
    assert f"  {bad}: " in summary and "vboard:" + names[0] not in summary

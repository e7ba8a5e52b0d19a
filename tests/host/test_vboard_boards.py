"""A virtual board that is a real board on simulated chips: `dbch vboard --board NAME` runs that
board's own module and radio driver (boards/unix.py, boards/simchips.py) on the MicroPython unix
port, `dbch flash` gives it what that needs, and the agent says which driver it transmits through
(status "radio") and sends through it. The boards live under a private XDG_CACHE_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("serial")
pytest.importorskip("mpremote")

from agent.examples import DBCH04_CONFIG  # noqa: E402
from hal import phy  # noqa: E402
from host_tools.cli import main  # noqa: E402
from host_tools.link.client import AgentClient  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.servers import vboard  # noqa: E402
from tests.kits.cachekit import private_cache  # noqa: E402

# board: (its driver's class, its driver module, the chip simulated for it)
BOARDS = {
    "heltec_wifi_lora32_v3": ("Sx1262", "hal.sx126x", "hal.sim.chips.sx126x"),
    "pico_rfm69": ("Rfm69", "hal.rfm69", "hal.sim.chips.rfm69"),
}


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


def dbch(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def dbch_json(capsys, *argv: str):
    rc, out, err = dbch(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_a_virtual_board_runs_a_real_boards_driver_and_sends_through_it(board, capsys):
    driver, driver_module, chip_module = BOARDS[board]
    name = board.split("_")[0]
    info = dbch_json(capsys, "vboard", "--name", name, "--board", board)
    assert info["board"] == board
    assert (Path(info["fs"]) / "data" / "radio").read_text() == board  # the radio record, in its flash
    assert dbch_json(capsys, "vboard", "--status", "--name", name)["board"] == board
    rc, out, _ = dbch(capsys, "vboard", "--list")
    assert rc == 0 and f"{name}: {info['port']} (" in out and f"board {board})" in out

    # the virtual board's image carries the board's module and its driver, never the chip: the
    # simulated chip is the virtual board's hardware (host_tools.firmware.hardware). As .mpy
    # files, and as the ROMFS image the agent runs from below (the driver it names is in it)
    res = dbch_json(capsys, "flash", "--port", f"vboard:{name}", "--layout", "mpy")
    modules = {p[len("slots/a/") : -len(".mpy")].replace("/", ".") for p in res["written"] if p.endswith(".mpy")}
    assert {"boards." + board, "boards.simchips", driver_module} <= modules
    assert chip_module not in modules and not {m for m in modules if m.startswith("hal.sim")}
    res = dbch_json(capsys, "flash", "--port", f"vboard:{name}")
    assert res["layout"] == "romfs" and res["hello"]["board"] == "unix"
    assert not list(Path(info["fs"]).glob("slots/a/**/*.mpy"))

    status = dbch_json(capsys, "status", "--port", f"vboard:{name}")
    assert status["radio"] == driver
    rc, out, _ = dbch(capsys, "status", "--port", f"vboard:{name}")
    assert rc == 0 and f"board unix (868 MHz, radio {driver})" in out
    client = AgentClient(SerialTransport(info["port"]), timeout=10.0, port=info["port"])
    try:
        assert client.request("config.set", {"config": DBCH04_CONFIG}).rc == "I0"
        r = client.request("send", {"count": 3, "len": 100})
        assert r.rc == "I0" and (r.data["sent"], r.data["refused"]) == (3, 0), r.data
        assert r.data["airtime_us"] == 3 * phy.airtime_us(100)
        status = client.request("status").data
        assert status["radio"] == driver and status["channel"] is not None
    finally:
        client.transport.close()

    # what the agent loaded to send: that driver on that chip, and no other radio's (mpremote's
    # resume: the REPL the agent handed the line to, without a soft reset)
    listing = "import sys; print(' '.join(sorted(sys.modules)))"
    rc, out, err = dbch(capsys, "mpremote", "--port", f"vboard:{name}", "--json", "--", "resume", "exec", listing)
    res = json.loads(out)
    assert rc == 0 and res["agent"] is not None, (res, err)
    loaded = set(res["stdout"].split())
    assert {driver_module, chip_module, "boards." + board} <= loaded
    assert not ({"hal.sx126x", "hal.rfm69", "hal.stm32wl"} - {driver_module}) & loaded, loaded

    # a board runs one board: another is asked for only once it is stopped
    other_board = next(b for b in BOARDS if b != board)
    with pytest.raises(vboard.VBoardError, match=f"as board {board}, not {other_board}: stop it first"):
        vboard.ensure_running(name, board=other_board)
    assert vboard.stop(name)


def test_without_board_the_virtual_board_is_as_it_was(capsys, tmp_path):
    info = dbch_json(capsys, "vboard", "--name", "plain", "--fs", str(tmp_path))
    assert info["board"] is None and not (tmp_path / "data").exists()
    rc, out, _ = dbch(capsys, "vboard", "--list")
    assert f"plain: {info['port']} (fs {tmp_path}, pid {info['pid']})" in out
    with pytest.raises(vboard.VBoardError, match="as board unix, not pico_rfm69"):
        vboard.ensure_running("plain", board="pico_rfm69")
    assert vboard.ensure_running("plain", board="unix").pid == info["pid"]  # its own radio: the same
    assert vboard.stop("plain")
    # --board unix writes the record that names the virtual board's own simulated radio
    info = dbch_json(capsys, "vboard", "--name", "plain", "--fs", str(tmp_path), "--board", "unix")
    assert info["board"] == "unix" and (tmp_path / "data" / "radio").read_text() == "sim"
    assert vboard.stop("plain")
    rc, _out, err = dbch(capsys, "vboard", "--name", "plain", "--board", "esp32")
    assert rc == 1 and "unknown board 'esp32' for a virtual board; boards: unix, heltec_wifi_lora32_v3" in err


def test_a_radio_record_its_image_lacks_fails_at_boot_and_status_says_why(capsys, tmp_path):
    dbch_json(capsys, "vboard", "--name", "lacks", "--fs", str(tmp_path))
    try:
        res = dbch_json(capsys, "flash", "--port", "vboard:lacks")  # no record: its own radio, no driver
        assert not any("simchips" in p or "sx126x" in p or "chips" in p for p in res["written"]), res["written"]
        (tmp_path / "data" / "radio").write_text("sx1262")  # the record names a driver the image has not
        vboard.reset("lacks")
        rc, _out, err = dbch(capsys, "status", "--port", "vboard:lacks", "--timeout", "2")
        assert rc == 1 and "ImportError: no module named 'boards.simchips'" in err, err
        assert (
            f"its radio record ({tmp_path}/data/radio) names sx1262, but the image it boots has no boards.simchips"
            in err
        )
        assert "it was flashed for another radio; dbch flash gives it the image for sx1262" in err
        # flashing again reads the record and gives the board that driver and its chip
        res = dbch_json(capsys, "flash", "--port", "vboard:lacks")
        # (slot A is one ROMFS image on the virtual board: the image is written again)
        assert res["layout"] == "romfs" and "dbch.romfs" in res["written"], res["written"]
        assert dbch_json(capsys, "status", "--port", "vboard:lacks")["radio"] == "Sx1262"
        # and a second flash finds it unchanged, its record included
        again = dbch_json(capsys, "flash", "--port", "vboard:lacks")
        assert again["written"] == [] and again["removed"] == [], again
    finally:
        assert vboard.stop("lacks")

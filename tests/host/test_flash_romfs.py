"""`dbch flash` to the virtual board (the real unix port on a pty, real mpremote): slot A as one
ROMFS image by default, mounted at each boot outside the interpreter's heap and imported in place;
.mpy files again with --layout mpy, and back, nothing of the other layout left; a re-flash with
nothing changed asks the running agent what is flashed and leaves the board as it is (no hand-over
to the REPL, no reboot); a changed file is sent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from host_tools.firmware import flash, romfs
from host_tools.servers import vboard
from tests.kits.cachekit import private_cache

pytestmark = pytest.mark.skipif(shutil.which("micropython") is None, reason="needs the MicroPython unix port")

NAME = "romfs-flash"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    with private_cache(tmp_path_factory):
        fs = tmp_path_factory.mktemp("flash")
        info = vboard.ensure_running(NAME, fs=fs, heap="128K")
        yield info.port, Path(fs)


def _slot_files(fs: Path) -> set[str]:
    return {p.relative_to(fs / flash.SLOT).as_posix() for p in (fs / flash.SLOT).rglob("*") if p.is_file()}


def _no_handover(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the board was handed over to the REPL")

    monkeypatch.setattr(flash, "hand_over", refuse)


def test_the_default_is_one_romfs_image_imported_in_place(board):
    port, fs = board
    res = flash.flash(port, "unix")
    assert res.layout == "romfs" and res.hello["board"] == "unix"
    assert (fs / romfs.IMAGE_FILE).is_file() and _slot_files(fs) == {"manifest.json", "romfs"}
    assert {p.name for p in fs.rglob("*.mpy")} == {"dbchboot.mpy", "dbchslots.mpy"}  # the bootloader's only
    # the agent answers from the image on a 128 KB heap: it holds every module the slot has
    with flash_transport(port) as t:
        out = t.exec("import os\nprint(sorted(os.listdir('/rom/slots/a')))").decode()
    assert json.loads(out.replace("'", '"')) == ["agent", "boards", "hal"]


def flash_transport(port: str):
    """mpremote's transport in the raw REPL, the agent handed over first (closed by `with`)."""
    import contextlib

    from mpremote.transport_serial import SerialTransport

    from host_tools.firmware.handover import hand_over, take_back

    @contextlib.contextmanager
    def session():
        hand_over(port)
        t = SerialTransport(port)
        t.serial.timeout = 0.5
        try:
            t.enter_raw_repl(soft_reset=False, timeout_overall=5)
            yield t
            t.exit_raw_repl()
        finally:
            t.close()
            take_back(port)

    return session()


def test_nothing_changed_asks_only_the_agent(board, monkeypatch):
    port, _fs = board
    before = flash.flash(port, "unix")
    _no_handover(monkeypatch)
    res = flash.flash(port, "unix")
    assert res.written == [] and res.removed == [] and res.unchanged > 0
    assert res.hello["boot"] == before.hello["boot"]  # the same boot: no reset, no REPL


def test_a_changed_file_is_sent(board):
    port, fs = board
    flash.flash(port, "unix")
    state = fs / "fwboot.json"
    state.write_bytes(state.read_bytes().replace(b'"tries": 0', b'"tries":  0'))  # same state, other bytes
    res = flash.flash(port, "unix")
    assert res.written == ["fwboot.json"] and res.layout == "romfs"
    image = fs / romfs.IMAGE_FILE
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF  # a module's last byte
    image.write_bytes(bytes(data))
    again = flash.flash(port, "unix")
    assert again.written == [romfs.IMAGE_FILE] and again.hello["board"] == "unix"
    assert again.hello["boot"] == res.hello["boot"] + 1


def test_switching_to_mpy_files_and_back_leaves_nothing_of_the_other(board):
    port, fs = board
    res = flash.flash(port, "unix", layout="mpy")
    assert res.layout == "mpy" and res.hello["board"] == "unix"
    assert not (fs / romfs.IMAGE_FILE).exists() and "romfs" not in _slot_files(fs)
    assert romfs.IMAGE_FILE in res.removed and flash.ROMFS_MARK in res.removed
    assert "agent/hub.mpy" in _slot_files(fs)
    res = flash.flash(port, "unix")
    assert res.layout == "romfs" and res.hello["board"] == "unix"
    assert _slot_files(fs) == {"manifest.json", "romfs"} and not (fs / flash.SLOT / "agent").exists()
    assert f"{flash.SLOT}/agent/hub.mpy" in res.removed

"""What `dbch flash` leaves in a board's flash: the image of the board it flashes and nothing of an
earlier one. The board here is a directory behind a stand-in for mpremote's transport, which runs
the code flash sends to the board (CPython runs it as MicroPython would) in that directory."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpremote")

from host_tools.firmware import flash, radio_record  # noqa: E402
from host_tools.firmware.image_build import sources_for  # noqa: E402


class DirBoard:
    """mpremote's SerialTransport over the directory `root` (set on the class by the fixture)."""

    root: Path

    def __init__(self, port, baudrate=115200):
        self.serial = self
        self._out = bytearray()  # what the board said that the host has not read

    # -- the serial port and the REPL

    timeout = None

    def write(self, data):
        pass

    def flush(self):
        pass

    @property
    def in_waiting(self):
        return len(self._out)

    def read(self, n=1):
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    def exec_raw_no_follow(self, code):
        # the program runs to its end here (the loader finds no deflate module under CPython and
        # says so): its output, then the raw REPL's two ends of output and its prompt
        out = io.TextIOWrapper(io.BytesIO(), write_through=True)
        with contextlib.redirect_stdout(out):
            exec(code, {})
        self._out += out.buffer.getvalue() + b"\x04\x04>"

    def close(self):
        pass

    def enter_raw_repl(self, **_kw):
        pass

    def exit_raw_repl(self):
        pass

    def exec(self, code):
        # the board's interpreter is not this one: what the code does to sys.modules (it lets go
        # of the agent's modules) is undone for the tests that run after
        out = io.StringIO()
        cwd = os.getcwd()
        modules = dict(sys.modules)
        os.chdir(self.root)
        try:
            with contextlib.redirect_stdout(out):
                exec(code, {})
        finally:
            os.chdir(cwd)
            sys.modules.clear()
            sys.modules.update(modules)
        return out.getvalue().encode()

    # -- its file system

    def _p(self, path):
        return self.root / path

    def fs_exists(self, path):
        return self._p(path).exists()

    def fs_mkdir(self, path):
        self._p(path).mkdir()

    def fs_listdir(self, path):
        return list(self._p(path).iterdir())

    def fs_rmdir(self, path):
        self._p(path).rmdir()

    def fs_rmfile(self, path):
        self._p(path).unlink()

    def fs_writefile(self, path, data, chunk_size=256):
        self._p(path).write_bytes(data)


@pytest.fixture
def board(tmp_path, monkeypatch):
    import mpremote.transport_serial

    DirBoard.root = tmp_path
    monkeypatch.setattr(mpremote.transport_serial, "SerialTransport", DirBoard)
    monkeypatch.setattr(flash, "hand_over", lambda *a, **k: False)
    monkeypatch.setattr(flash, "wait_for_hello", lambda *a, **k: {"board": "up"})
    return tmp_path


def _modules(root: Path) -> set[str]:
    slot = root / flash.SLOT
    return {p.relative_to(slot).with_suffix(".py").as_posix() for p in slot.rglob("*.mpy")}


def _image(board: str, radio: str | None = None) -> set[str]:
    return {p.as_posix() for p in sources_for(board, radio)}


def test_a_board_flashed_with_another_boards_image_keeps_only_its_own(board):
    (board / "data").mkdir()
    (board / "data/radio").write_text("sx1262")  # the virtual board's radio record: its image has that driver
    first = flash.flash("dir", "unix")
    assert _modules(board) == _image("unix", "sx1262") and (board / flash.SLOT / "boards/simchips.mpy").is_file()
    assert not (board / flash.SLOT / "hal/sim").exists()  # the simulated chip is the virtual board's hardware
    # what an older dbch sent to every board, and the layout before slots
    (board / flash.SLOT / "agent/examples.mpy").write_bytes(b"M")
    (board / "hal/sim").mkdir(parents=True)
    (board / "hal/sim/radio.mpy").write_bytes(b"M")

    res = flash.flash("dir", "heltec_wifi_lora32_v3")
    assert _modules(board) == _image("heltec_wifi_lora32_v3")
    assert not (board / flash.SLOT / "hal/sim").exists() and not (board / "hal").exists()
    assert f"{flash.SLOT}/boards/simchips.mpy" in res.removed
    assert f"{flash.SLOT}/agent/examples.mpy" in res.removed and "hal/sim/radio.mpy" in res.removed
    assert f"{flash.SLOT}/agent/hub.mpy" not in res.written  # the same module is not copied again
    assert res.unchanged >= len(_image("unix") & _image("heltec_wifi_lora32_v3"))

    again = flash.flash("dir", "unix")
    assert _modules(board) == _image("unix", "sx1262") and not again.removed
    assert len(again.written) < len(first.written)


@pytest.fixture
def vfsrom(monkeypatch):
    """The board's firmware has vfs.VfsRom (what flash's scan looks for)."""
    import types

    monkeypatch.setitem(sys.modules, "vfs", types.SimpleNamespace(VfsRom=object))


def _layout(root: Path) -> tuple[bool, bool, set[str]]:
    """(the image there, the mark there, the slot's modules as files)."""
    return (root / flash.IMAGE_FILE).exists(), (root / flash.ROMFS_MARK).exists(), _modules(root)


def test_a_board_with_vfsrom_gets_one_image_and_switches_back_and_forth(board, vfsrom):
    res = flash.flash("dir", "unix")
    assert res.layout == "romfs" and _layout(board) == (True, True, set())
    assert not (board / flash.SLOT / "agent").exists()
    mpy = flash.flash("dir", "unix", layout="mpy")
    assert mpy.layout == "mpy" and _layout(board) == (False, False, _image("unix"))
    assert {flash.IMAGE_FILE, flash.ROMFS_MARK} <= set(mpy.removed)
    back = flash.flash("dir", "unix")
    assert back.layout == "romfs" and _layout(board) == (True, True, set())
    assert back.written == [flash.IMAGE_FILE, flash.ROMFS_MARK, f"{flash.SLOT}/manifest.json"]


def test_a_real_board_keeps_mpy_files(board, vfsrom):
    # its main.py does not mount an image file: the whole image would be read onto its heap
    assert flash.flash("dir", "heltec_wifi_lora32_v3").layout == "mpy"
    with pytest.raises(flash.FlashError, match="keeps .mpy files"):
        flash.flash("dir", "heltec_wifi_lora32_v3", layout="romfs")
    assert _layout(board) == (False, False, _image("heltec_wifi_lora32_v3"))


def test_without_vfsrom_auto_keeps_mpy_files_and_romfs_is_refused(board):
    assert flash.flash("dir", "unix").layout == "mpy" and _layout(board) == (False, False, _image("unix"))
    with pytest.raises(flash.FlashError, match="no vfs.VfsRom"):
        flash.flash("dir", "unix", layout="romfs")
    with pytest.raises(flash.FlashError, match="unknown layout"):
        flash.flash("dir", "unix", layout="zip")


@pytest.mark.parametrize("layout", ["romfs", "mpy"])
def test_the_agents_digest_of_what_is_flashed_is_the_hosts(tmp_path, layout):
    # agent/flashed.py on the board's files, against host_tools.firmware.warm over what flash writes
    from agent import flashed
    from hal.fs_storage import OsFs
    from host_tools.firmware import warm

    wanted = flash.wanted_files(flash.slot_files("unix", "0.1.0"), layout, "unix", b"K" * 65)
    for path, data in wanted.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    dirs = list(flash.LEGACY_DIRS) + [f"{flash.SLOT}/{d}" for d in flash.DIRS]
    files = list(flash.ROOT_FILES)

    def board() -> tuple[bytes, int]:
        return flashed.digest(OsFs(), str(tmp_path) + "/", dirs, files)

    assert board() == warm.expected(wanted, dirs, files) and board()[1] == len(wanted)
    (tmp_path / "hal").mkdir()
    (tmp_path / "hal/left.mpy").write_bytes(b"M")  # a file left over
    assert board()[0] != warm.expected(wanted, dirs, files)[0]
    (tmp_path / "hal/left.mpy").unlink()
    assert board()[0] == warm.expected(wanted, dirs, files)[0]
    (tmp_path / "fwboot.json").write_bytes(b"{}")  # a file changed
    assert board()[0] != warm.expected(wanted, dirs, files)[0]
    (tmp_path / "fwboot.json").unlink()  # a file missing
    assert board()[0] != warm.expected(wanted, dirs, files)[0]


def test_the_virtual_boards_image_follows_its_radio_record(board):
    plain = flash.flash("dir", "unix")  # no record: its own simulated radio, no driver and no chip
    assert _modules(board) == _image("unix") == _image("unix", "sim")
    assert not (board / flash.SLOT / "hal/sim").exists() and "hal/sx126x.py" not in _modules(board)

    (board / "data").mkdir()
    (board / "data/radio").write_text("heltec_wifi_lora32_v3\n")  # a record may name the board that carries it
    said = []
    swapped = flash.flash("dir", "unix", progress=said.append, slot=flash.slot_files("unix", plain.version))
    assert _modules(board) == _image("unix", "sx1262") != _image("unix")
    assert {"hal/sx126x.py", "boards/simchips.py", "boards/heltec_wifi_lora32_v3.py"} <= _modules(board)
    assert not {m for m in _modules(board) if m.startswith("hal/sim")}  # the chip: the board's hardware
    assert not swapped.removed and f"{flash.SLOT}/agent/hub.mpy" not in swapped.written
    assert any("radio record names radio sx1262" in m for m in said)

    (board / "data/radio").write_text("rfm69")
    res = flash.flash("dir", "unix")
    assert _modules(board) == _image("unix", "rfm69")
    assert f"{flash.SLOT}/hal/sx126x.mpy" in res.removed
    assert f"{flash.SLOT}/hal/rfm69.mpy" in res.written and f"{flash.SLOT}/hal/radio_driver.mpy" not in res.written

    (board / "data/radio").write_text("sim")
    res = flash.flash("dir", "unix")
    assert _modules(board) == _image("unix") and not (board / flash.SLOT / "hal/sim").exists()
    assert f"{flash.SLOT}/boards/simchips.mpy" in res.removed and f"{flash.SLOT}/hal/rfm69.mpy" in res.removed

    (board / "data/radio").write_text("esp32")
    with pytest.raises(
        radio_record.RadioRecordError, match=r"radio record \(data/radio\): board 'unix' has no radio 'esp32'"
    ):
        flash.flash("dir", "unix")
    assert _modules(board) == _image("unix")  # nothing was copied

"""`dbch flash`'s compressed copy (host_tools.firmware.transfer and the loader it runs on the board,
host_tools/onboard/file_loader.py) against virtual boards: a full flash through it, what a damaged
or malformed frame, a hash that differs and a cut link leave on the board, and the plain copy on a
board whose loader says it has no deflate.

Every board lives under a private XDG_CACHE_HOME and is stopped at the end.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("serial")
pytest.importorskip("mpremote")

from host_tools.firmware import encoders, flash, transfer  # noqa: E402
from host_tools.firmware.image_build import build_bootloader  # noqa: E402
from host_tools.servers import vboard  # noqa: E402
from tests.kits.cachekit import private_cache  # noqa: E402

NAMES = ("xfer-full", "xfer-plain", "xfer-raw")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


def _wanted(board: str = "unix") -> dict[str, bytes]:
    """What flash puts on a board with no signing key given (as flash.flash builds it)."""
    from agent import VERSION

    wanted = flash.slot_files(board, VERSION)
    wanted["main.py"] = flash.MAIN_PY.format(board=board).encode()
    wanted.update(build_bootloader())
    wanted["fwboot.json"] = flash.boot_state_json()
    return wanted


def _on_board(fs: Path) -> dict[str, bytes]:
    return {p.relative_to(fs).as_posix(): p.read_bytes() for p in fs.rglob("*") if p.is_file()}


def _check_flashed(fs: Path, res) -> None:
    wanted = _wanted()
    have = _on_board(fs)
    assert sorted(res.written) == sorted(wanted)
    for path, data in wanted.items():
        assert hashlib.sha256(have[path]).hexdigest() == hashlib.sha256(data).hexdigest(), path
    assert not [p for p in have if p.endswith(".dbchnew")]
    assert res.hello and res.hello["board"] == "unix"


def test_flash_copies_through_the_loader_and_every_file_matches(cache, tmp_path):
    # a 128 KB heap, as the smallest boards have
    fs = tmp_path / "flash"
    info = vboard.ensure_running("xfer-full", fs=fs, heap="128K")
    said = []
    # the .mpy files, many of them (the default on a virtual board is one ROMFS image)
    res = flash.flash(info.port, "unix", progress=said.append, layout="mpy")
    assert res.copy == "deflate"
    assert 0 < res.wire_bytes < 0.8 * res.bytes_written
    assert any("deflate window" in s for s in said)
    _check_flashed(fs, res)
    # nothing changed: nothing is sent, the loader is not started
    again = flash.flash(info.port, "unix", layout="mpy")
    assert again.written == [] and again.copy == "" and again.unchanged == len(_wanted())


def test_a_board_whose_loader_has_no_deflate_gets_the_plain_copy(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "send_files", functools.partial(transfer.send_files, use_deflate=False))
    fs = tmp_path / "flash"
    info = vboard.ensure_running("xfer-plain", fs=fs)
    said = []
    res = flash.flash(info.port, "unix", progress=said.append, layout="mpy")
    assert res.copy == "plain" and res.wire_bytes == 0
    assert "  the board has no deflate module: plain copy" in said
    _check_flashed(fs, res)


def test_the_pasted_loader_is_the_loader_in_fewer_bytes():
    import zlib

    text = transfer.LOADER.read_text()
    source = transfer.loader_source()
    assert '"""' not in text and "\\\n" not in text  # what narrowing its indentation relies on
    assert len(source) < 0.7 * len(text)
    code = compile(source, "loader", "exec")
    assert {"serve", "Frames", "receive_all"} <= set(code.co_names)
    assert source.rstrip().endswith(
        "del io, TEMP_SUFFIX, Refused, serve, Frames, read_exact, receive_all, receive_file, place, remove"
    )
    # what is pasted takes that source off the line compressed, as raw bytes, and runs it: under
    # half of its bytes in all (in base64 inside the paste, it took 55 %)
    blob = transfer.loader_blob()
    assert len(source) <= 1 << transfer.LOADER_WBITS  # every distance in the stream within the window
    assert zlib.decompressobj(-transfer.LOADER_WBITS).decompress(blob).decode() == source
    program = transfer.loader_program(blob_bytes=len(blob))
    compile(program, "paste", "exec")
    assert program.rstrip().endswith(
        f"boot({len(blob)}, {transfer.LOADER_WBITS}, {transfer.PIECE}, {transfer.IDLE_MS}, True)\ndel boot"
    )
    assert len(program) + len(blob) < 0.5 * len(source)
    assert ", False)\ndel boot" in transfer.loader_program(use_deflate=False)


# -- the loader alone, on a board at its raw REPL


@pytest.fixture
def raw(cache, tmp_path):
    """(mpremote transport in the raw REPL of an empty virtual board, its flash directory)."""
    from mpremote.transport_serial import SerialTransport

    fs = tmp_path / "flash"
    info = vboard.ensure_running("xfer-raw", fs=fs)
    t = SerialTransport(info.port, baudrate=115200)
    t.serial.timeout = 0.5
    t.enter_raw_repl(soft_reset=False, timeout_overall=5)
    yield t, fs
    t.close()
    vboard.stop("xfer-raw")


OLD = b"the file as it was\n"
NEW = os.urandom(3000) + bytes(3000)  # a few frames' worth


def _put_old(t, fs: Path) -> None:
    sent = transfer.send_files(t, [("d/f.mpy", OLD), ("g.mpy", OLD)])
    assert sent is not None and sent.files == 2
    assert (fs / "d/f.mpy").read_bytes() == OLD


def _as_before(t, fs: Path) -> None:
    assert (fs / "d/f.mpy").read_bytes() == OLD
    assert sorted(p.name for p in (fs / "d").iterdir()) == ["f.mpy"]  # no temporary file either
    assert t.exec("print(6 * 7)").strip() == b"42"  # the raw REPL has the line again


def test_the_loader_leaves_the_raw_repl_as_it_found_it(raw):
    t, fs = raw
    _put_old(t, fs)
    assert transfer.send_files(t, [("g.mpy", b"x" * 2000)]).files == 1
    assert (fs / "g.mpy").read_bytes() == b"x" * 2000
    # its names are gone from the REPL's globals
    assert t.exec("print('serve' in globals(), 'Frames' in globals())").strip() == b"False False"
    _as_before(t, fs)


def test_a_program_runs_deflated_through_the_first_paste_and_the_copy_reuses_it(raw):
    t, fs = raw
    text = "def f(n):\n    return sum(range(n))\n\n" * 40 + "print(f(10), len('" + "ab" * 600 + "'))\n"
    assert len(transfer.deflated(text)) < len(text) // 4  # (the loader's own stream is the one of many pieces)
    assert transfer.exec_deflated(t, text).strip() == b"45 1200"
    assert t.exec("print('boot' in globals(), 'f' in globals())").strip() == b"True False"
    # the copy after it pastes only boot()'s call, and leaves no name behind
    assert transfer.send_files(t, [("h.mpy", b"y" * 3000)], booted=True).files == 1
    assert (fs / "h.mpy").read_bytes() == b"y" * 3000
    assert t.exec("print('boot' in globals(), 'serve' in globals())").strip() == b"False False"
    # a program that fails says why, and the raw REPL has the line again
    with pytest.raises(transfer.TransferError, match="ZeroDivisionError"):
        transfer.exec_deflated(t, "print(1 // 0)\n")
    assert t.exec("print(6 * 7)").strip() == b"42"


@pytest.mark.parametrize(
    "spoil, why",
    [
        (lambda f: f[:7] + bytes([f[7] ^ 1]) + f[8:], "frame 2 is damaged"),  # a bit of its payload
        (lambda f: b"Q" + f[1:], "malformed frame 2"),  # its kind
        (lambda f: f[:1] + (4000).to_bytes(2, "little") + f[3:], "malformed frame 2"),  # its length
    ],
)
def test_a_damaged_or_malformed_frame_is_refused_and_the_file_is_as_before(raw, monkeypatch, spoil, why):
    t, fs = raw
    _put_old(t, fs)
    frames = []

    def frame(payload):
        f = transfer._HEAD.pack(0x44, len(payload), transfer.zlib.crc32(payload)) + payload
        frames.append(f)
        return spoil(f) if len(frames) == 2 else f

    monkeypatch.setattr(transfer, "frame", frame)
    with pytest.raises(transfer.TransferError, match=why) as e:
        transfer.send_files(t, [("d/f.mpy", NEW)])
    assert "nothing half-written" in str(e.value)
    _as_before(t, fs)


def test_a_hash_that_differs_is_refused_and_every_file_is_as_before(raw, monkeypatch):
    t, fs = raw
    _put_old(t, fs)
    real = transfer.stream
    monkeypatch.setattr(transfer, "stream", lambda files: real(files)[:-32] + bytes(32))
    with pytest.raises(transfer.TransferError, match="the SHA-256 of the files differs"):
        transfer.send_files(t, [("d/f.mpy", NEW), ("g.mpy", NEW)])
    assert (fs / "g.mpy").read_bytes() == OLD  # written in full, never put in place
    _as_before(t, fs)
    assert [p.name for p in fs.iterdir() if p.is_file()] == ["g.mpy"]


def test_a_cut_link_leaves_the_file_as_before(raw, monkeypatch):
    t, fs = raw
    _put_old(t, fs)
    monkeypatch.setattr(transfer, "IDLE_MS", 500)
    write = t.serial.write
    frames = []

    def cut(data):
        if len(data) >= 7 and data[0] == 0x44 and len(data) == 7 + int.from_bytes(data[1:3], "little"):
            frames.append(data)
            if len(frames) > 2:  # the line goes after two frames of the file
                raise OSError(5, "Input/output error")
        return write(data)

    monkeypatch.setattr(t.serial, "write", cut)
    with pytest.raises(transfer.TransferError, match="link to the board .* was lost"):
        transfer.send_files(t, [("d/f.mpy", NEW)])
    monkeypatch.setattr(t.serial, "write", write)
    # the loader hears nothing more, refuses, and returns to the raw REPL
    out, err = t.follow(timeout=5)
    assert b"R nothing came for 500 ms" in out and not err
    _as_before(t, fs)


def test_a_copy_stopped_on_the_host_stops_the_loader_at_once(raw, monkeypatch):
    t, fs = raw
    _put_old(t, fs)
    real, frames = transfer.frame, []

    def frame(payload):
        frames.append(payload)
        if len(frames) == 2:
            raise KeyboardInterrupt
        return real(payload)

    monkeypatch.setattr(transfer, "frame", frame)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        transfer.send_files(t, [("d/f.mpy", NEW), ("g.mpy", NEW)])
    out, err = t.follow(timeout=2)
    assert b"R the host stopped the copy" in out and not err
    assert time.monotonic() - start < transfer.IDLE_MS / 1000
    assert (fs / "g.mpy").read_bytes() == OLD
    _as_before(t, fs)


def test_on_a_slow_line_the_stream_is_zopfli_s_and_kept_once(raw, monkeypatch):
    zopfli = pytest.importorskip("zopfli.zopfli")
    real, calls = zopfli.compress, []
    monkeypatch.setattr(zopfli, "compress", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    t, fs = raw
    monkeypatch.setattr(transfer, "SLOW_LINE", float("inf"))  # every line is slow
    files = [("d/f.mpy", NEW), ("g.mpy", NEW[::-1] + OLD)]
    sent = transfer.send_files(t, files)
    assert sent.encoder == "zopfli" and sent.wbits == 15 and calls == [1]
    assert (fs / "d/f.mpy").read_bytes() == NEW and (fs / "g.mpy").read_bytes() == NEW[::-1] + OLD
    # the same files again: the stream comes from the cache, not from zopfli
    (fs / "g.mpy").unlink()
    assert transfer.send_files(t, files).wire_bytes == sent.wire_bytes and calls == [1]
    assert (fs / "g.mpy").read_bytes() == NEW[::-1] + OLD
    # a damaged cache is passed over: compressed again
    encoders.zopfli_kept(transfer.stream(files)).write_bytes(b"\x00damaged")
    (fs / "g.mpy").unlink()
    assert transfer.send_files(t, files).encoder == "zopfli" and calls == [1, 1]
    assert (fs / "g.mpy").read_bytes() == NEW[::-1] + OLD


def test_the_host_gives_up_on_a_board_that_never_answers(raw, monkeypatch):
    t, fs = raw
    _put_old(t, fs)
    monkeypatch.setattr(transfer, "ANSWER_S", 0.5)
    # once the loader is started, what the board says is lost (its greeting first): the host
    # waits for it, then says so
    start_loader = t.exec_raw_no_follow

    def started(code):
        start_loader(code)
        monkeypatch.setattr(t.serial, "read", lambda n=1: b"")
        monkeypatch.setattr(type(t.serial), "in_waiting", property(lambda self: 0))

    monkeypatch.setattr(t, "exec_raw_no_follow", started)
    start = time.monotonic()
    with pytest.raises(transfer.TransferError, match="stopped answering"):
        transfer.send_files(t, [("d/f.mpy", NEW)])
    assert time.monotonic() - start < 5

"""ROMFS images (host_tools.firmware.romfs) mounted by the MicroPython unix port (vfs.VfsRom,
MicroPython 1.25 and later) through host_tools/onboard/romfs_mount.py, and the agent imported in
place from one: it serves its console, and keeps less of the heap than from .mpy files (both
measured here, bench/bench_footprint.py's ROMFS section; the image's own block on the unix port's
heap left out, as a board keeps the image in flash)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools.firmware import romfs
from host_tools.link.client import AgentClient
from tests.kits.footprintkit import bench

CAP = 128 * 1024

needs_romfs = pytest.mark.skipif(
    shutil.which("micropython") is None or not bench.romfs_supported(),
    reason="needs the MicroPython unix port with vfs.VfsRom (1.25 or later)",
)


def _on_board(cwd: Path, program: str) -> subprocess.CompletedProcess:
    (cwd / "prog.py").write_text(program)
    return subprocess.run([shutil.which("micropython"), "prog.py"], cwd=cwd, capture_output=True, text=True, timeout=30)


# what the board sees under the mount point: every file's path and bytes (hex), as JSON
_LIST = """
import json, os
out = {}
def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + "/" + name
        if kind == 0x4000:
            walk(p)
        else:
            with open(p, "rb") as f:
                out[p[len("/rom/"):]] = f.read().hex()
walk("/rom")
print(json.dumps(out))
"""


def _read_back(tmp_path: Path, image: bytes) -> dict[str, bytes]:
    """{path: bytes} of every file the board sees under /rom with image mounted there."""
    (tmp_path / romfs.IMAGE_FILE).write_bytes(image)
    r = _on_board(tmp_path, bench.romfs_program(_LIST))
    assert r.returncode == 0, r.stdout + r.stderr
    return {p: bytes.fromhex(h) for p, h in json.loads(r.stdout.strip().splitlines()[-1]).items()}


@needs_romfs
def test_an_image_reads_back_on_the_board_as_written(tmp_path):
    files = {"top.bin": bytes(range(256)), "a/b/deep.txt": b"deep", "a/c.mpy": b"M" * 5000, "empty": b""}
    assert _read_back(tmp_path, romfs.romfs_image(files)) == files


@needs_romfs
def test_a_boards_image_holds_its_modules_and_the_bootloader(tmp_path):
    want = romfs.board_files("unix")
    assert "dbchboot.mpy" in want and "agent/run.mpy" in want and "boards/unix.mpy" in want
    assert _read_back(tmp_path, romfs.board_romfs("unix")) == want


@needs_romfs
def test_without_an_image_the_board_says_so_and_goes_on(tmp_path):
    r = _on_board(tmp_path, bench.romfs_program("import sys\nprint('next', '/rom' in sys.path)\n"))
    assert r.returncode == 0, r.stderr
    assert f"romfs: {romfs.IMAGE_FILE} not mounted at /rom" in r.stdout
    assert "next False" in r.stdout


@pytest.mark.parametrize(
    "files, says",
    [
        ({"a/../b.mpy": b""}, "cannot be a path"),
        ({"": b""}, "cannot be a path"),
        ({"/abs.mpy": b""}, "cannot be a path"),
        ({"caf\u00e9.mpy": b""}, "cannot be a path"),
        ({"agent": b"x", "agent/wire.mpy": b"y"}, "is a file"),
        ({"agent/wire.mpy": b"y", "agent": b"x"}, "given twice"),
    ],
)
def test_paths_an_image_cannot_hold_are_refused(files, says):
    with pytest.raises(romfs.RomfsError, match=says):
        romfs.romfs_image(files)


# -- the agent from an image -------------------------------------------------------------------


@pytest.fixture(scope="module")
def flashes(tmp_path_factory):
    """(the .mpy flash, the ROMFS flash, the image's block on the unix port's heap)."""
    mpy, rom = tmp_path_factory.mktemp("mpy"), tmp_path_factory.mktemp("romfs")
    bench.build_flash(mpy)
    made = bench.build_romfs_flash(rom)
    return mpy, rom, bench.romfs_block(made["image"])


@needs_romfs
def test_the_agent_from_an_image_answers_hello(flashes, tmp_path):
    _mpy, rom, _block = flashes
    assert not (rom / "agent").exists() and not (rom / "dbchboot.mpy").exists()  # only in the image
    t = bench.PipeTransport(rom, "1M", tmp_path / "board")
    try:
        r = AgentClient(t, timeout=10, on_text=t.text.extend).hello()
    finally:
        status, err = t.close()
    assert r.rc == "I0" and r.data["board"] == "unix"
    assert status == 0 and "Error" not in err, err


@needs_romfs
def test_the_agent_from_an_image_keeps_less_heap_than_from_mpy_files(flashes):
    mpy_flash, rom_flash, block = flashes
    mpy = bench.romfs_idle(mpy_flash)
    rom = bench.romfs_idle(rom_flash, block)
    print(f"idle heap (bytes), .mpy: {mpy}; ROMFS (less the image's {block}-byte block): {rom}")
    # the interpreter before the agent: the same, but for the mount itself
    assert abs(rom["base"] - mpy["base"]) < 2048
    # the modules' bytecode stays in the image: at least a quarter less than from .mpy files
    assert (rom["imported"] - rom["base"]) < 0.75 * (mpy["imported"] - mpy["base"])
    for step in ("boot", "hello", "config", "status"):
        assert rom[step] < mpy[step] - 16 * 1024, step


@needs_romfs
def test_the_session_with_staging_from_an_image_runs_in_128k(flashes):
    # The real session (hello, configuration, alert burst, the signed image staged, delivery)
    # with the agent's modules from the image, on a heap that leaves the agent 128 KB beside the
    # image's block. From .mpy files it needs about 150 KB (test_footprint); from the image it
    # needed about 92 KB when this was written.
    _mpy, rom, block = flashes
    why: list[str] = []
    assert bench.session_ok(rom, bench.romfs_heapsize(CAP, block), True, why), why


# -- the virtual board's image, held outside its heap -------------------------------------------


@needs_romfs
def test_the_virtual_boards_image_is_held_outside_its_heap(tmp_path):
    # host_tools.servers.unix_port: the boot mounts the flash's image at /rom from memory the
    # interpreter's heap does not hold, so an image larger than the whole heap mounts, and what
    # it holds imports in place
    from host_tools.servers.unix_port import interpreter_argv

    big = bytes(range(256)) * 1024  # 256 KB: four times the heap
    (tmp_path / romfs.IMAGE_FILE).write_bytes(romfs.romfs_image({"big.bin": big, "m.py": b"X = 42\n"}))
    (tmp_path / "main.py").write_text(
        "import gc, os, sys\nsys.path.insert(0, '/rom')\nimport m\ngc.collect()\n"
        "with open('/rom/big.bin', 'rb') as f:\n    f.seek(1000)\n    b = f.read(3)\n"
        "print('rom', m.X, os.stat('/rom/big.bin')[6], b.hex(), gc.mem_alloc() < 32 * 1024)\n"
    )
    r = subprocess.run(
        interpreter_argv(tmp_path, heap="64K"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert f"rom 42 {len(big)} {big[1000:1003].hex()} True" in r.stdout, r.stdout + r.stderr


@needs_romfs
def test_a_virtual_board_without_an_image_mounts_nothing(tmp_path):
    from host_tools.servers.unix_port import interpreter_argv

    (tmp_path / "main.py").write_text("import os\nprint('root', sorted(os.listdir('/')), 'rom' in os.listdir('/'))\n")
    r = subprocess.run(
        interpreter_argv(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert "root ['main.py'] False" in r.stdout, r.stdout + r.stderr

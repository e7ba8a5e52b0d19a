"""The virtual board's hardware: the simulated world its firmware runs on (the clock, the radio
medium and SimRadio, the HAN devices, the radio chips and their wiring: the modules boards/unix.py
names in _HARDWARE, host_tools.firmware.build.board_hardware), compiled (mpy-cross, through the
compile cache) into a ROMFS image of its own.

A real board's flash never holds its radio chip; neither does the virtual board's. `dbch vboard`
builds this image and hands it to each boot (host_tools.servers.unix_port), which mounts it at
HARDWARE_MOUNT outside the interpreter's heap, beside the firmware's at /rom, and makes its
modules importable by their own names (host_tools/onboard/unix_boot.py): `dbch flash` sends the
firmware only. The image is kept in dbch's cache under the hash of its bytes, outside any board's
flash folder, so boards share it and a changed source makes a new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from host_tools.files import write_file
from host_tools.paths import cache_dir

BOARD = "unix"  # the board whose hardware is simulated: the virtual board
HARDWARE_MOUNT = "/hw"  # where the virtual board's boot mounts it


def hardware_files(board: str = BOARD) -> dict[str, bytes]:
    """{path: .mpy} of board's hardware modules, at the paths they are imported from."""
    from host_tools.firmware.build import BuildError, board_hardware, compile_tree
    from host_tools.firmware.imports import source_path

    modules = board_hardware(board)
    sources = [source_path(m) for m in modules]
    lost = [m for m, s in zip(modules, sources) if s is None]
    if lost:
        raise BuildError(f"no source for {lost[0]}, which boards/{board}.py names as its hardware")
    return {c.target: c.data for c in compile_tree(sources)}


def hardware_image(board: str = BOARD) -> Path:
    """The file holding the ROMFS image of board's hardware (hardware_files), built if need be."""
    from host_tools.firmware.romfs import romfs_image

    data = romfs_image(hardware_files(board))
    path = cache_dir("hardware", f"{board}-{hashlib.sha256(data).hexdigest()[:16]}.romfs")
    if not path.is_file() or path.read_bytes() != data:
        write_file(path, data)
    return path

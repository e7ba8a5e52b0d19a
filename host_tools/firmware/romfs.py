"""ROMFS images: a board's compiled modules in MicroPython's read-only filesystem.

MicroPython 1.25 and later mount such an image with `vfs.VfsRom(buffer)`; a module imported from
it is run in place: its bytecode and constant strings stay in the image instead of being copied
onto the heap, which keeps only the objects the module makes (its functions, classes, globals,
the names it interns). On a board with a ROMFS partition the image lives in flash and the port
mounts it at /rom. The virtual board (the unix port) has none: it keeps the image as the file
IMAGE_FILE in its flash, which `dbch flash` writes (slot A's modules, host_tools.firmware.flash)
and its boot mounts at /rom from memory outside the interpreter's heap
(host_tools.servers.unix_port), as a partition would be. Any other board with vfs.VfsRom can
mount an image kept in a file with host_tools/onboard/romfs_mount.py, the image then taking its
own place on the heap (bench/bench_footprint.py measures so, net of that block).

The image is written by mpremote's writer (mpremote.romfs.VfsRomWriter, the one `mpremote romfs
build` uses): a tree of directories and files, each file's bytes verbatim.
"""

from __future__ import annotations

from host_tools.errors import DbchError

IMAGE_FILE = "dbch.romfs"  # where a board without a ROMFS partition keeps the image, on its flash
MOUNT_POINT = "/rom"  # where MicroPython mounts a board's ROMFS, and host_tools/onboard/romfs_mount.py


class RomfsError(DbchError):
    pass


def _tree(files: dict[str, bytes]) -> dict:
    """{"agent": {"wire.mpy": b"..."}, ...} from {"agent/wire.mpy": b"...", ...}."""
    tree: dict = {}
    for path, data in files.items():
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") for p in parts) or not path.isascii():
            raise RomfsError(f"{path!r} cannot be a path in a ROMFS image: use ASCII names joined by '/'")
        node = tree
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RomfsError(f"{'/'.join(parts[: i + 1])!r} is a file and {path!r} would put it under it")
        if parts[-1] in node:
            raise RomfsError(f"{path!r} is given twice, or as a file and a directory")
        node[parts[-1]] = bytes(data)
    return tree


def romfs_image(files: dict[str, bytes]) -> bytes:
    """A ROMFS image holding files ({path: bytes}; a path's directories are made), in name order."""
    try:
        from mpremote.romfs import VfsRomWriter
    except ImportError as e:
        raise RomfsError("ROMFS images need mpremote 1.25 or later: pip install 'mpremote>=1.25'") from e

    writer = VfsRomWriter()

    def write(node: dict) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                writer.opendir(name)
                write(node[name])
                writer.closedir()
            else:
                writer.mkfile(name, node[name])

    write(_tree(files))
    return writer.finalise()


def board_files(board: str, bootloader: bool = True) -> dict[str, bytes]:
    """{path: .mpy} of what dbch flash compiles for board (host_tools.firmware.image_build): the
    agent's core, the board's module and what its manifest names, and (bootloader) the
    bootloader's two modules, at the paths they are imported from."""
    from host_tools.firmware.image_build import build_bootloader, build_image

    files = {c.target: c.data for c in build_image(board)}
    if bootloader:
        files.update(build_bootloader())
    return files


def board_romfs(board: str, bootloader: bool = True) -> bytes:
    """A ROMFS image of board's compiled modules (board_files)."""
    return romfs_image(board_files(board, bootloader))

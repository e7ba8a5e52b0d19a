"""The agent compiled for a board: its modules (the agent's core, the board's module and what its
manifest names) as .mpy (mpy-cross, host_tools.firmware.build), checked whole, and built into a
firmware image (agent/fw_image.py) with its security counter.

Anti-rollback: the manifest carries the image's security counter ("sec"), by default derived from
the version (agent.boot.version_counter): MAJOR.MINOR.PATCH, each 0-999, as MAJOR*10^6 +
MINOR*10^3 + PATCH, so 0.2.0 is 2000; a version that does not start with digits gives 0.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent import fw_image as image
from host_tools.firmware.images import FirmwareInputError

if TYPE_CHECKING:
    from host_tools.firmware.build import Compiled

# host_tools.firmware.build (mpy-cross, its cache, threads) is loaded when something is compiled:
# a warm `dbch flash` compiles nothing (host_tools.firmware.warm)


def sources_for(board: str, radio: str | None = None) -> list[Path]:
    """The sources of the image for board (relative to ROOT): the agent's core, the board's module
    and what its manifest names, for radio on a board whose radio record chooses it
    (host_tools.firmware.build.board_modules); a module without a source is left for check_whole
    to name."""
    from host_tools.firmware.build import board_modules
    from host_tools.firmware.imports import source_path

    paths = (source_path(m) for m in board_modules(board, radio=radio))
    return sorted(p for p in paths if p is not None)


def _compiled(sources: list[Path], debug: bool) -> list[Compiled]:
    from host_tools.firmware.build import BuildError, compile_tree, opt_level

    try:
        return compile_tree(sources, opt_level(debug))
    except BuildError as e:
        raise BuildError(f"mpy-cross failed: {e}") from e


def build_image(board: str, debug: bool = False, radio: str | None = None) -> list[Compiled]:
    """The modules of the agent for board, compiled (debug: with their line numbers,
    host_tools.firmware.build.opt_level); radio: the text of the radio record of a board that
    has one (the virtual board: its image carries that radio's driver and chip, or none; None:
    the board's default radio, host_tools.firmware.build.board_radio). BuildError for an unknown
    board or radio, an incomplete installation or code mpy-cross refuses."""
    from boards import BOARDS
    from host_tools.firmware.build import BuildError, check_whole

    if board not in BOARDS:
        raise BuildError(f"unknown board {board!r}; boards: {', '.join(BOARDS)}")
    sources = sources_for(board, radio)
    check_whole(board, [s.with_suffix(".mpy").as_posix() for s in sources], radio=radio)
    return _compiled(sources, debug)


# the bootloader, outside the slots: its loop and the code it loads to choose a slot
BOOTLOADER = {"dbchboot.mpy": "agent/boot_main.py", "dbchslots.mpy": "agent/boot.py"}


def build_bootloader(debug: bool = False) -> dict[str, bytes]:
    """{board path: compiled module} of the bootloader (BOOTLOADER)."""
    compiled = _compiled([Path(src) for src in BOOTLOADER.values()], debug)
    return {path: c.data for path, c in zip(BOOTLOADER, compiled)}  # one each, in order


def security_counter(version: str, sec: int | None = None) -> int:
    """The security counter an image of version gets: sec if given, else derived from the version
    (agent.boot.version_counter, as the device derives it for an image without one)."""
    from agent.boot import MAX_SEC, version_counter

    if sec is None:
        return version_counter(version)
    if not 0 <= sec <= MAX_SEC:
        raise FirmwareInputError(f"--security-counter: 0 to {MAX_SEC}, not {sec}")
    return sec


def build_content(
    board: str, version: str, sec: int | None = None, debug: bool = False, radio: str | None = None
) -> bytes:
    """An unsigned image of the agent for board (for radio: build_image), compiled with mpy-cross
    as dbch flash does, with its security counter (security_counter)."""
    try:
        image.check_version(version)
    except image.ImageError as e:
        raise FirmwareInputError(f"--version: {e}") from e
    sec = security_counter(version, sec)
    files = [(c.target, c.data) for c in build_image(board, debug, radio)]
    return image.build(version, board, files, {"built": int(time.time()), "sec": sec})

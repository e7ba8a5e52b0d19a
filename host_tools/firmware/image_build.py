"""The agent compiled for a board: its modules as .mpy (mpy-cross, host_tools.firmware.build),
checked whole, and built into a firmware image (agent/image.py) with its security counter.

Anti-rollback: the manifest carries the image's security counter ("sec"), by default derived from
the version (agent.boot.version_counter): MAJOR.MINOR.PATCH, each 0-999, as MAJOR*10^6 +
MINOR*10^3 + PATCH, so 0.2.0 is 2000; a version that does not start with digits gives 0.
"""

from __future__ import annotations

import time
from pathlib import Path

from agent import fw_image as image
from host_tools.firmware.build import ROOT, BuildError, Compiled, check_whole, compile_tree
from host_tools.firmware.images import FirmwareInputError


def sources_for(board: str) -> list[Path]:
    files = [p.relative_to(ROOT) for p in sorted((ROOT / "agent").glob("*.py"))]
    files += [p.relative_to(ROOT) for p in sorted((ROOT / "hal").glob("*.py"))]
    files += [p.relative_to(ROOT) for p in sorted((ROOT / "hal" / "sim").glob("*.py"))]
    files += [Path("boards/__init__.py"), Path(f"boards/{board}.py"), Path("boards/mcu_board.py")]
    if board in ("sim", "unix"):  # a simulated board may carry a real board's radio on a simulated chip
        files += [p.relative_to(ROOT) for p in sorted((ROOT / "hal" / "sim" / "chips").glob("*.py"))]
        files += [Path("boards/simchips.py")]
        files += [Path(f"boards/{b}.py") for b in ("heltec_wifi_lora32_v3", "pico_rfm69", "nucleo_wl55jc")]
    return files


def _compiled(sources: list[Path]) -> list[Compiled]:
    try:
        return compile_tree(sources)
    except BuildError as e:
        raise BuildError(f"mpy-cross failed: {e}") from e


def build_image(board: str) -> list[Compiled]:
    """The modules of the agent for board, compiled; BuildError for an unknown board, an
    incomplete installation or code mpy-cross refuses."""
    from boards import BOARDS

    if board not in BOARDS:
        raise BuildError(f"unknown board {board!r}; boards: {', '.join(BOARDS)}")
    sources = sources_for(board)
    check_whole(board, [s.with_suffix(".mpy").as_posix() for s in sources])
    return _compiled(sources)


def build_bootloader() -> bytes:
    return _compiled([Path("agent/boot.py")])[0].data


def security_counter(version: str, sec: int | None = None) -> int:
    """The security counter an image of version gets: sec if given, else derived from the version
    (agent.boot.version_counter, as the device derives it for an image without one)."""
    from agent.boot import MAX_SEC, version_counter

    if sec is None:
        return version_counter(version)
    if not 0 <= sec <= MAX_SEC:
        raise FirmwareInputError(f"--security-counter: 0 to {MAX_SEC}, not {sec}")
    return sec


def build_content(board: str, version: str, sec: int | None = None) -> bytes:
    """An unsigned image of the agent for board, compiled with mpy-cross as dbch flash does, with
    its security counter (security_counter)."""
    try:
        image.check_version(version)
    except image.ImageError as e:
        raise FirmwareInputError(f"--version: {e}") from e
    sec = security_counter(version, sec)
    files = [(c.target, c.data) for c in build_image(board)]
    return image.build(version, board, files, {"built": int(time.time()), "sec": sec})

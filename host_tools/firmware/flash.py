"""`dbch flash`: put the agent on a board (real, or the virtual board) and start it.

Compiles the agent for the board (the agent's core, the board's module and what its manifest
names: host_tools.firmware.image_build) to .mpy with mpy-cross and installs it as firmware slot A
under the bootloader, copying only the files whose SHA-256 differs (compressed through a loader
it runs on the board, host_tools.firmware.transfer, or through mpremote's transport on a board
without deflate); removes the modules (and directories) the board no longer gets, verifies every
hash, reboots the board and waits for the agent's hello on the wire protocol.

On-board layout (agent/boot.py has the details):
    main.py            start(): boards.load("<board>"), agent.run.serve; dbchboot.main(start, ...)
    dbchboot.mpy       the bootloader's loop (agent/boot_main.py): what stays loaded
    dbchslots.mpy      the bootloader's choice (agent/boot.py), loaded at each boot to pick the
                       slot and count trial boots, then unloaded before the agent starts
    fwboot.json        boot state: flash makes slot A active (no trial)
    fwkey.bin          the trusted firmware signing key, 65-byte uncompressed P-256 point
    slots/a/...        the agent's modules for the board (agent/ hal/ boards/; hal/sim/ on a
                       simulated board) + manifest.json
    slots/b/           the other slot, filled by `dbch firmware send` (left as it is)
The signing key comes from --signing-key (pub.bin, pub.pem or pub.der, or 130 hex digits), else
from the development PKI (`dbch pki signing-key`: <pki dir>/signing/pub.bin) when there is one;
otherwise the board keeps the key it has. Files of the layout before slots (agent/, hal/, boards/
at the root) are removed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.errors import DbchError
from host_tools.firmware import transfer
from host_tools.firmware.build import BuildError, board_radio, board_radios
from host_tools.firmware.handover import hand_over, wait_for_hello
from host_tools.firmware.image_build import BOOTLOADER, build_bootloader, build_image

# the directories a slot's modules may be in (a board's image has some of them: those it needs)
DIRS = ("agent", "hal", "hal/sim", "hal/sim/chips", "boards")
SLOT = "slots/a"
LEGACY_DIRS = DIRS  # where the layout before slots kept them, at the root: cleaned up
ROOT_FILES = ("main.py", *BOOTLOADER, "fwboot.json", "fwkey.bin", SLOT + "/manifest.json")
MAIN_PY = """# Written by dbch flash: the bootloader picks a firmware slot, then start() runs the hub agent
# from it on this board.
import sys

import dbchboot
import machine


def start():
    # the slot's modules are importable now: the board, and the agent on its HAL
    import boards
    from agent.run import serve

    board = boards.load({board!r})
    return serve(board.make_hal(), board).reboot_requested


dbchboot.main(start, reset=machine.reset, print_exception=sys.print_exception)
"""

# One round trip: every file in the directories given, and the single files given, with its
# SHA-256, as {path: hex}.
_FILE_HASHES = Path(__file__).resolve().parents[1] / "onboard" / "file_hashes.py"


def _scan(t) -> dict:
    """path -> SHA-256 hex of what the board holds where an image goes (onboard/file_hashes.py)."""
    dirs = list(LEGACY_DIRS) + [f"{SLOT}/{d}" for d in DIRS]
    program = transfer.compact(_FILE_HASHES.read_text()) + f"hashes({dirs!r}, {list(ROOT_FILES)!r})\ndel hashes\n"
    found = {}
    for line in t.exec(program).decode().splitlines():
        digest, _, path = line.strip().partition(" ")
        if path:
            found[path] = digest
    return found


class FlashError(DbchError):
    """Flashing could not be done or did not verify; the message says what to do."""


# A board whose radio its radio record chooses (the virtual board: boards/unix.py) gets the image
# for that radio (host_tools.firmware.build.board_radio): the record is read before anything is
# copied.
_READ_TEXT = Path(__file__).resolve().parents[1] / "onboard" / "read_text.py"


def _radio(t, board: str) -> str | None:
    """The radio the board's radio record names, or None for a board with one radio; FlashError
    for a record that names none of its radios."""
    if not board_radios(board):
        return None
    import ast

    from boards import load

    path = f"{load(board).DATA_DIR}/radio"
    out = t.exec(transfer.compact(_READ_TEXT.read_text()) + f"read_text({path!r})\ndel read_text\n").strip()
    try:
        return board_radio(board, ast.literal_eval(out.decode()) if out else None)
    except BuildError as e:
        raise FlashError(f"the board's radio record ({path}): {e}; write one of them there and flash again") from e


@dataclass
class FlashResult:
    port: str
    board: str
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes_written: int = 0
    copy: str = ""  # how the files were copied: "deflate" (compressed, through the loader) or "plain"
    wire_bytes: int = 0  # what the compressed copy put on the line for them
    version: str = ""
    signing_key: bool = False
    seconds: float = 0.0
    hello: dict | None = None


def slot_manifest(version: str, board: str, content: bytes) -> dict:
    """The manifest.json a slot holds for an image CONTENT (the same keys the agent writes)."""
    from agent import fw_image as image

    m, _n = image.parse_head(content)
    return {
        "version": version,
        "board": board,
        "hash": hashlib.sha256(content).hexdigest(),
        "size": len(content),
        "sha256": m["sha256"].hex(),
        "files": m["files"],
    }


def boot_state_json() -> bytes:
    from agent import boot

    return json.dumps(boot.default_state(), sort_keys=True).encode()


def slot_files(board: str, version: str, debug: bool = False, radio: str | None = None) -> dict[str, bytes]:
    """{path on the board: bytes} of slot A for board, with its manifest (debug: compiled with
    line numbers; radio: for the radio a radio record names, image_build.build_image)."""
    from agent import fw_image as image

    compiled = build_image(board, debug, radio)
    files = [(c.target, c.data) for c in compiled]
    content = image.build(version, board, files)
    wanted = {f"{SLOT}/{path}": data for path, data in files}
    wanted[f"{SLOT}/manifest.json"] = json.dumps(slot_manifest(version, board, content), sort_keys=True).encode()
    return wanted


def flash(
    port: str,
    board: str,
    *,
    baud: int = 115200,
    progress: Callable[[str], None] | None = None,
    timeout: float = 20.0,
    eui: bytes | None = None,
    signing_key: bytes | None = None,
    version: str | None = None,
    slot: dict[str, bytes] | None = None,
    debug: bool = False,
) -> FlashResult:
    """Flash the agent for board (slot A at version, the bootloader, the boot state and the
    signing key if given) to the MicroPython board on port, copying only what differs; then
    reboot it and wait for the agent's hello. progress(message) is told each step as it goes.
    slot: slot A's files as slot_files(board, version, debug) gives them, compiled once for many
    boards (a board whose radio record names another radio gets the image for it, built here).
    debug: the modules keep their line numbers (host_tools.firmware.build.opt_level).
    FlashError, BuildError or LinkError (PortBusy) when it cannot be done."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport as MpSerial

    from agent import VERSION

    t0 = time.monotonic()
    version = version or VERSION
    wanted = dict(slot) if slot is not None else slot_files(board, version, debug)
    modules = len(wanted) - 1
    wanted["main.py"] = MAIN_PY.format(board=board).encode()
    wanted.update(build_bootloader(debug))
    wanted["fwboot.json"] = boot_state_json()
    if signing_key is not None:
        wanted["fwkey.bin"] = signing_key
    result = FlashResult(port=port, board=board, version=version)
    say = progress or (lambda _msg: None)
    say(
        f"compiled {modules} modules ({sum(len(d) for p, d in wanted.items() if p.startswith(SLOT + '/') and p.endswith('.mpy'))} "
        f"bytes of .mpy) for board {board}, version {version}, into slot A"
    )
    hand_over(port, baud=baud)
    try:
        t = MpSerial(port, baudrate=baud)
        # mpremote reads a pty with no timeout: a port that never answers would hang forever
        t.serial.timeout = 0.5
    except TransportError as e:
        raise FlashError(f"cannot open {port}: {e}") from e
    try:
        try:
            t.enter_raw_repl(soft_reset=False, timeout_overall=5)
        except TransportError as e:
            raise FlashError(f"no MicroPython REPL on {port}: {e}. Is it a MicroPython board?") from e
        have = _scan(t)
        radio = _radio(t, board)
        if radio != board_radio(board):  # the record asks for another radio than the default's image
            wanted = {p: d for p, d in wanted.items() if not p.startswith(SLOT + "/")}
            wanted.update(slot_files(board, version, debug, radio))
            n = sum(1 for p in wanted if p.startswith(SLOT + "/")) - 1
            say(f"its radio record names radio {radio}: slot A gets the image for it ({n} modules)")
        dirs = [f"{SLOT}/{d}" for d in DIRS if any(p.startswith(f"{SLOT}/{d}/") for p in wanted)]
        man = f"{SLOT}/manifest.json"
        if man in have and have[man] != hashlib.sha256(wanted[man]).hexdigest():
            # slot A is not bootable while its files change (the manifest is written last): a
            # flash cut short boots the other slot if it has an image, never half of slot A
            t.fs_rmfile(man)
            del have[man]
        last = {man: 1, "fwboot.json": 2, "main.py": 3}
        order = sorted(wanted, key=lambda p: (last.get(p, 0), p))
        todo = [p for p in order if have.get(p) != hashlib.sha256(wanted[p]).hexdigest()]
        result.unchanged = len(order) - len(todo)
        # compressed through the loader (host_tools.firmware.transfer); plainly through mpremote's
        # transport when the board has no deflate module
        try:
            sent = transfer.send_files(t, [(p, wanted[p]) for p in todo], port=port, say=say) if todo else None
        except transfer.TransferError as e:
            raise FlashError(str(e)) from e
        if sent is not None:
            result.copy, result.wire_bytes = "deflate", sent.wire_bytes
        elif todo:
            result.copy = "plain"
            for d in ["slots", SLOT] + dirs:
                if not any(p.startswith(d + "/") for p in have) and not t.fs_exists(d):
                    t.fs_mkdir(d)
            for path in todo:
                say(f"  write {path} ({len(wanted[path])} bytes)")
                t.fs_writefile(path, wanted[path], chunk_size=1024)
        result.written = todo
        result.bytes_written = sum(len(wanted[p]) for p in todo)
        for path in sorted(have):
            if path not in ROOT_FILES and path not in wanted and path.rsplit(".", 1)[-1] in ("py", "mpy"):
                say(f"  remove {path}")
                t.fs_rmfile(path)
                result.removed.append(path)
        # the old layout's directories, and the slot's that this board's image no longer has
        stale = list(LEGACY_DIRS) + [f"{SLOT}/{d}" for d in DIRS if f"{SLOT}/{d}" not in dirs]
        # in one round trip, hal/sim before hal: each removed if it is there and empty (one that
        # holds files of the user's own is left)
        t.exec(
            f"import os\nfor d in {sorted(stale, reverse=True)!r}:\n try:\n  os.rmdir(d)\n except OSError:\n  pass\n"
            "del os, d\n"
        )
        if eui is not None:
            # a virtual board keeps its identity in its flash (boards/unix.py): provision it
            if not t.fs_exists("data"):
                t.fs_mkdir("data")
            t.fs_writefile("data/eui", eui)
            say(f"  identity set to {'-'.join(f'{b:02X}' for b in eui)}")
        # what the loader wrote it checked on the board (each file's SHA-256 before it was renamed
        # into place): the listing taken before, with those hashes, is the verification; a plain
        # copy is listed again
        if result.copy == "plain":
            now = _scan(t)
        else:
            now = dict(have, **{p: hashlib.sha256(wanted[p]).hexdigest() for p in result.written})
        result.signing_key = now.get("fwkey.bin") is not None
        bad = [p for p, data in wanted.items() if now.get(p) != hashlib.sha256(data).hexdigest()]
        if bad:
            raise FlashError(f"verification failed for {', '.join(bad)}: flash again")
        t.exit_raw_repl()
        t.serial.write(b"\x04")  # soft reset from the friendly REPL: boot runs main.py
        t.serial.flush()
    finally:
        t.close()
    say("rebooted; waiting for the agent's hello")
    result.hello = wait_for_hello(port, baud=baud, timeout=timeout)
    result.seconds = round(time.monotonic() - t0, 3)
    return result

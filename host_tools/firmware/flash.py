"""`dbch flash`: put the agent on a board (real, or the virtual board) and start it.
Over 400 lines: the flash is one sequence (warm check, build, hand-over, listing, copy, verify,
reboot) whose steps share its state; the layout it writes is described here with it.

First asks the agent running on the board what is flashed (one digest: host_tools.firmware.warm)
and leaves the board as it is, agent running, when nothing would change. Otherwise it compiles
the agent for the board (the agent's core, the board's module and what its manifest
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
On a board that mounts a ROMFS image outside its heap (the virtual board: ROMFS_BOARDS, with
vfs.VfsRom) slot A's modules go instead, by default (layout "auto"; "romfs" or "mpy" to choose),
into one image imported in place (host_tools.firmware.romfs), and the slot holds a mark:
    dbch.romfs         the image: slots/a/agent/... at their paths, mounted at /rom at each boot
    slots/a/romfs      the mark (agent.boot.ROMFS_MARK): the bootloader imports slot A from
                       /rom/slots/a; slots/a/ holds only it and manifest.json
Switching layouts removes what the other one left (the .mpy files; the mark and the image), so
neither shadows the other. `dbch firmware send` stages .mpy files into slot B whatever the
layout (the agent unpacks an image into the slot's directory).
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.errors import DbchError
from host_tools.firmware import radio_record, transfer, warm
from host_tools.firmware.handover import hand_over, wait_for_hello
from host_tools.firmware.image_build import BOOTLOADER, build_bootloader, build_image
from host_tools.firmware.romfs import IMAGE_FILE

# the directories a slot's modules may be in (a board's image has some of them: those it needs)
DIRS = ("agent", "hal", "hal/sim", "hal/sim/chips", "boards")
SLOT = "slots/a"
LEGACY_DIRS = DIRS  # where the layout before slots kept them, at the root: cleaned up
ROMFS_MARK = SLOT + "/romfs"  # agent.boot.ROMFS_MARK in slot A: its modules are in IMAGE_FILE
LAYOUT_FILES = (IMAGE_FILE, ROMFS_MARK)  # what the ROMFS layout has and the .mpy one has not
ROOT_FILES = ("main.py", *BOOTLOADER, "fwboot.json", "fwkey.bin", SLOT + "/manifest.json", *LAYOUT_FILES)
LAYOUTS = ("auto", "romfs", "mpy")
# the boards whose port mounts the image file outside its heap, as a ROMFS partition would be: the
# virtual board (host_tools.servers.unix_port). A real board keeps .mpy files: one without a ROMFS
# partition would read the whole image onto its heap.
ROMFS_BOARDS = ("unix",)
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


def _scan(t, board: str | None = None, deflated: bool = False) -> tuple[dict, bool, str | None, bool]:
    """(path -> SHA-256 hex of what the board holds where an image goes, whether its firmware has
    vfs.VfsRom, the line its radio record's read printed, whether it ran deflated)
    (onboard/file_hashes.py); board: its radio record is read in the same paste
    (radio_record.program), one round trip for both. deflated: the program goes as raw deflate
    through the loader's first paste (transfer.exec_deflated: half the bytes on the line), which
    stays defined for the copy; plainly on a board without deflate, or where that failed."""
    dirs = list(LEGACY_DIRS) + [f"{SLOT}/{d}" for d in DIRS]
    program = transfer.compact(_FILE_HASHES.read_text()) + f"hashes({dirs!r}, {list(ROOT_FILES)!r})\ndel hashes\n"
    program += radio_record.program(board) if board else ""
    found, rom, record = {}, False, None
    try:
        out = transfer.exec_deflated(t, program) if deflated else None
    except transfer.TransferError:
        out = None  # (no room for the window on a full heap, say): plainly, as on a board without deflate
    booted = out is not None
    for line in (out if booted else t.exec(program)).decode().splitlines():
        if radio_record.is_record(line.strip()):
            record = line.strip()
            continue
        digest, _, path = line.strip().partition(" ")
        if path:
            found[path] = digest
        elif digest == "VfsRom":
            rom = True
    return found, rom, record, booted


class FlashError(DbchError):
    """Flashing could not be done or did not verify; the message says what to do."""


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
    layout: str = ""  # "romfs" (slot A in one ROMFS image) or "mpy" (.mpy files)
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


def romfs_slot(slot: dict[str, bytes]) -> dict[str, bytes]:
    """Slot A's files (slot_files) in the ROMFS layout: its modules in one image at their paths,
    the mark, and the same manifest."""
    from host_tools.firmware.romfs import romfs_image

    man = f"{SLOT}/manifest.json"
    image = romfs_image({p: d for p, d in slot.items() if p != man})
    return {IMAGE_FILE: image, ROMFS_MARK: IMAGE_FILE.encode() + b"\n", man: slot[man]}


def check_layout(layout: str, board: str) -> str:
    """The layout, "romfs" or "mpy": the one asked for, auto resolved for board (ROMFS_BOARDS)."""
    if layout not in LAYOUTS:
        raise FlashError(f"unknown layout {layout!r}: {', '.join(LAYOUTS)}")
    if layout == "auto":
        return "romfs" if board in ROMFS_BOARDS else "mpy"
    if layout == "romfs" and board not in ROMFS_BOARDS:
        raise FlashError(
            f"board {board} keeps .mpy files: a ROMFS image is mounted at boot only on {', '.join(ROMFS_BOARDS)} "
            "(the virtual board); flash it with --layout auto or mpy"
        )
    return layout


def wanted_files(
    slot: dict[str, bytes], layout: str, board: str, signing_key: bytes | None = None, debug: bool = False
) -> dict[str, bytes]:
    """{path: bytes} of everything flash puts on the board: slot A (slot_files) in layout, main.py,
    the bootloader (debug: with line numbers), the boot state and the signing key if given."""
    wanted = romfs_slot(slot) if layout == "romfs" else dict(slot)
    wanted["main.py"] = MAIN_PY.format(board=board).encode()
    wanted.update(build_bootloader(debug))
    wanted["fwboot.json"] = boot_state_json()
    if signing_key is not None:
        wanted["fwkey.bin"] = signing_key
    return wanted


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


def asked_paths(eui: bytes | None, signing_key: bytes | None, has_record: bool = False) -> tuple[list[str], list[str]]:
    """(dirs, files) the agent is asked about before a hand-over (host_tools.firmware.warm): every
    folder a slot's modules or the layout before slots had, and every file flash writes or
    removes at the root (the signing key only when one is given: otherwise the board keeps its
    own; the identity when one is given; the radio record on a board that has one)."""
    dirs = list(LEGACY_DIRS) + [f"{SLOT}/{d}" for d in DIRS]
    files = [p for p in ROOT_FILES if p != "fwkey.bin" or signing_key is not None]
    return dirs, files + (["data/eui"] if eui is not None else []) + ([radio_record.PATH] if has_record else [])


def _with_eui(wanted: dict[str, bytes], eui: bytes | None) -> dict[str, bytes]:
    """wanted, and the identity flash writes when it is given one (data/eui)."""
    return dict(wanted, **{"data/eui": eui}) if eui is not None else wanted


def _unchanged(port, baud, expect, paths, eui, signing_key, result) -> bool:
    """Whether the agent running on port gives the digest expect of what is flashed (paths:
    asked_paths): nothing to write nor to remove; result gets what the agent told."""
    got = warm.ask(port, *paths, probe=None if signing_key is not None else "fwkey.bin", baud=baud)
    if got is None or got[0] != expect:
        return False
    sha, n, hello, has_key = got
    result.unchanged = n - (eui is not None)
    result.hello = hello
    result.signing_key = signing_key is not None or bool(has_key)
    return True


def _done(result: FlashResult, t0: float, say: Callable[[str], None]) -> FlashResult:
    say("nothing to change: the agent's files are as they would be written; it keeps running")
    result.seconds = round(time.monotonic() - t0, 3)
    return result


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
    layout: str = "auto",
    ask_agent: bool = True,
) -> FlashResult:
    """Flash the agent for board (slot A at version, the bootloader, the boot state and the
    signing key if given) to the MicroPython board on port, copying only what differs; then
    reboot it and wait for the agent's hello. progress(message) is told each step as it goes.
    slot: slot A's files as slot_files(board, version, debug) gives them, compiled once for many
    boards (a board whose radio record names another radio gets the image for it, built here).
    debug: the modules keep their line numbers (host_tools.firmware.build.opt_level).
    layout: "auto" (ROMFS on a board of ROMFS_BOARDS whose firmware has vfs.VfsRom, else .mpy),
    "romfs" or "mpy" (LAYOUTS). ask_agent: first ask the running agent what is flashed
    (host_tools.firmware.warm), and leave a board on which nothing would change as it is.
    FlashError, BuildError or LinkError (PortBusy) when it cannot be done."""
    from agent import VERSION

    t0 = time.monotonic()
    version = version or VERSION
    asked = layout
    layout = check_layout(layout, board)
    result = FlashResult(port=port, board=board, version=version, layout=layout)
    say = progress or (lambda _msg: None)
    from host_tools.firmware.build import board_radio, board_radios

    paths = asked_paths(eui, signing_key, bool(board_radios(board)))
    # what a board holding it all gives, as kept from an earlier flash of the same inputs: a board
    # on which nothing would change is found before anything is compiled
    key = warm.inputs_key(board, version, layout, signing_key, eui, debug) if ask_agent and slot is None else None
    known = warm.recall(key) if key else None
    if known is not None and _unchanged(port, baud, known, paths, eui, signing_key, result):
        return _done(result, t0, say)

    def build() -> tuple[dict, dict]:
        s = dict(slot) if slot is not None else slot_files(board, version, debug)
        w = wanted_files(s, layout, board, signing_key, debug)
        say(
            f"compiled {len(s) - 1} modules ({sum(len(d) for p, d in s.items() if p.endswith('.mpy'))} "
            f"bytes of .mpy) for board {board}, version {version}, into slot A"
            + (f" as a {len(w[IMAGE_FILE])}-byte ROMFS image" if layout == "romfs" else "")
        )
        return s, w

    # with what an earlier flash of the same inputs expects at hand, the build (compile once:
    # mostly reading dbch's cache) runs on a thread while the line does the hand-over, the raw
    # REPL and the hash listing, and is waited for before anything is chosen or sent
    built = None
    if known is None:
        slot, wanted = build()
    else:
        pool = ThreadPoolExecutor(1, thread_name_prefix="dbch-build")
        built = pool.submit(build)
        pool.shutdown(wait=False)
    if ask_agent and built is None:
        expect, _n = warm.expected(_with_eui(wanted, eui), *paths)
        if key:
            warm.remember(key, expect)
        if known is None and _unchanged(port, baud, expect, paths, eui, signing_key, result):
            return _done(result, t0, say)
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport as MpSerial

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
        have, rom, line, booted = _scan(t, board, deflated=True)
        if built is not None:
            slot, wanted = built.result()
        radio, record = radio_record.radio_of(board, line)
        if radio != board_radio(board):  # the record asks for another radio than the default's image
            slot = slot_files(board, version, debug, radio)
            wanted = wanted_files(slot, layout, board, signing_key, debug)
            say(f"its radio record names radio {radio}: slot A gets the image for it ({len(slot) - 1} modules)")
        if layout == "romfs" and not rom:
            if asked == "romfs":
                raise FlashError(
                    f"the firmware on {port} has no vfs.VfsRom (MicroPython 1.25 or later) for a ROMFS image: "
                    "update it, or flash .mpy files (--layout mpy)"
                )
            layout = result.layout = "mpy"
            wanted = wanted_files(slot, layout, board, signing_key, debug)
            say("  the firmware has no vfs.VfsRom: .mpy files")
        if key:
            # what this board holds once flashed, its radio record and the layout auto gave it
            # included: the next flash of the same inputs finds it unchanged (the agent is asked)
            warm.remember(key, warm.expected(radio_record.with_record(_with_eui(wanted, eui), record), *paths)[0])
        dirs = [f"{SLOT}/{d}" for d in DIRS if any(p.startswith(f"{SLOT}/{d}/") for p in wanted)]
        man = f"{SLOT}/manifest.json"
        switch = (ROMFS_MARK in have) != (ROMFS_MARK in wanted)  # the same manifest, the other layout
        if man in have and (switch or have[man] != hashlib.sha256(wanted[man]).hexdigest()):
            # slot A is not bootable while its files change (the manifest is written last): a
            # flash cut short boots the other slot if it has an image, never half of slot A
            t.fs_rmfile(man)
            del have[man]
        if ROMFS_MARK in have and ROMFS_MARK not in wanted:
            # from ROMFS to .mpy files: the mark goes before the files come, so that the slot is
            # never taken from the image again
            say(f"  remove {ROMFS_MARK}")
            t.fs_rmfile(ROMFS_MARK)
            del have[ROMFS_MARK]
            result.removed.append(ROMFS_MARK)
        last = {man: 1, "fwboot.json": 2, "main.py": 3}
        order = sorted(wanted, key=lambda p: (last.get(p, 0), p))
        todo = [p for p in order if have.get(p) != hashlib.sha256(wanted[p]).hexdigest()]
        result.unchanged = len(order) - len(todo)
        # compressed through the loader (host_tools.firmware.transfer); plainly through mpremote's
        # transport when the board has no deflate module
        try:
            sent = (
                transfer.send_files(t, [(p, wanted[p]) for p in todo], port=port, say=say, booted=booted)
                if todo
                else None
            )
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
            old = path in LAYOUT_FILES or (path not in ROOT_FILES and path.rsplit(".", 1)[-1] in ("py", "mpy"))
            if old and path not in wanted:
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
            now = _scan(t)[0]
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

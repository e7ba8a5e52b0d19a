"""`dbch flash`: put the agent on a board (real, or the virtual board) and start it.

Compiles agent/, hal/ and the board's module to .mpy with mpy-cross, copies only the files whose
SHA-256 differs through mpremote's transport, removes stale ones, writes main.py, verifies every
hash, reboots the board and waits for the agent's hello on the wire protocol.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.build import ROOT, BuildError, Compiled, compile_tree
from host_tools.cli import CommandError, add_json_flag, emit
from host_tools.client import AgentClient, LinkError, SerialTransport
from host_tools.connect import add_port_args, resolve

DIRS = ("agent", "hal", "hal/sim", "boards")
MAIN_PY = """# Written by dbch flash: start the hub agent on this board.
from boards import load

board = load({board!r})
from agent.run import serve

serve(board.make_hal(), board)
"""

# One round trip: every file under DIRS with its SHA-256, as {path: hex}.
_LIST_HASHES = """
def _dbch_hashes():
    import os, hashlib, binascii
    out = {}
    buf = bytearray(512)
    for d in %r:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = d + "/" + n
            if os.stat(p)[0] & 0x4000:
                continue
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    h.update(buf[:k])
            out[p] = binascii.hexlify(h.digest()).decode()
    try:
        with open("main.py", "rb") as f:
            out["main.py"] = binascii.hexlify(hashlib.sha256(f.read()).digest()).decode()
    except OSError:
        pass
    return out
print(repr(_dbch_hashes()))
"""


@dataclass
class FlashResult:
    port: str
    board: str
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    hello: dict | None = None


def sources_for(board: str) -> list[Path]:
    files = [p.relative_to(ROOT) for p in sorted((ROOT / "agent").glob("*.py"))]
    files += [p.relative_to(ROOT) for p in sorted((ROOT / "hal").glob("*.py"))]
    files += [p.relative_to(ROOT) for p in sorted((ROOT / "hal" / "sim").glob("*.py"))]
    files += [Path("boards/__init__.py"), Path(f"boards/{board}.py")]
    return files


def build_image(board: str) -> list[Compiled]:
    from boards import BOARDS

    if board not in BOARDS:
        raise CommandError(f"unknown board {board!r}; boards: {', '.join(BOARDS)}")
    try:
        return compile_tree(sources_for(board))
    except BuildError as e:
        raise CommandError(f"mpy-cross failed: {e}") from e


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def flash(
    port: str, board: str, *, baud: int = 115200, quiet: bool = False, timeout: float = 20.0, eui: bytes | None = None
) -> FlashResult:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport as MpSerial

    t0 = time.monotonic()
    image = build_image(board)
    main_py = MAIN_PY.format(board=board).encode()
    wanted = {c.target: c.data for c in image}
    wanted["main.py"] = main_py
    result = FlashResult(port=port, board=board)
    _progress(
        f"compiled {len(image)} modules ({sum(len(c.data) for c in image)} bytes of .mpy) for board {board}", quiet
    )
    try:
        t = MpSerial(port, baudrate=baud)
    except TransportError as e:
        raise CommandError(f"cannot open {port}: {e}") from e
    try:
        try:
            t.enter_raw_repl(soft_reset=False)
        except TransportError as e:
            raise CommandError(f"no MicroPython REPL on {port}: {e}. Is it a MicroPython board?") from e
        have = ast.literal_eval(t.exec(_LIST_HASHES % (DIRS,)).decode().strip())
        for d in DIRS:
            if not any(p.startswith(d + "/") for p in have) and not t.fs_exists(d):
                t.fs_mkdir(d)
        for path, data in sorted(wanted.items()):
            if have.get(path) == hashlib.sha256(data).hexdigest():
                result.unchanged += 1
                continue
            _progress(f"  write {path} ({len(data)} bytes)", quiet)
            t.fs_writefile(path, data, chunk_size=1024)
            result.written.append(path)
            result.bytes_written += len(data)
        for path in sorted(have):
            if path != "main.py" and path not in wanted and path.rsplit(".", 1)[-1] in ("py", "mpy"):
                _progress(f"  remove {path}", quiet)
                t.fs_rmfile(path)
                result.removed.append(path)
        if eui is not None:
            # a virtual board keeps its identity in its flash (boards/unix.py): provision it
            if not t.fs_exists("data"):
                t.fs_mkdir("data")
            t.fs_writefile("data/eui", eui)
            _progress(f"  identity set to {'-'.join(f'{b:02X}' for b in eui)}", quiet)
        now = ast.literal_eval(t.exec(_LIST_HASHES % (DIRS,)).decode().strip())
        bad = [p for p, data in wanted.items() if now.get(p) != hashlib.sha256(data).hexdigest()]
        if bad:
            raise CommandError(f"verification failed for {', '.join(bad)}: flash again")
        t.exit_raw_repl()
        t.serial.write(b"\x04")  # soft reset from the friendly REPL: boot runs main.py
        time.sleep(0.05)
    finally:
        t.close()
    _progress("rebooted; waiting for the agent's hello", quiet)
    result.hello = wait_for_hello(port, baud=baud, timeout=timeout)
    result.seconds = round(time.monotonic() - t0, 3)
    return result


def wait_for_hello(port: str, *, baud: int = 115200, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            transport = SerialTransport(port, baud)
        except LinkError as e:
            last = e
            time.sleep(0.2)
            continue
        try:
            client = AgentClient(transport, timeout=1.0, port=port)
            r = client.hello()
            if r.ok:
                return r.data
        except LinkError as e:
            last = e
        finally:
            transport.close()
    raise CommandError(f"the agent did not answer on {port} within {timeout:g} s after flashing ({last})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flash", help="compile the agent and flash it to a board (default: the virtual board)", description=__doc__
    )
    add_port_args(p)
    p.add_argument("--board", help="board module (default: unix for a virtual board, else required)")
    p.add_argument("--eui", help="set a virtual board's EUI-64, e.g. 00-DB-12-34-56-78-90-A2 (real boards use their own)")
    add_json_flag(p)
    p.set_defaults(func=cmd_flash)


def cmd_flash(args: argparse.Namespace) -> int:
    is_vboard = args.port == "vboard" or args.port.startswith("vboard:")
    board = args.board or ("unix" if is_vboard else None)
    if board is None:
        raise CommandError("--board is required for a real board (e.g. --board heltec_wifi_lora32_v3)")
    eui = None
    if args.eui:
        from agent.eui import parse_eui

        if board != "unix":
            raise CommandError("--eui is for virtual boards: a real board's EUI-64 comes from its hardware")
        try:
            eui = parse_eui(args.eui)
        except ValueError as e:
            raise CommandError(f"--eui: {e}") from e
    port = resolve(args.port)
    res = flash(port, board, baud=args.baud, quiet=args.json, timeout=max(args.timeout, 20.0), eui=eui)
    h = res.hello or {}
    text = (
        f"flashed {board} on {args.port}: {len(res.written)} written ({res.bytes_written} bytes), "
        f"{res.unchanged} unchanged, {len(res.removed)} removed in {res.seconds:.1f} s\n"
        f"agent {h.get('version')} running: device {h.get('eui')}, board {h.get('board')}, {h.get('band')} MHz, boot #{h.get('boot')}"
    )
    emit(args, res.__dict__, text)
    return 0

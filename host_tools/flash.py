"""`dbch flash`: put the agent on a board (real, or the virtual board) and start it.

Compiles agent/, hal/ and the board's module to .mpy with mpy-cross and installs them as firmware
slot A under the bootloader, copying only the files whose SHA-256 differs through mpremote's
transport; removes stale ones, verifies every hash, reboots the board and waits for the agent's
hello on the wire protocol.

On-board layout (agent/boot.py has the details):
    main.py            start(): boards.load("<board>"), agent.run.serve; dbchboot.main(start, ...)
    dbchboot.mpy       the bootloader (agent/boot.py): picks the slot, counts trial boots
    fwboot.json        boot state: flash makes slot A active (no trial)
    fwkey.bin          the trusted firmware signing key, 65-byte uncompressed P-256 point
    slots/a/...        the agent's modules (agent/ hal/ hal/sim/ boards/) + manifest.json
    slots/b/           the other slot, filled by `dbch firmware send` (left as it is)
The signing key comes from --signing-key (pub.bin, pub.pem or pub.der, or 130 hex digits), else
from the development PKI (`dbch pki signing-key`: <pki dir>/signing/pub.bin) when there is one;
otherwise the board keeps the key it has. Files of the layout before slots (agent/, hal/, boards/
at the root) are removed.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.build import ROOT, BuildError, Compiled, check_whole, compile_tree
from host_tools.cli import CommandError, add_json_flag, emit
from host_tools.client import AgentClient, LinkError, SerialTransport
from host_tools.connect import add_port_args, resolve

DIRS = ("agent", "hal", "hal/sim", "boards")  # the modules' directories, inside a slot
SLOT = "slots/a"
LEGACY_DIRS = DIRS  # where the layout before slots kept them, at the root: cleaned up
BOOTLOADER = "dbchboot.mpy"
ROOT_FILES = ("main.py", BOOTLOADER, "fwboot.json", "fwkey.bin", SLOT + "/manifest.json")
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
_LIST_HASHES = """
def _dbch_hashes(dirs, files):
    import os, hashlib, binascii
    out = {}
    buf = bytearray(512)
    def one(p):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(buf[:k])
        out[p] = binascii.hexlify(h.digest()).decode()
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = d + "/" + n
            if not os.stat(p)[0] & 0x4000:
                one(p)
    for p in files:
        try:
            one(p)
        except OSError:
            pass
    return out
print(repr(_dbch_hashes(%r, %r)))
"""


def _scan(t) -> dict:
    dirs = list(LEGACY_DIRS) + [f"{SLOT}/{d}" for d in DIRS]
    return ast.literal_eval(t.exec(_LIST_HASHES % (dirs, list(ROOT_FILES))).decode().strip())


@dataclass
class FlashResult:
    port: str
    board: str
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes_written: int = 0
    version: str = ""
    signing_key: bool = False
    seconds: float = 0.0
    hello: dict | None = None


def sources_for(board: str) -> list[Path]:
    files = [p.relative_to(ROOT) for p in sorted((ROOT / "agent").glob("*.py"))]
    files += [p.relative_to(ROOT) for p in sorted((ROOT / "hal").glob("*.py"))]
    files += [p.relative_to(ROOT) for p in sorted((ROOT / "hal" / "sim").glob("*.py"))]
    files += [Path("boards/__init__.py"), Path(f"boards/{board}.py"), Path("boards/mcu_board.py")]
    return files


def build_image(board: str) -> list[Compiled]:
    from boards import BOARDS

    if board not in BOARDS:
        raise CommandError(f"unknown board {board!r}; boards: {', '.join(BOARDS)}")
    sources = sources_for(board)
    try:
        check_whole(board, [s.with_suffix(".mpy").as_posix() for s in sources])
    except BuildError as e:
        raise CommandError(str(e)) from e
    try:
        return compile_tree(sources)
    except BuildError as e:
        raise CommandError(f"mpy-cross failed: {e}") from e


def build_bootloader() -> bytes:
    try:
        return compile_tree([Path("agent/boot.py")])[0].data
    except BuildError as e:
        raise CommandError(f"mpy-cross failed: {e}") from e


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


def load_signing_public(spec: str | None) -> bytes | None:
    """The 65-byte P-256 point to trust: from spec (a file or hex), else the development PKI's
    signing key if there is one, else None."""
    from agent import p256

    if spec is None:
        try:
            from host_tools.pki import Pki

            path = Pki().signing_dir / "pub.bin"
        except Exception:  # the PKI module is optional here
            return None
        if not path.exists():
            return None
        spec = str(path)
    p = Path(spec)
    if p.exists():
        raw = p.read_bytes()
        if len(raw) != 65:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec

            try:
                if raw.lstrip().startswith(b"-----"):
                    key = serialization.load_pem_public_key(raw)
                else:
                    key = serialization.load_der_public_key(raw)
            except ValueError as e:
                raise CommandError(f"--signing-key {spec}: not a public key ({e})") from e
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise CommandError(f"--signing-key {spec}: not a P-256 public key")
            raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        try:
            raw = bytes.fromhex(spec)
        except ValueError:
            raise CommandError(f"--signing-key {spec}: no such file, and not hex") from None
    try:
        p256.parse_public_key(raw)
    except ValueError as e:
        raise CommandError(f"--signing-key {spec}: {e}") from e
    if len(raw) != 65:
        raise CommandError(f"--signing-key {spec}: give the uncompressed point (65 bytes)")
    return raw


def slot_files(board: str, version: str) -> dict[str, bytes]:
    """{path on the board: bytes} of slot A for board, with its manifest."""
    from agent import fw_image as image

    compiled = build_image(board)
    files = [(c.target, c.data) for c in compiled]
    content = image.build(version, board, files)
    wanted = {f"{SLOT}/{path}": data for path, data in files}
    wanted[f"{SLOT}/manifest.json"] = json.dumps(slot_manifest(version, board, content), sort_keys=True).encode()
    return wanted


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def flash(
    port: str,
    board: str,
    *,
    baud: int = 115200,
    quiet: bool = False,
    timeout: float = 20.0,
    eui: bytes | None = None,
    signing_key: bytes | None = None,
    version: str | None = None,
) -> FlashResult:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport as MpSerial

    from agent import VERSION

    t0 = time.monotonic()
    version = version or VERSION
    wanted = slot_files(board, version)
    modules = len(wanted) - 1
    wanted["main.py"] = MAIN_PY.format(board=board).encode()
    wanted[BOOTLOADER] = build_bootloader()
    wanted["fwboot.json"] = boot_state_json()
    if signing_key is not None:
        wanted["fwkey.bin"] = signing_key
    result = FlashResult(port=port, board=board, version=version)
    _progress(
        f"compiled {modules} modules ({sum(len(d) for p, d in wanted.items() if p.startswith(SLOT + '/') and p.endswith('.mpy'))} "
        f"bytes of .mpy) for board {board}, version {version}, into slot A",
        quiet,
    )
    hand_over(port, baud=baud)
    try:
        t = MpSerial(port, baudrate=baud)
        # mpremote reads a pty with no timeout: a port that never answers would hang forever
        t.serial.timeout = 0.5
    except TransportError as e:
        raise CommandError(f"cannot open {port}: {e}") from e
    try:
        try:
            t.enter_raw_repl(soft_reset=False, timeout_overall=5)
        except TransportError as e:
            raise CommandError(f"no MicroPython REPL on {port}: {e}. Is it a MicroPython board?") from e
        have = _scan(t)
        for d in ["slots", SLOT] + [f"{SLOT}/{d}" for d in DIRS]:
            if not any(p.startswith(d + "/") for p in have) and not t.fs_exists(d):
                t.fs_mkdir(d)
        man = f"{SLOT}/manifest.json"
        if man in have and have[man] != hashlib.sha256(wanted[man]).hexdigest():
            # slot A is not bootable while its files change (the manifest is written last): a
            # flash cut short boots the other slot if it has an image, never half of slot A
            t.fs_rmfile(man)
            del have[man]
        last = {man: 1, "fwboot.json": 2, "main.py": 3}
        order = sorted(wanted, key=lambda p: (last.get(p, 0), p))
        for path in order:
            data = wanted[path]
            if have.get(path) == hashlib.sha256(data).hexdigest():
                result.unchanged += 1
                continue
            _progress(f"  write {path} ({len(data)} bytes)", quiet)
            t.fs_writefile(path, data, chunk_size=1024)
            result.written.append(path)
            result.bytes_written += len(data)
        for path in sorted(have):
            if path not in ROOT_FILES and path not in wanted and path.rsplit(".", 1)[-1] in ("py", "mpy"):
                _progress(f"  remove {path}", quiet)
                t.fs_rmfile(path)
                result.removed.append(path)
        for d in sorted(LEGACY_DIRS, reverse=True):  # hal/sim before hal
            if any(p.startswith(d + "/") for p in result.removed) or (t.fs_exists(d) and not t.fs_listdir(d)):
                try:
                    t.fs_rmdir(d)
                except Exception:  # not empty (files of the user's own): leave it
                    pass
        if eui is not None:
            # a virtual board keeps its identity in its flash (boards/unix.py): provision it
            if not t.fs_exists("data"):
                t.fs_mkdir("data")
            t.fs_writefile("data/eui", eui)
            _progress(f"  identity set to {'-'.join(f'{b:02X}' for b in eui)}", quiet)
        now = _scan(t)
        result.signing_key = now.get("fwkey.bin") is not None
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


def hand_over(port: str, *, baud: int = 115200, timeout: float = 1.0) -> bool:
    """Ask the agent on `port` to give the line to the REPL (the "repl" request), before mpremote
    takes it. True once the agent answered I0 and left its loop. False if it did not: an agent that
    does not know the request (an older one, E13) or no agent at all (a board at its REPL); then
    mpremote's own Ctrl-C is what stops an older agent, which still has Ctrl-C on. A running agent
    that knows the request ignores Ctrl-C (the interrupt character is off while it owns the line),
    so this request is the only way in short of a reset."""
    from host_tools.client import PortBusy

    try:
        transport = SerialTransport(port, baud)
    except PortBusy as e:
        raise CommandError(str(e)) from e
    except LinkError:
        return False
    try:
        r = AgentClient(transport, timeout=timeout, port=port).request("repl")
    except LinkError:
        return False
    finally:
        transport.close()
    if r.ok:
        time.sleep(0.1)  # main.py returns and the REPL prints its prompt
    return r.ok


def take_back(port: str, *, baud: int = 115200, timeout: float = 20.0) -> dict:
    """Start the agent again after a hand-over, whatever mpremote left the board at: Ctrl-B leaves
    the raw REPL (at the friendly REPL it only reprints the banner), then Ctrl-D soft-resets from
    the friendly REPL, so main.py runs. The agent's hello."""
    transport = SerialTransport(port, baud)
    try:
        transport.write(b"\r\x02")
        time.sleep(0.1)
        transport.write(b"\x04")
        time.sleep(0.05)
    finally:
        transport.close()
    return wait_for_hello(port, baud=baud, timeout=timeout)


def wait_for_hello(port: str, *, baud: int = 115200, timeout: float = 20.0) -> dict:
    """The agent's hello on `port` once it is up (after a flash or a reboot). CommandError if it
    does not come: with what the board printed meanwhile (connect.explain_silence), or at once if
    another program has the port open."""
    from host_tools.client import PortBusy
    from host_tools.connect import explain_silence

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            transport = SerialTransport(port, baud)
        except PortBusy as e:
            raise CommandError(str(e)) from e
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
    why = explain_silence(port, baud=baud)
    raise CommandError(
        f"the agent did not answer on {port} within {timeout:g} s after flashing or rebooting ({last})"
        + (f"\n{why}" if why else "")
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flash", help="compile the agent and flash it to a board (default: the virtual board)", description=__doc__
    )
    add_port_args(p)
    p.add_argument("--board", help="board module (default: unix for a virtual board, else required)")
    p.add_argument(
        "--eui", help="set a virtual board's EUI-64, e.g. 00-DB-12-34-56-78-90-A2 (real boards use their own)"
    )
    p.add_argument(
        "--signing-key",
        metavar="PUB",
        help="the firmware signing public key to trust (pub.bin, pub.pem, pub.der or hex; "
        "default: the development PKI's, if any)",
    )
    p.add_argument("--fw-version", metavar="V", help="firmware version slot A reports (default: the build's)")
    add_json_flag(p)
    p.set_defaults(func=cmd_flash)
    register_mpremote(sub)


def register_mpremote(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mpremote",
        help="run mpremote on a board while its agent hands the line over, then start the agent again",
        description="Run `mpremote connect PORT ARGS...` on a board whose agent owns the serial line: the "
        "agent is asked to hand the line over first (noise on the line, Ctrl-C included, cannot do that), "
        "and it is started again afterwards, whatever mpremote left the board at. Example: "
        "dbch mpremote -- fs ls :slots/a",
    )
    add_port_args(p)
    p.add_argument("--keep", action="store_true", help="leave the board at its REPL afterwards (no agent)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGS", help="mpremote's command and arguments")
    add_json_flag(p)
    p.set_defaults(func=cmd_mpremote)


def cmd_mpremote(args: argparse.Namespace) -> int:
    import subprocess

    argv = [a for a in args.argv if a != "--"] if args.argv[:1] == ["--"] else list(args.argv)
    if not argv:
        raise CommandError("give mpremote's command: dbch mpremote -- exec 'print(1)' (see mpremote --help)")
    if args.port == "sim" or args.port.startswith(("sim:", "triage")):
        raise CommandError("mpremote needs a MicroPython board: a real board's port or a virtual board (vboard)")
    port = resolve(args.port)
    handed = hand_over(port, baud=args.baud)
    done = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *argv],
        capture_output=args.json,
        text=True,
    )
    hello = None
    if not args.keep:
        hello = take_back(port, baud=args.baud, timeout=max(args.timeout, 20.0))
    result = {"mpremote": argv, "rc": done.returncode, "handed_over": handed, "agent": hello}
    if args.json:
        result["stdout"], result["stderr"] = done.stdout, done.stderr
        emit(args, result)
    elif hello:
        print(f"dbch: agent running again (boot #{hello.get('boot')})", file=sys.stderr)
    else:
        print("dbch: the board is left at its REPL (--keep): dbch status starts its agent again", file=sys.stderr)
    return done.returncode


def cmd_flash(args: argparse.Namespace) -> int:
    if args.port == "sim" or args.port.startswith("sim:"):
        raise CommandError("the CPython agent (--port sim) runs this checkout's code: there is nothing to flash")
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
    key = load_signing_public(args.signing_key)
    if args.fw_version is not None:
        from agent.fw_image import ImageError, check_version

        try:
            check_version(args.fw_version)
        except ImageError as e:
            raise CommandError(f"--fw-version: {e}") from e
    port = resolve(args.port)
    res = flash(
        port,
        board,
        baud=args.baud,
        quiet=args.json,
        timeout=max(args.timeout, 20.0),
        eui=eui,
        signing_key=key,
        version=args.fw_version,
    )
    h = res.hello or {}
    text = (
        f"flashed {board} on {args.port}: {len(res.written)} written ({res.bytes_written} bytes), "
        f"{res.unchanged} unchanged, {len(res.removed)} removed in {res.seconds:.1f} s\n"
        f"agent {h.get('version')} running: device {h.get('eui')}, board {h.get('board')}, {h.get('band')} MHz, boot #{h.get('boot')}"
    )
    if not res.signing_key:
        text += "\nno firmware signing key on the board: firmware updates are refused (dbch flash --signing-key PUB)"
    emit(args, res.__dict__, text)
    return 0

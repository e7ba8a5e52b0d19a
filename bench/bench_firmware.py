"""Firmware update costs, each against a baseline measured in the same run:

1. staging throughput on a virtual board (fw.begin/chunk/end, verify and unpack included) against
   plain wire round trips carrying the same bytes, and against mpremote's file copy of the same
   bytes (the transport `mpremote cp` uses, default 256-byte chunks);
2. the MicroPython heap while staging a 64 KB and a 1 MB image under `-X heapsize=` (live heap
   after a collection, sampled after every chunk): it must not grow with the image;
3. signature verification time (agent.p256) on MicroPython and CPython, with `cryptography` as
   the baseline.

    python3 bench/bench_firmware.py [--size KB] [--heap 96K] [--skip-vboard]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from agent import fw_image as image  # noqa: E402
from host_tools.firmware import flash, image_build, sign, stage  # noqa: E402

NAME = "fwbench"

# Run on the MicroPython unix port: stage an image from a file through the hub's fw.* ops, as the
# wire would deliver it (a new bytes object per chunk), sampling the live heap after each chunk.
_UPY_STAGE = """
import gc, sys, os
sys.path.insert(0, sys.argv[1])
work, img, chunk = sys.argv[2], sys.argv[3], int(sys.argv[4])
from binascii import unhexlify
digest, sig = unhexlify(sys.argv[5]), unhexlify(sys.argv[6])
from boards import sim
from agent.hub import Hub
hub = Hub(sim.make_hal(storage_dir=work + "/data"), sim)
size = os.stat(img)[6]
def call(op, a):
    return hub.handle({"t": "q", "id": 1, "op": op, "a": a})
gc.collect()
base = gc.mem_alloc()
peak = base
rc = call("fw.begin", {"hash": digest, "size": size, "sig": sig})
assert rc[0] == "I0", rc
f = open(img, "rb")
off = 0
while off < size:
    data = f.read(chunk)
    rc = call("fw.chunk", {"offset": off, "data": data})
    assert rc[0] == "I0", rc
    off = rc[1]["offset"]
    data = rc = None
    gc.collect()
    peak = max(peak, gc.mem_alloc())
f.close()
rc = call("fw.end", {})
assert rc[0] == "I0", rc
gc.collect()
peak = max(peak, gc.mem_alloc())
print(base, peak, gc.mem_free() + gc.mem_alloc())
"""

_UPY_VERIFY = """
import sys, time
sys.path.insert(0, sys.argv[1])
from binascii import unhexlify
from agent import p256
key, digest, sig = [unhexlify(x) for x in sys.argv[2:5]]
rounds = int(sys.argv[5])
assert p256.verify(key, digest, sig)
t0 = time.ticks_us()
for _ in range(rounds):
    assert p256.verify(key, digest, sig)
print(time.ticks_diff(time.ticks_us(), t0) / rounds)
"""


def padded_content(board: str, version: str, size: int, files: list[tuple[str, bytes]] | None = None) -> bytes:
    """An image of about size bytes: the board's modules plus random padding modules."""
    files = list(files if files is not None else [(c.target, c.data) for c in image_build.build_image(board)])
    have = sum(len(d) for _p, d in files)
    i = 0
    while have < size:
        n = min(65536, size - have)
        files.append((f"pad/p{i}.mpy", os.urandom(n)))
        have += n
        i += 1
    return image.build(version, board, files)


def bench_vboard(key, size: int) -> list[tuple[str, float]]:
    from mpremote.transport_serial import SerialTransport as MpSerial

    from host_tools.link.client import AgentClient
    from host_tools.link.ports import SerialTransport
    from host_tools.servers import vboard

    info = vboard.ensure_running(NAME)
    try:
        flash.flash(info.port, "unix", signing_key=sign.public_point(key))
        content = padded_content("unix", "9.9.9", size)
        data = content + image.trailer(sign.sign_content(content, key))
        n = len(content)
        t = SerialTransport(info.port)
        client = AgentClient(t, timeout=10.0, port=info.port)
        assert client.hello().ok
        # plain round trips with the same payload (hello ignores the extra argument)
        chunk = 4000
        t0 = time.perf_counter()
        for off in range(0, n, chunk):
            assert client.request("hello", {"events": False, "pad": content[off : off + chunk]}).ok
        raw = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = stage.send(client, data)
        staged = time.perf_counter() - t0
        assert res["version"] == "9.9.9", res
        t.close()
        # mpremote's file copy of the same bytes (this stops the agent; a re-flash restarts it)
        mp = MpSerial(info.port)
        try:
            mp.enter_raw_repl(soft_reset=False)
            t0 = time.perf_counter()
            mp.fs_writefile("bench.bin", content)
            copy = time.perf_counter() - t0
            mp.fs_rmfile("bench.bin")
            mp.exit_raw_repl()
        finally:
            mp.close()
    finally:
        vboard.stop(NAME)
    kib = n / 1024
    return [
        ("plain wire round trips, 4000-byte payloads", kib / raw),
        ("fw.begin/chunk/end (verify + unpack included)", kib / staged),
        ("mpremote file copy (fs_writefile, 256-byte chunks)", kib / copy),
    ]


def bench_heap(key, heap: str) -> list[tuple[str, int, int, int]]:
    upy = shutil.which("micropython")
    if not upy:
        print("micropython not found: heap rows skipped", file=sys.stderr)
        return []
    rows = []
    modules = [(c.target, c.data) for c in image_build.build_image("sim")]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "stage.py"
        script.write_text(_UPY_STAGE)
        lib = Path(tmp) / "mpy"  # the agent compiled, as a board holds it
        for path, data in modules:
            (lib / path).parent.mkdir(parents=True, exist_ok=True)
            (lib / path).write_bytes(data)
        for kb in (64, 1024):
            work = Path(tmp) / f"w{kb}"
            work.mkdir()
            content = padded_content("sim", "9.9.9", kb * 1024, modules[:3])
            (work / "fwkey.bin").write_bytes(sign.public_point(key))
            img = Path(tmp) / f"img{kb}.bin"
            img.write_bytes(content)
            sig = sign.sign_content(content, key)
            out = subprocess.run(
                [upy, "-X", "heapsize=" + heap, str(script), str(lib), str(work), str(img), "4000"]
                + [hashlib.sha256(content).hexdigest(), sig.hex()],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if out.returncode != 0:
                raise SystemExit(f"staging {kb} KB under heapsize={heap} failed:\n{out.stdout}{out.stderr}")
            base, peak, total = (int(x) for x in out.stdout.split())
            rows.append((f"{len(content) // 1024} KB image", base, peak, total))
    return rows


def bench_verify(rounds: int) -> list[tuple[str, float]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import utils

    from agent import p256

    priv = ec.generate_private_key(ec.SECP256R1())
    key = sign.public_point(priv)
    digest = hashlib.sha256(b"image").digest()
    alg = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    sig = priv.sign(digest, alg)
    pub = priv.public_key()
    t0 = time.perf_counter()
    for _ in range(rounds * 20):
        pub.verify(sig, digest, alg)
    base = (time.perf_counter() - t0) / (rounds * 20) * 1e6
    assert p256.verify(key, digest, sig)
    t0 = time.perf_counter()
    for _ in range(rounds):
        p256.verify(key, digest, sig)
    cpy = (time.perf_counter() - t0) / rounds * 1e6
    rows = [("cryptography (CPython, baseline)", base), ("agent.p256 on CPython", cpy)]
    upy = shutil.which("micropython")
    if upy:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "verify.py"
            script.write_text(_UPY_VERIFY)
            out = subprocess.run(
                [upy, str(script), str(ROOT), key.hex(), digest.hex(), sig.hex(), str(rounds)],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            rows.append(("agent.p256 on MicroPython (unix port)", float(out.stdout.split()[0])))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="image size in KB for the throughput run (default 512)")
    ap.add_argument("--heap", default="256K", help="MicroPython heap cap for the heap run (default 256K)")
    ap.add_argument("--rounds", type=int, default=20, help="verifications per timing (default 20)")
    ap.add_argument("--skip-vboard", action="store_true", help="no virtual board (throughput rows skipped)")
    args = ap.parse_args()
    key = ec.generate_private_key(ec.SECP256R1())

    if not args.skip_vboard:
        cache = tempfile.mkdtemp(prefix="fwbench-")
        os.environ["XDG_CACHE_HOME"] = cache
        try:
            rows = bench_vboard(key, args.size * 1024)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        base = rows[0][1]
        print(f"staging throughput on a virtual board, {args.size} KB image")
        for name, rate in rows:
            print(f"  {name:<52} {rate:8.1f} KiB/s  {rate / base:5.2f}x raw")
        print(f"  staging / mpremote copy: {rows[1][1] / rows[2][1]:.2f}x")

    heap = bench_heap(key, args.heap)
    if heap:
        print(f"MicroPython heap while staging (-X heapsize={args.heap}; live bytes after gc.collect)")
        for name, base, peak, total in heap:
            print(f"  {name:<12} before {base:7d} B  peak {peak:7d} B  (+{peak - base} B, heap {total} B)")
        grow = heap[1][2] - heap[0][2]
        print(f"  peak(1 MB) - peak(64 KB) = {grow:+d} B")

    ver = bench_verify(args.rounds)
    base = ver[0][1]
    print(f"ECDSA P-256 verify ({args.rounds} rounds)")
    for name, us in ver:
        print(f"  {name:<40} {us:10.1f} us  {us / base:7.1f}x cryptography")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the agent's CBOR codec + framing, against cbor2 measured in the same run.

    python3 bench/bench_wire.py [--seconds 0.5]

CPython: agent.cbor/agent.wire vs cbor2 (canonical=True) with the same framing, as MB/s and ratios.
MicroPython (if `micropython` is on PATH): the agent codec's own MB/s, on the default heap and on
a 128 KB heap. Prints only; no assertions.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cbor2  # noqa: E402

from agent import cbor, wire  # noqa: E402


def sample_messages():
    return [
        wire.request(1, "ping"),
        wire.request(70000, "subghz.set", {"page": 28, "channel": 12, "mask": 0xFFFFFFFF, "power": 14, "lbt": True}),
        wire.response(70000, "I0", {"channels": list(range(32)), "rssi": [-97.5, -101.0, -88.25], "fw": "1.2.3"}),
        wire.response(3, "E062801", None, "channel 40 not in page 28"),
        wire.event(12345, "alert", {"code": 0x8F20, "ts": 1767225600, "eui": b"\x00\x0d\x6f\x00\x01\x02\x03\x04"}),
        wire.event(12346, "image", {"slot": 1, "chunk": bytes(range(256)) * 4}),
        wire.ack(12345),
    ]


def rate(fn, nbytes, seconds):
    # bytes per second of fn() processing nbytes per call
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        fn()
        n += 1
        t = time.perf_counter()
        if t >= deadline:
            return nbytes * n / (t - t0)


def cpython(seconds):
    msgs = sample_messages()
    bodies = [cbor.dumps(m) for m in msgs]
    assert bodies == [cbor2.dumps(m, canonical=True) for m in msgs]
    nbytes = sum(len(b) for b in bodies)
    stream = b"".join(wire.encode_frame(b) for b in bodies)

    def ours_dumps():
        for m in msgs:
            cbor.dumps(m)

    def base_dumps():
        for m in msgs:
            cbor2.dumps(m, canonical=True)

    def ours_pack():
        for m in msgs:
            wire.pack(m)

    def base_pack():
        for m in msgs:
            wire.encode_frame(cbor2.dumps(m, canonical=True))

    def ours_loads():
        for b in bodies:
            cbor.loads(b)

    def base_loads():
        for b in bodies:
            cbor2.loads(b)

    def ours_unpack():
        for b in wire.FrameDecoder().feed(stream):
            wire.unpack(b)

    def base_unpack():
        for b in wire.FrameDecoder().feed(stream):
            cbor2.loads(b)

    def frame_only():
        for b in bodies:
            wire.encode_frame(b)

    def deframe_only():
        wire.FrameDecoder().feed(stream)

    print("CPython {}: {} messages, {} body bytes per pass".format(sys.version.split()[0], len(msgs), nbytes))
    print("  {:<34} {:>10} {:>10} {:>8}".format("", "agent MB/s", "cbor2 MB/s", "ratio"))
    for name, ours, base in (
        ("CBOR encode", ours_dumps, base_dumps),
        ("encode + check + frame", ours_pack, base_pack),
        ("CBOR decode", ours_loads, base_loads),
        ("deframe + decode + check", ours_unpack, base_unpack),
    ):
        a = rate(ours, nbytes, seconds) / 1e6
        b = rate(base, nbytes, seconds) / 1e6
        print("  {:<34} {:>10.2f} {:>10.2f} {:>8.2f}".format(name, a, b, a / b))
    print(
        "  framing alone: encode {:.2f} MB/s, decode {:.2f} MB/s".format(
            rate(frame_only, nbytes, seconds) / 1e6, rate(deframe_only, nbytes, seconds) / 1e6
        )
    )


UPY_BENCH = r"""
import sys, time
sys.path.insert(0, ROOT)
from agent import cbor, wire
msgs = sample_messages()
bodies = [cbor.dumps(m) for m in msgs]
nbytes = sum(len(b) for b in bodies)
stream = b"".join(wire.encode_frame(b) for b in bodies)
def rate(fn):
    n = 0
    t0 = time.ticks_us()
    while True:
        fn()
        n += 1
        dt = time.ticks_diff(time.ticks_us(), t0)
        if dt >= SECONDS * 1e6:
            return nbytes * n / dt
def enc():
    for m in msgs:
        cbor.dumps(m)
def pk():
    for m in msgs:
        wire.pack(m)
def dec():
    for b in bodies:
        cbor.loads(b)
def unpk():
    for b in wire.FrameDecoder().feed(stream):
        wire.unpack(b)
for name, fn in (("CBOR encode", enc), ("encode + check + frame", pk), ("CBOR decode", dec), ("deframe + decode + check", unpk)):
    print("  {:<34} {:>10.2f} MB/s".format(name, rate(fn)))
"""


def micropython(seconds):
    exe = shutil.which("micropython")
    if exe is None:
        print("MicroPython: not found on PATH, skipped")
        return
    import inspect

    src = inspect.getsource(sample_messages)
    code = "ROOT = {!r}\nSECONDS = {!r}\n".format(ROOT, seconds) + "from agent import wire\n"
    code = "import sys\nsys.path.insert(0, {!r})\n".format(ROOT) + code + src + UPY_BENCH
    for label, extra in (("default heap", []), ("128 KB heap", ["-X", "heapsize=128k"])):
        print("MicroPython ({}):".format(label))
        r = subprocess.run([exe, *extra, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
        sys.stdout.write(r.stdout)
        if r.returncode:
            print("  failed: " + r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "  failed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    ns = ap.parse_args()
    cpython(ns.seconds)
    micropython(ns.seconds)


if __name__ == "__main__":
    main()

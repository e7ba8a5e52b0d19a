# Cost of a frame through each radio kind a simulated board can carry (boards.simchips.RADIOS):
# a real driver on its chip model on the simulated medium, against the direct simulation
# (radio "sim", hal.sim.radio.SimRadio) measured in the same run, on CPython and on the
# MicroPython unix port.
#
#   python3 bench/bench_radio.py [--seconds 0.5]
#
# Per kind, two radios of that kind on one medium (virtual clock): one transmits, the other
# receives, frames of 20, 64 and 125 bytes in turn. Rows:
#   frames/s      frames sent and received (one transmit + one receive) per second
#   x sim         how many times slower than the direct simulation
#   B/frame       MicroPython: bytes allocated per frame in steady state, over a burst with the
#                 collector off: micropython.mem_total() (every allocation, also the call frames
#                 MicroPython takes from the heap for a function whose locals and value stack
#                 need more than 11 words and frees on return: each counts towards the next
#                 collection all the same); gc.mem_alloc() where the port has no mem_total
#   kept          MicroPython: gc.mem_alloc() over the same burst: what is left for the collector,
#                 in whole heap blocks (32 bytes on a 64-bit port, 16 on a board)
#   peak B        CPython, which frees most objects as soon as they are dropped: the tracemalloc
#                 peak above the start of a frame, the most over a burst (what a frame holds at once)
#   scans/s, B/scan   the same for a scan: energy(page, channel) on each of the 27 channels of
#                 page 28, as the agent's channel scan reads them
# The received frame itself (a new bytes object, the Radio contract) counts in B/frame for
# every kind, the simulation's too. Plain script, no assertions. The MicroPython figures come
# from running this same file under `micropython` with --inner: on its default heap, then on a
# board-sized heap collected after every 8 KB allocated as the agent has it (agent.hub GC_EVERY),
# where what a driver allocates turns into collections of the whole heap (rates only there).
import sys

from runtimes import IS_MPY as _IS_MPY  # first: it puts the checkout on sys.path
from runtimes import elapsed_us as _elapsed_us
from runtimes import now_us as _now_us

# isort: split
from boards.simchips import RADIOS, make_radio
from hal.sim.radio import Medium
from hal.sim.vclock import VirtualClock

_PAGE = 28
_CHANNEL = 1
_FRAMES = tuple(bytes((i * 7 + n) & 0xFF for i in range(n)) for n in (20, 64, 125))
_BURST = 30  # frames per allocation burst (the collector is off meanwhile)
_WARMUP = 12
_AGENT_GC_THRESHOLD = 8192  # what the agent sets on a board


def pair(kind):
    """(sender, receiver, clock): two radios of kind on one medium, tuned to the same channel."""
    clock = VirtualClock()
    medium = Medium(clock, seed=1)
    a = make_radio(kind, clock, medium, "868", 14)[0]
    b = make_radio(kind, clock, medium, "868", 14)[0]
    a.tune(_PAGE, _CHANNEL)
    b.tune(_PAGE, _CHANNEL)
    return a, b, clock


def frames(a, b, n):
    k = 0
    for i in range(n):
        frame = _FRAMES[k]
        a.transmit(frame)
        got = b.receive(100)
        if got != frame:
            raise AssertionError("frame {} of {} bytes came back as {!r}".format(i, len(frame), got))
        k = k + 1 if k < 2 else 0


def scans(a, b, n):
    for _ in range(n):
        for ch in range(27):
            a.energy(_PAGE, ch)


class _Alloc:
    """Bytes allocated while fn(a, b, n) runs, per unit: (all, kept) on MicroPython, (peak,
    None) on CPython (see the module comment)."""

    def __init__(self):
        if _IS_MPY:
            import gc

            import micropython

            self._gc = gc
            self._total = getattr(micropython, "mem_total", None)
        else:
            import tracemalloc

            self._tm = tracemalloc

    def per(self, fn, a, b, n):
        if _IS_MPY:
            gc = self._gc
            total = self._total
            gc.collect()
            gc.disable()
            try:
                t0 = total() if total else 0
                m0 = gc.mem_alloc()
                fn(a, b, n)
                m1 = gc.mem_alloc()
                t1 = total() if total else m1 - m0
            finally:
                gc.enable()
            return (t1 - t0) / n, (m1 - m0) / n
        tm = self._tm
        tm.start()
        try:
            most = 0
            for _ in range(n):
                m0 = tm.get_traced_memory()[0]
                tm.reset_peak()
                fn(a, b, 1)
                most = max(most, tm.get_traced_memory()[1] - m0)
        finally:
            tm.stop()
        return most, None


def rate(fn, a, b, seconds):
    """Units of fn per second over about `seconds` of CPU, best of three runs."""
    best = 0
    for _ in range(3):
        n = 0
        t0 = _now_us()
        while True:
            fn(a, b, 3)
            n += 3
            dt = _elapsed_us(t0)
            if dt >= seconds * 1e6:
                break
        r = n * 1e6 / dt
        if r > best:
            best = r
    return best


def measure(seconds, alloc=True):
    alloc = _Alloc() if alloc else None
    rows = []
    for kind in RADIOS:
        a, b, _clock = pair(kind)
        frames(a, b, _WARMUP)
        scans(a, b, 2)
        fps = rate(frames, a, b, seconds)
        bpf = alloc.per(frames, a, b, _BURST) if alloc else (None, None)
        sps = rate(scans, a, b, seconds / 2)
        bps = alloc.per(scans, a, b, 4) if alloc else (None, None)
        rows.append((kind, fps, bpf, sps, bps))
    return rows


def report(runtime, rows):
    base = rows[0]
    per = ("B/frame", "kept", "B/scan", "kept") if _IS_MPY else ("peak B", "", "peak B", "")
    print(
        "{} ({} bytes per frame in turn; x sim: times slower than radio sim)".format(
            runtime, "/".join(str(len(f)) for f in _FRAMES)
        )
    )
    print(
        "  {:<8} {:>9} {:>6} {:>8} {:>6}   {:>8} {:>6} {:>8} {:>6}".format(
            "radio", "frames/s", "x sim", per[0], per[1], "scans/s", "x sim", per[2], per[3]
        )
    )
    for kind, fps, bpf, sps, bps in rows:
        print(
            "  {:<8} {:>9.0f} {:>6.1f} {:>8} {:>6}   {:>8.1f} {:>6.1f} {:>8} {:>6}".format(
                kind,
                fps,
                base[1] / fps,
                _bytes(bpf[0]),
                _bytes(bpf[1]),
                sps,
                base[3] / sps,
                _bytes(bps[0]),
                _bytes(bps[1]),
            )
        )


def _bytes(v):
    return "" if v is None else "{:.0f}".format(v)


def main():
    seconds = 0.5
    if "--seconds" in sys.argv:
        seconds = float(sys.argv[sys.argv.index("--seconds") + 1])
    if _IS_MPY:
        label = sys.argv[sys.argv.index("--inner") + 1] if "--inner" in sys.argv else "default heap"
        if "--threshold" in sys.argv:
            # a board's heap, collected as the agent has it: rates only (a burst with the
            # collector off would not fit)
            import gc

            gc.threshold(int(sys.argv[sys.argv.index("--threshold") + 1]))
            report("MicroPython, " + label, measure(seconds, alloc=False))
        else:
            report("MicroPython, " + label, measure(seconds))
        return
    report("CPython " + sys.version.split()[0], measure(seconds))
    import os
    import shutil
    import subprocess

    exe = shutil.which("micropython")
    if exe is None:
        print("MicroPython: not found on PATH, skipped")
        return
    small = ["--threshold", str(_AGENT_GC_THRESHOLD)]
    for label, heap, extra in (
        ("default heap", [], []),
        ("256 KB heap, gc.threshold({})".format(_AGENT_GC_THRESHOLD), ["-X", "heapsize=256k"], small),
    ):
        out = subprocess.run(
            [exe] + heap + [os.path.abspath(__file__), "--inner", label, "--seconds", str(seconds)] + extra,
            capture_output=True,
            text=True,
            check=False,
        )
        print(out.stdout.rstrip())
        if out.returncode:
            err = out.stderr.strip().splitlines()
            print("MicroPython, {}: failed: {}".format(label, err[-1] if err else out.returncode))


main()

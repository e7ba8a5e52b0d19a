"""The smallest heap the 128 KB field path runs in, slot A as .mpy files against as a ROMFS image.

    python bench/bench_field_heap.py [--lo 64K] [--hi 160K] [--step 2K]

The path of tests/host/test_field_boot_128k.py, as a person walks it with the dbch command: a
virtual board started with `--heap H` on an empty flash, `dbch flash --layout L`, `dbch config
set` with the DCC's DBCH04 configuration, the board reset twice (each time `dbch status` shows
the configuration restored and `dbch config get` reads it). A heap passes when every step does. For each
layout the smallest passing heap is searched by bisection (in steps of --step), then checked once
more just below it; the figure is printed beside the 128 KB the field test gives the board. The
ROMFS image is held outside the interpreter's heap (host_tools.servers.unix_port), as a board
keeps its ROMFS partition in flash: -X heapsize is the agent's whole heap in both layouts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.examples import DBCH04_CONFIG  # noqa: E402
from host_tools.servers import vboard  # noqa: E402
from host_tools.servers.unix_port import parse_heap  # noqa: E402

CAP = 128 * 1024
NAME = "bench-field-heap"


def dbch(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "host_tools.cli", *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def walk(heap: int, layout: str, tmp: Path) -> str | None:
    """None if the field path passes on a board with this heap and layout, else why not."""
    fs = Path(tempfile.mkdtemp(dir=tmp))
    cfg = tmp / "dbch04.json"
    cfg.write_text(json.dumps(DBCH04_CONFIG))
    port = f"vboard:{NAME}"
    try:
        vboard.ensure_running(NAME, fs=fs, heap=str(heap))
        steps = [("flash", "--layout", layout), ("config", "set", "--file", str(cfg))]
        for argv in steps:
            r = dbch(*argv, "--port", port)
            if r.returncode != 0 or (argv[0] == "config" and "I0" not in r.stdout):
                return f"{argv[0]}: {(r.stdout + r.stderr).strip()[-200:]}"
        for _ in range(2):
            r = dbch("vboard", "--reset", "--name", NAME)
            if r.returncode != 0:
                return f"reset: {r.stderr.strip()[-200:]}"
            r = dbch("status", "--json", "--port", port)
            if r.returncode != 0 or not json.loads(r.stdout).get("configured"):
                return f"status after reset: {(r.stdout + r.stderr).strip()[-200:]}"
            r = dbch("config", "get", "--json", "--port", port)
            if r.returncode != 0:
                return f"config get after reset: {r.stderr.strip()[-200:]}"
        return None
    finally:
        vboard.stop(NAME)


def smallest(layout: str, lo: int, hi: int, step: int, tmp: Path) -> tuple[int | None, str | None, int]:
    """(the smallest passing heap or None, why the one below it failed, walks run)."""
    runs = 0
    why = walk(hi, layout, tmp)
    runs += 1
    if why is not None:
        return None, why, runs
    last_why = None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        why = walk(mid, layout, tmp)
        runs += 1
        if why is None:
            hi = mid
        else:
            lo, last_why = mid, why
    return hi, last_why, runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lo", default="64K", help="a heap known to fail (default 64K)")
    ap.add_argument("--hi", default="160K", help="a heap expected to pass (default 160K)")
    ap.add_argument("--step", default="2K", help="resolution of the search (default 2K)")
    ap.add_argument("--layout", choices=("both", "mpy", "romfs"), default="both")
    args = ap.parse_args()
    size = {"K": 1024, "M": 1024 * 1024}

    def parse(text: str) -> int:
        text = parse_heap(text)
        return int(text[:-1]) * size[text[-1].upper()] if text[-1] in "kKmM" else int(text)

    lo, hi, step = parse(args.lo), parse(args.hi), parse(args.step)
    layouts = ("mpy", "romfs") if args.layout == "both" else (args.layout,)
    found = {}
    with tempfile.TemporaryDirectory(prefix="dbch-field-heap-") as tmp:
        for layout in layouts:
            t0 = time.monotonic()
            n, why, runs = smallest(layout, lo, hi, step, Path(tmp))
            found[layout] = n
            head = f"slot A as {'.mpy files' if layout == 'mpy' else 'a ROMFS image'}"
            if n is None:
                print(f"{head:28s}: does not pass at {hi} bytes: {why}")
                continue
            print(
                f"{head:28s}: {n:7d} bytes ({n / 1024:5.1f} KB) = {n / CAP:5.1%} of 128 KB, "
                f"margin {CAP - n:6d} bytes  ({runs} walks, {time.monotonic() - t0:.0f} s)"
            )
            if why:
                print(f"  at {n - step} bytes: {why}")
    if found.get("mpy") and found.get("romfs"):
        print(
            f"ROMFS against .mpy: {found['romfs'] / found['mpy']:.2f}x the heap, {found['mpy'] - found['romfs']} bytes less"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

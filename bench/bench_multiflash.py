"""`dbch flash` of many boards at once against the same boards flashed one after the other.

    python bench/bench_multiflash.py [--boards 8] [--runs 1] [--baud 115200]

Each run starts BOARDS new virtual boards with empty flash and flashes all of them side by side
with host_tools.firmware.many.flash_many (one thread a board, the image compiled once); then it
starts BOARDS more, empty too, and flashes them one after the other with
host_tools.firmware.flash.flash, as a loop over `dbch flash --port P` would (each flash compiles
its image; the compiled modules come from dbch's cache, warmed before either is timed). Both wall
times cover the whole job: compile, copy, verify, reboot and the agent's hello on every board.
Printed: both times (median of the runs), the time per board, and parallel over sequential,
measured in the same run. --baud paces every board's line at that rate (each board its own UART,
as on a bench of USB-UART bridges); without it the boards are unpaced.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools.firmware import flash, many  # noqa: E402
from host_tools.servers import vboard  # noqa: E402

BOARD = "unix"


def start_boards(tmp: Path, prefix: str, count: int, baud: int | None = None) -> list[str]:
    """count new virtual boards with empty flash (their lines paced at baud, if given); their ports."""
    ports = []
    for i in range(count):
        info = vboard.ensure_running(f"{prefix}{i}", fs=tmp / f"{prefix}{i}", baud=baud)
        ports.append(info.port)
    return ports


def stop_boards(prefix: str, count: int) -> None:
    for i in range(count):
        vboard.stop(f"{prefix}{i}")


def parallel(ports: list[str]) -> float:
    start = time.perf_counter()
    outcomes = many.flash_many([(p, p) for p in ports], BOARD)
    seconds = time.perf_counter() - start
    failed = [f"{o.port}: {o.error}" for o in outcomes if not o.ok]
    if failed:
        raise SystemExit("parallel flash failed: " + "; ".join(failed))
    return seconds


def sequential(ports: list[str]) -> float:
    start = time.perf_counter()
    for port in ports:
        flash.flash(port, BOARD)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=8, help="virtual boards flashed each way (default 8)")
    ap.add_argument("--runs", type=int, default=1, help="runs of both (median)")
    ap.add_argument("--baud", type=int, help="pace each board's line at this rate (default: unpaced)")
    args = ap.parse_args()

    results: dict[str, list[float]] = {"parallel": [], "sequential": []}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        flash.slot_files(BOARD, "0.0.0")  # the compile cache warmed: both sides compile from it
        for run in range(args.runs):
            for key, job in (("parallel", parallel), ("sequential", sequential)):
                prefix = f"bench-mf-{key[0]}{run}-"
                try:
                    ports = start_boards(Path(tmp), prefix, args.boards, args.baud)
                    results[key].append(job(ports))
                finally:
                    stop_boards(prefix, args.boards)

    med = {k: statistics.median(v) for k, v in results.items()}
    n = args.boards
    pace = f"lines paced at {args.baud} baud" if args.baud else "unpaced"
    print(
        f"{n} virtual boards, empty flash, board {BOARD}, {pace}; {args.runs} run(s), medians; {os.cpu_count()} cores"
    )
    print(f"one after the other : {med['sequential']:7.2f} s  ({med['sequential'] / n:5.2f} s a board)")
    print(
        f"all at once         : {med['parallel']:7.2f} s  ({med['parallel'] / n:5.2f} s a board)"
        f"  ratio {med['parallel'] / med['sequential']:5.2f}  (speed-up {med['sequential'] / med['parallel']:4.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

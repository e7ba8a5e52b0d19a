"""`dbch flash` against `mpremote fs cp -r` of the same files to the same kind of virtual board.

    python bench/bench_flash.py [--runs 3]

Both sides get the same files: what dbch flash put on a board (its flash directory, without the
board's own data/) is staged in a host directory for mpremote. Each run starts two new virtual
boards with empty flash, then measures (median of the runs):
- first copy: host_tools.firmware.flash.flash on one board (which also compiles, verifies every hash,
  reboots the board and waits for the agent's hello), against `mpremote connect PORT fs cp -r
  <every staged file and directory> :` on the other;
- again with nothing changed (mpremote skips unchanged files by SHA-256; dbch flash compares
  the board's hashes in one round trip);
- the compile step alone, so the transfer cost can be read apart from it: with an empty cache,
  and again with the modules compiled before (host_tools.firmware.build: compile once).
Ratios are dbch flash over mpremote, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools.firmware import flash  # noqa: E402
from host_tools.servers import vboard  # noqa: E402

BOARD = "unix"


def program_files(root: Path) -> dict[str, bytes]:
    """The files of a board's flash directory, without its own data (data/)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "data"
    }


def stage(board_fs: Path, directory: Path) -> tuple[int, int]:
    """Copy what dbch flash wrote on a board to `directory`; (files, bytes)."""
    files = program_files(board_fs)
    for rel, data in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return len(files), sum(len(d) for d in files.values())


def mpremote_cp(port: str, staged: Path) -> float:
    argv = [sys.executable, "-m", "mpremote", "connect", port, "fs", "cp", "-r"]
    argv += sorted(p.name for p in staged.iterdir()) + [":"]
    start = time.perf_counter()
    subprocess.run(argv, cwd=staged, check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def dbch_flash(port: str) -> float:
    start = time.perf_counter()
    flash.flash(port, BOARD)
    return time.perf_counter() - start


def compile_seconds(cache: Path) -> float:
    """build_image(BOARD) timed in a new interpreter whose cache is `cache`."""
    code = (
        "import time; t = time.perf_counter(); "
        "from host_tools.firmware import image_build; image_build.build_image(%r); "
        "print(time.perf_counter() - t)" % BOARD
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="fresh board pairs to measure (median)")
    args = ap.parse_args()

    results: dict[str, list[float]] = {
        k: [] for k in ("mp_first", "db_first", "mp_again", "db_again", "compile", "cached")
    }
    nfiles = size = 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        for run in range(args.runs):
            fs_mp = Path(tmp) / f"mp{run}"
            fs_db = Path(tmp) / f"db{run}"
            staged = Path(tmp) / f"staged{run}"
            mp = vboard.ensure_running("bench-mp", fs=fs_mp)
            db = vboard.ensure_running("bench-db", fs=fs_db)
            try:
                results["db_first"].append(dbch_flash(db.port))
                nfiles, size = stage(fs_db, staged)
                results["mp_first"].append(mpremote_cp(mp.port, staged))
                results["db_again"].append(dbch_flash(db.port))
                results["mp_again"].append(mpremote_cp(mp.port, staged))
                if program_files(fs_mp) != program_files(staged):
                    print("warning: mpremote did not copy the same files", file=sys.stderr)
            finally:
                vboard.stop("bench-mp")
                vboard.stop("bench-db")
            # the compile step alone, in a new process as dbch flash runs it: with an empty
            # cache, and again with what that left (compile once)
            cache = Path(tmp) / f"cache{run}"
            for key in ("compile", "cached"):
                results[key].append(compile_seconds(cache))

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"image: {nfiles} files, {size} bytes; {args.runs} run(s), medians")
    print(f"mpremote fs cp -r, empty board      : {med['mp_first'] * 1e3:8.1f} ms")
    print(
        f"dbch flash, empty board             : {med['db_first'] * 1e3:8.1f} ms  ratio {med['db_first'] / med['mp_first']:6.2f}"
        "  (with compile, verify, reboot, hello)"
    )
    print(f"mpremote fs cp -r, nothing changed  : {med['mp_again'] * 1e3:8.1f} ms")
    print(
        f"dbch flash, nothing changed         : {med['db_again'] * 1e3:8.1f} ms  ratio {med['db_again'] / med['mp_again']:6.2f}"
    )
    print(
        f"compile alone, empty cache          : {med['compile'] * 1e3:8.1f} ms  "
        f"share of the re-flash {med['compile'] / med['db_again']:6.2f}"
    )
    print(
        f"compile alone, compiled before      : {med['cached'] * 1e3:8.1f} ms  "
        f"ratio to the empty cache {med['cached'] / med['compile']:6.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`dbch flash` against `mpremote fs cp -r` of the same files to the same kind of virtual board.

    python bench/bench_flash.py [--runs 3] [--baud 115200] [--layout auto|romfs|mpy]

Both sides get the same files: what dbch flash put on a board (its flash directory, without the
board's own data/) is staged in a host directory for mpremote. Each run starts new virtual boards
with empty flash, then measures (median of the runs):
- first copy, on unpaced boards and on boards paced at --baud (`dbch vboard --baud`, as a UART):
  host_tools.firmware.flash.flash on one board (which also compiles, verifies every hash, reboots
  the board and waits for the agent's hello), against `mpremote connect PORT fs cp -r <every staged
  file and directory> :` on the other; and flash's copy step alone (the compressed copy through
  the board's loader, host_tools.firmware.transfer), with what it put on the line and the files'
  bytes per second it moved, against the line rate (baud / 10 bytes per second) and against what
  the paced line carries when bytes are written to it at once (measured once), and which encoder
  made the stream (zlib's; on the paced line zopfli's, made while the loader is pasted in the
  first run and taken from dbch's cache in the others: compress once);
- again with nothing changed, unpaced (mpremote skips unchanged files by SHA-256; dbch flash
  asks the running agent for one digest of what is flashed and leaves the board as it is,
  host_tools.firmware.warm): flash.flash in this process, and the `dbch flash` command end to end
  in a new process, its start and imports included, as mpremote's is (with Python's compiled
  bytecode kept, as an installed dbch has it: the first run writes it; the median of five);
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
LAYOUT = ["auto"]  # slot A's layout (--layout): on the virtual board, auto is one ROMFS image


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


COPIES: list = []  # (seconds, Sent) of each compressed copy flash made, newest last
_send_files = flash.transfer.send_files


def _timed_send_files(*args, **kw):
    start = time.perf_counter()
    sent = _send_files(*args, **kw)
    COPIES.append((time.perf_counter() - start, sent))
    return sent


flash.transfer.send_files = _timed_send_files


def dbch_flash(port: str) -> float:
    start = time.perf_counter()
    res = flash.flash(port, BOARD, layout=LAYOUT[0])
    if res.written and res.copy != "deflate":
        print(f"warning: dbch flash copied plainly ({res.copy})", file=sys.stderr)
    return time.perf_counter() - start


def dbch_command(port: str) -> float:
    """`dbch flash --port PORT` in a new process, end to end."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    argv = [
        sys.executable,
        "-m",
        "host_tools.cli",
        "flash",
        "--port",
        port,
        "--board",
        BOARD,
        "--layout",
        LAYOUT[0],
        "--json",
    ]
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def line_capacity(baud: int, tmp: Path, nbytes: int = 40000) -> float:
    """Bytes per second a board paced at baud takes in: nbytes written at once to a program in its
    raw REPL that reads them (the ceiling any copy has on that line)."""
    from mpremote.transport_serial import SerialTransport

    info = vboard.ensure_running("bench-line", fs=tmp / "line", baud=baud)
    try:
        t = SerialTransport(info.port, baudrate=baud)
        t.serial.timeout = 60
        t.enter_raw_repl(soft_reset=False)
        t.exec_raw_no_follow(
            "import sys, micropython\nmicropython.kbd_intr(-1)\nb = bytearray(%d)\nprint('go')\n"
            "sys.stdin.buffer.readinto(b)\nprint('got')\nmicropython.kbd_intr(3)\n" % nbytes
        )
        t.serial.read_until(b"go\n")
        start = time.perf_counter()
        t.serial.write(b"A" * nbytes)
        t.serial.read_until(b"got")
        seconds = time.perf_counter() - start
        t.follow(5)
        t.close()
    finally:
        vboard.stop("bench-line")
    return nbytes / seconds


def first_copies(tmp: Path, tag: str, baud: int | None, results: dict) -> Path:
    """dbch flash and mpremote fs cp -r on two new empty boards at baud (None: unpaced); the
    staged files."""
    fs_mp, fs_db, staged = (tmp / f"{kind}-{tag}" for kind in ("mp", "db", "staged"))
    mp = vboard.ensure_running("bench-mp", fs=fs_mp, baud=baud)
    db = vboard.ensure_running("bench-db", fs=fs_db, baud=baud)
    key = "paced" if baud else "first"
    try:
        results[f"db_{key}"].append(dbch_flash(db.port))
        seconds, sent = COPIES[-1]
        results[f"copy_{key}"].append(seconds)
        results[f"wire_{key}"].append(sent.wire_bytes if sent else 0)
        results[f"zopfli_{key}"].append(1.0 if sent and sent.encoder == "zopfli" else 0.0)
        stage(fs_db, staged)
        results[f"mp_{key}"].append(mpremote_cp(mp.port, staged))
        if not baud:
            results["db_again"].append(dbch_flash(db.port))
            results["mp_again"].append(mpremote_cp(mp.port, staged))
            dbch_command(db.port)  # Python's bytecode written, if it was not
            results["cmd_again"].append(statistics.median(dbch_command(db.port) for _ in range(5)))
        if program_files(fs_mp) != program_files(staged):
            print("warning: mpremote did not copy the same files", file=sys.stderr)
    finally:
        vboard.stop("bench-mp")
        vboard.stop("bench-db")
    return staged


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
    ap.add_argument("--baud", type=int, default=115200, help="the paced boards' line rate")
    ap.add_argument("--layout", choices=flash.LAYOUTS, default="auto", help="slot A's layout (default auto: ROMFS)")
    args = ap.parse_args()
    LAYOUT[0] = args.layout

    keys = ("mp_first", "db_first", "copy_first", "wire_first", "zopfli_first", "mp_again", "db_again", "cmd_again")
    keys += ("mp_paced", "db_paced", "copy_paced", "wire_paced", "zopfli_paced", "compile", "cached")
    results: dict[str, list[float]] = {k: [] for k in keys}
    nfiles = size = 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        capacity = line_capacity(args.baud, Path(tmp))
        for run in range(args.runs):
            staged = first_copies(Path(tmp), f"{run}", None, results)
            nfiles, size = len(program_files(staged)), sum(len(d) for d in program_files(staged).values())
            first_copies(Path(tmp), f"{run}-paced", args.baud, results)
            # the compile step alone, in a new process as dbch flash runs it: with an empty
            # cache, and again with what that left (compile once)
            cache = Path(tmp) / f"cache{run}"
            for key in ("compile", "cached"):
                results[key].append(compile_seconds(cache))

    med = {k: statistics.median(v) for k, v in results.items()}
    line = args.baud / 10
    print(f"image: {nfiles} files, {size} bytes (layout {args.layout}); {args.runs} run(s), medians")
    print("unpaced virtual boards")
    print(f"  mpremote fs cp -r, empty board    : {med['mp_first'] * 1e3:8.1f} ms")
    print(
        f"  dbch flash, empty board           : {med['db_first'] * 1e3:8.1f} ms  ratio {med['db_first'] / med['mp_first']:6.2f}"
        "  (with compile, verify, reboot, hello)"
    )
    print(
        f"  its compressed copy alone         : {med['copy_first'] * 1e3:8.1f} ms  "
        f"{size / med['copy_first'] / 1e3:7.1f} KB/s of the files' bytes"
    )
    print(f"  mpremote fs cp -r, nothing changed: {med['mp_again'] * 1e3:8.1f} ms")
    print(
        f"  dbch flash, nothing changed       : {med['db_again'] * 1e3:8.1f} ms  ratio {med['db_again'] / med['mp_again']:6.2f}"
        "  (flash.flash, in this process)"
    )
    print(
        f"  `dbch flash`, nothing changed     : {med['cmd_again'] * 1e3:8.1f} ms  ratio {med['cmd_again'] / med['mp_again']:6.2f}"
        f"  (the command end to end, a new process; goal: 200 ms{', met' if med['cmd_again'] <= 0.2 else ', not met'})"
    )
    print(f"virtual boards paced at {args.baud} baud (line rate {line / 1e3:.2f} KB/s each way)")
    print(
        f"  what the paced line carries       : {capacity / 1e3:8.2f} KB/s = {capacity / line:5.1%} of the line rate "
        "(bytes written at once to a program reading them)"
    )
    print(
        f"  mpremote fs cp -r, empty board    : {med['mp_paced'] * 1e3:8.1f} ms  "
        f"{size / med['mp_paced'] / 1e3:7.2f} KB/s of the files' bytes = {size / med['mp_paced'] / line:5.2f} x the line rate"
    )
    print(
        f"  dbch flash, empty board           : {med['db_paced'] * 1e3:8.1f} ms  ratio {med['db_paced'] / med['mp_paced']:6.2f}"
        f"  {size / med['db_paced'] / 1e3:7.2f} KB/s = {size / med['db_paced'] / line:5.2f} x the line rate"
        f"  (goal: 6 s{', met' if med['db_paced'] <= 6 else ', not met'})"
    )
    print(
        f"  its compressed copy alone         : {med['copy_paced'] * 1e3:8.1f} ms  "
        f"{size / med['copy_paced'] / 1e3:7.2f} KB/s = {size / med['copy_paced'] / line:5.2f} x the line rate; "
        f"on the line {med['wire_paced']:.0f} bytes ({med['wire_paced'] / size:5.1%} of the files), "
        f"{med['wire_paced'] / med['copy_paced'] / line:5.1%} of the line rate used "
        f"({med['wire_paced'] / med['copy_paced'] / capacity:5.1%} of what it carries; the loader's paste included); "
        f"zopfli's stream in {sum(results['zopfli_paced']):.0f} of {args.runs} run(s), "
        f"zlib's unpaced in {args.runs - sum(results['zopfli_first']):.0f}"
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

"""Round-trip times on the virtual board, as ratios against baselines measured in the same run.

    python bench/bench_vboard.py [--n 50]

- raw REPL exec round trip through the vboard relay vs. the same on the unix port behind a plain
  pty (the relay's cost);
- one `mpremote exec` (process start, connect, auto soft-reset, exec) vs. starting the unix port.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import serial  # noqa: E402

from host_tools.servers import vboard  # noqa: E402
from host_tools.servers.unix_port import interpreter_argv  # noqa: E402


class PlainPty:
    """The unix port alone on a pty: what the relay is measured against."""

    def __init__(self, fs: Path):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.proc = subprocess.Popen(
            interpreter_argv(fs), stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(marker):
            if not select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError(data)
            data += os.read(self.master, 4096)
        return data

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def raw_round_trips(link, n: int) -> float:
    """Mean seconds per raw REPL exec of a one-line print, after entering the raw REPL once."""
    link.write(b"\r\x03")
    time.sleep(0.3)
    link.write(b"\r\x01")
    link.read_until(b"raw REPL; CTRL-B to exit\r\n>")
    start = time.perf_counter()
    for i in range(n):
        link.write(b"print(%d)\x04" % i)
        link.read_until(b"\x04>")
    return (time.perf_counter() - start) / n


def timed(argv: list[str], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return (time.perf_counter() - start) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="raw REPL round trips per measurement")
    ap.add_argument("--runs", type=int, default=5, help="process starts per measurement")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        fs = Path(tmp) / "flash"
        fs.mkdir()

        plain = PlainPty(fs)
        try:
            plain.read_until(b">>> ")
            base_raw = raw_round_trips(plain, args.n)
        finally:
            plain.close()

        info = vboard.ensure_running("bench", fs=fs)
        try:
            with serial.Serial(info.port, timeout=10) as link:
                time.sleep(0.1)
                vb_raw = raw_round_trips(link, args.n)
                link.write(b"\r\x02")
            base_start = timed(interpreter_argv(fs)[:3] + ["-c", "pass"], args.runs)
            mpremote = [sys.executable, "-m", "mpremote", "connect", info.port, "exec", "print(1)"]
            vb_mpremote = timed(mpremote, args.runs)
        finally:
            vboard.stop("bench")

    print(f"raw REPL exec round trip, plain pty : {base_raw * 1e3:8.3f} ms")
    print(f"raw REPL exec round trip, vboard    : {vb_raw * 1e3:8.3f} ms  ratio {vb_raw / base_raw:6.2f}")
    print(f"unix port start (-c pass)           : {base_start * 1e3:8.1f} ms")
    print(f"mpremote exec on the vboard         : {vb_mpremote * 1e3:8.1f} ms  ratio {vb_mpremote / base_start:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

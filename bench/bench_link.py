"""The agent protocol over serial: round-trip latency and throughput, as ratios measured in one run.

    python bench/bench_link.py [--n 200] [--pipeline 100]

- Round-trip latency of a `hello` request (one request, wait for its answer, repeat) for the
  MicroPython agent on a virtual board and the CPython agent on a pty (dbch agent): the ratio is
  MicroPython over CPython.
- Throughput: `config.get` requests written back to back (pipelined), answers counted as they
  arrive; bytes received per second on each agent, unpaced, and on a virtual board paced at an
  emulated 115200 baud (`dbch vboard --serve --baud 115200`), against that line rate
  (115200 / 10 = 11520 bytes/s each way).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import wire  # noqa: E402
from host_tools.firmware import flash  # noqa: E402
from host_tools.link.client import AgentClient, decode, encode  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.selftest import checks as selftest  # noqa: E402
from host_tools.servers import (
    simagent,  # noqa: E402
    vboard,  # noqa: E402
)

BAUD = 115200
LINE_RATE = BAUD / 10  # bytes per second: 8 data bits plus start and stop bits


def wait_hello(port: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = SerialTransport(port)
        try:
            if AgentClient(t, timeout=1.0).request("hello").ok:
                return
        except Exception:
            time.sleep(0.1)
        finally:
            t.close()
    raise SystemExit(f"no agent answers on {port}")


def latency(port: str, n: int) -> tuple[float, float]:
    """(median, 90th percentile) seconds per hello round trip."""
    t = SerialTransport(port)
    try:
        c = AgentClient(t, timeout=10.0)
        for _ in range(5):
            c.request("hello")
        times = []
        for _ in range(n):
            start = time.perf_counter()
            r = c.request("hello")
            times.append(time.perf_counter() - start)
            assert r.ok
    finally:
        t.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def pipelined(port: str, n: int, op: str = "config.get") -> tuple[float, int, int]:
    """(seconds, bytes sent, bytes received) for n requests written at once and all answers read."""
    t = SerialTransport(port)
    try:
        c = AgentClient(t, timeout=10.0)
        c.request("hello")  # no events on this link: only answers come back
        frames = [encode(wire.request(1000 + i, op, {})) for i in range(n)]
        out = b"".join(frames)
        decoder = wire.FrameDecoder()
        pending = {1000 + i for i in range(n)}
        received = 0
        start = time.perf_counter()
        t.serial.write(out)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            data = t.read(65536)
            received += len(data)
            for body in decoder.feed(data):
                msg = decode(body)
                if msg["t"] == "r":
                    assert msg["rc"] == "I0", msg
                    pending.discard(msg["id"])
        elapsed = time.perf_counter() - start
        if pending:
            raise SystemExit(f"{len(pending)} of {n} answers missing on {port}")
    finally:
        t.close()
    return elapsed, len(out), received


def configure(port: str) -> None:
    t = SerialTransport(port)
    try:
        assert AgentClient(t, timeout=10.0).request("config.set", {"config": selftest.SELFTEST_CONFIG}).ok
    finally:
        t.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="round trips per latency measurement")
    ap.add_argument("--pipeline", type=int, default=100, help="requests per throughput measurement")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        fs = Path(tmp) / "flash"
        board = vboard.ensure_running("bench-link", fs=fs)
        sim = simagent.ensure_running("bench-link", fs=Path(tmp) / "sim")
        try:
            flash.flash(board.port, "unix")
            configure(board.port)
            configure(sim.port)
            mpy_lat = latency(board.port, args.n)
            cpy_lat = latency(sim.port, args.n)
            mpy_tp = pipelined(board.port, args.pipeline)
            cpy_tp = pipelined(sim.port, args.pipeline)
        finally:
            vboard.stop("bench-link")
            simagent.stop("bench-link")
        # the same flash, booted on a board paced like a 115200 baud UART
        paced = vboard.ensure_running("bench-link-115k", fs=fs, baud=BAUD)
        try:
            wait_hello(paced.port)
            paced_lat = latency(paced.port, max(20, args.n // 5))
            paced_tp = pipelined(paced.port, max(20, args.pipeline // 2))
        finally:
            vboard.stop("bench-link-115k")

    def rate(tp):
        return tp[2] / tp[0]

    print("hello round trip (median / 90th percentile)")
    print(f"  CPython agent on a pty            : {cpy_lat[0] * 1e3:7.3f} / {cpy_lat[1] * 1e3:7.3f} ms")
    print(
        f"  MicroPython agent on a vboard     : {mpy_lat[0] * 1e3:7.3f} / {mpy_lat[1] * 1e3:7.3f} ms"
        f"  ratio {mpy_lat[0] / cpy_lat[0]:6.2f}"
    )
    print(
        f"  MicroPython, vboard at {BAUD} baud: {paced_lat[0] * 1e3:7.3f} / {paced_lat[1] * 1e3:7.3f} ms"
        f"  ratio {paced_lat[0] / cpy_lat[0]:6.2f}"
    )
    per = paced_tp[2] / max(20, args.pipeline // 2)
    print(f"config.get pipelined: answers of {per:.0f} bytes, bytes received per second")
    print(f"  CPython agent on a pty            : {rate(cpy_tp):10.0f} B/s")
    print(f"  MicroPython agent on a vboard     : {rate(mpy_tp):10.0f} B/s  ratio {rate(mpy_tp) / rate(cpy_tp):6.2f}")
    print(
        f"  MicroPython, vboard at {BAUD} baud: {rate(paced_tp):10.0f} B/s  "
        f"ratio to the line rate ({LINE_RATE:.0f} B/s) {rate(paced_tp) / LINE_RATE:6.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

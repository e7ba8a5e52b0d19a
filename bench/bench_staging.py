"""Firmware staging at a UART's pace: `dbch firmware send` (host_tools.firmware.stage.send) of a
signed image of the agent to a virtual board paced at --baud (default 115200, the speed of most
boards' USB-UART bridges), plain chunks against the deflate-compressed stream, each against the
line rate measured in the same terms (baud / 10 bytes a second: 8N1).

    python3 bench/bench_staging.py [--baud 115200] [--wbits 15] [--json]

The board is flashed unpaced (its flash is a directory), then started again on that directory at
--baud: the flash is not what is measured. Each send stages another image of the agent (another
version, so nothing is "already staged"), fw.begin to fw.end: the signature and hash checks and
the unpacking into the inactive slot are in every figure. Prints the seconds, the image bytes
staged a second, that as a ratio of the line rate, the bytes that went on the line for the chunks
and the compressed stream's size against the image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import fw_image as image  # noqa: E402
from host_tools.firmware import flash, image_build, sign, stage  # noqa: E402
from host_tools.firmware.images import split  # noqa: E402
from host_tools.link.client import AgentClient  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.servers import vboard  # noqa: E402

NAME = "stagebench"


class Counting:
    """A transport that counts the bytes written through it."""

    def __init__(self, inner):
        self.inner = inner
        self.written = 0

    def read(self, n):
        return self.inner.read(n)

    def write(self, data):
        self.written += len(data)
        return self.inner.write(data)


def signed_image(key, version: str) -> bytes:
    files = [(c.target, c.data) for c in image_build.build_image("unix")]
    content = image.build(version, "unix", files)
    return content + image.trailer(sign.sign_content(content, key))


def run(baud: int, wbits: int) -> dict:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    line = baud / 10
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fs = Path(tmp) / "flash"
        fs.mkdir()
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        try:
            info = vboard.ensure_running(NAME, fs=fs)
            try:
                flash.flash(info.port, "unix", signing_key=sign.public_point(key), version="1.0.0")
            finally:
                vboard.stop(NAME)
            info = vboard.ensure_running(NAME, fs=fs, baud=baud)
            try:
                t = Counting(SerialTransport(info.port))
                client = AgentClient(t, timeout=10.0, port=info.port)
                assert client.hello().ok
                for i, (what, compress) in enumerate((("plain chunks", False), ("deflate stream", True))):
                    data = signed_image(key, f"9.9.{i + 1}")
                    size = len(split(data)[0])
                    before = t.written
                    t0 = time.perf_counter()
                    res = stage.send(client, data, compress=compress, wbits=wbits)
                    seconds = time.perf_counter() - t0
                    assert res["version"] == f"9.9.{i + 1}", res
                    rows.append(
                        {
                            "what": what,
                            "image": size,
                            "seconds": round(seconds, 3),
                            "bytes_per_s": round(size / seconds),
                            "line_ratio": round(size / seconds / line, 3),
                            "wire": t.written - before,
                            "stream": res.get("stream", size),
                            "wbits": res.get("wbits"),
                        }
                    )
                t.inner.close()
            finally:
                vboard.stop(NAME)
        finally:
            if old is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = old
    return {"baud": baud, "line_bytes_per_s": line, "rows": rows}


def report(res: dict) -> str:
    lines = [
        f"firmware staging on a virtual board at {res['baud']} baud (line rate {res['line_bytes_per_s']:.0f} B/s)",
        f"{'':16} {'image':>7} {'seconds':>8} {'B/s':>7} {'x line':>7} {'on the line':>12} {'stream':>8} {'window':>7}",
    ]
    for r in res["rows"]:
        win = f"2^{r['wbits']}" if r["wbits"] else "-"
        lines.append(
            f"{r['what']:16} {r['image']:>7} {r['seconds']:>8.2f} {r['bytes_per_s']:>7} {r['line_ratio']:>6.2f}x"
            f" {r['wire']:>12} {r['stream']:>8} {win:>7}"
        )
    if len(res["rows"]) == 2:
        plain, comp = res["rows"]
        lines.append(f"compressed against plain: {plain['seconds'] / comp['seconds']:.2f}x faster")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baud", type=int, default=115200, help="the virtual board's pace (default 115200)")
    ap.add_argument("--wbits", type=int, default=15, help="the largest deflate window offered, log2 bytes")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    res = run(args.baud, args.wbits)
    print(json.dumps(res, indent=2) if args.json else report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Firmware staging at a UART's pace: `dbch firmware send` (host_tools.firmware.stage.send) of a
signed image of the agent to a virtual board paced at --baud (default 115200, the speed of most
boards' USB-UART bridges): plain chunks and the deflate-compressed stream, each against the line rate (baud / 10 bytes a second: 8N1) and
against what the same virtual board's wire carried in the same run (round trips of frames as
large as the chunks, carrying random bytes: the baseline of the link's own pace on this machine).

    python3 bench/bench_staging.py [--baud 115200] [--wbits 15] [--json]

The board is flashed unpaced (its flash is a directory), then started again on that directory at
--baud: the flash is not what is measured. Each send stages another image of the agent (another
version, so nothing is "already staged"), fw.begin to fw.end: the signature checks at both ends,
the hash check and the unpacking into the inactive slot are in every figure (printed apart as
"begin+end"). Before the board: the image's deflate stream for every window from 2^9 to 2^15
bytes, as a share of the image, with the most the compressed stream could give at the line rate
with nothing else in the way (the stream's bytes as the wire stuffs them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import fw_image as image  # noqa: E402
from agent import wire  # noqa: E402
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


class Timed(AgentClient):
    """An AgentClient that adds up the time fw.begin and fw.end take."""

    ends = 0.0

    def request(self, op, args=None, timeout=None, give_up=None):
        t0 = time.perf_counter()
        try:
            return super().request(op, args, timeout, give_up)
        finally:
            if op in ("fw.begin", "fw.end"):
                self.ends += time.perf_counter() - t0


def signed_image(key, version: str, files: list | None = None) -> bytes:
    files = files if files is not None else [(c.target, c.data) for c in image_build.build_image("unix")]
    content = image.build(version, "unix", files)
    return content + image.trailer(sign.sign_content(content, key))


def older_files(back: int, tmp: Path) -> tuple[list, int, str]:
    """The agent's modules as they were `back` commits earlier (git archive of that commit, each
    compiled with mpy-cross as the current one is), those that were there; the others as now:
    (files, how many differ from now, the commit)."""
    from host_tools.firmware.build import module_name, mpy_cross_binary

    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", f"HEAD~{back}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = tmp / "older"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    binary = mpy_cross_binary()
    files, changed = [], 0
    for c in image_build.build_image("unix"):
        data = c.data
        if (tree / c.source).is_file():
            out = tmp / "old.mpy"
            subprocess.run(
                [binary, "-o", str(out), "-s", module_name(c.source), str(tree / c.source)],
                check=True,
                capture_output=True,
            )
            data = out.read_bytes()
        changed += data != c.data
        files.append((c.target, data))
    return files, changed, rev


def stuffed(data: bytes) -> int:
    """The bytes data takes in a frame (agent.wire stuffing)."""
    esc = set(wire.ESCAPED)
    return len(data) + sum(1 for b in data if b in esc)


def windows(content: bytes) -> list[dict]:
    """The image's deflate stream for each window (zlib level 9, as stage sends it)."""
    rows = []
    for wbits in range(9, 16):
        c = zlib.compressobj(stage.LEVEL, zlib.DEFLATED, -wbits, 9)
        z = c.compress(content) + c.flush()
        rows.append(
            {
                "wbits": wbits,
                "stream": len(z),
                "ratio": round(len(z) / len(content), 3),
                "most": round(len(content) / stuffed(z), 3),  # x the line rate, with nothing else on it
            }
        )
    return rows


def wire_pace(client: AgentClient, size: int, frame: int) -> float:
    """Payload bytes a second that round trips of frame-sized random payloads carry (hello
    ignores the extra argument), for about size bytes."""
    pad = os.urandom(frame)
    t0 = time.perf_counter()
    n = 0
    while n < size:
        assert client.request("hello", {"events": False, "pad": pad}).ok
        n += frame
    return n / (time.perf_counter() - t0)


def run(baud: int, wbits: int, back: int = 40) -> dict:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    line = baud / 10
    rows = []
    content = split(signed_image(key, "9.9.0"))[0]
    per_window = windows(content)
    running = split(signed_image(key, "1.0.0"))[0]  # what dbch flash puts in slot A: the base
    with tempfile.TemporaryDirectory() as tmp:
        fs = Path(tmp) / "flash"
        fs.mkdir()
        older, changed, rev = older_files(back, Path(tmp))
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
                client = Timed(t, timeout=10.0, port=info.port)
                assert client.hello().ok
                pace = wire_pace(client, len(content) // 2, 4000)
                sends = (
                    ("plain chunks", {"compress": False}, None),
                    ("deflate stream", {"compress": True, "wbits": wbits}, None),
                    ("update, same code", {"compress": True, "wbits": wbits, "base": running}, None),
                    (f"update, {changed} mod.", {"compress": True, "wbits": wbits, "base": running}, older),
                )
                for i, (what, kw, files) in enumerate(sends):
                    data = signed_image(key, f"9.9.{i + 1}", files)
                    size = len(split(data)[0])
                    before = t.written
                    client.ends = 0.0
                    t0 = time.perf_counter()
                    res = stage.send(client, data, **kw)
                    seconds = time.perf_counter() - t0
                    assert res["version"] == f"9.9.{i + 1}", res
                    rows.append(
                        {
                            "what": what,
                            "image": size,
                            "seconds": round(seconds, 3),
                            "begin_end": round(client.ends, 3),
                            "bytes_per_s": round(size / seconds),
                            "line_ratio": round(size / seconds / line, 3),
                            "wire_ratio": round(size / seconds / pace, 3),
                            "wire": t.written - before,
                            "stream": res.get("stream", size),
                            "wbits": res.get("wbits"),
                            "against": bool(res.get("against")),
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
    return {
        "baud": baud,
        "line_bytes_per_s": line,
        "wire_bytes_per_s": round(pace),
        "windows": per_window,
        "rows": rows,
        "older": {"commit": rev, "back": back, "changed": changed, "modules": len(older)},
    }


def report(res: dict) -> str:
    line = res["line_bytes_per_s"]
    lines = [
        "the agent's image as one deflate stream (zlib level 9), by window; at most x line: with nothing else on it"
    ]
    lines.append(f"{'window':>8} {'stream':>8} {'of image':>9} {'at most':>8}")
    for w in res["windows"]:
        lines.append(f"{'2^' + str(w['wbits']):>8} {w['stream']:>8} {w['ratio']:>8.1%} {w['most']:>7.2f}x")
    lines += [
        "",
        f"firmware staging on a virtual board at {res['baud']} baud: line rate {line:.0f} B/s; its wire carried"
        f" {res['wire_bytes_per_s']} B/s of payload in 4000-byte round trips ({res['wire_bytes_per_s'] / line:.0%})",
        f"{'':16} {'image':>7} {'seconds':>8} {'begin+end':>9} {'B/s':>6} {'x line':>7} {'x wire':>7}"
        f" {'on the line':>11} {'stream':>7} {'window':>7}",
    ]
    for r in res["rows"]:
        win = f"2^{r['wbits']}" if r["wbits"] else "-"
        lines.append(
            f"{r['what']:16} {r['image']:>7} {r['seconds']:>8.2f} {r['begin_end']:>9.2f} {r['bytes_per_s']:>6}"
            f" {r['line_ratio']:>6.2f}x {r['wire_ratio']:>6.2f}x {r['wire']:>11} {r['stream']:>7} {win:>7}"
        )
    plain, comp = res["rows"][0], res["rows"][1]
    lines.append(f"compressed against plain: {plain['seconds'] / comp['seconds']:.2f}x as fast")
    o = res["older"]
    lines.append(
        "update: the stream against the image the board runs (fw.begin's zd; each module's old copy put in the"
        " window first); same code: only the version differs; "
        f"{o['changed']} mod.: {o['changed']} of its {o['modules']} modules as they were {o['back']} commits earlier"
        f" ({o['commit']})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baud", type=int, default=115200, help="the virtual board's pace (default 115200)")
    ap.add_argument("--wbits", type=int, default=stage.WBITS, help="the largest deflate window offered, log2 bytes")
    ap.add_argument(
        "--back", type=int, default=40, help="the update's modules as they were this many commits earlier (default 40)"
    )
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    res = run(args.baud, args.wbits, args.back)
    print(json.dumps(res, indent=2) if args.json else report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Triage link cost: TLS handshake time on the MicroPython unix port (mbedTLS) against CPython
(OpenSSL), and request round-trip rate over mutually authenticated TLS against a plain TCP
socket, all measured in the same run against the same CPython echo servers on 127.0.0.1 (each
client in its own process).

    python3 bench/bench_tls.py [--handshakes N] [--round-trips N]

Prints absolute numbers and the ratios; asserts nothing (machines are noisy)."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hal import tls  # noqa: E402
from host_tools.security.pki import Pki  # noqa: E402

EUI = "00-1B-C5-0C-00-00-12-34"
TOOL = "bench-tool"
MSG = b"x" * 32


def echo_server(endpoint: tls.TlsEndpoint | None) -> tuple[int, threading.Event]:
    """An echo server (TLS if endpoint, else plain TCP), one connection at a time."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                link = endpoint.wrap(conn, timeout=10) if endpoint else None
            except tls.TriageLinkError:
                continue
            try:
                while True:
                    data = link.recv(256) if link else conn.recv(256)
                    if not data:
                        break
                    link.send(data) if link else conn.sendall(data)
            except (OSError, tls.TriageLinkError):
                pass
            finally:
                (link or conn).close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], stop


UPY_SCRIPT = """
import sys, time, socket
sys.path.insert(0, {root!r})
from hal import tls

def rd(p):
    with open(p, "rb") as f:
        return f.read()

d = {dev!r}
ep = tls.client(rd(d + "/cert.der"), rd(d + "/key.der"), rd({ca!r}), {tool!r})
msg = b"x" * 32
t0 = time.ticks_us()
for i in range({handshakes}):
    tls.connect(ep, "127.0.0.1", {tls_port}).close()
hs = time.ticks_diff(time.ticks_us(), t0) / {handshakes}

link = tls.connect(ep, "127.0.0.1", {tls_port})
t0 = time.ticks_us()
for i in range({trips}):
    link.send(msg)
    link.recv_exactly(32)
t_tls = time.ticks_diff(time.ticks_us(), t0)
link.close()

s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", {plain_port})[0][-1])
t0 = time.ticks_us()
for i in range({trips}):
    s.write(msg)
    got = b""
    while len(got) < 32:
        got += s.read(32 - len(got))
t_plain = time.ticks_diff(time.ticks_us(), t0)
s.close()
print("RESULT", hs, t_tls, t_plain)
"""


def cpython_client(pki: Pki, tls_port: int, plain_port: int, handshakes: int, trips: int) -> tuple[float, float, float]:
    d = pki.device(EUI)
    ep = tls.client(d.cert_der.read_bytes(), d.key_der.read_bytes(), pki.ca().cert_der.read_bytes(), TOOL)
    t0 = time.perf_counter()
    for _ in range(handshakes):
        tls.connect(ep, "127.0.0.1", tls_port).close()
    hs = (time.perf_counter() - t0) / handshakes * 1e6
    link = tls.connect(ep, "127.0.0.1", tls_port)
    link.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    for _ in range(trips):
        link.send(MSG)
        link.recv_exactly(len(MSG))
    t_tls = (time.perf_counter() - t0) * 1e6
    link.close()
    with socket.create_connection(("127.0.0.1", plain_port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        for _ in range(trips):
            s.sendall(MSG)
            got = b""
            while len(got) < len(MSG):
                got += s.recv(len(MSG) - len(got))
        t_plain = (time.perf_counter() - t0) * 1e6
    return hs, t_tls, t_plain


def _result(r: subprocess.CompletedProcess) -> tuple[float, float, float] | None:
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        print("client run failed:", r.stdout, r.stderr, file=sys.stderr)
        return None
    hs, t_tls, t_plain = (float(v) for v in line.split()[1:])
    return hs, t_tls, t_plain


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--handshakes", type=int, default=20)
    ap.add_argument("--round-trips", type=int, default=2000)
    # internal: the CPython client runs in its own process (no GIL shared with the servers)
    ap.add_argument("--client", nargs=3, metavar=("PKI_DIR", "TLS_PORT", "PLAIN_PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        d, tp, pp = args.client
        res = cpython_client(Pki(d), int(tp), int(pp), args.handshakes, args.round_trips)
        print("RESULT", *res)
        return 0

    with tempfile.TemporaryDirectory(prefix="dbch-bench-tls-") as tmp:
        pki = Pki(tmp)
        pki.init_ca()
        dev = pki.issue_device(EUI)
        tool = pki.issue_tool(TOOL)
        ca = pki.ca()
        server = tls.server(tool.cert_der.read_bytes(), tool.key_der.read_bytes(), ca.cert_der.read_bytes(), EUI)
        tls_port, stop_tls = echo_server(server)
        plain_port, stop_plain = echo_server(None)
        try:
            results = {}
            counts = ["--handshakes", str(args.handshakes), "--round-trips", str(args.round_trips)]
            cmd = [sys.executable, __file__, *counts, "--client", tmp, str(tls_port), str(plain_port)]
            results["cpython"] = _result(subprocess.run(cmd, capture_output=True, text=True, timeout=600))
            upy = shutil.which("micropython")
            if upy:
                script = Path(tmp) / "bench_client.py"
                script.write_text(
                    UPY_SCRIPT.format(
                        root=str(ROOT),
                        dev=str(dev.directory),
                        ca=str(ca.cert_der),
                        tool=TOOL,
                        handshakes=args.handshakes,
                        trips=args.round_trips,
                        tls_port=tls_port,
                        plain_port=plain_port,
                    )
                )
                r = subprocess.run([upy, str(script)], capture_output=True, text=True, timeout=600)
                results["micropython"] = _result(r)
            else:
                print("micropython not found: CPython numbers only", file=sys.stderr)
        finally:
            stop_tls.set()
            stop_plain.set()

    results = {k: v for k, v in results.items() if v is not None}
    if "cpython" not in results:
        return 1
    n = args.round_trips
    out = {}
    for name, (hs, t_tls, t_plain) in results.items():
        out[name] = {
            "handshake_ms": round(hs / 1000, 3),
            "tls_round_trips_per_s": round(n / (t_tls / 1e6)),
            "plain_round_trips_per_s": round(n / (t_plain / 1e6)),
            "tls_vs_plain_rate": round(t_plain / t_tls, 3),
        }
    if "micropython" in out:
        out["micropython_vs_cpython_handshake"] = round(results["micropython"][0] / results["cpython"][0], 2)
    for name in ("cpython", "micropython"):
        if name in out:
            o = out[name]
            print(
                f"{name:12} handshake {o['handshake_ms']:8.2f} ms   round trips/s: TLS {o['tls_round_trips_per_s']:7}"
                f"  plain {o['plain_round_trips_per_s']:7}  TLS/plain {o['tls_vs_plain_rate']:.2f}"
            )
    if "micropython_vs_cpython_handshake" in out:
        print(f"MicroPython handshake takes {out['micropython_vs_cpython_handshake']}x CPython's")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

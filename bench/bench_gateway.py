"""An upward alert's latency from the hub to its reader, through dbch gateway and Mosquitto
(mutual TLS on 127.0.0.1) to a paho-mqtt subscriber, against the same alerts read directly on
the hub's port (dbch alerts' way: host_tools.link.agent), in the same run.

The hub is the CPython agent, served by a thread of this process; each alert is raised by the
hub's own loop (Hub.tick) and timed from there to its arrival, one at a time (latency, not
throughput). Needs mosquitto (scripts/setup-system).

    python3 bench/bench_gateway.py [--alerts N]

Prints p50 and p99 of each and their ratio; asserts nothing (machines are noisy)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import alerts, codes  # noqa: E402
from agent.hub import Hub  # noqa: E402
from host_tools.fleet.broker import Broker, Identity, new_client  # noqa: E402
from host_tools.link.agent import Agent  # noqa: E402
from host_tools.security.pki import Pki  # noqa: E402
from host_tools.servers.simagent import SimAgent  # noqa: E402
from tests.kits.mosquittokit import Mosquitto  # noqa: E402

EUI = "00-DB-12-34-56-78-90-BE"


class RaisingHub:
    """The CPython agent on a pty, whose loop raises an alert when asked and notes when (by seq)."""

    def __init__(self, fs: Path):
        self.asked = threading.Event()
        self.raised: dict[int, float] = {}
        tick = Hub.tick

        def tick_and_raise(hub):
            if self.asked.is_set():
                self.asked.clear()
                seq = hub.outbox.append(*alerts.n54(hub.eui, codes.ALERT_BELOW_NORMAL_LIMITED))
                self.raised[seq] = time.monotonic()
            return tick(hub)

        Hub.tick = tick_and_raise
        self.agent = SimAgent(fs, eui=EUI)
        self.port = self.agent.open()
        self.thread = threading.Thread(target=self.agent.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.agent.request_stop()
        self.thread.join(10)
        self.agent.close()


def direct(hub: RaisingHub, n: int) -> list[float]:
    """ms from raise to arrival, read on the hub's port and acknowledged as dbch alerts does."""
    agent = Agent.open(hub.port, start=False)
    agent.subscribe()
    out = []
    try:
        client = agent.client
        for _ in range(n):
            hub.asked.set()
            for ev in client.poll_events(5.0):
                out.append((time.monotonic() - hub.raised[ev.seq]) * 1000)
                client.seen.add(ev.seq)
                client.ack(ev.seq)
                break
    finally:
        agent.close()
    return out


def through_broker(hub: RaisingHub, n: int, pki_dir: Path, broker: Mosquitto) -> list[float]:
    """ms from raise to arrival at a subscriber, through a dbch gateway process and the broker."""
    arrived: dict[int, float] = {}
    got = threading.Condition()

    def on_message(_c, _u, msg):
        with got:
            arrived[json.loads(msg.payload)["seq"]] = time.monotonic()
            got.notify_all()

    watcher = new_client("bench-watcher", Identity.from_pki(pki_dir, "watcher"))
    watcher.on_message = on_message
    subscribed = threading.Event()
    watcher.on_connect = lambda c, *_a: (c.subscribe(f"dbch/{EUI}/alert/#", qos=1), subscribed.set())
    b = Broker.parse(broker.url)
    watcher.connect(b.host, b.port)
    watcher.loop_start()
    subscribed.wait(10)
    cmd = [sys.executable, "-m", "host_tools.cli", "gateway", "--port", hub.port, "--broker", broker.url]
    cmd += ["--pki", str(pki_dir), "--identity", "gateway", "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    gateway = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = []
    try:
        assert json.loads(gateway.stdout.readline())["event"] == "ready"
        time.sleep(1)  # connected, its first state published
        for _ in range(n):
            before = set(hub.raised)
            hub.asked.set()

            def delivered(before=before) -> bool:
                new = set(hub.raised) - before
                return bool(new) and new <= set(arrived)

            with got:
                got.wait_for(delivered, 10)
            for seq in set(hub.raised) - before:
                if seq in arrived:
                    out.append((arrived[seq] - hub.raised[seq]) * 1000)
    finally:
        gateway.terminate()
        gateway.wait(15)
        watcher.disconnect()
        watcher.loop_stop()
    return out


def _figures(name: str, ms: list[float]) -> float:
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    p50 = statistics.median(ms)
    print(f"{name:32s} n={len(ms):3d}  p50 {p50:7.2f} ms  p99 {q[98]:7.2f} ms")
    return p50


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        pki = Pki(tmp / "pki")
        pki.init_ca()
        for name in ("localhost", "gateway", "watcher"):
            pki.issue_tool(name)
        server = pki.tool("localhost")
        broker = Mosquitto(tmp / "broker", pki.ca_dir / "ca.crt.pem", server.cert_pem, server.key_pem)
        hub = RaisingHub(tmp / "flash")
        try:
            with broker:
                base = _figures("direct (the hub's port)", direct(hub, args.alerts))
                gw = _figures("gateway + mosquitto (TLS)", through_broker(hub, args.alerts, tmp / "pki", broker))
        finally:
            hub.stop()
    print(f"ratio p50 gateway/direct: {gw / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

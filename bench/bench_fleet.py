"""The fleet at size: one Mosquitto broker (mutual TLS on 127.0.0.1), 4 `dbch gateway` processes
and 1,000 simulated hubs (host_tools.servers.simfleet: 4 processes of 250 agents, each hub with
its own outbox on its own storage) raising one alert per second each for 60 s, read by one
paho-mqtt subscriber with a persistent session (QoS 1).

During the run one gateway is killed (SIGKILL, then started again as a service manager would) and
the broker is restarted (stopped and started on the same port and persistence). Printed: alerts
raised, delivered, lost (must be 0), duplicated, and the p50/p99 delay from the hub raising an
alert to the subscriber receiving it, for the steady part of the run (the baseline, measured in
the same run) and for the 10 s after each disruption, with their ratios to the baseline.

    python3 bench/bench_fleet.py [--hubs 1000] [--gateways 4] [--seconds 60] [--calm]

--calm: no kill and no restart (the same figures without disruption). Needs mosquitto
(scripts/setup-system). Asserts nothing (machines are noisy); exits 1 if an alert was lost."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools.fleet.broker import Broker, Identity, new_client  # noqa: E402
from host_tools.security.pki import Pki  # noqa: E402
from tests.kits.jsonlines import JsonLines  # noqa: E402
from tests.kits.mosquittokit import Mosquitto  # noqa: E402

# for a subscriber that may be away while the broker restarts: its queue holds a few seconds of
# the whole fleet's alerts (the default 1000 would drop the rest)
BROKER_SETTINGS = ("max_queued_messages 200000",)


class Subscriber:
    """dbch/+/alert/# with QoS 1 and a persistent session; each (EUI, epoch, seq) kept once with
    its first arrival time, the others counted as duplicates."""

    def __init__(self, broker: Broker, identity: Identity):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.arrived: dict[tuple, float] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        self.client = new_client("bench-subscriber", identity)
        self.client.on_connect = lambda c, _u, _f, reason, _p: c.subscribe("dbch/+/alert/#", qos=1)
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        del mqtt

    def _on_message(self, _c, _u, msg) -> None:
        now = time.monotonic()
        body = json.loads(msg.payload)
        key = (body["eui"], body.get("epoch"), body["seq"])
        with self.lock:
            if key in self.arrived:
                self.duplicates += 1
            else:
                self.arrived[key] = now

    def count(self) -> int:
        with self.lock:
            return len(self.arrived)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_gateway(i: int, ports: list[str], broker: Mosquitto, pki_dir: Path, logs: Path) -> JsonLines:
    cmd = [sys.executable, "-m", "host_tools.cli", "gateway", "--broker", broker.url, "--json"]
    cmd += ["--pki", str(pki_dir), "--identity", "gateway", "--name", f"gw{i}"]
    for port in ports:
        cmd += ["--port", port]
    return JsonLines(cmd, logs / f"gateway{i}.log")


def wait_on(gw: JsonLines, hubs: int, what: str) -> None:
    gw.wait_for(lambda x: x.get("event") == "ready", 120, f"{what} ready")
    gw.wait_for(lambda x: gw.count(lambda y: y.get("event") == "connected") >= hubs, 120, f"{what} on")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def figures(name: str, delays: list[float], base: float | None) -> float:
    if not delays:
        print(f"{name:28s} n=0")
        return 0.0
    q = statistics.quantiles(delays, n=100) if len(delays) > 1 else delays * 99
    p50, p99 = statistics.median(delays), q[98]
    ratio = f"  p99 x{p99 / base:.1f} of steady" if base else ""
    print(f"{name:28s} n={len(delays):6d}  p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms{ratio}")
    return p99


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hubs", type=int, default=1000)
    ap.add_argument("--gateways", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--calm", action="store_true", help="no gateway kill, no broker restart")
    ap.add_argument("--keep", type=Path, help="keep the logs in this directory")
    args = ap.parse_args()
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # the hubs' flash in memory
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        tmp = Path(tmp)
        logs = args.keep or tmp
        logs.mkdir(parents=True, exist_ok=True)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")  # the processes started here inherit it
        pki = Pki(tmp / "pki")
        pki.init_ca()
        for name in ("localhost", "gateway", "subscriber"):
            pki.issue_tool(name)
        server = pki.tool("localhost")
        broker = Mosquitto(
            tmp / "broker", pki.ca_dir / "ca.crt.pem", server.cert_pem, server.key_pem, settings=BROKER_SETTINGS
        )
        per = args.hubs // args.gateways
        farms: list[JsonLines] = []
        gateways: list[JsonLines] = []
        sub = None
        try:
            broker.start()
            t0 = time.monotonic()
            for i in range(args.gateways):
                cmd = [sys.executable, "-m", "host_tools.servers.simfleet", "--dir", str(tmp / f"farm{i}")]
                cmd += ["--count", str(per), "--first-eui", f"00-DB-00-00-00-00-{i:02X}-00"]
                cmd += ["--alert-every", "1", "--alerts-for", str(args.seconds)]
                farms.append(JsonLines(cmd, logs / f"farm{i}.log"))
            ports = [[h["port"] for h in f.wait_for(lambda x: "hubs" in x, 120, "hubs")["hubs"]] for f in farms]
            sub = Subscriber(Broker.parse(broker.url), Identity.from_pki(tmp / "pki", "subscriber"))
            gateways = [start_gateway(i, ports[i], broker, tmp / "pki", logs) for i in range(args.gateways)]
            for i, gw in enumerate(gateways):
                wait_on(gw, len(ports[i]), f"gateway {i}")
            print(f"{args.hubs} hubs on {args.gateways} gateways, connected in {time.monotonic() - t0:.1f} s")
            start = time.monotonic()
            for f in farms:
                f.proc.send_signal(signal.SIGUSR1)
            marks = {}
            if not args.calm:
                time.sleep(args.seconds / 3)
                marks["gateway kill"] = time.monotonic()
                gateways[1].stop(signal.SIGKILL)
                print(f"t={marks['gateway kill'] - start:.1f} s: gateway 1 killed (SIGKILL); started again")
                gateways[1] = start_gateway(1, ports[1], broker, tmp / "pki", logs)
                wait_on(gateways[1], len(ports[1]), "gateway 1 again")
                print(f"t={time.monotonic() - start:.1f} s: gateway 1 back, its hubs connected")
                time.sleep(max(0.0, start + 2 * args.seconds / 3 - time.monotonic()))
                marks["broker restart"] = time.monotonic()
                broker.stop()
                broker.start()
                print(f"t={marks['broker restart'] - start:.1f} s: broker restarted")
            raised_total = sum(
                f.wait_for(lambda x: "raised" in x, args.seconds + 120, "alerts end")["raised"] for f in farms
            )
            end = time.monotonic()
            deadline = end + 120
            while sub.count() < raised_total and time.monotonic() < deadline:
                time.sleep(0.2)
            drained = time.monotonic() - end
            cpu = {f"gateway {i}": cpu_seconds(g.proc.pid) for i, g in enumerate(gateways)}
            cpu["broker"] = cpu_seconds(broker.proc.pid)
            cpu["hubs (all farms)"] = sum(cpu_seconds(f.proc.pid) for f in farms)
            cpu["subscriber (this process)"] = time.process_time()
            told = {}
            for g in gateways:
                for line in g.lines:
                    told[line.get("event")] = told.get(line.get("event"), 0) + 1
        finally:
            for f in farms:
                f.stop()
            for g in gateways:
                g.stop()
            if sub is not None:
                sub.close()
            broker.stop()
        raised = {}
        for i in range(args.gateways):
            for eui, seqs in json.loads((tmp / f"farm{i}" / "raised.json").read_text()).items():
                for seq, t in seqs.items():
                    raised[(eui, int(seq))] = t
        arrived = {(k[0], k[2]): t for k, t in sub.arrived.items()}
        lost = [k for k in raised if k not in arrived]
        print(
            f"raised {len(raised)} ({len(raised) / args.seconds:.0f}/s), delivered {len(arrived)},"
            f" lost {len(lost)}, duplicated {sub.duplicates}; last delivered {drained:.1f} s after the end"
        )
        delays = {k: arrived[k] - t for k, t in raised.items() if k in arrived}
        first = min(marks.values()) if marks else end
        steady = [d for k, d in delays.items() if start + 5 <= raised[k] < first]
        base = figures("steady (baseline)", steady, None)
        for name, at in marks.items():
            figures(f"10 s after the {name}", [d for k, d in delays.items() if at <= raised[k] < at + 10], base)
        figures("whole run", list(delays.values()), base)
        if lost:
            print("lost, first few:", lost[:5])
        print("the gateways said (the running ones):", ", ".join(f"{k} {v}" for k, v in sorted(told.items())))
        print("CPU seconds over the run (a restarted process: since its start):")
        for name, seconds in cpu.items():
            print(f"  {name:28s} {seconds:6.1f} s  ({seconds / (end - start + drained) * 100:3.0f} % of one core)")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

"""Many CPython agents in one process, each on a pty of its own: a fleet of simulated hubs for a
gateway to attach (`dbch gateway --port PTY ...`), as a lab's rack of boards would be.

Each hub is the agent's own code (agent.hub.Hub and agent.server.Server) on boards.sim parts, with
its own storage directory (its own outbox, on the flash of its own) and its own EUI-64. One thread
serves them all: a hub's server runs when its pty has input, when an alert was raised on it, and
otherwise every TICK seconds (its periodic work and the resending of unacknowledged events).

alert_every: each hub raises one Dual Band CH alert (N54, 8F2A) every that many seconds, at its
own phase; the time of each, by (EUI, seq), is kept in .raised (time.monotonic, the same clock
in every process of the machine), so that a reader can measure the delay to each arrival.

    python -m host_tools.servers.simfleet --dir DIR --count N [--alert-every S] [--for S]

prints one JSON line {"hubs": [{"eui", "port"}, ...]} once every hub is up, serves until SIGTERM
(or --for), then writes DIR/raised.json ({"EUI": {seq: time}}) and prints {"raised": n}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import sys
import time
from pathlib import Path

from host_tools.servers.ptys import PtyWriter, WakePipe, close_fds, open_pty
from host_tools.servers.simagent import PtyLink, provision
from host_tools.servers.simhub import fast_forward_clock, make_hal

TICK = 0.25  # s between two runs of an idle hub's server
FIRST_EUI = 0x00DB000000000000


def eui_text(n: int) -> str:
    return "-".join(f"{b:02X}" for b in n.to_bytes(8, "big"))


class FleetHub:
    """One hub of the fleet: its pty, its HAL and agent (Hub and Server)."""

    def __init__(self, fs: Path, eui: str, stopping):
        from agent.hub import Hub
        from agent.server import Server
        from boards import sim

        self.eui = eui
        self.fs = fs
        eui_bytes = provision(fs, bytes.fromhex(eui.replace("-", "")))
        self.master, self.slave, self.port = open_pty()
        self.stream = os.fdopen(os.dup(self.master), "rb")
        link = PtyLink(self.stream, PtyWriter(self.master, wait_s=0.05), stopping)
        self.hal = make_hal(fs, eui_bytes, link=link, clock=fast_forward_clock())
        self.hub = Hub(self.hal, sim)
        self.server = Server(self.hub, link)
        self.due = 0.0  # when its server runs next, idle

    def raise_alert(self) -> int | None:
        from agent import alerts, codes

        return self.hub.outbox.append(*alerts.n54(self.hub.eui, codes.ALERT_BELOW_NORMAL_LIMITED))

    def serve(self, now: float) -> None:
        self.server.poll()
        if self.hub.reboot_requested:  # a reboot: a new Hub on the same storage, the same pty
            from agent.hub import Hub
            from agent.server import Server
            from boards import sim

            self.hub = Hub(self.hal, sim)
            self.server = Server(self.hub, self.server.link)
        self.due = now + TICK

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        close_fds(self.master, self.slave)


class SimFleet:
    """`count` hubs in `root` (one storage directory each, root/<EUI>), served by run() until
    request_stop()."""

    def __init__(self, root: Path, count: int, first_eui: int = FIRST_EUI, alert_every: float | None = None):
        self.root = Path(root)
        self.alert_every = alert_every
        self._stop = False
        self.wake = WakePipe()
        self.hubs: list[FleetHub] = []
        self.raised: dict[str, dict[int, float]] = {}
        for i in range(count):
            eui = eui_text(first_eui + i)
            self.hubs.append(FleetHub(self.root / eui.replace("-", ""), eui, self._stopping))
            self.raised[eui] = {}

    def _stopping(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        self._stop = True
        self.wake.wake()

    def run(self, duration: float | None = None) -> None:
        by_fd = {hub.master: hub for hub in self.hubs}
        poller = select.poll()
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self.wake.fd, select.POLLIN)
        start = time.monotonic()
        end = start + duration if duration else None
        n = len(self.hubs)
        every = self.alert_every
        next_alert = [start + (every * i / n if every else 0) for i in range(n)]
        while not self._stop and (end is None or time.monotonic() < end):
            now = time.monotonic()
            soonest = min(h.due for h in self.hubs)
            if every:
                soonest = min(soonest, min(next_alert))
            for fd, _ in poller.poll(max(0, int((soonest - now) * 1000))):
                hub = by_fd.get(fd)
                if hub is None:
                    self.wake.drain()
                    continue
                hub.serve(now)
            now = time.monotonic()
            for i, hub in enumerate(self.hubs):
                if every and now >= next_alert[i]:
                    seq = hub.raise_alert()
                    if seq is not None:
                        self.raised[hub.eui][seq] = time.monotonic()
                    next_alert[i] += every
                    hub.due = 0.0
                if now >= hub.due:
                    hub.serve(now)

    def close(self) -> None:
        for hub in self.hubs:
            hub.close()
        self.wake.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.servers.simfleet", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, type=Path, help="where each hub's storage directory is made")
    ap.add_argument("--count", type=int, required=True, help="how many hubs")
    ap.add_argument("--first-eui", default=eui_text(FIRST_EUI), help="the first hub's EUI-64 (the others follow)")
    ap.add_argument("--alert-every", type=float, default=None, metavar="S", help="each hub raises an alert every S s")
    ap.add_argument("--for", dest="duration", type=float, default=None, metavar="S", help="stop after S s")
    args = ap.parse_args(argv)
    first = int(args.first_eui.replace("-", ""), 16)
    fleet = SimFleet(args.dir, args.count, first, args.alert_every)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: fleet.request_stop())
    print(json.dumps({"hubs": [{"eui": h.eui, "port": h.port} for h in fleet.hubs]}), flush=True)
    try:
        fleet.run(args.duration)
    finally:
        raised = {eui: {str(s): t for s, t in seqs.items()} for eui, seqs in fleet.raised.items()}
        (args.dir / "raised.json").write_text(json.dumps(raised))
        fleet.close()
    print(json.dumps({"raised": sum(len(s) for s in fleet.raised.values())}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Many CPython agents in one process, each on a pty of its own: a fleet of simulated hubs for a
gateway to attach (`dbch gateway --port PTY ...`), as a lab's rack of boards would be.

Each hub is the agent's own code (agent.hub.Hub and agent.server.Server) on boards.sim parts, with
its own EUI-64 and its own flash root, DIR/<EUI>: its storage (its outbox) in flash/ as a CPython
agent's, its firmware slots beside it, and, with a signing key, the key its updates must be
signed with (fwkey.bin, as `dbch flash --signing-key` writes it on a board). One thread
serves them all: a hub's server runs when its pty has input, when an alert was raised on it, and
at least every TICK seconds (its periodic work and the resending of unacknowledged events).

Alerts, for benches: from start_alerts() on (SIGUSR1 from outside), for `alerts_for` seconds,
each hub raises one Dual Band CH alert (N54, 8F2A) every `alert_every` seconds, at its own phase.
The time of each, by (EUI, seq), is kept in .raised (time.monotonic, the same clock in every
process of the machine), so that a reader can measure the delay to each arrival.

    python -m host_tools.servers.simfleet --dir DIR --count N [--alert-every S --alerts-for S]

prints one JSON line {"hubs": [{"eui", "port"}, ...]} once every hub is up, {"raised": n} when
the alerts end, and serves until SIGTERM; then it writes DIR/raised.json ({"EUI": {seq: time}}).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
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

    def __init__(self, root: Path, eui: str, stopping, signing_key: bytes | None = None):
        from agent.boot import KEY
        from agent.server import Server

        self.eui = eui
        fs = root / "flash"
        eui_bytes = provision(fs, bytes.fromhex(eui.replace("-", "")))
        if signing_key is not None:
            (root / KEY).write_bytes(signing_key)
        self.master, self.slave, self.port = open_pty()
        self.stream = os.fdopen(os.dup(self.master), "rb")
        link = PtyLink(self.stream, PtyWriter(self.master, wait_s=0.05), stopping)
        self.hal = make_hal(fs, eui_bytes, link=link, clock=fast_forward_clock())
        self.root = str(root)
        self.hub = self.boot()
        self.server = Server(self.hub, link)

    def boot(self):
        """A board's boot: the slot to run is chosen (a trial after an activation, a revert after
        a failed one: agent.boot), then the hub starts on its storage."""
        from agent import boot
        from agent.hub import Hub
        from boards import sim

        boot.choose(boot.OsFs(), self.root)
        return Hub(self.hal, sim)

    def raise_alert(self) -> int | None:
        from agent import alerts, codes

        return self.hub.outbox.append(*alerts.n54(self.hub.eui, codes.ALERT_BELOW_NORMAL_LIMITED))

    def serve(self) -> None:
        self.server.poll()
        if self.hub.reboot_requested:  # a reboot: a new Hub on the same storage, the same pty
            from agent.server import Server

            self.hub = self.boot()
            self.server = Server(self.hub, self.server.link)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        close_fds(self.master, self.slave)


class SimFleet:
    """`count` hubs in `root` (one storage directory each, root/<EUI>), served by run() until
    request_stop()."""

    def __init__(
        self,
        root: Path,
        count: int,
        first_eui: int = FIRST_EUI,
        alert_every: float | None = None,
        alerts_for: float = 60.0,
        on_alerts_end=None,
        signing_key: bytes | None = None,
    ):
        self.root = Path(root)
        self.alert_every = alert_every
        self.alerts_for = alerts_for
        self.on_alerts_end = on_alerts_end  # called with the number raised when the alerts end
        self._alerts_asked = False
        self._stop = False
        self.wake = WakePipe()
        self.hubs: list[FleetHub] = []
        self.raised: dict[str, dict[int, float]] = {}
        for i in range(count):
            eui = eui_text(first_eui + i)
            self.hubs.append(FleetHub(self.root / eui.replace("-", ""), eui, self._stopping, signing_key))
            self.raised[eui] = {}

    def _stopping(self) -> bool:
        return self._stop

    def start_alerts(self) -> None:
        """The alerts begin (callable from a signal handler)."""
        self._alerts_asked = True
        self.wake.wake()

    def request_stop(self) -> None:
        self._stop = True
        self.wake.wake()

    def run(self) -> None:
        by_fd = {hub.master: hub for hub in self.hubs}
        poller = select.poll()
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self.wake.fd, select.POLLIN)
        start = time.monotonic()
        n = len(self.hubs)
        every = self.alert_every
        alerts_end = None
        # what is due, soonest first: (when, hub index, what): each hub's idle run ("tick") and,
        # once the alerts begin, its next alert (each hub at its own phase)
        due = [(start + TICK * i / n, i, "tick") for i in range(n)]
        heapq.heapify(due)
        while not self._stop:
            if self._alerts_asked and every and alerts_end is None:
                now = time.monotonic()
                alerts_end = now + self.alerts_for
                for i in range(n):
                    heapq.heappush(due, (now + every * i / n, i, "alert"))
            if alerts_end is not None and time.monotonic() >= alerts_end:
                due = [d for d in due if d[2] != "alert"]
                heapq.heapify(due)
                alerts_end = float("inf")
                if self.on_alerts_end:
                    self.on_alerts_end(sum(len(s) for s in self.raised.values()))
            now = time.monotonic()
            wait_ms = max(1, math.ceil((due[0][0] - now) * 1000)) if due else 1000
            for fd, _ in poller.poll(wait_ms):
                hub = by_fd.get(fd)
                if hub is None:
                    self.wake.drain()
                else:
                    hub.serve()
            now = time.monotonic()
            while due and due[0][0] <= now:
                when, i, what = heapq.heappop(due)
                hub = self.hubs[i]
                if what == "alert":
                    seq = hub.raise_alert()
                    if seq is not None:
                        self.raised[hub.eui][seq] = time.monotonic()
                    heapq.heappush(due, (when + every, i, "alert"))
                else:
                    heapq.heappush(due, (now + TICK, i, "tick"))
                hub.serve()

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
    ap.add_argument("--alerts-for", type=float, default=60.0, metavar="S", help="for S s from SIGUSR1 (default 60)")
    ap.add_argument("--alerts-now", action="store_true", help="begin the alerts at once, not on SIGUSR1")
    ap.add_argument(
        "--signing-key",
        metavar="KEY",
        help="the key the hubs' firmware must be signed with (a key file or hex, as dbch flash --signing-key)",
    )
    args = ap.parse_args(argv)
    first = int(args.first_eui.replace("-", ""), 16)
    key = None
    if args.signing_key:
        from host_tools.firmware.sign import load_signing_public

        key = load_signing_public(args.signing_key)

    def ended(n: int) -> None:
        print(json.dumps({"raised": n}), flush=True)

    fleet = SimFleet(args.dir, args.count, first, args.alert_every, args.alerts_for, ended, key)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: fleet.request_stop())
    signal.signal(signal.SIGUSR1, lambda *_: fleet.start_alerts())
    if args.alerts_now:
        fleet.start_alerts()
    print(json.dumps({"hubs": [{"eui": h.eui, "port": h.port} for h in fleet.hubs]}), flush=True)
    try:
        fleet.run()
    finally:
        raised = {eui: {str(s): t for s, t in seqs.items()} for eui, seqs in fleet.raised.items()}
        (args.dir / "raised.json").write_text(json.dumps(raised))
        fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

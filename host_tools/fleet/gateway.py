"""`dbch gateway`'s engine: the hubs of its ports (host_tools.fleet.hub), each with its own MQTT
connection, all served by one loop thread.

The loop waits (epoll) on every hub's port and every hub's broker socket (paho-mqtt driven
through its external-loop calls: no thread of its own, no select(), so a process may hold
thousands of descriptors) and on a heap of when each hub has work due: a turn costs what is ready
and due, not the number of hubs. It never blocks on one hub: requests go to a hub without waiting, and its answer,
when it comes, is published (a command's reply) or kept (its state). So one gateway carries
hundreds of hubs with one thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import socket
import threading
import time
import traceback
from collections.abc import Callable

from agent import wire
from host_tools.fleet.broker import Broker, FleetError, Identity
from host_tools.fleet.hub import HubBridge
from host_tools.link.client import LinkError
from host_tools.servers.ptys import WakePipe

TICK = 0.5  # s at most between two turns of the loop


class Gateway:
    """The hubs of `ports` bridged to `broker`: start() runs them in a thread until stop()."""

    def __init__(
        self,
        ports: list[str],
        broker: Broker,
        identity: Identity,
        report: Callable[[str, dict], None] = lambda kind, data: None,
        name: str | None = None,
        **options,
    ):
        self.broker = broker
        self.identity = identity
        self.report = report
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = threading.Event()
        self.inbox: list[tuple] = []  # (hub, kind, item) from paho's callbacks, in the loop's thread
        self.wake = WakePipe()
        self.selector = selectors.DefaultSelector()  # epoll on Linux: the cost of a wait is what is ready
        self.touched: set[HubBridge] = set()  # hubs with something done this turn: to flush, to reschedule
        self.dues: list[tuple[float, int, HubBridge]] = []  # (when, n, hub): a heap; stale ones are skipped
        self._n = itertools.count()
        self.hubs: list[HubBridge] = []
        try:
            for port in ports:
                hub = HubBridge(port, self, **options)
                if any(h.eui == hub.eui for h in self.hubs):
                    hub.agent.close()
                    raise FleetError(f"--port {port} is the hub {hub.eui} again: give each hub once")
                self.hubs.append(hub)
                self.watch_hub(hub)
        except BaseException:
            for hub in self.hubs:
                hub.agent.close()
            self.wake.close()
            raise
        self.selector.register(self.wake.fd, selectors.EVENT_READ, ("wake", None))
        self.thread = threading.Thread(target=self.run, name="gateway", daemon=True)

    # -- what the loop watches -----------------------------------------------------------------
    def _unwatch(self, fd: int | None) -> None:
        if fd is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(fd)

    def watch_hub(self, hub: HubBridge) -> None:
        self.selector.register(hub.fd, selectors.EVENT_READ, ("hub", hub))
        self.touched.add(hub)

    def unwatch_hub(self, hub: HubBridge) -> None:
        self._unwatch(hub.fd)

    def watch_mqtt(self, hub: HubBridge) -> None:
        self._unwatch(hub.mqtt_fd)
        hub.mqtt_fd = hub.mqtt.socket().fileno()
        hub.wants_out = False
        try:
            self.selector.register(hub.mqtt_fd, selectors.EVENT_READ, ("mqtt", hub))
        except KeyError:  # a descriptor closed under another name and reused: it is this one now
            self.selector.modify(hub.mqtt_fd, selectors.EVENT_READ, ("mqtt", hub))
        self.touched.add(hub)

    def unwatch_mqtt(self, hub: HubBridge) -> None:
        self._unwatch(hub.mqtt_fd)
        hub.mqtt_fd = None

    def want_out(self, hub: HubBridge, out: bool) -> None:
        if hub.mqtt_fd is not None and out != hub.wants_out:
            hub.wants_out = out
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
            self.selector.modify(hub.mqtt_fd, events, ("mqtt", hub))

    def post(self, hub: HubBridge, kind: str, item) -> None:
        """From paho's callbacks (run inside loop_read, in the loop's thread): done after it."""
        self.inbox.append((hub, kind, item))

    # -- the loop ------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.turn()
        finally:
            for hub in self.hubs:
                hub.close()
            self.selector.close()

    def turn(self) -> None:
        """Wait for what is ready or due, and do it: only the hubs it concerns are touched."""
        now = time.monotonic()
        soonest = self.dues[0][0] if self.dues else now + TICK
        ready = self.selector.select(max(0.0, min(soonest, now + TICK) - now))
        now = time.monotonic()
        for key, events in ready:
            kind, hub = key.data
            if hub is None:
                self.wake.drain()
            elif kind == "mqtt":
                self.touched.add(hub)
                self._guarded(hub, hub.on_mqtt, events, now)
            else:
                self.touched.add(hub)
                self._guarded(hub, hub.on_readable, now)
        while self.inbox:
            hub, kind, item = self.inbox.pop(0)
            self.touched.add(hub)
            if kind == "acked":
                self._guarded(hub, hub.on_acked, *item, now)
            elif kind == "command":
                self._guarded(hub, hub.on_command, item, now)
        while self.dues and self.dues[0][0] <= now:
            _when, _n, hub = heapq.heappop(self.dues)
            if hub.next_due() <= now:
                self.touched.add(hub)
                self._guarded(hub, hub.due, now)
        touched, self.touched = self.touched, set()
        for hub in touched:
            hub.flush(now)
            heapq.heappush(self.dues, (hub.next_due(), next(self._n), hub))

    def _guarded(self, hub: HubBridge, work, *args) -> None:
        try:
            work(*args)
        except (LinkError, OSError, wire.WireError) as e:
            self._fail(hub, e)
        except Exception as e:  # a fault of ours must not stop the other hubs: this one starts over
            self.report("error", {"eui": hub.eui, "error": "".join(traceback.format_exception(e))})
            self._fail(hub, e)

    def _fail(self, hub: HubBridge, error: Exception) -> None:
        hub.lost(error, time.monotonic())

    def stop(self) -> None:
        self.stopping.set()
        self.wake.wake()
        self.thread.join(30)
        self.wake.close()

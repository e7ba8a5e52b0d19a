"""`dbch gateway`'s engine: the hubs of its ports (host_tools.fleet.hub), each with its own MQTT
connection, all served by one loop thread.

The loop polls every hub's port and every hub's broker socket (paho-mqtt driven through its
external-loop calls: no thread of its own, no select(), so a process may hold thousands of
descriptors). It never blocks on one hub: requests go to a hub without waiting, and its answer,
when it comes, is published (a command's reply) or kept (its state). So one gateway carries
hundreds of hubs with one thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import threading
import time
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
        self.poller = select.poll()
        self.watched: dict[int, tuple[str, HubBridge]] = {}  # fd -> ("hub" or "mqtt", its hub)
        self.hubs: list[HubBridge] = []
        try:
            for port in ports:
                hub = HubBridge(port, self, **options)
                if any(h.eui == hub.eui for h in self.hubs):
                    hub.agent.close()
                    raise FleetError(f"--port {port} is the hub {hub.eui} again: give each hub once")
                self.hubs.append(hub)
                self._watch(hub.fd, "hub", hub, select.POLLIN)
        except BaseException:
            for hub in self.hubs:
                hub.agent.close()
            self.wake.close()
            raise
        self.poller.register(self.wake.fd, select.POLLIN)
        self.thread = threading.Thread(target=self.run, name="gateway", daemon=True)

    # -- what the loop watches -----------------------------------------------------------------
    def _watch(self, fd: int, kind: str, hub: HubBridge, events: int) -> None:
        self.watched[fd] = (kind, hub)
        self.poller.register(fd, events)

    def _unwatch(self, fd: int | None) -> None:
        if fd is not None and self.watched.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(fd)

    def watch_mqtt(self, hub: HubBridge) -> None:
        self._unwatch(hub.mqtt_fd)
        hub.mqtt_fd = hub.mqtt.socket().fileno()
        hub.wants_out = False
        self._watch(hub.mqtt_fd, "mqtt", hub, select.POLLIN)
        hub.flush(time.monotonic())

    def unwatch_mqtt(self, hub: HubBridge) -> None:
        self._unwatch(hub.mqtt_fd)
        hub.mqtt_fd = None

    def want_out(self, hub: HubBridge, out: bool) -> None:
        if hub.mqtt_fd is not None and out != getattr(hub, "wants_out", False):
            hub.wants_out = out
            self.poller.modify(hub.mqtt_fd, select.POLLIN | (select.POLLOUT if out else 0))

    def post(self, hub: HubBridge, kind: str, item) -> None:
        """From paho's callbacks (run inside loop_read, in the loop's thread): done after it."""
        self.inbox.append((hub, kind, item))

    # -- the loop ------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    @property
    def alive(self) -> list[HubBridge]:
        return [h for h in self.hubs if not h.failed]

    def run(self) -> None:
        soonest = time.monotonic()
        try:
            while not self.stopping.is_set() and self.alive:
                now = time.monotonic()
                ready = self.poller.poll(max(0, math.ceil((min(soonest, now + TICK) - now) * 1000)))
                now = time.monotonic()
                for fd, events in ready:
                    kind, hub = self.watched.get(fd, (None, None))
                    if hub is None:
                        self.wake.drain()
                    elif hub.failed:
                        continue
                    elif kind == "mqtt":
                        hub.on_mqtt(events, now)
                    elif events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                        self._fail(hub, LinkError(f"the port {hub.port} was closed"))
                    else:
                        self._guarded(hub, hub.on_readable, now)
                while self.inbox:
                    hub, kind, item = self.inbox.pop(0)
                    if hub.failed:
                        continue
                    if kind == "acked":
                        self._guarded(hub, hub.on_acked, *item, now)
                    elif kind == "command":
                        self._guarded(hub, hub.on_command, item, now)
                soonest = now + TICK
                for hub in self.hubs:
                    if hub.failed:
                        continue
                    if hub.next_due() <= now:
                        self._guarded(hub, hub.due, now)
                    if not hub.failed:
                        hub.flush(now)
                        soonest = min(soonest, hub.next_due())
        finally:
            for hub in self.hubs:
                if not hub.failed:
                    hub.close()

    def _guarded(self, hub: HubBridge, work, *args) -> None:
        try:
            work(*args)
        except (LinkError, OSError, wire.WireError) as e:
            self._fail(hub, e)

    def _fail(self, hub: HubBridge, error: Exception) -> None:
        self._unwatch(hub.fd)
        hub.fail(error)

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(h.connected.wait(max(0.0, deadline - time.monotonic())) for h in self.hubs)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.wake()
        self.thread.join(30)
        self.wake.close()

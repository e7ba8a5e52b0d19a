"""The fleet as a subscriber sees it on the broker: every hub's retained state and availability,
live status through the hubs' commands, and the alerts as they come (`dbch fleet`)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from host_tools.fleet.broker import Broker, FleetError, Identity, new_client

QUIET = 0.5  # s without a new retained message after which the snapshot is whole


@dataclass
class Hub:
    """One hub as the broker holds it: its availability and its last published state."""

    eui: str
    availability: str | None = None
    state: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"eui": self.eui, "availability": self.availability or "unknown", **self.state}


class FleetView:
    """A paho-mqtt client on `broker` with `identity`. session: a name for a persistent session
    (the broker keeps the alerts that come while it is away, for QoS 1)."""

    def __init__(self, broker: Broker, identity: Identity, session: str | None = None, timeout: float = 10.0):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self._Properties, self._PacketTypes = Properties, PacketTypes
        client_id = f"dbch-fleet-{session}" if session else "dbch-fleet-" + uuid.uuid4().hex[:12]
        self.replies = f"dbch-tool/{client_id}/reply"
        self.lock = threading.Condition()
        self.hubs: dict[str, Hub] = {}
        self.last_retained = time.monotonic()
        self.answers: dict[bytes, dict] = {}
        self.alerts: list[dict] = []
        self.subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self.refused: str | None = None
        self.client = new_client(client_id, identity)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)
        if session:
            props.SessionExpiryInterval = 7 * 24 * 3600
        self.connected = threading.Event()
        try:
            self.client.connect(broker.host, broker.port, keepalive=30, clean_start=not session, properties=props)
        except OSError as e:
            raise FleetError(f"cannot reach the broker {broker}: {e}. Is it running, and its address right?") from e
        self.client.loop_start()
        if not self.connected.wait(timeout) or self.refused:
            self.close()
            raise FleetError(f"the broker {broker} did not take the connection: {self.refused or 'no answer'}")

    def _on_connect(self, client, _u, _flags, reason, _props) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            client.subscribe(self.replies, qos=1)
        self.connected.set()

    def _on_subscribe(self, _c, _u, mid, _codes, _props) -> None:
        with self.lock:
            self._pending_subs.discard(mid)
            self.lock.notify_all()

    def _on_message(self, _c, _u, msg) -> None:
        parts = msg.topic.split("/")
        with self.lock:
            if msg.topic == self.replies:
                correlation = getattr(msg.properties, "CorrelationData", None)
                try:
                    self.answers[correlation] = json.loads(msg.payload)
                except ValueError:
                    self.answers[correlation] = {"rc": "E400", "err": "an answer that is not JSON"}
            elif len(parts) == 3 and parts[0] == "dbch" and parts[2] in ("state", "availability"):
                hub = self.hubs.setdefault(parts[1], Hub(parts[1]))
                if parts[2] == "availability":
                    hub.availability = msg.payload.decode(errors="replace")
                else:
                    try:
                        hub.state = json.loads(msg.payload)
                    except ValueError:
                        pass
                self.last_retained = time.monotonic()
            elif len(parts) >= 4 and parts[0] == "dbch" and parts[2] == "alert":
                try:
                    body = json.loads(msg.payload)
                except ValueError:
                    return
                self.alerts.append({"code": "/".join(parts[3:]), **body})
            self.lock.notify_all()

    def _subscribe(self, topics: list[tuple[str, int]]) -> None:
        with self.lock:
            _rc, mid = self.client.subscribe(topics)
            self._pending_subs.add(mid)
            self.lock.wait_for(lambda: mid not in self._pending_subs, 10)

    # -- what the commands ask -------------------------------------------------------------------
    def snapshot(self, wait: float = 10.0) -> list[Hub]:
        """Every hub the broker holds a state or availability for, once the retained messages
        have stopped coming (QUIET s without one, at most `wait` s)."""
        self._subscribe([("dbch/+/state", 1), ("dbch/+/availability", 1)])
        deadline = time.monotonic() + wait
        with self.lock:
            self.last_retained = time.monotonic()
            while time.monotonic() < deadline:
                quiet_until = self.last_retained + QUIET
                if time.monotonic() >= quiet_until:
                    break
                self.lock.wait(min(quiet_until, deadline) - time.monotonic())
            return sorted(self.hubs.values(), key=lambda h: h.eui)

    def command(self, euis: list[str], op: str, args: dict | None = None, timeout: float = 10.0) -> dict[str, dict]:
        """Ask each hub `op` at once; {EUI: its answer ({"rc", "data", "err"})}, E49 where none
        came within `timeout`."""
        asked = {}
        for eui in euis:
            correlation = uuid.uuid4().bytes
            props = self._Properties(self._PacketTypes.PUBLISH)
            props.ResponseTopic = self.replies
            props.CorrelationData = correlation
            payload = json.dumps(args) if args else ""
            self.client.publish(f"dbch/{eui}/cmd/{op}", payload, qos=1, properties=props)
            asked[eui] = correlation
        with self.lock:
            self.lock.wait_for(lambda: all(c in self.answers for c in asked.values()), timeout)
            out = {}
            for eui, c in asked.items():
                out[eui] = self.answers.pop(c, None) or {
                    "rc": "E49",
                    "err": f"no answer within {timeout:g} s: is its gateway running?",
                }
        return out

    def follow(self, duration: float | None, stop: threading.Event | None = None) -> Iterator[dict]:
        """The alerts of every hub as they come, each once (by EUI, outbox epoch and seq), for
        `duration` s (None: until `stop` is set)."""
        self._subscribe([("dbch/+/alert/#", 1)])
        seen: set[tuple] = set()
        end = time.monotonic() + duration if duration is not None else None
        while not (stop is not None and stop.is_set()):
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return
            with self.lock:
                if not self.alerts:
                    self.lock.wait(0.5 if left is None else min(0.5, left))
                batch, self.alerts = self.alerts, []
            for alert in batch:
                key = (alert.get("eui"), alert.get("epoch"), alert.get("seq"))
                if key not in seen:
                    seen.add(key)
                    yield alert

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

"""`dbch gateway`'s engine: each hub of a --port bridged to the broker by a thread of its own,
with its own MQTT connection (client id dbch-<EUI>, will: its availability "offline").

Exactly once from the hub's outbox to the broker: an upward event is published with QoS 1 and
acknowledged to the hub (and recorded in the host's seen store) only when the broker's PUBACK
has come. Until then the outbox keeps it: the agent sends it again while it is unacknowledged
(skipped here while its publication is in flight), paho-mqtt sends an unacknowledged
publication again after a reconnect, and a gateway started again gets it from the outbox anew.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable

from host_tools.fleet.broker import Broker, FleetError, Identity, new_client
from host_tools.link.agent import Agent
from host_tools.link.client import Event
from host_tools.link.ports import DEFAULT_BAUD

# the requests a hub answers on dbch/<EUI>/cmd/<command>: the agent's op for each, and whether the
# message's payload (a JSON object) is its arguments
COMMANDS = {"status": ("status", False), "config/get": ("config.get", False), "config/set": ("config.set", True)}
STATE_EVERY = 30.0  # s between two readings of a hub's state (and after every upward event)
POLL = 0.05  # s each turn of a hub's loop waits for upward events


def topic(eui: str, *parts: str) -> str:
    return "/".join(("dbch", eui) + parts)


def alert_code(ev: Event) -> str:
    """The last level of an event's alert topic: an N54's DeviceAlertCode, else its kind."""
    code = ev.data.get("DeviceAlertCode") if isinstance(ev.data, dict) else None
    return str(code or ev.kind)


def state_of(status: dict) -> dict:
    """The retained state of a hub, from its status: identity, firmware, masks, duty cycle."""
    keep = ("eui", "board", "version", "boot", "epoch", "configured", "masks", "channel", "duty", "outbox", "band")
    return {k: status[k] for k in keep if k in status}


class HubBridge:
    """One hub (the agent on `port`) and its MQTT connection, run by run() until stop is set."""

    def __init__(
        self,
        port: str,
        broker: Broker,
        identity: Identity,
        stop: threading.Event,
        report: Callable[[str, dict], None],
        baud: int = DEFAULT_BAUD,
        timeout: float = 5.0,
    ):
        self.port = str(port)
        self.broker = broker
        self.stop = stop
        self.report = report
        self.agent = Agent.open(port, baud=baud, timeout=timeout, start=False)
        hello = self.agent.subscribe()
        self.eui = hello["eui"]
        self.epoch = hello.get("epoch")
        self.acked: queue.Queue = queue.Queue()  # (mid, reason) of each PUBACK (network thread)
        self.requests: queue.Queue = queue.Queue()  # commands received (network thread)
        self.connected = threading.Event()
        self.inflight: dict[int, int] = {}  # seq -> mid of an event published, not yet acknowledged
        self.mids: dict[int, int] = {}  # mid -> seq
        self.published = 0
        self.mqtt = self._client(identity)
        self.thread = threading.Thread(target=self.run, name=f"hub {self.eui}", daemon=True)

    # -- MQTT (callbacks run on paho's network thread: they only queue) -----------------------
    def _client(self, identity: Identity):
        import paho.mqtt.client as mqtt

        client = new_client("dbch-" + self.eui.replace("-", ""), identity)
        client.will_set(topic(self.eui, "availability"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = lambda _c, _u, mid, reason, _p: self.acked.put((mid, reason))
        client.on_message = lambda _c, _u, msg: self.requests.put(msg)
        self._mqtt = mqtt
        return client

    def _on_connect(self, client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            self.report("refused", {"eui": self.eui, "broker": str(self.broker), "reason": str(reason)})
            return
        client.publish(topic(self.eui, "availability"), "online", qos=1, retain=True)
        client.subscribe(topic(self.eui, "cmd", "#"), qos=1)
        self.connected.set()
        self._state_due = 0.0  # a broker without persistence lost it: publish it again
        self.report("connected", {"eui": self.eui, "broker": str(self.broker)})

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        if self.connected.is_set() and not self.stop.is_set():
            self.report("disconnected", {"eui": self.eui, "reason": str(reason)})
        self.connected.clear()

    # -- the hub's loop ------------------------------------------------------------------------
    _state_due = 0.0

    def start(self) -> None:
        self.mqtt.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.mqtt.loop_start()
        self.thread.start()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.turn()
        except Exception as e:  # the hub's link failed: its availability says so
            self.report("hub-failed", {"eui": self.eui, "port": self.port, "error": str(e)})
        finally:
            self.close()

    def turn(self) -> None:
        """One turn: acknowledge what the broker has, answer commands, publish new events and
        the state when it is due."""
        self._acknowledge()
        while not self.requests.empty():
            self._answer(self.requests.get())
        changed = False
        for ev in self.agent.client.poll_events(POLL):
            if ev.seq in self.inflight:
                continue  # sent again by the agent while its publication waits for the broker
            self._publish(ev)
            changed = True
        if changed:
            self._state_due = 0.0
        if time.monotonic() >= self._state_due:
            self.publish_state()

    def _publish(self, ev: Event) -> None:
        code = alert_code(ev)
        body = {"eui": self.eui, "epoch": self.epoch, "seq": ev.seq, "kind": ev.kind, "data": ev.data}
        info = self.mqtt.publish(topic(self.eui, "alert", code), json.dumps(body, sort_keys=True), qos=1)
        self.inflight[ev.seq] = info.mid
        self.mids[info.mid] = ev.seq

    def _acknowledge(self) -> None:
        seen = self.agent.seen
        changed = False
        while not self.acked.empty():
            mid, reason = self.acked.get()
            seq = self.mids.pop(mid, None)
            if seq is None:
                continue  # a state, availability or response
            if reason is not None and getattr(reason, "is_failure", False):
                # refused (e.g. not authorised on the topic): the outbox keeps it, sent again later
                self.inflight.pop(seq, None)
                self.report("alert-refused", {"eui": self.eui, "seq": seq, "reason": str(reason)})
                continue
            self.inflight.pop(seq, None)
            self.agent.client.seen.add(seq)
            self.agent.client.ack(seq)
            self.published += 1
            changed = True
        if changed and seen is not None:
            seen.save()

    def publish_state(self) -> None:
        self._state_due = time.monotonic() + STATE_EVERY
        status = self.agent.status()
        self.mqtt.publish(topic(self.eui, "state"), json.dumps(state_of(status), sort_keys=True), qos=1, retain=True)

    def _answer(self, msg) -> None:
        command = msg.topic.split("/", 3)[3] if msg.topic.count("/") >= 3 else ""
        props = msg.properties
        reply_to = getattr(props, "ResponseTopic", None) if props is not None else None
        if not reply_to:
            self.report("command-ignored", {"eui": self.eui, "topic": msg.topic, "why": "no response topic"})
            return
        op, takes = COMMANDS.get(command, (None, False))
        args = None
        if takes:
            try:
                args = json.loads(msg.payload or b"{}")
            except ValueError as e:
                args = e
            if not isinstance(args, dict):
                op = None
                answer = {"rc": "E400", "err": f"{command}: the payload must be a JSON object ({args})"}
        elif op is None:
            answer = {"rc": "E404", "err": f"unknown command {command!r}: one of {', '.join(sorted(COMMANDS))}"}
        if op is not None:
            r = self.agent.request(op, args)
            answer = {"rc": r.rc, "data": r.data, "err": r.err}
            if takes:
                self._state_due = 0.0  # a command that changes the hub: its state is published again
        out = self._mqtt.Properties(self._mqtt.PacketTypes.PUBLISH)
        correlation = getattr(props, "CorrelationData", None)
        if correlation is not None:
            out.CorrelationData = correlation
        self.mqtt.publish(reply_to, json.dumps(answer, sort_keys=True, default=str), qos=1, properties=out)

    def close(self) -> None:
        """Leave cleanly: availability offline, the MQTT connection and the hub's port closed."""
        try:
            if self.connected.is_set():
                self.mqtt.publish(topic(self.eui, "availability"), "offline", qos=1, retain=True).wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
        self.agent.close()


class Gateway:
    """The hubs of `ports` bridged to `broker` until stop() (or the stop event) is set."""

    def __init__(
        self,
        ports: list[str],
        broker: Broker,
        identity: Identity,
        report: Callable[[str, dict], None] = lambda kind, data: None,
        **options,
    ):
        self.stop_event = threading.Event()
        self.hubs: list[HubBridge] = []
        try:
            for port in ports:
                hub = HubBridge(port, broker, identity, self.stop_event, report, **options)
                if any(h.eui == hub.eui for h in self.hubs):
                    hub.agent.close()
                    raise FleetError(f"--port {port} is the hub {hub.eui} again: give each hub once")
                self.hubs.append(hub)
        except BaseException:
            for hub in self.hubs:
                hub.agent.close()
            raise

    def start(self) -> None:
        for hub in self.hubs:
            hub.start()

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(h.connected.wait(max(0.0, deadline - time.monotonic())) for h in self.hubs)

    def stop(self) -> None:
        self.stop_event.set()
        for hub in self.hubs:
            hub.thread.join(10)

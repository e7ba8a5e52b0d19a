"""`dbch gateway`'s engine: the hubs of its ports, each with its own MQTT connection (client id
dbch-<EUI>, will: its availability "offline"), all served by one loop thread.

The loop waits on every hub's port and on a wake pipe that the MQTT clients' callbacks (paho's
network threads: they only queue) write to. It never blocks on one hub: requests go to a hub
without waiting, and its answer, when it comes, is published (a command's reply) or kept (its
state). So a gateway carries hundreds of hubs with one thread for them all.

Exactly once from the hub's outbox to the broker: an upward event is published with QoS 1 and
acknowledged to the hub (and recorded in the host's seen store) only when the broker's PUBACK
has come. Until then the outbox keeps it: the agent sends it again while it is unacknowledged
(skipped here while its publication is in flight), paho-mqtt sends an unacknowledged
publication again after a reconnect, and a gateway started again gets it from the outbox anew.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Callable

import cbor2

from agent import wire
from host_tools.fleet.broker import Broker, FleetError, Identity, new_client
from host_tools.link.agent import Agent
from host_tools.link.client import Event, LinkError
from host_tools.link.ports import DEFAULT_BAUD
from host_tools.servers.ptys import WakePipe

CBOR = "application/cbor"
STATE_EVERY = 30.0  # s between two readings of a hub's state
STATE_AFTER = 5.0  # s at least between an upward event (or a changing command) and the state read after it
SEEN_EVERY = 0.5  # s at most between two saves of a hub's seen store
REQUEST_TIMEOUT = 10.0  # s a command waits for its hub's answer before E49 is published
TICK = 0.5  # s at most between two turns of the loop
# requests the gateway does not pass on: "repl" would take the line from it for the REPL
REFUSED = {"repl": "the hub's line belongs to its gateway; connect to its port on the host for the REPL"}


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


def op_of(command: str) -> str:
    """The agent's op for a command topic's last levels: "config/get" and "config.get" alike."""
    return command.replace("/", ".")


def encode_payload(obj, content_type: str | None) -> bytes:
    if content_type == CBOR:
        return cbor2.dumps(obj, canonical=True)
    return json.dumps(obj, sort_keys=True, default=lambda b: b.hex() if isinstance(b, bytes) else str(b)).encode()


def decode_payload(payload: bytes, content_type: str | None):
    """A command's arguments: a JSON object (or CBOR map with content type application/cbor);
    empty is {}. ValueError for anything else."""
    if not payload:
        return {}
    try:
        args = cbor2.loads(payload) if content_type == CBOR else json.loads(payload)
    except Exception as e:  # cbor2 and json raise several types for bad input
        raise ValueError(f"the payload is not {'CBOR' if content_type == CBOR else 'JSON'}: {e}") from e
    if not isinstance(args, dict):
        raise ValueError("the payload must be a map of the op's arguments")
    return args


class HubBridge:
    """One hub (the agent on `port`) and its MQTT connection; Gateway's loop calls its methods."""

    def __init__(self, port: str, gateway: Gateway, baud: int = DEFAULT_BAUD, timeout: float = 5.0):
        self.port = str(port)
        self.gateway = gateway
        self.agent = Agent.open(port, baud=baud, timeout=timeout, start=False)
        hello = self.agent.subscribe()
        self.client = self.agent.client
        self.eui = hello["eui"]
        self.epoch = hello.get("epoch")
        self.connected = threading.Event()
        self.failed = False
        self.inflight: dict[int, int] = {}  # seq -> mid of an event published, not yet acknowledged
        self.mids: dict[int, int] = {}  # mid -> seq
        self.waiting: dict[int, tuple] = {}  # request id -> (deadline, what to do with its answer)
        self.published = 0
        self.state_due = 0.0
        self.seen_due: float | None = None
        self.resubscribe_at: float | None = None
        self.fd = self.client.transport.serial.fileno()
        self.mqtt = self._client(gateway.identity)

    def fileno(self) -> int:
        return self.fd

    # -- MQTT (callbacks run on paho's network thread: they only queue) -----------------------
    def _client(self, identity: Identity):
        client = new_client("dbch-" + self.eui.replace("-", ""), identity)
        client.will_set(topic(self.eui, "availability"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = lambda _c, _u, mid, reason, _p: self.gateway.post(self, "acked", (mid, reason))
        client.on_message = lambda _c, _u, msg: self.gateway.post(self, "command", msg)
        return client

    def _on_connect(self, client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            self.gateway.report("refused", {"eui": self.eui, "broker": str(self.gateway.broker), "reason": str(reason)})
            return
        client.publish(topic(self.eui, "availability"), "online", qos=1, retain=True)
        client.subscribe(topic(self.eui, "cmd", "#"), qos=1)
        self.connected.set()
        self.gateway.post(self, "connected", None)  # a broker without persistence lost the state
        self.gateway.report("connected", {"eui": self.eui, "broker": str(self.gateway.broker)})

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        if self.connected.is_set() and not self.gateway.stopping.is_set():
            self.gateway.report("disconnected", {"eui": self.eui, "reason": str(reason)})
        self.connected.clear()

    def start(self) -> None:
        self.mqtt.connect_async(self.gateway.broker.host, self.gateway.broker.port, keepalive=30)
        self.mqtt.loop_start()

    # -- the loop's work -----------------------------------------------------------------------
    def on_readable(self, now: float) -> None:
        """What the hub has sent: events are published, answers go where they were asked for."""
        for msg in self.client._pump():
            if msg["t"] == "e":
                self._on_event(Event(msg["seq"], msg["k"], msg.get("d") or {}), now)
            elif msg["t"] == "r":
                done = self.waiting.pop(msg["id"], None)
                if done is not None:
                    done[1](msg["rc"], msg.get("d"), msg.get("e"))

    def _on_event(self, ev: Event, now: float) -> None:
        if ev.seq in self.inflight:
            return  # sent again by the agent while its publication waits for the broker
        if ev.seq in self.client.seen:
            self.client.ack(ev.seq)  # published already; its acknowledgement was lost
            return
        body = {"eui": self.eui, "epoch": self.epoch, "seq": ev.seq, "kind": ev.kind, "data": ev.data}
        info = self.mqtt.publish(topic(self.eui, "alert", alert_code(ev)), json.dumps(body, sort_keys=True), qos=1)
        self.inflight[ev.seq] = info.mid
        self.mids[info.mid] = ev.seq
        self.state_due = min(self.state_due, now + STATE_AFTER)

    def on_acked(self, mid: int, reason, now: float) -> None:
        seq = self.mids.pop(mid, None)
        if seq is None:
            return  # a state, availability or reply
        self.inflight.pop(seq, None)
        if reason is not None and getattr(reason, "is_failure", False):
            # refused (e.g. not authorised on the topic): the outbox keeps it, sent again later
            self.gateway.report("alert-refused", {"eui": self.eui, "seq": seq, "reason": str(reason)})
            return
        self.client.seen.add(seq)
        self.client.ack(seq)
        self.published += 1
        if self.seen_due is None:
            self.seen_due = now + SEEN_EVERY

    def ask(self, op: str, args: dict | None, then: Callable[[str, object, object], None], now: float) -> None:
        """Send op to the hub; then(rc, data, err) is called with its answer (E49 if none comes)."""
        rid = self.client.send_ahead(op, args)
        self.client._early.pop(rid, None)  # its answer comes through on_readable
        self.waiting[rid] = (now + REQUEST_TIMEOUT, then)

    def on_command(self, msg, now: float) -> None:
        command = msg.topic.split("/", 3)[3] if msg.topic.count("/") >= 3 else ""
        props = msg.properties
        reply_to = getattr(props, "ResponseTopic", None) if props is not None else None
        if not reply_to:
            self.gateway.report("command-ignored", {"eui": self.eui, "topic": msg.topic, "why": "no response topic"})
            return
        content_type = getattr(props, "ContentType", None)
        correlation = getattr(props, "CorrelationData", None)

        def reply(rc: str, data=None, err=None) -> None:
            self._reply(reply_to, correlation, content_type, {"rc": rc, "data": data, "err": err})

        op = op_of(command)
        try:
            args = decode_payload(msg.payload, content_type)
            wire.check_message(wire.request(0, op, args))
        except (ValueError, wire.WireError) as e:
            reply("E400", err=f"{command}: {e}")
            return
        if op in REFUSED:
            reply("E403", err=f"{op}: {REFUSED[op]}")
            return
        if op == "hello":  # the gateway's own subscription to events stays on
            args = dict(args, events=True)

        def answered(rc, data, err) -> None:
            reply(rc, data, err)
            if op == "reboot" and str(rc).startswith("I"):
                self.resubscribe_at = time.monotonic() + 1.0  # the new boot's link is not subscribed
            elif op != "status":
                self.state_due = min(self.state_due, time.monotonic() + 0.2)

        self.ask(op, args, answered, now)

    def _reply(self, reply_to: str, correlation, content_type, answer: dict) -> None:
        import paho.mqtt.client as mqtt

        out = mqtt.Properties(mqtt.PacketTypes.PUBLISH)
        if correlation is not None:
            out.CorrelationData = correlation
        if content_type:
            out.ContentType = content_type
        self.mqtt.publish(reply_to, encode_payload(answer, content_type), qos=1, properties=out)

    def due(self, now: float) -> None:
        """Periodic work: the state when due, the seen store, answers that did not come."""
        for rid, (deadline, then) in list(self.waiting.items()):
            if now >= deadline:
                del self.waiting[rid]
                then("E49", None, f"no answer from the hub on {self.port} within {REQUEST_TIMEOUT:g} s")
        if self.seen_due is not None and now >= self.seen_due:
            self.seen_due = None
            if self.agent.seen is not None:
                self.agent.seen.save()
        if self.resubscribe_at is not None and now >= self.resubscribe_at:
            self.resubscribe_at = None
            self.ask("hello", {"events": True}, lambda rc, d, e: None, now)
            self.state_due = now
        if now >= self.state_due and self.connected.is_set():
            self.state_due = now + STATE_EVERY
            self.ask("status", None, self._publish_state, now)

    def _publish_state(self, rc: str, data, _err) -> None:
        if not str(rc).startswith("I") or not isinstance(data, dict):
            return
        state = dict(state_of(data), gateway=self.gateway.name, port=self.port)
        self.mqtt.publish(topic(self.eui, "state"), json.dumps(state, sort_keys=True), qos=1, retain=True)

    def next_due(self) -> float:
        times = [self.state_due] + [d for d, _ in self.waiting.values()]
        times += [t for t in (self.seen_due, self.resubscribe_at) if t is not None]
        return min(times)

    def fail(self, error: Exception) -> None:
        """The hub's link failed: its availability says so, and the loop leaves it."""
        self.failed = True
        self.gateway.report("hub-failed", {"eui": self.eui, "port": self.port, "error": str(error)})
        self.close()

    def close(self) -> None:
        """Leave cleanly: availability offline, the MQTT connection and the hub's port closed."""
        try:
            if self.connected.is_set():
                self.mqtt.publish(topic(self.eui, "availability"), "offline", qos=1, retain=True).wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
        if self.agent.seen is not None and self.seen_due is not None:
            self.agent.seen.save()
        self.agent.close()


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
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()  # (hub, kind, item) from the MQTT callbacks
        self.wake = WakePipe()
        self.hubs: list[HubBridge] = []
        try:
            for port in ports:
                hub = HubBridge(port, self, **options)
                if any(h.eui == hub.eui for h in self.hubs):
                    hub.agent.close()
                    raise FleetError(f"--port {port} is the hub {hub.eui} again: give each hub once")
                self.hubs.append(hub)
        except BaseException:
            for hub in self.hubs:
                hub.agent.close()
            self.wake.close()
            raise
        self.thread = threading.Thread(target=self.run, name="gateway", daemon=True)

    def post(self, hub: HubBridge, kind: str, item) -> None:
        """From an MQTT callback: queue it for the loop and wake the loop."""
        self.inbox.put((hub, kind, item))
        self.wake.wake()

    def start(self) -> None:
        for hub in self.hubs:
            hub.start()
        self.thread.start()

    @property
    def alive(self) -> list[HubBridge]:
        return [h for h in self.hubs if not h.failed]

    def run(self) -> None:
        poller = select.poll()
        by_fd = {}
        for hub in self.hubs:
            by_fd[hub.fileno()] = hub
            poller.register(hub.fileno(), select.POLLIN)
        poller.register(self.wake.fd, select.POLLIN)
        try:
            soonest = time.monotonic()
            while not self.stopping.is_set() and self.alive:
                now = time.monotonic()
                ready = poller.poll(max(0, int((min(soonest, now + TICK) - now) * 1000) + 1))
                now = time.monotonic()
                for fd, events in ready:
                    hub = by_fd.get(fd)
                    if hub is None:
                        self.wake.drain()
                    elif hub.failed:
                        continue
                    elif events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                        poller.unregister(fd)
                        hub.fail(LinkError(f"the port {hub.port} was closed"))
                    else:
                        self._guarded(hub, poller, hub.on_readable, now)
                while True:
                    try:
                        hub, kind, item = self.inbox.get_nowait()
                    except queue.Empty:
                        break
                    if hub.failed:
                        continue
                    if kind == "acked":
                        self._guarded(hub, poller, hub.on_acked, *item, now)
                    elif kind == "command":
                        self._guarded(hub, poller, hub.on_command, item, now)
                    elif kind == "connected":
                        hub.state_due = now
                soonest = now + TICK
                for hub in self.hubs:
                    if hub.failed:
                        continue
                    if hub.next_due() <= now:
                        self._guarded(hub, poller, hub.due, now)
                    if not hub.failed:
                        soonest = min(soonest, hub.next_due())
        finally:
            for hub in self.hubs:
                if not hub.failed:
                    hub.close()

    def _guarded(self, hub: HubBridge, poller, work, *args) -> None:
        try:
            work(*args)
        except (LinkError, OSError, wire.WireError) as e:
            with contextlib.suppress(KeyError, ValueError):
                poller.unregister(hub.fd)
            hub.fail(e)

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(h.connected.wait(max(0.0, deadline - time.monotonic())) for h in self.hubs)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.wake()
        self.thread.join(30)
        self.wake.close()

"""One hub of a gateway (HubBridge): the agent on its port and its own MQTT connection (client id
dbch-<EUI>, will: its availability "offline"), driven by the gateway's loop (host_tools.fleet.gateway).

Exactly once from the hub's outbox to the broker: an upward event is published with QoS 1 and
acknowledged to the hub (and recorded in the host's seen store) only when the broker's PUBACK
has come. Until then the outbox keeps it: the agent sends it again while it is unacknowledged
(skipped here while its publication is in flight), paho-mqtt sends an unacknowledged
publication again after a reconnect, and a gateway started again gets it from the outbox anew.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import ssl
import threading
import time
from collections.abc import Callable

from agent import wire
from host_tools.fleet.broker import Identity, new_client
from host_tools.fleet.topics import alert_code, decode_payload, encode_payload, op_of, state_of, topic
from host_tools.link.agent import Agent
from host_tools.link.client import Event
from host_tools.link.ports import DEFAULT_BAUD

STATE_EVERY = 30.0  # s between two readings of a hub's state
STATE_AFTER = 5.0  # s at least between an upward event (or a changing command) and the state read after it
SEEN_EVERY = 0.5  # s at most between two saves of a hub's seen store
REQUEST_TIMEOUT = 10.0  # s a command waits for its hub's answer before E49 is published
KEEPALIVE = 30  # s, MQTT keep-alive
RECONNECT_FIRST, RECONNECT_MAX = 1.0, 4.0  # s between two attempts to reach the broker
REOPEN_FIRST, REOPEN_MAX = 1.0, 30.0  # s between two attempts to open a lost hub's port again
REOPEN_TIMEOUT = 2.0  # s a reopened port's hub has to answer its hello
# requests after which the hub may boot again (its new boot's link is not subscribed to events)
REBOOTING = ("reboot", "fw.activate")
# requests the gateway does not pass on: "repl" would take the line from it for the REPL
REFUSED = {"repl": "the hub's line belongs to its gateway; connect to its port on the host for the REPL"}


class HubBridge:
    """One hub (the agent on `port`) and its MQTT connection; Gateway's loop calls its methods."""

    def __init__(self, port: str, gateway, baud: int = DEFAULT_BAUD, timeout: float = 5.0):
        """gateway: the host_tools.fleet.gateway.Gateway whose loop serves it (its broker,
        identity, name, report(), post(), watch_mqtt(), unwatch_mqtt(), want_out(), stopping)."""
        self.port = str(port)
        self.gateway = gateway
        self.options = {"baud": baud, "timeout": timeout}
        hello = self._open(timeout)
        self.eui = hello["eui"]
        self.connected = threading.Event()
        self.link_up = True
        self.reopen_at: float | None = None
        self.reopen_backoff = REOPEN_FIRST
        self.inflight: dict[int, int] = {}  # seq -> mid of an event published, not yet acknowledged
        self.mids: dict[int, int] = {}  # mid -> seq
        self.waiting: dict[int, tuple] = {}  # request id -> (deadline, what to do with its answer)
        self.published = 0
        self.state_due = 0.0
        self.seen_due: float | None = None
        self.resubscribe_at: float | None = None
        self.misc_due = 0.0  # paho's keep-alive and timeouts
        self.ever_connected = False
        self.told_unreachable = False
        self.backoff = RECONNECT_FIRST
        self.reconnect_at: float | None = 0.0
        self.mqtt_fd: int | None = None
        self.wants_out = False
        self.mqtt = self._client(gateway.identity)

    def _open(self, timeout: float) -> dict:
        """Open the hub's port and subscribe to its events: its hello."""
        self.agent = Agent.open(self.port, baud=self.options["baud"], timeout=timeout, start=False, lean=True)
        try:
            hello = self.agent.subscribe()
        except BaseException:
            self.agent.close()
            raise
        self.client = self.agent.client
        self.fd = self.client.transport.fileno()
        self.epoch = hello.get("epoch")
        self.boot = hello.get("boot")  # a new boot count in its status: say hello again
        return hello

    # -- the hub's port lost and found again -------------------------------------------------
    def lost(self, error: Exception, now: float) -> None:
        """The hub's port failed (unplugged, its board or agent restarted): availability offline,
        and the port is opened again from time to time; its outbox keeps its alerts meanwhile."""
        if not self.link_up:
            return
        self.link_up = False
        self.gateway.unwatch_hub(self)
        if self.agent.seen is not None and self.seen_due is not None:
            self.seen_due = None
            self.agent.seen.save()  # what the broker has: not published again when it comes again
        with contextlib.suppress(Exception):
            self.agent.close()
        for _deadline, then in self.waiting.values():
            then("E49", None, f"the hub's port {self.port} was lost: {error}")
        self.waiting.clear()
        self.inflight.clear()  # acknowledged or not, the outbox sends them again
        if self.connected.is_set():
            self.mqtt.publish(topic(self.eui, "availability"), "offline", qos=1, retain=True)
        self.reopen_backoff = REOPEN_FIRST
        self.reopen_at = now + self.reopen_backoff
        self.gateway.report("hub-lost", {"eui": self.eui, "port": self.port, "error": str(error)})

    def reopen(self, now: float) -> None:
        self.reopen_at = None
        try:
            hello = self._open(min(self.options["timeout"], REOPEN_TIMEOUT))
        except Exception:  # not there yet (any failure to open or to answer): later
            self.reopen_backoff = min(REOPEN_MAX, self.reopen_backoff * 2)
            self.reopen_at = now + self.reopen_backoff
            return
        if hello.get("eui") != self.eui:  # another hub on that port now: not this one's
            self.agent.close()
            self.reopen_at = now + REOPEN_MAX
            self.gateway.report("hub-changed", {"eui": self.eui, "port": self.port, "now": hello.get("eui")})
            return
        self.link_up = True
        self.gateway.watch_hub(self)
        if self.connected.is_set():
            self.mqtt.publish(topic(self.eui, "availability"), "online", qos=1, retain=True)
        self.state_due = now
        self.gateway.report("hub-back", {"eui": self.eui, "port": self.port})

    # -- MQTT: paho-mqtt driven by the gateway's loop (loop_read, loop_write, loop_misc) ------
    def _client(self, identity: Identity):
        client = new_client("dbch-" + self.eui.replace("-", ""), identity)
        client.will_set(topic(self.eui, "availability"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = lambda _c, _u, mid, reason, _p: self.gateway.post(self, "acked", (mid, reason))
        client.on_message = lambda _c, _u, msg: self.gateway.post(self, "command", msg)
        # paho closes the socket wherever the connection fails (a read, a write inside publish(),
        # a keep-alive): the loop stops watching it then, and it is made again
        client.on_socket_close = lambda _c, _u, _sock: self.mqtt_lost(time.monotonic())
        return client

    def _on_connect(self, client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            self.gateway.report("refused", {"eui": self.eui, "broker": str(self.gateway.broker), "reason": str(reason)})
            return
        client.publish(topic(self.eui, "availability"), "online" if self.link_up else "offline", qos=1, retain=True)
        client.subscribe(topic(self.eui, "cmd", "#"), qos=1)
        self.connected.set()
        self.backoff = RECONNECT_FIRST
        self.state_due = 0.0  # a broker without persistence lost the state
        self.gateway.report("connected", {"eui": self.eui, "broker": str(self.gateway.broker)})

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        if self.connected.is_set() and not self.gateway.stopping.is_set():
            self.gateway.report("disconnected", {"eui": self.eui, "reason": str(reason)})
        self.connected.clear()

    def mqtt_connect(self, now: float) -> None:
        """Connect (or connect again) to the broker; if it cannot be reached, try again later
        (1 s, then up to RECONNECT_MAX apart). paho-mqtt sends the publications still
        unacknowledged again once connected."""
        self.reconnect_at = None
        try:
            if self.ever_connected:
                self.mqtt.reconnect()
            else:
                self.mqtt.connect(self.gateway.broker.host, self.gateway.broker.port, keepalive=KEEPALIVE)
                self.ever_connected = True
        except (OSError, ssl.SSLError) as e:
            self.reconnect_at = now + self.backoff
            self.backoff = min(RECONNECT_MAX, self.backoff * 2)
            if not self.told_unreachable:
                self.told_unreachable = True
                self.gateway.report(
                    "unreachable", {"eui": self.eui, "broker": str(self.gateway.broker), "error": str(e)}
                )
            return
        self.told_unreachable = False
        self.gateway.watch_mqtt(self)

    def mqtt_lost(self, now: float) -> None:
        """The connection ended: the loop stops watching it, and it is made again."""
        self.gateway.unwatch_mqtt(self)
        if self.connected.is_set():
            self.connected.clear()
            if not self.gateway.stopping.is_set():
                self.gateway.report("disconnected", {"eui": self.eui, "reason": "connection lost"})
        if self.reconnect_at is None and not self.gateway.stopping.is_set():
            self.reconnect_at = now + self.backoff

    def on_mqtt(self, events: int, now: float) -> None:
        """The broker's socket is readable or writable: paho reads and writes what it can."""
        rc = 0
        if events & selectors.EVENT_WRITE:
            rc = self.mqtt.loop_write()
        if not rc and events & selectors.EVENT_READ:
            rc = self.mqtt.loop_read()
            sock = self.mqtt.socket()
            while not rc and sock is not None and getattr(sock, "pending", lambda: 0)():
                rc = self.mqtt.loop_read()  # TLS records already read from the socket
        if rc or self.mqtt.socket() is None:
            self.mqtt_lost(now)

    def flush(self, now: float) -> None:
        """Send what was queued since (publications, acknowledgements); what the socket cannot
        take now waits for POLLOUT."""
        if self.mqtt.socket() is None and self.mqtt_fd is not None:
            self.mqtt_lost(now)  # closed without a word (on_socket_close covers it: a safety net)
            return
        if self.mqtt.socket() is None or not self.mqtt.want_write():
            self.gateway.want_out(self, False)
            return
        if self.mqtt.loop_write() or self.mqtt.socket() is None:
            self.mqtt_lost(now)
            return
        self.gateway.want_out(self, self.mqtt.want_write())

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
        info = self.mqtt.publish(topic(self.eui, "alert", alert_code(ev)), encode_payload(body, None), qos=1)
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
        self.published += 1
        if self.link_up:
            self.client.ack(seq)  # else when the outbox sends it again: _on_event
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
        if not self.link_up:
            reply("E49", err=f"the hub's port {self.port} is not open now; its gateway opens it again when it can")
            return
        if op == "hello":  # the gateway's own subscription to events stays on
            args = dict(args, events=True)

        def answered(rc, data, err) -> None:
            reply(rc, data, err)
            if op in REBOOTING and str(rc).startswith("I"):
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
        """Periodic work: the connection, the state when due, the seen store, answers that did
        not come."""
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self.mqtt_connect(now)
        if self.reopen_at is not None and now >= self.reopen_at:
            self.reopen(now)
        if now >= self.misc_due:
            self.misc_due = now + 1.0
            if self.mqtt.socket() is not None and self.mqtt.loop_misc():
                self.mqtt_lost(now)
        for rid, (deadline, then) in list(self.waiting.items()):
            if now >= deadline:
                del self.waiting[rid]
                then("E49", None, f"no answer from the hub on {self.port} within {REQUEST_TIMEOUT:g} s")
        if self.seen_due is not None and now >= self.seen_due:
            self.seen_due = None
            if self.agent.seen is not None:
                self.agent.seen.save()
        if not self.link_up:
            return
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
        if self.boot is not None and data.get("boot") != self.boot:  # it rebooted (a reset, a watchdog)
            self.resubscribe_at = time.monotonic()
        self.boot = data.get("boot")
        state = dict(state_of(data), gateway=self.gateway.name, port=self.port)
        self.mqtt.publish(topic(self.eui, "state"), json.dumps(state, sort_keys=True), qos=1, retain=True)

    def next_due(self) -> float:
        times = [self.misc_due] + [d for d, _ in self.waiting.values()]
        if self.connected.is_set() and self.link_up:
            times.append(self.state_due)
        times += [t for t in (self.seen_due, self.resubscribe_at, self.reconnect_at, self.reopen_at) if t is not None]
        return min(times)

    def close(self) -> None:
        """Leave cleanly: availability offline, the MQTT connection and the hub's port closed."""
        if self.mqtt.socket() is not None:
            if self.connected.is_set():
                self.mqtt.publish(topic(self.eui, "availability"), "offline", qos=1, retain=True)
            self.mqtt.disconnect()  # a normal disconnection: the broker does not publish the will
            deadline = time.monotonic() + 2.0
            while self.mqtt.socket() is not None and self.mqtt.want_write() and time.monotonic() < deadline:
                if self.mqtt.loop_write():
                    break
        self.gateway.unwatch_mqtt(self)
        if self.agent.seen is not None and self.seen_due is not None:
            self.agent.seen.save()
        if self.link_up:
            self.agent.close()

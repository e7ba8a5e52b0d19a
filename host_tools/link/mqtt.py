"""--port mqtts://HOST[:PORT]/EUI: a hub that a `dbch gateway` serves on an MQTT broker, reached as
any other port, so that every command that talks to the agent works through the fleet.

The transport carries the agent's own frames: each request frame written to it is published to
dbch/<EUI>/cmd/<op> (its arguments CBOR, content type application/cbor) with this connection's
response topic and the request's id as correlation data; each answer comes back as a response
frame. After a hello that asks for events, the hub's alerts (dbch/<EUI>/alert/#, QoS 1) come as
event frames with their own seqs; acknowledgements are not passed on, since the gateway has
acknowledged each to the hub's outbox once the broker had it (the host's seen store, keyed by
EUI and outbox epoch as on any port, drops an alert that comes twice).

The TLS identity: ?identity=NAME&pki=DIR in the URL, else $DBCH_IDENTITY and $DBCH_PKI_DIR, else
the only tool certificate of the default PKI (`dbch pki tool NAME`). mqtt://localhost:1883/EUI: a
broker on this machine's loopback without TLS (host_tools.fleet.broker).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import cbor2

from agent import wire
from host_tools.link.client import LinkError, decode, encode

CBOR = "application/cbor"  # as host_tools.fleet.topics.CBOR
SCHEMES = ("mqtts", "mqtt")
ONLINE_WAIT = 3.0  # s to wait for the hub's retained availability


def is_mqtt_port(spec: str) -> bool:
    return str(spec).strip().lower().split("://", 1)[0] in SCHEMES and "://" in str(spec)


def parse(url: str):
    """(Broker, EUI, options) of mqtts://HOST[:PORT]/EUI[?identity=NAME&pki=DIR] (or mqtt:// on
    loopback: host_tools.fleet.broker)."""
    from agent.eui import parse_eui
    from host_tools.fleet.broker import Broker, FleetError

    how = "give it as mqtts://HOST[:PORT]/EUI, e.g. mqtts://localhost:8883/00-DB-12-34-56-78-90-A2"
    try:
        broker = Broker.parse(str(url).strip(), path=True)
        parts = urlsplit(str(url).strip())
    except (FleetError, ValueError) as e:
        raise LinkError(f"--port {e}; {how}") from e
    eui_text = parts.path.strip("/")
    if not eui_text:
        raise LinkError(f"--port {url!r}: which hub? {how}")
    try:
        eui = "-".join(f"{b:02X}" for b in parse_eui(eui_text))
    except ValueError as e:
        raise LinkError(f"--port {url!r}: {eui_text!r} is not a hub's EUI-64 ({e}); {how}") from e
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return broker, eui, options


class MqttTransport:
    """read(n), write(data), close() over the broker, for AgentClient."""

    def __init__(self, url: str, timeout: float = 5.0):
        from host_tools.fleet.broker import FleetError, new_client

        broker, self.eui, options = parse(url)
        host, port = broker.host, broker.port
        self.url = url
        try:
            identity = broker.identity(
                options.get("pki") or os.environ.get("DBCH_PKI_DIR") or None,
                options.get("identity") or os.environ.get("DBCH_IDENTITY") or None,
            )
        except FleetError as e:
            raise LinkError(f"{url}: {e} (or name it: ?identity=NAME&pki=DIR, $DBCH_IDENTITY, $DBCH_PKI_DIR)") from e
        self.client_id = "dbch-tool-" + uuid.uuid4().hex[:12]
        self.replies = f"dbch-tool/{self.client_id}/reply"
        self.decoder = wire.FrameDecoder()
        self.buffer = bytearray()
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.availability: str | None = None
        self.events_on = False
        self.refused: str | None = None
        self.mqtt = new_client(self.client_id, identity)
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = self._on_message
        try:
            self.mqtt.connect(host, port, keepalive=30)
        except OSError as e:
            raise LinkError(f"cannot reach the broker of {url}: {e}. Is it running, and its address right?") from e
        self.mqtt.loop_start()
        if not self.connected.wait(timeout) or self.refused:
            self.close()
            raise LinkError(f"the broker of {url} did not take the connection: {self.refused or 'no answer'}")
        deadline = time.monotonic() + ONLINE_WAIT
        with self.cond:
            self.cond.wait_for(lambda: self.availability is not None, max(0.0, deadline - time.monotonic()))
        if self.availability != "online":
            self.close()
            raise LinkError(
                f"the hub {self.eui} is not online on {host}:{port} ({self.availability or 'never seen'}): "
                "is its gateway running? `dbch fleet list` shows the hubs on the broker"
            )

    # -- paho's network thread ---------------------------------------------------------------
    def _on_connect(self, client, _u, _flags, reason, _props) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            client.subscribe([(self.replies, 1), (f"dbch/{self.eui}/availability", 1)])
        self.connected.set()

    def _on_message(self, _c, _u, msg) -> None:
        if msg.topic == self.replies:
            frame = self._response(msg)
        elif msg.topic.endswith("/availability"):
            with self.cond:
                self.availability = msg.payload.decode(errors="replace")
                self.cond.notify_all()
            return
        else:
            frame = self._event(msg.payload)
        if frame:
            with self.cond:
                self.buffer += frame
                self.cond.notify_all()

    def _response(self, msg) -> bytes | None:
        correlation = getattr(msg.properties, "CorrelationData", None)
        if not correlation or len(correlation) != 4:
            return None
        try:
            answer = cbor2.loads(msg.payload)
            return encode(
                wire.response(int.from_bytes(correlation, "big"), answer["rc"], answer.get("data"), answer.get("err"))
            )
        except Exception:  # a reply this transport cannot read: the request's timeout says so
            return None

    def _event(self, payload: bytes) -> bytes | None:
        try:
            body = json.loads(payload)
            return encode(wire.event(body["seq"], body["kind"], body.get("data") or {}))
        except Exception:  # not an alert of the gateway's form
            return None

    # -- the transport -----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        for body in self.decoder.feed(data):
            try:
                msg = decode(body)
            except wire.WireError:
                continue
            if msg["t"] != "q":
                continue  # acks: the gateway has acknowledged each alert to the outbox already
            args = msg.get("a") or {}
            if msg["op"] == "hello" and args.get("events") and not self.events_on:
                self.events_on = True
                self.mqtt.subscribe(f"dbch/{self.eui}/alert/#", qos=1)
            self._publish(msg["op"], args, msg["id"])

    def _publish(self, op: str, args: dict, rid: int) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.replies
        props.CorrelationData = rid.to_bytes(4, "big")
        props.ContentType = CBOR
        self.mqtt.publish(f"dbch/{self.eui}/cmd/{op}", cbor2.dumps(args, canonical=True), qos=1, properties=props)

    def read(self, n: int) -> bytes:
        with self.cond:
            if not self.buffer:
                self.cond.wait(0.02)
            out = bytes(self.buffer[:n])
            del self.buffer[:n]
        return out

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

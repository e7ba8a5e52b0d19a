"""The host's side of the agent's wire protocol, over any byte transport (host_tools.link.ports
opens one from a --port value: serial, a pty or a socket).

Framing comes from agent.wire (the same code the device runs); message bodies are encoded and
decoded with cbor2 (canonical), which the interop tests prove byte-identical to the agent's codec.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cbor2

from agent import wire
from host_tools.errors import DbchError


class LinkError(DbchError):
    """The link could not be used; the message says what to do."""


class AgentTimeout(LinkError):
    """No answer in time. explain(), if set, says what the board printed instead (it may take a
    moment: call it only when the error is reported)."""

    def __init__(self, message: str, explain: Callable[[], str] | None = None):
        super().__init__(message)
        self.explain = explain


class AgentError(DbchError):
    """The agent answered a request with an error code: rc and err are its answer."""

    def __init__(self, what: str, rc: str, err: str | None):
        super().__init__(f"{what} failed: {rc} {err or ''}")
        self.rc = rc
        self.err = err


@dataclass
class Response:
    id: int
    rc: str
    data: object = None
    err: str | None = None

    @property
    def ok(self) -> bool:
        return self.rc.startswith("I")


@dataclass
class Event:
    seq: int
    kind: str
    data: dict = field(default_factory=dict)


def encode(msg: dict) -> bytes:
    wire.check_message(msg)
    return wire.encode_frame(cbor2.dumps(msg, canonical=True))


def decode(body: bytes) -> dict:
    try:
        obj = cbor2.loads(body)
    except Exception as e:  # cbor2 raises several types for bad input
        raise wire.WireError(f"bad CBOR: {e}") from e
    return wire.check_message(obj)


class AgentClient:
    """Requests and events over a byte transport with read(n) (may return b"") and write(b)."""

    def __init__(
        self,
        transport,
        *,
        timeout: float = 5.0,
        on_text: Callable[[bytes], None] | None = None,
        port: str = "",
        explain: Callable[[], str] | None = None,
        notice: Callable[[str], None] | None = None,
    ):
        self.transport = transport
        self.timeout = timeout
        self.port = port
        self.explain = explain  # what the board printed instead of answering (see AgentTimeout)
        self.notice = notice  # told what was done on the user's behalf (agent.checked)
        self.resumed = False  # agent.checked started the agent again once (console.resume_agent)
        self.decoder = wire.FrameDecoder(on_text=on_text)
        self._ids = itertools.count(int(time.time() * 1000) % 1_000_000)
        self.events: list[Event] = []
        self.seen: set[int] = set()
        self._early: dict[int, Response | None] = {}  # sent ahead, not yet waited for: answers kept as they come

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, msg: dict) -> None:
        self.transport.write(encode(msg))

    def _pump(self) -> list[dict]:
        data = self.transport.read(4096)
        msgs = []
        for body in self.decoder.feed(data or b""):
            try:
                msgs.append(decode(body))
            except wire.WireError:
                continue
        return msgs

    def _on_event(self, msg: dict) -> None:
        self.events.append(Event(msg["seq"], msg["k"], msg.get("d") or {}))

    # -- requests ----------------------------------------------------------------------------
    def request(
        self, op: str, args: dict | None = None, timeout: float | None = None, give_up: Callable[[], bool] | None = None
    ) -> Response:
        """The answer to op; AgentTimeout if none comes within timeout, or as soon as give_up()
        says none can (it is asked after each read)."""
        rid = next(self._ids) % (1 << 32)
        self._send(wire.request(rid, op, args or {}))
        return self._wait(rid, op, timeout, give_up)

    def send_ahead(self, op: str, args: dict | None = None) -> int:
        """Send op without waiting for its answer (to a board that takes requests ahead); its id,
        for answer(). The answers to such requests are kept as they come, whoever waits."""
        rid = next(self._ids) % (1 << 32)
        self._early[rid] = None
        self._send(wire.request(rid, op, args or {}))
        return rid

    def answer(self, rid: int, op: str, timeout: float | None = None) -> Response:
        """The answer to a request sent with send_ahead (AgentTimeout as request())."""
        try:
            return self._wait(rid, op, timeout, None)
        finally:
            self._early.pop(rid, None)

    def forget(self) -> None:
        """The answers still due to send_ahead requests are no longer kept (their sender gave up)."""
        self._early.clear()

    def _wait(self, rid: int, op: str, timeout: float | None, give_up: Callable[[], bool] | None) -> Response:
        early = self._early.get(rid)
        if early is not None:  # it came while another answer was awaited
            return early
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while time.monotonic() < deadline and not (give_up is not None and give_up()):
            answer = None
            for msg in self._pump():  # keep every event of the batch, even after the answer
                if msg["t"] == "r" and msg["id"] == rid:
                    answer = Response(rid, msg["rc"], msg.get("d"), msg.get("e"))
                elif msg["t"] == "r" and msg["id"] in self._early:
                    self._early[msg["id"]] = Response(msg["id"], msg["rc"], msg.get("d"), msg.get("e"))
                elif msg["t"] == "e":
                    self._on_event(msg)
            if answer is not None:
                return answer
        raise AgentTimeout(
            f"no answer to {op!r} from {self.port or 'the board'} within {timeout or self.timeout:g} s: "
            "is the agent flashed and running? (dbch flash)",
            self.explain,
        )

    def call(self, op: str, args: dict | None = None, timeout: float | None = None) -> Response:
        """Like request(), but a transport that answers nothing is retried once (a busy board)."""
        try:
            return self.request(op, args, timeout)
        except AgentTimeout:
            return self.request(op, args, timeout)

    def hello(self, events: bool = False, timeout: float | None = None) -> Response:
        return self.request("hello", {"events": events}, timeout)

    # -- events ------------------------------------------------------------------------------
    def ack(self, seq: int) -> None:
        self._send(wire.ack(seq))

    def poll_events(self, duration: float) -> Iterator[Event]:
        """New events that arrive within duration seconds. The caller acknowledges each one
        (ack) once it has kept it, so a host that dies in between sees it again; seqs already
        in self.seen are acknowledged here and not yielded again."""
        deadline = time.monotonic() + duration
        while True:
            while self.events:
                ev = self.events.pop(0)
                if ev.seq in self.seen:
                    self.ack(ev.seq)
                    continue
                yield ev
            if time.monotonic() >= deadline:
                return
            for msg in self._pump():
                if msg["t"] == "e":
                    self._on_event(msg)

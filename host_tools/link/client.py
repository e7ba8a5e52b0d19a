"""The host's side of the agent's wire protocol, over serial (pyserial), a pty or a socket.

Framing comes from agent.wire (the same code the device runs); message bodies are encoded and
decoded with cbor2 (canonical), which the interop tests prove byte-identical to the agent's codec.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
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


class PortBusy(LinkError):
    """Another program has the port open; the message names it when it can be found."""

    def __init__(self, path: str, holders: list[tuple[int, str]] | None = None):
        self.path = path
        self.holders = port_holders(path) if holders is None else holders
        super().__init__(busy_message(path, self.holders))


def port_holders(path: str) -> list[tuple[int, str]]:
    """The other processes that have the device `path` open, as (pid, command line).

    Found through /proc (processes of other users may not be visible). Not counted: this
    process, and for a pty the process that holds its master side (the board or agent serving it).
    """
    try:
        real = os.path.realpath(path)
        if not stat.S_ISCHR(os.stat(real).st_mode):
            return []
    except OSError:
        return []
    pts = real.rsplit("/", 1)[1] if real.startswith("/dev/pts/") else None
    me = os.getpid()
    found = []
    try:
        pids = [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if pid == me:
            continue
        holds = serves = False
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target == real:
                holds = True
            elif pts is not None and target.endswith("/ptmx") and _pty_index(pid, fd) == pts:
                serves = True
        if holds and not serves:
            found.append((pid, _cmdline(pid)))
    return found


def _pty_index(pid: int, fd: str) -> str | None:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("tty-index:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return text if len(text) <= 120 else text[:117] + "..."


def busy_message(path: str, holders: list[tuple[int, str]], label: str | None = None) -> str:
    """What to tell a user whose port `path` (called `label`, e.g. the --port value) another
    program has open."""
    what = f"{label} ({path})" if label and label != path else path
    if not holders:
        return f"{what} is busy: another program has it open and locked; close that program first"
    who = "; ".join(f"pid {pid} ({cmd})" for pid, cmd in holders[:3])
    more = f" and {len(holders) - 3} more" if len(holders) > 3 else ""
    return f"{what} is busy: in use by {who}{more}; end that program or wait for it to finish"


def check_not_busy(path: str) -> None:
    """PortBusy if another process has the device `path` open (a no-op for URLs and files)."""
    holders = port_holders(path)
    if holders:
        raise PortBusy(path, holders)


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
    ):
        self.transport = transport
        self.timeout = timeout
        self.port = port
        self.explain = explain  # what the board printed instead of answering (see AgentTimeout)
        self.resumed = False  # connect.checked started the agent again once (resume_agent)
        self.decoder = wire.FrameDecoder(on_text=on_text)
        self._ids = itertools.count(int(time.time() * 1000) % 1_000_000)
        self.events: list[Event] = []
        self.seen: set[int] = set()

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
    def request(self, op: str, args: dict | None = None, timeout: float | None = None) -> Response:
        rid = next(self._ids) % (1 << 32)
        self._send(wire.request(rid, op, args or {}))
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while time.monotonic() < deadline:
            answer = None
            for msg in self._pump():  # keep every event of the batch, even after the answer
                if msg["t"] == "r" and msg["id"] == rid:
                    answer = Response(rid, msg["rc"], msg.get("d"), msg.get("e"))
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


class SerialTransport:
    """pyserial underneath: real ports, ptys, and pyserial URLs (socket://, loop://).

    A device is opened exclusively (pyserial's flock, as mpremote does): PortBusy if another
    program holds it, or has it open at all (two readers would take each other's answers).
    """

    def __init__(self, url: str, baud: int = 115200, *, exclusive: bool = True):
        import serial

        try:
            self.serial = serial.serial_for_url(url, baudrate=baud, timeout=0.02, exclusive=exclusive or None)
        except (serial.SerialException, OSError, ValueError) as e:
            locked = getattr(e, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY)
            if locked or "exclusively lock" in str(e):
                raise PortBusy(url) from e
            raise LinkError(
                f"cannot open {url}: {e}. Check the port, or list the virtual boards and CPython agents: dbch vboard --list, dbch agent --list."
            ) from e
        holders = port_holders(url) if exclusive else []
        if holders:
            self.serial.close()
            raise PortBusy(url, holders)

    def read(self, n: int) -> bytes:
        waiting = self.serial.in_waiting
        return self.serial.read(max(1, min(n, waiting)) if waiting else 1)

    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def close(self) -> None:
        self.serial.close()

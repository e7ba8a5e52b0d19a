"""What every check of a run stands on: the board's agent and its answers, the checks' report,
and the upward alerts received during the run (each once: host_tools.link.agent.Agent)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from host_tools.link.agent import Agent
from host_tools.link.client import AgentClient, Event, LinkError, Response
from host_tools.link.ports import SerialTransport

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"

ALERT_WAIT_S = 5.0


@dataclass
class Check:
    name: str
    expected: str
    got: str = ""
    result: str = SKIP
    detail: str = ""


@dataclass
class Report:
    port: str
    device: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    drained: list[dict] = field(default_factory=list)  # alerts waiting before the run
    seconds: float = 0.0

    def count(self, result: str) -> int:
        return sum(1 for c in self.checks if c.result == result)

    @property
    def ok(self) -> bool:
        return self.count(FAIL) == 0

    def to_json(self) -> dict:
        return {
            "port": self.port,
            "device": self.device,
            "checks": [asdict(c) for c in self.checks],
            "passed": self.count(PASS),
            "failed": self.count(FAIL),
            "skipped": self.count(SKIP),
            "drained": self.drained,
            "seconds": self.seconds,
        }


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 8 else ".." + text[-5:]


def event_text(ev: Event) -> str:
    """An upward event in a few words: N54 8F20 E59."""
    d = ev.data or {}
    if ev.kind == "N54":
        return f"N54 {d.get('DeviceAlertCode')} {d.get('rc')}"
    return f"{ev.kind} {d.get('rc', '')}".strip()


class Harness:
    """A run against the board at `path` (a device path or URL; `spec` is what the user gave):
    each check added is told to `progress`."""

    def __init__(
        self,
        path: str,
        *,
        spec: str | None = None,
        baud: int = 115200,
        timeout: float = 5.0,
        progress: Callable[[Check], None] | None = None,
    ):
        self.path = path
        self.spec = spec or path
        self.baud = baud
        self.timeout = timeout
        self.progress = progress
        self.report = Report(port=self.spec)
        self.agent: Agent | None = None
        self.events: list[Event] = []  # every event received during the run, in order
        self.subscribed = False
        self.connected = False

    @property
    def client(self) -> AgentClient | None:
        return self.agent.client if self.agent else None

    def _open(self) -> Agent:
        """The agent on the board, again after a reboot: what was seen before is still seen."""
        client = AgentClient(SerialTransport(self.path, self.baud), timeout=self.timeout, port=self.spec)
        if self.agent is not None:
            client.seen = self.client.seen
        self.connected = True
        return Agent(client, self.agent.seen if self.agent else None)

    def _close(self) -> None:
        if self.agent is not None and self.connected:
            self.connected = False
            try:
                self.agent.close()
            except OSError:
                pass

    def request(self, op: str, args: dict | None = None, timeout: float | None = None) -> Response:
        return self.client.request(op, args, timeout)

    def add(self, name: str, expected: str, got: str, ok: bool | None, detail: str = "") -> Check:
        result = SKIP if ok is None else PASS if ok else FAIL
        check = Check(name, expected, got, result, detail)
        self.report.checks.append(check)
        if self.progress:
            self.progress(check)
        return check

    def skip(self, name: str, expected: str, why: str) -> Check:
        return self.add(name, expected, "-", None, why)

    def expect_rc(self, name: str, expected: str, op: str, args: dict | None = None, timeout: float | None = None):
        try:
            r = self.request(op, args, timeout)
        except LinkError as e:
            self.add(name, expected, "no answer", False, str(e))
            return None
        self.add(name, expected, r.rc, r.rc == expected, r.err or "")
        return r

    def subscribe(self) -> None:
        self.agent.subscribe()
        self.subscribed = True

    def collect(self, duration: float) -> list[Event]:
        """Receive (and acknowledge) events for up to `duration` seconds."""
        got = []
        for ev in self.agent.receive(duration):
            self.events.append(ev)
            got.append(ev)
        return got

    def drain(self, quiet: float = 0.5, longest: float = 20.0) -> None:
        """Receive the alerts that were waiting before the run (until none comes for `quiet` s)."""
        deadline = time.monotonic() + longest
        while time.monotonic() < deadline:
            got = self.collect(quiet)
            self.report.drained += [{"seq": ev.seq, "kind": ev.kind, "data": ev.data} for ev in got]
            if not got:
                return

    def wait_alert(self, code: str, after_seq: int, timeout: float = ALERT_WAIT_S) -> Event | None:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.seq > after_seq and ev.kind == "N54" and (ev.data or {}).get("DeviceAlertCode") == code:
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.collect(min(0.2, left))

    def last_seq(self) -> int:
        return max((ev.seq for ev in self.events), default=0)

    def expect_alert(self, name: str, code: str, rc: str, after: int, payload: dict | None = None) -> Event | None:
        expected = f"N54 {code} {rc}"
        if payload:
            expected += " " + ", ".join(f"{k}={_short(v)}" for k, v in payload.items())
        ev = self.wait_alert(code, after)
        if ev is None:
            seen = ", ".join(event_text(e) for e in self.events if e.seq > after) or "nothing"
            self.add(name, expected, f"none within {ALERT_WAIT_S:g} s", False, f"received: {seen}")
            return None
        d = ev.data or {}
        got = f"N54 {code} {d.get('rc')}"
        ok = d.get("rc") == rc and d.get("CHFDeviceID") == self.report.device.get("eui")
        if payload:
            have = d.get("payload") or {}
            got += " " + ", ".join(f"{k}={_short(have.get(k))}" for k in payload)
            ok = ok and all(have.get(k) == v for k, v in payload.items())
        self.add(name, expected, got, ok, f"seq {ev.seq}")
        return ev

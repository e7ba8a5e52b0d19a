"""The operations every command uses on an agent: requests whose failures say what to do,
status, the configuration, firmware status, and upward alerts received exactly once.

A host receives an alert, keeps it (shows, stores or acts on it), records its seq in the device's
seen store and only then acknowledges it: an alert whose acknowledgement was lost (the host died
in between, the board rebooted) is delivered again, and is then acknowledged without being
received twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from host_tools.files import write_json
from host_tools.link.client import AgentClient, AgentError, AgentTimeout, Event, Response
from host_tools.link.console import explain_silence, resume_agent
from host_tools.link.ports import DEFAULT_BAUD, DEFAULT_TIMEOUT, default_port, open_transport
from host_tools.paths import cache_dir


def connect(
    port: str | None = None,
    *,
    baud: int = DEFAULT_BAUD,
    timeout: float = DEFAULT_TIMEOUT,
    start: bool | None = None,
    on_text: Callable[[bytes], None] | None = None,
    notice: Callable[[str], None] | None = None,
    lean: bool = False,
) -> AgentClient:
    """An AgentClient on a --port value (default: default_port(); start as for ports.resolve).
    on_text gets what the board prints besides frames; notice, what is done on the user's behalf.
    When the board does not answer, the AgentTimeout says what it printed instead. lean: see
    ports.open_transport."""
    spec = port or default_port()
    transport, path = open_transport(spec, baud, start=start, lean=lean)
    return AgentClient(
        transport,
        timeout=timeout,
        on_text=on_text,
        port=str(spec),
        explain=lambda: explain_silence(str(spec), path, baud=baud),
        notice=notice,
    )


def checked(client: AgentClient, op: str, args: dict | None = None, timeout: float | None = None) -> Response:
    """Request op; a link failure is a LinkError that says what to do. A board found at its REPL
    instead (mpremote left it there, or someone typed into its terminal) gets its agent started
    again (resume_agent), once, and the request is sent again."""
    try:
        return client.request(op, args, timeout)
    except AgentTimeout:
        if client.resumed or not resume_agent(client.transport):
            raise
    client.resumed = True
    if client.notice:
        client.notice(f"the board on {client.port or 'the port'} was at its REPL: its agent was started again")
    return client.request(op, args, timeout)


class SeenStore:
    """A set kept in a JSON file of the cache (written whole, through a temporary file): what this
    host has already seen of one device. keep: how many of the largest are kept."""

    def __init__(self, path: Path, keep: int | None = None):
        self.path = path
        self.keep = keep
        try:
            self.items = set(json.loads(path.read_text()))
        except (OSError, ValueError):
            self.items = set()

    def save(self) -> None:
        items = sorted(self.items)
        write_json(self.path, items[-self.keep :] if self.keep else items, indent=None)


def seen_key(hello: dict) -> str:
    """Whose seqs a seen store holds: the device's EUI and its outbox epoch (new on wiped storage)."""
    return hello["eui"].replace("-", "") + ("-" + hello["epoch"] if hello.get("epoch") else "")


def alerts_seen(key: str) -> SeenStore:
    """The seqs of the upward events this host has kept from the device `key` (seen_key)."""
    return SeenStore(cache_dir("seen") / (key.replace("-", "_") + ".json"), keep=2000)


class Agent:
    """An agent over an AgentClient (`client`), for the operations every command uses."""

    def __init__(self, client: AgentClient, seen: SeenStore | None = None):
        self.client = client
        self.seen = seen
        if seen is not None:
            client.seen = seen.items

    @classmethod
    def open(cls, port: str | None = None, **options) -> Agent:
        """The agent on a --port value (options as for connect)."""
        return cls(connect(port, **options))

    def close(self) -> None:
        self.client.transport.close()

    def request(self, op: str, args: dict | None = None, timeout: float | None = None) -> Response:
        """The agent's answer to op, whatever its code (see checked)."""
        return checked(self.client, op, args, timeout)

    def answer(self, op: str, args: dict | None = None, timeout: float | None = None, *, what: str = ""):
        """The data of the agent's answer to op; AgentError if it refuses (`what` failed: ...)."""
        r = self.request(op, args, timeout)
        if not r.ok:
            raise AgentError(what or op, r.rc, r.err)
        return r.data

    def status(self) -> dict:
        return self.answer("status", what="status")

    def config(self) -> dict | None:
        """The CHF Sub GHz Configuration the agent holds (None: not configured)."""
        return self.answer("config.get", what="config get")

    def set_config(self, config: dict, region: str | None = None) -> Response:
        """The agent's answer to a configuration: I0, or the DUIS response code and its reasons."""
        req = {"config": config}
        if region:
            req["region"] = region
        return self.request("config.set", req)

    def firmware_status(self) -> dict:
        return self.answer("fw.status", what="fw.status")

    # -- upward alerts -----------------------------------------------------------------------------
    def subscribe(self) -> dict:
        """Say hello with upward events on (the hello's data); the device's seen store is loaded."""
        hello = self.answer("hello", {"events": True}, what="hello")
        self.seen = alerts_seen(seen_key(hello))
        self.client.seen = self.seen.items
        return hello

    def receive(self, duration: float) -> Iterator[Event]:
        """The upward events that arrive within `duration` s, each once. An event is recorded as
        seen and acknowledged when the caller asks for the next one: the caller keeps each in its
        loop's body, and one it did not finish with comes again."""
        for ev in self.client.poll_events(duration):
            yield ev
            self.client.seen.add(ev.seq)
            if self.seen is not None:
                self.seen.save()
            self.client.ack(ev.seq)

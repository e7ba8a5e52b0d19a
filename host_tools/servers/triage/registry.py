"""The Triage Tools running on this machine: each one's record (TriageInfo), where it lives and
which --port value names it.

A tool called NAME keeps its state file (TriageInfo), lock and log in <XDG_CACHE_HOME or
~/.cache>/dbch/triage/NAME/ (host_tools.servers.registry keeps the liveness lock), so that
`--port triage[:NAME]` finds the pty of the hub on its link (relay.PtyRelay).

Linux only (ptys, flock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from host_tools.errors import DbchError
from host_tools.servers import registry as services
from host_tools.servers.records import ServerInfo

DEFAULT_NAME = services.DEFAULT_NAME
PORT_PREFIX = "triage"


class TriageToolError(DbchError):
    """A Triage Tool could not be started, found or used; the message says what to do."""


@dataclass
class TriageInfo(ServerInfo):
    """A running Triage Tool, as recorded in its state file."""

    name: str
    port: str  # the pty technicians open
    pid: int
    listen: str  # HOST:PORT the hubs dial
    tool: str  # the tool certificate's name
    expect: list = field(default_factory=list)  # the hub EUIs accepted
    pki: str = ""
    hub: dict | None = None  # the connected hub: eui, addr, version, suite, since
    sessions: int = 0  # hub sessions so far
    refused: int = 0  # connections refused so far
    refusals: list = field(default_factory=list)  # the last few: kind, detail, addr, at
    dropped: dict = field(default_factory=dict)  # connections dropped before authenticating, by reason
    handshakes: int = 0  # unauthenticated connections held now
    incidents: dict = field(default_factory=dict)  # the tool's Incidents snapshot
    started: float = 0.0


REGISTRY = services.ServiceRegistry(
    "triage",
    "triage tool",
    info=TriageInfo,
    command="triage",
    port_prefix=PORT_PREFIX,
    module="host_tools.cli.triage",
    error=TriageToolError,
)


read_state = REGISTRY.read_state  # the running Triage Tool called NAME, or None


def port_name(spec: str) -> str:
    """The tool name in a --port value triage[:NAME] (checked)."""
    given = REGISTRY.port_name(spec)
    if given is None:
        raise TriageToolError(f"not a triage port: {spec!r} (use triage or triage:NAME)")
    return REGISTRY.check_name(given or DEFAULT_NAME)


def port_spec(name: str) -> str:
    """The --port value of the tool called `name`."""
    return PORT_PREFIX if name == DEFAULT_NAME else f"{PORT_PREFIX}:{name}"


def resolve_port(spec: str) -> str:
    """The pty path of --port triage[:NAME]; TriageToolError if no tool runs or no hub is on it."""
    name = port_name(spec)
    info = read_state(name)
    if info is None:
        raise TriageToolError(
            f"no triage tool {name!r} is running; running: {REGISTRY.running_names()} (start it with "
            f"`dbch triage serve --name {name}` and let the hub dial in)"
        )
    if info.hub is None:
        raise TriageToolError(
            f"triage tool {name!r} is listening on {info.listen} but no hub is connected yet "
            f"(expected: {', '.join(info.expect)}); `dbch triage connect --port {spec}` shows the refusals"
        )
    return info.port

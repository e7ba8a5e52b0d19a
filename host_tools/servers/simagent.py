"""The agent under CPython on a pty: the same agent code as a board runs, on simulated hardware.

`dbch agent --serve` runs agent.run.serve with boards.sim parts (a simulated radio medium, a
fast-forwardable real-time clock, storage in a directory) behind a pty. Its `/dev/pts/N` path is
opened by pyserial and the host tools exactly like a board's serial port, so every client test
can run against the MicroPython agent (dbch vboard) and the CPython one alike.

- Storage: a directory (default <cache>/dbch/agent/<NAME>/flash, or --fs DIR) that survives
  restarts. The EUI-64 is kept there too (record "eui"): --eui sets it, else it stays what it
  was, and a new directory starts with the DCC Boxed templates' hub 00-DB-12-34-56-78-90-A2.
- Reboot: the "reboot" op ends agent.run.serve with hub.reboot_requested; a new Hub then starts on
  the same storage (boot count + 1, configuration and outbox restored). The pty stays.
- Link: the pty's device side is set raw and held open by the agent, so output written while no
  client has the port open is kept by the pty (pyserial discards it on open) and never blocks
  the agent for long: when the pty's buffer is full, output waits up to a second, then is dropped,
  like a UART nobody listens to.
- Discovery: a running agent writes <cache>/dbch/agent/<NAME>/agent.json ({"port", "pid", "fs",
  "eui", ...}) and holds an exclusive lock on agent.lock while it lives. `--port sim[:NAME]`
  (host_tools.link.ports) finds it there; `sim` starts the default agent in the background if it
  is not running (host_tools.servers.registry), a named one is started only with --start.

Linux only (ptys, flock).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hal.stream_link import StreamLink
from host_tools.errors import DbchError
from host_tools.servers import registry as services
from host_tools.servers.ptys import PtyServer, PtyWriter, close_fds, open_pty
from host_tools.servers.records import ServerInfo
from host_tools.servers.simhub import fast_forward_clock, make_hal

DEFAULT_NAME = services.DEFAULT_NAME
PORT_PREFIX = "sim"
EUI_RECORD = "eui"


class SimAgentError(DbchError):
    """A simulated agent could not be started, found or stopped; the message says why."""


@dataclass(frozen=True)
class SimAgentInfo(ServerInfo):
    """A running simulated agent, as recorded in its state file."""

    name: str
    port: str  # the /dev/pts/N path clients open
    pid: int  # the process that runs the agent
    fs: str  # the storage directory
    eui: str  # the agent's EUI-64
    started: float = 0.0


# ----------------------------------------------------------------------------- where things live

REGISTRY = services.ServiceRegistry(
    "agent",
    "simulated agent",
    name_label="agent",
    command="agent",
    module="host_tools.cli.agent",
    port_prefix=PORT_PREFIX,
    info=SimAgentInfo,
    error=SimAgentError,
)
LOG_FILE = REGISTRY.log_file

# what other code asks most (the rest: REGISTRY.state_path(name), REGISTRY.check_name(name), ...)
cache_root = REGISTRY.cache_root  # <XDG_CACHE_HOME or ~/.cache>/dbch/agent: every agent's directory
agent_dir = REGISTRY.server_dir
read_state = REGISTRY.read_state  # the running agent called NAME, or None (a stale state file is removed)
list_agents = REGISTRY.list_running
stop = REGISTRY.stop  # end agent NAME; True if one was running


def check_eui(eui: str | bytes | None) -> bytes | None:
    """An EUI-64 from text ("00-DB-12-34-56-78-90-A2") or 8 bytes; None stays None."""
    if eui is None:
        return None
    if isinstance(eui, (bytes, bytearray)) and len(eui) == 8:
        return bytes(eui)
    from agent.eui import parse_eui

    try:
        return parse_eui(str(eui))
    except ValueError as e:
        raise SimAgentError(f"invalid EUI-64 {eui!r}: {e}") from e


def _format_eui(eui: bytes) -> str:
    return "-".join(f"{b:02X}" for b in eui)


def provision(fs: Path | str, eui: bytes | None = None) -> bytes:
    """The EUI-64 of the agent on `fs`: `eui` is stored first if given; a new store gets the
    default hub EUI."""
    from boards import sim
    from hal.fs_storage import FileStorage

    Path(fs).mkdir(parents=True, exist_ok=True)
    storage = FileStorage(str(fs))
    if eui is not None:
        storage.write(EUI_RECORD, eui)
        return eui
    have = storage.read(EUI_RECORD)
    if have is not None and len(have) == 8:
        return bytes(have)
    eui = check_eui(sim.DEFAULT_EUI)
    storage.write(EUI_RECORD, eui)
    return eui


# ----------------------------------------------------------------------------- the link


class PtyLink(StreamLink):
    """The agent's Link over the pty master; wait() gives up at once once a stop is asked for."""

    def __init__(self, inp, out, stop: Callable[[], bool]):
        super().__init__(inp, out)
        self._stopping = stop

    def wait(self, timeout_ms):
        if self._stopping():
            self.eof = True
            return False
        return super().wait(timeout_ms)

    def read(self, n):
        if self._stopping():
            self.eof = True
            return b""
        try:
            return super().read(n)
        except OSError as e:  # EIO: nobody holds the device side (cannot happen while we do)
            if e.errno != errno.EIO:
                raise
            return b""


# ----------------------------------------------------------------------------- the agent


class SimAgent(PtyServer):
    """The CPython agent behind a pty. open() creates the pty, run() serves until request_stop()
    (callable from a signal handler), rebooting the hub on the "reboot" op. make_clock() gives
    each boot its clock (default: fast_forward_clock)."""

    def __init__(
        self,
        fs: Path | str,
        *,
        eui: str | bytes | None = None,
        name: str | None = None,
        make_clock: Callable[[], object] = fast_forward_clock,
    ):
        self.fs = Path(fs).expanduser().resolve()
        self.name = name
        self.make_clock = make_clock
        self.eui = provision(self.fs, check_eui(eui))
        self.port: str | None = None
        self.boots = 0  # hubs started by this process
        self.hub = None  # the current Hub
        self._master = self._slave = -1
        self._stop = False

    def open(self) -> str:
        self._master, self._slave, self.port = open_pty()
        return self.port

    def request_stop(self) -> None:
        self._stop = True

    def _stopping(self) -> bool:
        return self._stop

    def make_hal(self):
        inp = os.fdopen(os.dup(self._master), "rb")
        link = PtyLink(inp, PtyWriter(self._master), self._stopping)
        link.stream = inp  # closed after the boot ends
        return make_hal(self.fs, self.eui, link=link, clock=self.make_clock())

    def boot(self):
        """One boot: a Hub on the stored state, served until a reboot or a stop; returns it."""
        from agent.run import serve
        from boards import sim

        hal = self.make_hal()
        self.boots += 1
        try:
            self.hub = serve(hal, sim)
        finally:
            with contextlib.suppress(OSError):
                hal.link.stream.close()
        return self.hub

    def run(self) -> int:
        if self._master < 0:
            self.open()
        while not self._stop:
            hub = self.boot()
            if not hub.reboot_requested:
                break
        return self.boots

    def close(self) -> None:
        close_fds(self._master, self._slave)
        self._master = self._slave = -1


# ----------------------------------------------------------------------------- starting and finding


def _check_matches(info: SimAgentInfo, fs, eui: bytes | None) -> None:
    REGISTRY.check_fs(info, fs)
    if eui is not None and _format_eui(eui) != info.eui:
        raise REGISTRY.differs(info, f"as {info.eui}, not {_format_eui(eui)}")


def ensure_running(
    name: str = DEFAULT_NAME, fs: str | Path | None = None, eui: str | bytes | None = None, timeout: float = 15.0
) -> SimAgentInfo:
    """The live agent `name`, started in the background (detached) if none runs. SimAgentError
    if it runs on another storage directory or with another EUI than the ones asked for."""
    REGISTRY.check_name(name)
    eui_bytes = check_eui(eui)
    args = ["--eui", _format_eui(eui_bytes)] if eui_bytes is not None else []
    return REGISTRY.ensure_running(name, fs, args, lambda info: _check_matches(info, fs, eui_bytes), timeout)


def resolve_port(spec: str, *, start: bool | None = None) -> str:
    """The pty path for "sim" or "sim:NAME".

    start: True starts the agent if it is not running, False never does, None (the default)
    starts only the default agent (bare "sim"): a named one that is not running is an error that
    lists the running ones.
    """
    spec = str(spec).strip()
    if REGISTRY.port_name(spec) is None:
        raise SimAgentError(f"not a simulated agent port: {spec!r} (use sim or sim:NAME)")
    return REGISTRY.resolve_port(spec, start, ensure_running)


# ----------------------------------------------------------------------------- serving


def serve(
    name: str = DEFAULT_NAME,
    fs: str | Path | None = None,
    eui: str | bytes | None = None,
    on_ready: Callable[[SimAgentInfo], None] | None = None,
) -> int:
    """Run agent `name` in this process until SIGTERM/SIGINT/SIGHUP."""
    REGISTRY.check_name(name)
    eui_bytes = check_eui(eui)
    fs_path = REGISTRY.fs_path(name, fs)

    def make_info(agent: SimAgent) -> SimAgentInfo:
        return SimAgentInfo(
            name=name,
            port=agent.port,
            pid=os.getpid(),
            fs=str(agent.fs),
            eui=_format_eui(agent.eui),
            started=time.time(),
        )

    REGISTRY.serve(name, lambda: SimAgent(fs_path, eui=eui_bytes, name=name), make_info, on_ready)
    return 0

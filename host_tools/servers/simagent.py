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
  (host_tools.link.connect) finds it there; `sim` starts the default agent in the background if it
  is not running (host_tools.servers.registry), a named one is started only with --start.

Linux only (ptys, flock).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from hal.stream_link import StreamLink
from host_tools.errors import DbchError
from host_tools.servers import registry as services

DEFAULT_NAME = services.DEFAULT_NAME
PORT_PREFIX = "sim"
STATE_FILE = "agent.json"
LOCK_FILE = "agent.lock"
SPAWN_LOCK_FILE = services.SPAWN_LOCK_FILE
LOG_FILE = "agent.log"
EUI_RECORD = "eui"

_WRITE_WAIT_S = 1.0  # longest wait for room in the pty before output is dropped
_IDLE_MS = 20


class SimAgentError(DbchError):
    """A simulated agent could not be started, found or stopped; the message says why."""


@dataclass(frozen=True)
class SimAgentInfo:
    """A running simulated agent, as recorded in its state file."""

    name: str
    port: str  # the /dev/pts/N path clients open
    pid: int  # the process that runs the agent
    fs: str  # the storage directory
    eui: str  # the agent's EUI-64
    started: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SimAgentInfo:
        return cls(
            name=str(data["name"]),
            port=str(data["port"]),
            pid=int(data["pid"]),
            fs=str(data["fs"]),
            eui=str(data["eui"]),
            started=float(data.get("started", 0.0)),
        )


# ----------------------------------------------------------------------------- where things live

_SERVICES = services.ServiceRegistry(
    "agent",
    "simulated agent",
    name_label="agent",
    module="host_tools.servers.simagent",
    state_file=STATE_FILE,
    lock_file=LOCK_FILE,
    log_file=LOG_FILE,
    from_json=SimAgentInfo.from_json,
    error=SimAgentError,
)


def cache_root() -> Path:
    """<XDG_CACHE_HOME or ~/.cache>/dbch/agent: every simulated agent's directory lives here."""
    return _SERVICES.cache_root()


def check_name(name: str) -> str:
    return _SERVICES.check_name(name)


def agent_dir(name: str = DEFAULT_NAME) -> Path:
    return _SERVICES.server_dir(name)


def default_fs(name: str = DEFAULT_NAME) -> Path:
    return _SERVICES.default_fs(name)


def state_path(name: str = DEFAULT_NAME) -> Path:
    return _SERVICES.state_path(name)


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


class PtyWriter:
    """Output to the pty master (non-blocking): waits a while for room, then drops the rest."""

    def __init__(self, fd: int, wait_s: float = _WRITE_WAIT_S):
        self.fd = fd
        self.wait_s = wait_s
        self.dropped = 0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)

    def write(self, data) -> int:
        view = memoryview(bytes(data))
        deadline = time.monotonic() + self.wait_s
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
            left = deadline - time.monotonic()
            if left <= 0:
                self.dropped += len(view)
                break
            self._poll.poll(max(1, int(left * 1000)))
        return len(data)

    def flush(self) -> None:
        pass


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


def fast_forward_clock():
    """The default clock: real time that clock.advance may move forward (as on a virtual board)."""
    from hal.mcu import McuClock
    from hal.sim.clock import FastForwardClock

    return FastForwardClock(McuClock())


class SimAgent:
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

    def __enter__(self) -> SimAgent:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        return self.port

    def request_stop(self) -> None:
        self._stop = True

    def _stopping(self) -> bool:
        return self._stop

    def make_hal(self):
        from boards import sim

        inp = os.fdopen(os.dup(self._master), "rb")
        link = PtyLink(inp, PtyWriter(self._master), self._stopping)
        link.stream = inp  # closed after the boot ends
        return sim.make_hal(storage_dir=str(self.fs), eui=self.eui, link=link, clock=self.make_clock())

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
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1


# ----------------------------------------------------------------------------- discovery (host_tools.servers.registry)


def read_state(name: str = DEFAULT_NAME) -> SimAgentInfo | None:
    """The running agent called `name`, or None (a stale state file is removed)."""
    return _SERVICES.read_state(name)


def list_agents() -> list[SimAgentInfo]:
    return _SERVICES.list_running()


def _check_matches(info: SimAgentInfo, fs, eui: bytes | None) -> None:
    if fs is not None and Path(fs).expanduser().resolve() != Path(info.fs):
        raise SimAgentError(
            f"simulated agent {info.name!r} is running on {info.fs}, not {fs}: "
            f"stop it first (dbch agent --stop --name {info.name})"
        )
    if eui is not None and _format_eui(eui) != info.eui:
        raise SimAgentError(
            f"simulated agent {info.name!r} is running as {info.eui}, not {_format_eui(eui)}: "
            f"stop it first (dbch agent --stop --name {info.name})"
        )


def ensure_running(
    name: str = DEFAULT_NAME, fs: str | Path | None = None, eui: str | bytes | None = None, timeout: float = 15.0
) -> SimAgentInfo:
    """The live agent `name`, started in the background (detached) if none runs. SimAgentError
    if it runs on another storage directory or with another EUI than the ones asked for."""
    check_name(name)
    eui_bytes = check_eui(eui)
    args = ["--eui", _format_eui(eui_bytes)] if eui_bytes is not None else []
    return _SERVICES.ensure_running(name, fs, args, lambda info: _check_matches(info, fs, eui_bytes), timeout)


def resolve_port(spec: str, *, start: bool | None = None) -> str:
    """The pty path for "sim" or "sim:NAME".

    start: True starts the agent if it is not running, False never does, None (the default)
    starts only the default agent (bare "sim"): a named one that is not running is an error that
    lists the running ones.
    """
    spec = str(spec).strip()
    if spec != PORT_PREFIX and not spec.startswith(PORT_PREFIX + ":"):
        raise SimAgentError(f"not a simulated agent port: {spec!r} (use sim or sim:NAME)")
    given = spec[len(PORT_PREFIX) + 1 :]
    name = check_name(given or DEFAULT_NAME)
    info = read_state(name)
    if info is not None:
        return info.port
    if start or (start is None and not given):
        return ensure_running(name).port
    raise SimAgentError(_SERVICES.not_running(name, "dbch agent"))


def stop(name: str = DEFAULT_NAME, timeout: float = 5.0) -> bool:
    """End the agent `name`; True if one was running. Its state file is gone when this returns."""
    return _SERVICES.stop(name, timeout)


# ----------------------------------------------------------------------------- serving


def serve(
    name: str = DEFAULT_NAME,
    fs: str | Path | None = None,
    eui: str | bytes | None = None,
    on_ready: Callable[[SimAgentInfo], None] | None = None,
) -> int:
    """Run agent `name` in this process until SIGTERM/SIGINT/SIGHUP."""
    check_name(name)
    eui_bytes = check_eui(eui)
    fs_path = _SERVICES.fs_path(name, fs)

    def make_info(agent: SimAgent) -> SimAgentInfo:
        return SimAgentInfo(
            name=name,
            port=agent.port,
            pid=os.getpid(),
            fs=str(agent.fs),
            eui=_format_eui(agent.eui),
            started=time.time(),
        )

    _SERVICES.serve(name, lambda: SimAgent(fs_path, eui=eui_bytes, name=name), make_info, on_ready)
    return 0


# ----------------------------------------------------------------------------- command line


def _add_arguments(p: argparse.ArgumentParser) -> None:
    act = p.add_mutually_exclusive_group()
    act.add_argument("--serve", action="store_true", help="run the agent in the foreground until Ctrl-C")
    act.add_argument("--stop", action="store_true", help="stop the agent")
    act.add_argument("--status", action="store_true", help="show the agent if it runs; do not start it")
    act.add_argument("--list", action="store_true", help="list running simulated agents")
    p.add_argument("--name", default=DEFAULT_NAME, help="which simulated agent (default: %(default)s)")
    p.add_argument("--fs", metavar="DIR", help="storage directory (default: <cache>/dbch/agent/NAME/flash)")
    p.add_argument("--eui", help="set the agent's EUI-64, e.g. 00-DB-12-34-56-78-90-A2 (kept in its storage)")


def _describe(info: SimAgentInfo) -> str:
    return f"{info.name}: {info.port} (device {info.eui}, fs {info.fs}, pid {info.pid})"


def run_command(args: argparse.Namespace) -> int:
    from host_tools.cli import CommandError, emit

    try:
        if args.serve:

            def ready(info: SimAgentInfo) -> None:
                emit(args, {"port": info.port, "pid": info.pid, "fs": info.fs, "eui": info.eui}, info.port)
                sys.stdout.flush()

            return serve(args.name, fs=args.fs, eui=args.eui, on_ready=ready)
        done = _SERVICES.run_query(args, _describe, "no simulated agent runs")
        if done is not None:
            return done
        info = ensure_running(args.name, fs=args.fs, eui=args.eui)
        emit(args, info.to_json(), info.port)
        return 0
    except SimAgentError as e:
        raise CommandError(str(e)) from e


def register(subparsers) -> None:
    from host_tools.cli import add_json_flag

    p = subparsers.add_parser(
        "agent",
        help="run the agent under CPython on a pty (simulated hardware); --port sim[:NAME] finds it",
        description="Start (in the background), serve, stop or show the CPython-simulated agent: the "
        "agent's own code on boards.sim parts behind a pty that the host tools open like a board's port.",
    )
    _add_arguments(p)
    add_json_flag(p)
    p.set_defaults(func=run_command)


def main(argv: list[str] | None = None) -> int:
    """`python -m host_tools.servers.simagent ...`: the same options as `dbch agent`."""
    return services.module_main(
        "python -m host_tools.servers.simagent", __doc__.splitlines()[0], _add_arguments, run_command, argv
    )


if __name__ == "__main__":
    sys.exit(main())

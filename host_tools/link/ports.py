"""Transports opened by URL: a --port value becomes an open byte stream to an agent.

vboard          the default virtual board (the MicroPython unix port on a pty), started if not running
vboard:NAME     a running virtual board; with start=True (--start) it is started if it is not
sim[:NAME]      the agent under CPython on a pty (dbch agent): the same rule
triage[:NAME]   a hub on the Triage System Interface, through a running `dbch triage serve`
/dev/ttyUSB0    a real board's serial port (or any pyserial URL: socket://host:port, loop://)
mqtts://HOST:PORT/EUI  a hub that a `dbch gateway` serves on an MQTT broker (host_tools.link.mqtt)

A value NAME or NAME:INSTANCE names a port scheme: the servers that answer to one register it
here (register_scheme; host_tools.servers does so for vboard, sim and triage when imported), and
anything else is a device path or pyserial URL. The default port is $DBCH_PORT, else vboard. A
device another program has open is busy (PortBusy), naming that program.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from host_tools.link.client import LinkError

DEFAULT_PORT = "vboard"
PORT_ENV = "DBCH_PORT"
DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 5.0


def default_port() -> str:
    """$DBCH_PORT, else the default virtual board."""
    return os.environ.get(PORT_ENV, "").strip() or DEFAULT_PORT


class Port(str):
    """A --port value; `start` is true when --start was given with it (see resolve)."""

    start = False

    def __new__(cls, value: str, start: bool = False):
        self = super().__new__(cls, value)
        self.start = bool(start)
        return self


# ----------------------------------------------------------------------------- port schemes


@dataclass(frozen=True)
class Scheme:
    """A kind of --port value, NAME or NAME:INSTANCE, that a server on this machine answers to.

    resolve(spec, start) -> the device path of the value (a DbchError that says what to do when
    there is none; start as for resolve below); explain(instance, spec) -> what its board printed
    instead of answering, "" if nothing useful; running() -> (instance, device path) of each one
    running, so that a bare device path is known as one of them."""

    name: str
    resolve: Callable[[str, bool | None], str]
    explain: Callable[[str, str], str] | None = None
    running: Callable[[], Iterable[tuple[str, str]]] | None = None


_SCHEMES: dict[str, Scheme] = {}


def register_scheme(scheme: Scheme) -> None:
    _SCHEMES[scheme.name] = scheme


def scheme_of(spec: str) -> tuple[Scheme, str] | None:
    """The scheme a --port value names, with its instance ("default" when none is named)."""
    name, _, instance = str(spec).strip().partition(":")
    scheme = _SCHEMES.get(name)
    return (scheme, instance or "default") if scheme else None


def serving(path: str) -> tuple[Scheme, str] | None:
    """The scheme and instance whose device `path` is (a pty a server runs), if any."""
    if "://" in path:
        return None
    real = os.path.realpath(path)
    for scheme in _SCHEMES.values():
        for instance, port in scheme.running() if scheme.running else ():
            if os.path.realpath(port) == real:
                return scheme, instance
    return None


def resolve(spec: str, *, start: bool | None = None) -> str:
    """A device path or URL for a --port value.

    start: True starts a virtual board or CPython agent that is not running, False never does,
    None (the default) starts only the default one (bare `vboard` or `sim`), or a named one when
    the value came with --start (a Port). A device another program has open is busy (PortBusy).
    """
    if start is None and getattr(spec, "start", False):
        start = True
    path = _path_of(spec, start)
    check_not_busy(path, label=str(spec).strip())
    return path


def _path_of(spec: str, start: bool | None) -> str:
    spec = str(spec).strip()
    found = scheme_of(spec)
    return found[0].resolve(spec, start) if found else spec


def open_transport(
    spec: str, baud: int = DEFAULT_BAUD, *, start: bool | None = None, lean: bool = False
) -> tuple[SerialTransport | PtyTransport, str]:
    """The open transport of a --port value (see resolve), and its device path or URL. lean: a
    pty (a virtual board's or a CPython agent's) is opened as a PtyTransport, for a program that
    holds hundreds of ports. An mqtts:// value is a hub a gateway serves (host_tools.link.mqtt)."""
    from host_tools.link.mqtt import MqttTransport, is_mqtt_port

    if is_mqtt_port(spec):
        return MqttTransport(str(spec).strip()), str(spec).strip()
    if lean:  # busy or not, its flock says (the search of /proc for holders takes long at scale)
        if start is None and getattr(spec, "start", False):
            start = True
        path = _path_of(spec, start)
        if os.path.realpath(path).startswith("/dev/pts/"):
            return PtyTransport(path), path
    path = resolve(spec, start=start)
    try:
        return SerialTransport(path, baud), path
    except PortBusy as e:
        raise PortBusy(e.path, e.holders, label=str(spec)) from e


# ----------------------------------------------------------------------------- busy ports


class PortBusy(LinkError):
    """Another program has the port open; the message names it when it can be found (and the
    port by `label`, the --port value, when that is not its path)."""

    def __init__(self, path: str, holders: list[tuple[int, str]] | None = None, label: str | None = None):
        self.path = path
        self.holders = port_holders(path) if holders is None else holders
        super().__init__(busy_message(path, self.holders, label))


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


def check_not_busy(path: str, label: str | None = None) -> None:
    """PortBusy if another process has the device `path` open (a no-op for URLs and files)."""
    holders = port_holders(path)
    if holders:
        raise PortBusy(path, holders, label)


# ----------------------------------------------------------------------------- the transport


class SerialTransport:
    """pyserial underneath: real ports, ptys, and pyserial URLs (socket://, loop://).

    A device is opened exclusively (pyserial's flock, as mpremote does): PortBusy if another
    program holds it, or has it open at all (two readers would take each other's answers).
    """

    def __init__(self, url: str, baud: int = DEFAULT_BAUD, *, exclusive: bool = True):
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

    def fileno(self) -> int:
        return self.serial.fileno()

    def read(self, n: int) -> bytes:
        waiting = self.serial.in_waiting
        return self.serial.read(max(1, min(n, waiting)) if waiting else 1)

    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def close(self) -> None:
        self.serial.close()


class PtyTransport:
    """A pty's device side opened directly, with SerialTransport's read, write and close: poll,
    not select() as pyserial does, so that one process (a gateway) may hold hundreds of them
    whatever their descriptors' numbers. Exclusive, as SerialTransport (flock)."""

    def __init__(self, path: str):
        import fcntl
        import select
        import termios
        import tty

        from host_tools.servers.ptys import PtyWriter

        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise LinkError(
                f"cannot open {path}: {e}. List the virtual boards and CPython agents: dbch vboard --list, dbch agent --list."
            ) from e
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            raise PortBusy(path) from e
        tty.setraw(self.fd, termios.TCSANOW)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)
        self._writer = PtyWriter(self.fd, wait_s=5.0)

    def fileno(self) -> int:
        return self.fd

    def read(self, n: int) -> bytes:
        """What the pty has, at most n bytes (b"" if nothing within 20 ms); LinkError once its
        other side is gone (the board or agent behind it ended: end of file, or EIO)."""
        if not self._poll.poll(20):
            return b""
        try:
            data = os.read(self.fd, n)
        except BlockingIOError:
            return b""
        except OSError as e:
            raise LinkError(f"{self.path}: {e}: the board or agent behind it has gone") from e
        if not data:
            raise LinkError(f"{self.path}: closed: the board or agent behind it has gone")
        return data

    def write(self, data: bytes) -> None:
        dropped = self._writer.dropped
        self._writer.write(data)
        if self._writer.dropped != dropped:
            raise LinkError(f"{self.path}: the other side has not read for {self._writer.wait_s:g} s")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

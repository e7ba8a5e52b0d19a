"""The Triage System Interface as a working link (SEC G12): the Triage Tool at the facility and a
technician's session over it. `dbch triage serve | connect | dial | list | stop`.

Design
- Who dials: the hub (the Triage System side) connects OUT to the facility. A hub sits behind a
  WAN modem with no inbound route; the facility has a fixed address. The facility's Triage Tool
  listens.
- The link: TLS with client authentication, from hal.tls on both runtimes. The hub presents its
  device certificate (identity: its EUI-64) and checks the tool's certificate name; the tool
  requires the hub's certificate, chained to the triage CA and naming one of the expected EUIs.
  TLS 1.2 minimum (1.3 where both ends have it: CPython hubs), ECDHE with AEAD suites only
  (MicroPython/mbedTLS hubs: TLS 1.2 ECDHE-ECDSA-AES-GCM). The hub side is
  agent.triage_link.serve_triage (portable: CPython ssl and MicroPython mbedTLS) running the agent's
  Server over hal.tls.TlsStreamLink, so the agent's wire protocol runs over TLS unchanged.
- `dbch triage serve` is the Triage Tool. One thread accepts TCP connections and runs every
  handshake at once, non-blocking, in an event loop (selectors): a connection that is silent,
  drip-feeds its bytes or stalls holds nothing but its own socket. Each handshake has a deadline
  (--handshake-timeout). Unauthenticated connections are bounded per source address
  (--max-handshakes-per-source) and in all (--max-handshakes); a new connection is always taken,
  and over a bound the oldest unauthenticated one goes - first one that never sent a
  ClientHello (idle or drip-feeding), from the same source, or else from the source holding the
  most. A genuine hub sends its ClientHello at once and is through in a few round trips, so a
  flood of idle connections evicts itself, not the hubs. An authenticated hub's link goes to the
  relay, which copies bytes between it and a local pty, the way `dbch vboard` exposes a board. One hub session at a time: a hub
  that dials again (after a reboot or a dropped route) replaces its older session. The pty path
  is printed and recorded, with the session (hub EUI, TLS version, suite) and the refusals, in
  <XDG_CACHE_HOME or ~/.cache>/dbch/triage/<NAME>/triage.json (host_tools.services keeps the
  liveness lock), so `--port triage[:NAME]` (host_tools.connect) reaches the hub from every
  command: `dbch status --port triage`, `dbch config set --port triage ...`, `dbch alerts
  --port triage`.
- Refusals - a certificate from another CA, a wrong EUI, no client certificate, plaintext to the
  TLS port, TLS 1.1 or older - are logged, counted in the state file and in the tool's own
  incident recorder (agent.incidents.Incidents, whose Major Security Incidents are reported as
  "incident" events), and the tool goes on listening. After refusing a handshake the tool reads
  and drops what the peer still sends for a moment before closing, so the peer hears the alert
  rather than a reset. Connections that time out, close or reset before authenticating, or are
  evicted, are "dropped": logged (a few per interval, then a summary) and counted, but they are
  not authentication failures and raise no incident. The incident recorder is kept in
  incidents.json next to the state file (written atomically) and restored when the tool starts
  again, so an open incident and its counts survive a restart. When the hub is the one
  refusing (the tool's certificate is not the one it expects), the hub records the incident
  itself and reports it upward through its outbox (events of kind "incident").
- `dbch triage connect` is a technician's session: which hub is connected and how, then
  commands ("status", "config get", "alerts --wait 5", ...) typed one per line, or one command
  given on the command line; each runs the ordinary dbch command over the triage port.
- `dbch triage enrol --port P --tool HOST:PORT` gives a hub (a flashed board, or any agent port)
  what it needs to dial the Triage Tool by itself, in one request (triage.set): the tool's
  address, the hub's certificate and key and the CA from the PKI (DER), the tool's name. `--clear`
  takes it back (triage.clear).
- `dbch triage dial` runs a simulated hub (boards.sim parts, storage in a directory) that dials a
  Triage Tool, on CPython or on the MicroPython unix port (--micropython): the other end, for
  trying the link out and for the tests.

Linux only (ptys, flock), like the virtual boards.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import queue
import select
import selectors
import shlex
import signal
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hal import tls
from host_tools import services

DEFAULT_NAME = services.DEFAULT_NAME
DEFAULT_LISTEN = "127.0.0.1:4460"
PORT_PREFIX = "triage"
STATE_FILE = "triage.json"
LOCK_FILE = "triage.lock"
LOG_FILE = "triage.log"
INCIDENTS_FILE = "incidents.json"
HANDSHAKE_TIMEOUT_S = 10.0
MAX_HANDSHAKES = 128  # unauthenticated connections held at once, in all
MAX_HANDSHAKES_PER_SOURCE = 32  # ... from one source address
DRAIN_S = 1.0  # after a refused handshake, what the peer still sends is read and dropped this long
KEEP_REFUSALS = 20
DROP_LOG_EVERY_S = 10.0  # dropped connections: a few logged one by one per interval, then a summary
DROP_LOG_MAX = 10
_ACCEPT_BATCH = 64  # connections accepted per turn of the loop, so handshakes in progress go on
_LOOP_S = 0.2  # longest wait of the handshake loop (it checks the stop flag as often)

_PTY_WAIT_S = 0.5  # longest wait for room in the pty before hub output is dropped
_IDLE_MS = 200
_READ = 4096
ROOT = Path(__file__).resolve().parent.parent


class TriageToolError(Exception):
    """A Triage Tool could not be started, found or used; the message says what to do."""


@dataclass
class TriageInfo:
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

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TriageInfo:
        return cls(
            name=str(data["name"]),
            port=str(data["port"]),
            pid=int(data["pid"]),
            listen=str(data["listen"]),
            tool=str(data["tool"]),
            expect=list(data.get("expect") or []),
            pki=str(data.get("pki") or ""),
            hub=data.get("hub"),
            sessions=int(data.get("sessions", 0)),
            refused=int(data.get("refused", 0)),
            refusals=list(data.get("refusals") or []),
            dropped=dict(data.get("dropped") or {}),
            handshakes=int(data.get("handshakes", 0)),
            incidents=dict(data.get("incidents") or {}),
            started=float(data.get("started", 0.0)),
        )


_REGISTRY = services.ServiceRegistry(
    "triage",
    "triage tool",
    module="host_tools.triage",
    state_file=STATE_FILE,
    lock_file=LOCK_FILE,
    log_file=LOG_FILE,
    from_json=TriageInfo.from_json,
    error=TriageToolError,
)


def read_state(name: str = DEFAULT_NAME) -> TriageInfo | None:
    """The running Triage Tool called `name`, or None."""
    return _REGISTRY.read_state(name)


def list_tools() -> list[TriageInfo]:
    return _REGISTRY.list_running()


def stop(name: str = DEFAULT_NAME, timeout: float = 5.0) -> bool:
    return _REGISTRY.stop(name, timeout)


def port_name(spec: str) -> str:
    """The tool name in a --port value triage[:NAME]."""
    if spec != PORT_PREFIX and not spec.startswith(PORT_PREFIX + ":"):
        raise TriageToolError(f"not a triage port: {spec!r} (use triage or triage:NAME)")
    return spec.partition(":")[2] or DEFAULT_NAME


def resolve_port(spec: str) -> str:
    """The pty path of --port triage[:NAME]; TriageToolError if no tool runs or no hub is on it."""
    name = port_name(spec)
    _REGISTRY.check_name(name)
    info = read_state(name)
    if info is None:
        running = ", ".join(t.name for t in list_tools()) or "none"
        raise TriageToolError(
            f"no triage tool {name!r} is running; running: {running} (start it with "
            f"`dbch triage serve --name {name}` and let the hub dial in)"
        )
    if info.hub is None:
        raise TriageToolError(
            f"triage tool {name!r} is listening on {info.listen} but no hub is connected yet "
            f"(expected: {', '.join(info.expect)}); `dbch triage connect --port {spec}` shows the refusals"
        )
    return info.port


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    try:
        n = int(port)
    except ValueError:
        raise TriageToolError(f"bad address {text!r}: use HOST:PORT, e.g. 0.0.0.0:4460") from None
    if not 0 <= n < 65536:
        raise TriageToolError(f"bad port in {text!r}: 0-65535")
    return host, n


# ----------------------------------------------------------------------------- credentials


def _pki(directory):
    from host_tools.pki import Pki

    return Pki(directory)


def _names_in(pki, sub: str) -> list[str]:
    base = pki.dir / sub
    if not base.is_dir():
        return []
    return sorted(d.name for d in base.iterdir() if (d / "cert.der").exists())


def _only(pki, sub: str, what: str, option: str) -> str:
    names = _names_in(pki, sub)
    if len(names) == 1:
        return names[0]
    if not names:
        raise TriageToolError(f"no {what} certificate in {pki.dir / sub}: issue one with `dbch pki {what} ...`")
    raise TriageToolError(f"several {what} certificates in {pki.dir / sub} ({', '.join(names)}): choose with {option}")


def tool_material(pki_dir, tool: str | None) -> tuple[str, bytes, bytes, bytes]:
    """(tool name, cert DER, key DER, CA DER) from the PKI."""
    from host_tools.pki import PkiError

    pki = _pki(pki_dir)
    try:
        name = tool or _only(pki, "tools", "tool", "--tool")
        issued = pki.tool(name)
        return issued.name, issued.cert_der.read_bytes(), issued.key_der.read_bytes(), pki.ca().cert_der.read_bytes()
    except (PkiError, OSError) as e:
        raise TriageToolError(str(e)) from e


def expected_euis(pki_dir, expect: list[str] | None) -> list[str]:
    """The hub EUIs to accept: --expect, else every hub with a certificate in the PKI."""
    from host_tools.pki import PkiError, normalize_eui

    try:
        if expect:
            return sorted({normalize_eui(e) for e in expect})
        pki = _pki(pki_dir)
        found = sorted({pki.device("", label=d).name for d in _names_in(pki, "devices")})
    except PkiError as e:
        raise TriageToolError(str(e)) from e
    if not found:
        raise TriageToolError("no hub to expect: give --expect EUI, or issue hub certificates with `dbch pki device`")
    return found


def hub_material(pki_dir, eui: str | None) -> tuple[str, bytes, bytes, bytes]:
    """(EUI, cert DER, key DER, CA DER) of a hub from the PKI."""
    from host_tools.pki import PkiError, normalize_eui

    pki = _pki(pki_dir)
    try:
        ident = normalize_eui(eui) if eui else _only(pki, "devices", "device", "--eui")
        issued = pki.device(ident)
        return issued.name, issued.cert_der.read_bytes(), issued.key_der.read_bytes(), pki.ca().cert_der.read_bytes()
    except (PkiError, OSError) as e:
        raise TriageToolError(str(e)) from e


# ----------------------------------------------------------------------------- the Triage Tool


class PtyOut:
    """Writes to the pty master (non-blocking): waits a little for room, then drops the rest."""

    def __init__(self, fd: int, wait_s: float = _PTY_WAIT_S):
        self.fd = fd
        self.wait_s = wait_s
        self.dropped = 0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self.wait_s
        while view:
            try:
                view = view[os.write(self.fd, view) :]
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                self.dropped += len(view)
                return
            self._poll.poll(max(1, int(left * 1000)))


class _Handshake:
    """One unauthenticated connection in the handshake loop."""

    __slots__ = ("sock", "addr", "source", "started", "deadline", "hello", "events", "draining")

    def __init__(self, sock, addr, deadline: float):
        self.sock = sock  # an ssl.SSLSocket; a plain socket once draining
        self.addr = addr
        self.source = addr[0] if isinstance(addr, tuple) and addr else str(addr)
        self.started = time.monotonic()
        self.deadline = deadline
        self.hello = False  # its ClientHello has arrived
        self.events = selectors.EVENT_READ
        self.draining = False  # refused: the rest of what it sends is read and dropped


class Handshakes:
    """The unauthenticated connections, bounded per source address and in all.

    add() takes every new connection and returns the one to close to make room, if any: the
    oldest of the same source when that source is at its bound, else the oldest of the source
    holding the most when all are taken. Among those, one refused and draining goes first, then
    one that never sent a ClientHello (idle, drip-feeding), then the oldest of the rest."""

    def __init__(self, max_total: int, max_per_source: int):
        if max_total < 1 or max_per_source < 1:
            raise TriageToolError("the bounds on handshakes must be at least 1")
        self.max_total = max_total
        self.max_per_source = max_per_source
        self.by_sock: dict = {}
        self.by_source: dict[str, list[_Handshake]] = {}

    def __len__(self) -> int:
        return len(self.by_sock)

    def __iter__(self):
        return iter(list(self.by_sock.values()))

    def get(self, sock) -> _Handshake | None:
        return self.by_sock.get(sock)

    def add(self, h: _Handshake) -> _Handshake | None:
        same = self.by_source.get(h.source, [])
        victim = None
        if len(same) >= self.max_per_source:
            victim = self._pick(same)
        elif len(self.by_sock) >= self.max_total:
            victim = self._pick(max(self.by_source.values(), key=len))
        if victim is not None:
            self.remove(victim)
        self.by_sock[h.sock] = h
        self.by_source.setdefault(h.source, []).append(h)
        return victim

    def remove(self, h: _Handshake) -> None:
        if self.by_sock.pop(h.sock, None) is None:
            return
        group = self.by_source.get(h.source, [])
        with contextlib.suppress(ValueError):
            group.remove(h)
        if not group:
            self.by_source.pop(h.source, None)

    def rekey(self, h: _Handshake, sock) -> None:
        """h's socket became `sock` (a refused connection being drained)."""
        self.by_sock.pop(h.sock, None)
        h.sock = sock
        self.by_sock[sock] = h

    @staticmethod
    def _pick(group: list[_Handshake]) -> _Handshake:
        for h in group:  # oldest first
            if h.draining:
                return h
        for h in group:
            if not h.hello:
                return h
        return group[0]

    def next_deadline(self) -> float | None:
        return min((h.deadline for h in self.by_sock.values()), default=None)


class TriageTool:
    """The facility's end: open() makes the pty and starts listening, run() relays until
    request_stop(), close() ends everything. on_event(kind, data) hears of ready, connected,
    refused, dropped, disconnected, replaced and incident. state_dir: where the incident
    recorder is kept across restarts (None: not kept)."""

    def __init__(
        self,
        *,
        name: str,
        tool: str,
        cert: bytes,
        key: bytes,
        ca: bytes,
        expect: list[str],
        listen: tuple[str, int],
        pki: str = "",
        handshake_timeout: float = HANDSHAKE_TIMEOUT_S,
        max_handshakes: int = MAX_HANDSHAKES,
        max_handshakes_per_source: int = MAX_HANDSHAKES_PER_SOURCE,
        state_dir: Path | None = None,
        on_event=None,
    ):
        from agent import incidents

        if not handshake_timeout > 0:
            raise TriageToolError("the handshake timeout must be more than 0 s")
        self.name = name
        self.tool = tool
        self.expect = list(expect)
        self.pki = pki
        self.handshake_timeout = handshake_timeout
        self.on_event = on_event or (lambda kind, data: None)
        self._endpoint = tls.server(cert, key, ca, self.expect, timeout=handshake_timeout)  # checks the material
        self.listen_addr = listen
        self.listen = ""
        self.port = ""
        self.hub: dict | None = None
        self.sessions = 0
        self.refused = 0
        self.refusals: list[dict] = []
        self.dropped: dict[str, int] = {}
        self.incidents = incidents.Incidents(lambda report: self._event("incident", report))
        self.incidents_path = Path(state_dir) / INCIDENTS_FILE if state_dir is not None else None
        self.restored = self._restore_incidents()
        self.started = time.time()
        self._pending = Handshakes(max_handshakes, max_handshakes_per_source)
        self._link: tls.TlsStreamLink | None = None
        self._link_fd = -1
        self._incoming: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._master = self._slave = -1
        self._wake_r = self._wake_w = -1
        self._lsock: socket.socket | None = None
        self._out: PtyOut | None = None
        self._dirty = False  # counters changed since the state file was written
        self._drop_window = (0.0, 0, {})  # (start, logged, suppressed by reason)
        self.live = False  # the state file is being kept (set once ServiceRegistry wrote it)

    # -- lifecycle

    def open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        self._out = PtyOut(master)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        host, port = self.listen_addr
        try:
            info = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
            s = socket.socket(info[0], socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(info[4])
            s.listen(socket.SOMAXCONN)
        except OSError as e:
            self.close()
            raise TriageToolError(f"cannot listen on {host}:{port}: {e}") from e
        s.setblocking(False)
        self._lsock = s
        bound = s.getsockname()
        self.listen = f"{bound[0]}:{bound[1]}"
        # the ClientHello has arrived: OpenSSL calls this for every one, with or without a name
        self._endpoint._ctx.sni_callback = self._hello
        self._spawn(self._handshake_loop, "triage-handshakes")
        return self.port

    def _spawn(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def request_stop(self) -> None:
        self._stop.set()
        self._wake()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(_LOOP_S * 10 + 2)
        self._threads = []
        if self._link is not None:
            self._link.close()
            self._link = None
        while True:
            try:
                link, _ = self._incoming.get_nowait()
            except queue.Empty:
                break
            link.close()
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = -1

    # -- state

    def info(self) -> TriageInfo:
        return TriageInfo(
            name=self.name,
            port=self.port,
            pid=os.getpid(),
            listen=self.listen,
            tool=self.tool,
            expect=self.expect,
            pki=self.pki,
            hub=self.hub,
            sessions=self.sessions,
            refused=self.refused,
            refusals=list(self.refusals),
            dropped=dict(self.dropped),
            handshakes=len(self._pending),
            incidents=self.incidents.snapshot(),
            started=self.started,
        )

    def _save(self) -> None:
        self._dirty = False
        if self.live and not self._stop.is_set():
            _REGISTRY.write_state(self.info())

    def _restore_incidents(self) -> bool:
        """The incident recorder as it was when this tool last stopped; True if there was one."""
        path = self.incidents_path
        if path is None or not path.exists():
            return False
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("totals", {}), dict):
                raise ValueError("not an incident record")
            self.incidents.restore(data)
        except (OSError, ValueError, TypeError) as e:
            raise TriageToolError(
                f"the incident record {path} cannot be read ({e}): it holds the open incidents and their "
                "counts, so the tool does not start without it; repair it, or move it aside to start afresh"
            ) from e
        return True

    def _keep_incidents(self) -> None:
        """Write the incident recorder atomically (a new file, synced, renamed over the old)."""
        path = self.incidents_path
        if path is None:
            return
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(self.incidents.snapshot(), f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._event("error", {"detail": f"cannot keep the incident record in {path}: {e}"})

    def _record(self, err: tls.TriageLinkError) -> None:
        """Count a link error in the incident recorder (under self._lock) and keep the record."""
        if self.incidents.record_link_error(err) is not None:
            self._keep_incidents()

    def _event(self, kind: str, data: dict) -> bool:
        self.on_event(kind, data)
        return True

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- listening and handshakes (one thread, non-blocking)

    def _handshake_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._lsock, selectors.EVENT_READ, None)
        last_save = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                due = self._pending.next_deadline()
                wait = _LOOP_S if due is None else min(_LOOP_S, max(0.0, due - now))
                for key, _ in sel.select(wait):
                    if key.data is None:
                        self._accept(sel)
                    elif self._pending.get(key.fileobj) is key.data:
                        self._step(sel, key.data)
                self._expire(sel, time.monotonic())
                if self._dirty and time.monotonic() - last_save >= 1.0:
                    last_save = time.monotonic()
                    with self._lock:
                        self._save()
                self._flush_drop_log(False)
        finally:
            for h in self._pending:
                self._pending.remove(h)
                tls._close(h.sock)
            sel.close()

    def _accept(self, sel) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, addr = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: the connections in progress go on
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._oldest_out(sel)
                return
            conn.setblocking(False)
            try:
                s = self._endpoint._ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError) as e:
                conn.close()
                self._drop(addr, "closed", tls._describe(e))
                continue
            h = _Handshake(s, addr, time.monotonic() + self.handshake_timeout)
            victim = self._pending.add(h)
            if victim is not None:
                self._unregister(sel, victim)
                self._finish(victim, "evicted", f"over the bound on handshakes, after {self._age(victim)}")
            sel.register(s, h.events, h)
            self._step(sel, h)  # its ClientHello may be here already

    def _oldest_out(self, sel) -> None:
        victim = min(self._pending, key=lambda h: h.started, default=None)
        if victim is not None:
            self._pending.remove(victim)
            self._unregister(sel, victim)
            self._finish(victim, "evicted", "out of file descriptors")

    def _hello(self, sslsock, server_name, ctx) -> None:
        h = self._pending.get(sslsock)
        if h is not None:
            h.hello = True

    def _step(self, sel, h: _Handshake) -> None:
        if h.draining:
            self._drain(sel, h)
            return
        try:
            h.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(sel, h, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(sel, h, selectors.EVENT_WRITE)
            return
        except Exception as e:  # a refusal, or the peer went away
            self._failed(sel, h, tls.TriageLinkError(tls._classify(e), tls._describe(e)))
            return
        self._pending.remove(h)
        self._unregister(sel, h)
        try:
            link = self._endpoint._checked(h.sock)  # the client's name; the version and suite
        except tls.TriageLinkError as e:
            tls._close(h.sock)
            self._refuse(e, h.addr)
            return
        self._incoming.put((link, h.addr))
        self._wake()

    def _want(self, sel, h: _Handshake, events: int) -> None:
        if h.events != events:
            h.events = events
            sel.modify(h.sock, events, h)

    def _failed(self, sel, h: _Handshake, err: tls.TriageLinkError) -> None:
        from agent import incidents

        if incidents.link_gone(err):
            self._pending.remove(h)
            self._unregister(sel, h)
            self._finish(h, "closed", err.detail)
            return
        self._refuse(err, h.addr)
        # OpenSSL has written its alert; the peer may still be sending its side of the
        # handshake. Closing now, with that unread, would reset the connection before the peer
        # reads the alert: read and drop what comes for a moment first.
        self._unregister(sel, h)
        try:
            raw = socket.socket(fileno=h.sock.detach())
        except OSError:
            self._pending.remove(h)
            return
        raw.setblocking(False)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)
        self._pending.rekey(h, raw)
        h.draining = True
        h.deadline = min(h.deadline, time.monotonic() + DRAIN_S)
        h.events = selectors.EVENT_READ
        sel.register(raw, h.events, h)

    def _drain(self, sel, h: _Handshake) -> None:
        try:
            while h.sock.recv(_READ):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._pending.remove(h)
        self._unregister(sel, h)
        h.sock.close()

    def _expire(self, sel, now: float) -> None:
        for h in self._pending:
            if h.deadline > now:
                continue
            self._pending.remove(h)
            self._unregister(sel, h)
            if h.draining:
                h.sock.close()
            else:
                what = "sent no ClientHello" if not h.hello else "did not finish its handshake"
                self._finish(h, "timeout", f"{what} within {self.handshake_timeout:g} s")

    @staticmethod
    def _unregister(sel, h: _Handshake) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            sel.unregister(h.sock)

    @staticmethod
    def _age(h: _Handshake) -> str:
        return f"{time.monotonic() - h.started:.1f} s" + ("" if h.hello else " without a ClientHello")

    def _finish(self, h: _Handshake, reason: str, detail: str) -> None:
        """Close a connection that did not authenticate and log it as dropped (no incident)."""
        if h.draining:
            h.sock.close()
            return
        with contextlib.suppress(OSError):  # reset rather than linger: nothing is owed to it
            h.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls._close(h.sock)
        self._drop(h.addr, reason, detail)

    def _drop(self, addr, reason: str, detail: str) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
            self._dirty = True
        start, logged, suppressed = self._drop_window
        now = time.monotonic()
        if now - start >= DROP_LOG_EVERY_S:
            self._flush_drop_log(True)
            start, logged, suppressed = now, 0, {}
        if logged < DROP_LOG_MAX:
            self._drop_window = (start, logged + 1, suppressed)
            self._event("dropped", {"reason": reason, "detail": detail, "addr": _addr(addr)})
        else:
            suppressed[reason] = suppressed.get(reason, 0) + 1
            self._drop_window = (start, logged, suppressed)

    def _flush_drop_log(self, force: bool) -> None:
        start, logged, suppressed = self._drop_window
        if not suppressed or not (force or time.monotonic() - start >= DROP_LOG_EVERY_S):
            return
        self._drop_window = (time.monotonic(), 0, {})
        self._event(
            "dropped",
            {
                "reason": "summary",
                "detail": f"{sum(suppressed.values())} more in {time.monotonic() - start:.0f} s",
                "counts": dict(suppressed),
                "handshakes": len(self._pending),
            },
        )

    def _refuse(self, err: tls.TriageLinkError, addr) -> None:
        item = {"kind": err.kind, "detail": err.detail, "addr": _addr(addr), "at": round(time.time(), 3)}
        with self._lock:
            self.refused += 1
            self.refusals = (self.refusals + [item])[-KEEP_REFUSALS:]
            self._record(err)
            self._save()
        self._event("refused", item)

    # -- the relay (main thread)

    def run(self) -> None:
        poll = select.poll()
        poll.register(self._master, select.POLLIN)
        poll.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            self._take_new(poll)
            if self._link is not None:
                self._hub_to_pty()
            self._pty_to_hub()
            if self._link is not None and self._link.eof:
                self._end_session(poll, "closed")
            if self._link is not None and self._link.wait(0) and not self._link.eof:
                continue  # decrypted bytes wait: no poll
            poll.poll(_IDLE_MS)
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)

    def _take_new(self, poll) -> None:
        while True:
            try:
                link, addr = self._incoming.get_nowait()
            except queue.Empty:
                return
            if self._link is not None:
                old = self.hub
                self._end_session(poll, "replaced")
                self._event("replaced", {"old": old, "by": link.peer})
            self._link = tls.TlsStreamLink(link)
            self._link_fd = self._link.fileno()
            poll.register(self._link_fd, select.POLLIN)
            hub = {
                "eui": link.peer,
                "addr": _addr(addr),
                "version": link.version,
                "suite": link.suite,
                "since": round(time.time(), 3),
            }
            with self._lock:
                self.hub = hub
                self.sessions += 1
                self._save()
            self._event("connected", hub)

    def _end_session(self, poll, why: str) -> None:
        link = self._link
        with contextlib.suppress(KeyError, ValueError):
            poll.unregister(self._link_fd)
        self._link = None
        self._link_fd = -1
        link.close()
        data = dict(self.hub or {}, reason=why)
        with self._lock:
            if link.error is not None:
                data["reason"] = str(link.error)
                self._record(link.error)
            self.hub = None
            self._save()
        self._event("disconnected", data)

    def _hub_to_pty(self) -> None:
        while True:
            data = self._link.read(_READ)
            if not data:
                return
            self._out.write(data)

    def _pty_to_hub(self) -> None:
        while True:
            try:
                data = os.read(self._master, _READ)
            except BlockingIOError:
                return
            except OSError as e:  # EIO: nobody holds the device side (we always do)
                if e.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            if self._link is not None and not self._link.eof:
                self._link.write(data)
            # else: no hub on the line, the bytes go nowhere (as on an unplugged cable)


def _addr(addr) -> str:
    try:
        return f"{addr[0]}:{addr[1]}"
    except (TypeError, IndexError):
        return str(addr)


# ----------------------------------------------------------------------------- dbch triage serve


def _print_event(args, kind: str, data: dict) -> None:
    if args.json:
        print(json.dumps({"event": kind, **data}, sort_keys=True, default=str), flush=True)
        return
    if kind == "connected":
        text = f"hub {data['eui']} connected from {data['addr']} ({data['version']}, {data['suite']})"
    elif kind == "refused":
        text = f"refused {data['addr']}: {data['kind']}: {data['detail']}"
    elif kind == "dropped" and data.get("reason") == "summary":
        text = (
            f"dropped {data['detail']} before authenticating: {data['counts']} ({data['handshakes']} handshakes held)"
        )
    elif kind == "dropped":
        text = f"dropped {data['addr']} before authenticating: {data['reason']}: {data['detail']}"
    elif kind == "disconnected":
        text = f"hub {data.get('eui')} disconnected: {data.get('reason')}"
    elif kind == "replaced":
        text = f"hub {(data.get('old') or {}).get('eui')} replaced by a new session of {data['by']}"
    elif kind == "incident":
        text = f"MAJOR SECURITY INCIDENT #{data['incident']}: {data['trigger']} {data['counts']} (notify DCC, Panel, SSC: SEC G3.5)"
    else:
        text = f"{kind} {json.dumps(data, default=str)}"
    print(f"triage: {text}", file=sys.stderr, flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from host_tools.cli import CommandError

    try:
        _REGISTRY.check_name(args.name)
        pki_dir = args.pki
        tool, cert, key, ca = tool_material(pki_dir, args.tool)
        expect = expected_euis(pki_dir, args.expect)
        listen = parse_hostport(args.listen)

        def make() -> TriageTool:
            try:
                return TriageTool(
                    name=args.name,
                    tool=tool,
                    cert=cert,
                    key=key,
                    ca=ca,
                    expect=expect,
                    listen=listen,
                    pki=str(_pki(pki_dir).dir),
                    handshake_timeout=args.handshake_timeout,
                    max_handshakes=args.max_handshakes,
                    max_handshakes_per_source=args.max_handshakes_per_source,
                    state_dir=_REGISTRY.server_dir(args.name),
                    on_event=lambda kind, data: _print_event(args, kind, data),
                )
            except tls.TriageLinkError as e:
                raise TriageToolError(f"the tool's certificate, key or CA cannot be used: {e}") from e

        holder: dict = {}

        def make_server() -> TriageTool:
            holder["tool"] = make()
            return holder["tool"]

        def ready(info: TriageInfo) -> None:
            holder["tool"].live = True
            spec = PORT_PREFIX if args.name == DEFAULT_NAME else f"{PORT_PREFIX}:{args.name}"
            if args.json:
                print(json.dumps({"event": "ready", "spec": spec, **info.to_json()}, sort_keys=True), flush=True)
            else:
                print(
                    f"triage tool {info.name} ({info.tool}) listening on {info.listen} for hub(s) {', '.join(info.expect)}\n"
                    f"technicians: --port {spec}  (pty {info.port})",
                    flush=True,
                )
                inc = info.incidents
                if holder["tool"].restored and (inc.get("totals") or inc.get("number")):
                    state = f"incident #{inc['number']} OPEN ({inc['trigger']})" if inc.get("open") else "none open"
                    print(
                        f"incidents restored from the last run: {state}, counts {inc.get('window') or {}}, "
                        f"lifetime {inc.get('totals') or {}}",
                        flush=True,
                    )

        _REGISTRY.serve(args.name, make_server, lambda t: t.info(), on_ready=ready)
    except TriageToolError as e:
        raise CommandError(str(e)) from e
    return 0


# ----------------------------------------------------------------------------- dbch triage connect

_HELP = """commands run over the triage link (the ordinary dbch commands, --port added):
  status | config get | config set ... | alerts [--wait S] [--follow] | firmware ...
  info (the session) | help | quit"""


def _session(info: TriageInfo) -> dict:
    return {
        "tool": info.name,
        "tool_cert": info.tool,
        "listen": info.listen,
        "pty": info.port,
        "hub": info.hub,
        "sessions": info.sessions,
        "refused": info.refused,
        "last_refusals": info.refusals[-5:],
    }


def _session_text(spec: str, s: dict) -> str:
    hub = s["hub"]
    if hub is None:
        head = f"triage tool {s['tool']} ({s['tool_cert']}) on {s['listen']}: waiting for a hub"
    else:
        head = (
            f"hub {hub['eui']} connected to triage tool {s['tool']} from {hub['addr']}\n"
            f"link      {hub['version']} {hub['suite']}, mutually authenticated\n"
            f"port      --port {spec}  (pty {s['pty']})"
        )
    lines = [head]
    h = s.get("hello")
    if h:
        lines.append(
            f"agent     {h.get('version')} on board {h.get('board')} ({h.get('band')} MHz), boot #{h.get('boot')}"
        )
    if s["refused"]:
        lines.append(f"refused   {s['refused']} connection(s); the last:")
        lines += [f"  {r['addr']} {r['kind']}: {r['detail']}" for r in s["last_refusals"]]
    return "\n".join(lines)


def run_command_line(words: list[str], spec: str, json_out: bool, timeout: float | None = None) -> int:
    """Run one dbch command (words, e.g. ["config", "get"]) over the triage port."""
    from host_tools import cli

    argv = list(words)
    if "--port" not in argv and "-p" not in argv:
        argv += ["--port", spec]
    if timeout is not None and "--timeout" not in argv:
        argv += ["--timeout", str(timeout)]
    if json_out and "--json" not in argv:
        argv.append("--json")
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse: a bad command line, already explained on stderr
        return int(e.code or 0) if isinstance(e.code, int) else 2


def cmd_connect(args: argparse.Namespace) -> int:
    from host_tools.cli import CommandError, emit
    from host_tools.connect import checked, open_client

    spec = args.port
    try:
        name = port_name(spec)
        _REGISTRY.check_name(name)
    except TriageToolError as e:
        raise CommandError(str(e)) from e
    info = read_state(name)
    if info is None:
        raise CommandError(f"no triage tool {name!r} is running: start it with `dbch triage serve --name {name}`")
    if args.words:
        words = args.words[1:] if args.words[0] == "--" else args.words
        return run_command_line(words, spec, args.json, args.timeout)
    result = _session(info)
    if info.hub is not None:
        client = open_client(argparse.Namespace(port=spec, baud=115200, timeout=args.timeout))
        try:
            result["hello"] = checked(client, "hello").data
        finally:
            client.transport.close()
    emit(args, result, _session_text(spec, result))
    if not (args.interactive or (sys.stdin.isatty() and not args.json)):
        return 0 if info.hub is not None else 3
    interactive = sys.stdin.isatty()
    rc = 0
    while True:
        if interactive:
            print(f"{spec}> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            print(f"dbch: {e}", file=sys.stderr)
            continue
        if not words:
            continue
        if words[0] in ("quit", "exit"):
            break
        if words[0] == "help":
            print(_HELP, file=sys.stderr)
            continue
        if words[0] == "info":
            now = read_state(name)
            if now is None:
                print(f"dbch: triage tool {name!r} has stopped", file=sys.stderr)
                return 1
            emit(args, _session(now), _session_text(spec, _session(now)))
            continue
        rc = run_command_line(words, spec, args.json, args.timeout)
        sys.stdout.flush()
    return rc


# ----------------------------------------------------------------------------- dbch triage dial

_UPY_DIAL = """
import sys
sys.path.insert(0, {root!r})
from agent.triage_link import serve_triage
from boards import sim
from hal.mcu import McuClock
from hal.sim.clock import FastForwardClock
from hal import tls


def rd(p):
    with open(p, "rb") as f:
        return f.read()


cfg = {{"mode": "tls", "cert": rd({cert!r}), "key": rd({key!r}), "ca": rd({ca!r}), "peer": {peer!r},
       "host": {host!r}, "port": {port}, "timeout": {timeout}}}
hal = sim.make_hal(storage_dir={fs!r}, eui={eui!r}, clock=FastForwardClock(McuClock()))
print("DIAL", tls.runtime())
try:
    hub = serve_triage(hal, cfg, board=sim, sessions={sessions}, max_failures={failures}, retry_ms={retry_ms})
except tls.TriageLinkError as e:
    print("REFUSED", e.kind, e.detail)
    sys.exit(1)
except KeyboardInterrupt:
    print("STOPPED")
    sys.exit(0)
print("RESULT", hub.incidents.count("auth_failed"), hub.incidents.number, len(hub.outbox))
"""


def _hub_fs(eui: str) -> Path:
    return _REGISTRY.cache_root().parent / "triage-hub" / eui.replace("-", "") / "flash"


def cmd_dial(args: argparse.Namespace) -> int:
    from host_tools.cli import CommandError, emit

    try:
        eui, cert, key, ca = hub_material(args.pki, args.eui)
        peer = args.tool or tool_material(args.pki, None)[0]
        host, port = parse_hostport(args.connect)
    except TriageToolError as e:
        raise CommandError(str(e)) from e
    fs = Path(args.fs).expanduser().resolve() if args.fs else _hub_fs(eui)
    fs.mkdir(parents=True, exist_ok=True)
    runtime = "micropython" if args.micropython else "cpython"
    if not args.json:
        print(
            f"hub {eui} ({runtime}) dialling {host}:{port}, expecting triage tool {peer}", file=sys.stderr, flush=True
        )
    if args.micropython:
        return _dial_micropython(args, eui, peer, host, port, fs)
    from agent.triage_link import serve_triage
    from boards import sim
    from hal.mcu import McuClock
    from hal.sim.clock import FastForwardClock

    stopping = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stopping.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    cfg = {"mode": "tls", "cert": cert, "key": key, "ca": ca, "peer": peer, "host": host, "port": port}
    cfg["timeout"] = args.timeout
    try:
        hal = sim.make_hal(storage_dir=str(fs), eui=eui, clock=FastForwardClock(McuClock()))
        hub = serve_triage(
            hal,
            cfg,
            board=sim,
            sessions=args.sessions,
            max_failures=args.max_failures,
            retry_ms=int(args.retry * 1000),
            stop=stopping.is_set,
        )
    except tls.TriageLinkError as e:
        raise CommandError(f"the hub refused its triage link configuration: {e}") from e
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
    result = {
        "eui": eui,
        "runtime": runtime,
        "fs": str(fs),
        "incidents": hub.incidents.snapshot(),
        "outbox": len(hub.outbox),
    }
    emit(args, result, f"hub {eui}: {hub.incidents.number} major incident(s), {len(hub.outbox)} event(s) in the outbox")
    return 0


def _dial_micropython(args, eui: str, peer: str, host: str, port: int, fs: Path) -> int:
    import shutil
    import tempfile

    from host_tools.cli import CommandError, emit
    from host_tools.pki import Pki

    exe = shutil.which("micropython")
    if exe is None:
        from host_tools.extras import missing

        raise CommandError(missing("vboard") or "micropython (the unix port) is not on PATH")
    pki = Pki(args.pki)
    d = pki.device_dir(eui)
    script = _UPY_DIAL.format(
        root=str(ROOT),
        cert=str(d / "cert.der"),
        key=str(d / "key.der"),
        ca=str(pki.ca().cert_der),
        peer=peer,
        host=host,
        port=port,
        timeout=args.timeout,
        fs=str(fs),
        eui=eui,
        sessions=args.sessions,
        failures=args.max_failures,
        retry_ms=int(args.retry * 1000),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="dbch-dial-", delete=False) as f:
        f.write(script)
    proc = subprocess.Popen([exe, f.name], stdout=subprocess.PIPE, text=True)
    # a stop request reaches the hub as Ctrl-C (KeyboardInterrupt): it ends cleanly
    previous = {
        s: signal.signal(s, lambda *_: proc.send_signal(signal.SIGINT)) for s in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        out, _ = proc.communicate()
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        os.unlink(f.name)
    result = {"eui": eui, "runtime": "micropython", "fs": str(fs), "exit": proc.returncode}
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["DIAL"]:
            result["tls"] = words[1]
        elif words[:1] == ["RESULT"]:
            result.update(auth_failed=int(words[1]), major_incidents=int(words[2]), outbox=int(words[3]))
        elif words[:1] == ["REFUSED"]:
            result["refused"] = line[len("REFUSED ") :]
        elif words[:1] == ["STOPPED"]:
            result["stopped"] = True
    if proc.returncode != 0:
        raise CommandError(
            f"the MicroPython hub ended with status {proc.returncode}: {result.get('refused', out[-500:])}"
        )
    emit(args, result, f"hub {eui} (micropython, {result.get('tls')}): outbox {result.get('outbox')} event(s)")
    return 0


# ----------------------------------------------------------------------------- dbch triage enrol


def enrol_config(pki_dir, eui: str, tool: str | None, host: str, port: int) -> dict:
    """The triage.set arguments for hub `eui`: agent.triage's TLS configuration (the hub's
    certificate and key, the CA, the tool's certificate name as "peer", all DER) and the Triage
    Tool's address. Checked against the policy the hub applies before it is sent."""
    from agent import triage

    name, cert, key, ca = hub_material(pki_dir, eui)
    peer = tool or tool_material(pki_dir, None)[0]
    cfg = {"mode": "tls", "host": host, "port": port, "cert": cert, "key": key, "ca": ca, "peer": peer}
    try:
        triage.tls_endpoint(cfg, False)  # the policy, and the material loads
    except tls.TriageLinkError as e:
        raise TriageToolError(f"the PKI material of hub {name} cannot be used for the triage link: {e}") from e
    return cfg


def parse_tool_address(text: str) -> tuple[str, int]:
    """HOST:PORT of a Triage Tool as a hub must dial it (both given; port 1-65535)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise TriageToolError(f"bad --tool {text!r}: give the address the hub dials, HOST:PORT (e.g. 192.0.2.10:4460)")
    try:
        n = int(port)
    except ValueError:
        raise TriageToolError(f"bad --tool {text!r}: the port is not a number") from None
    if not 0 < n < 65536:
        raise TriageToolError(f"bad --tool {text!r}: the port must be 1-65535")
    return host, n


def _enrol_answer(r, op: str, port: str) -> None:
    from agent.hub import RC_UNKNOWN_OP
    from host_tools.cli import CommandError

    if r.ok:
        return
    if r.rc == RC_UNKNOWN_OP:
        raise CommandError(
            f"the agent on {port} does not know {op} ({r.rc}): its firmware has no triage link; "
            "update it (`dbch firmware`) or flash a current agent, then enrol again"
        )
    raise CommandError(f"the hub on {port} refused {op}: {r.rc} {r.err or ''}".rstrip())


def cmd_enrol(args: argparse.Namespace) -> int:
    from host_tools.cli import CommandError, emit
    from host_tools.connect import checked, open_client

    if args.clear and (args.tool or args.hub or args.tool_name):
        raise CommandError(
            "--clear takes no --tool, --hub or --tool-name: it only makes the hub forget its triage link"
        )
    if not args.clear and not args.tool:
        raise CommandError("give --tool HOST:PORT (where the hub dials its Triage Tool), or --clear")
    try:
        address = parse_tool_address(args.tool) if not args.clear else None
        want = None
        if args.hub:
            from host_tools.pki import PkiError, normalize_eui

            try:
                want = normalize_eui(args.hub)
            except PkiError as e:
                raise TriageToolError(str(e)) from e
    except TriageToolError as e:
        raise CommandError(str(e)) from e
    client = open_client(args)
    try:
        hello = checked(client, "hello").data or {}
        eui = str(hello.get("eui") or "")
        if args.clear:
            r = checked(client, "triage.clear", {})
            _enrol_answer(r, "triage.clear", str(args.port))
            result = {"port": str(args.port), "eui": eui, "op": "triage.clear", "rc": r.rc, **(r.data or {})}
            emit(args, result, f"hub {eui} on {args.port}: triage link forgotten ({r.rc})")
            return 0
        if want is not None and eui and want.upper() != eui.upper():
            raise CommandError(
                f"the hub on {args.port} is {eui}, not {want}: a hub presents its own certificate "
                f"(drop --hub, or give --hub {eui} once `dbch pki device {eui.replace('-', '')}` has issued it)"
            )
        ident = want or eui
        if not ident:
            raise CommandError(f"the agent on {args.port} did not say its EUI: give --hub EUI")
        try:
            cfg = enrol_config(args.pki, ident, args.tool_name, *address)
        except TriageToolError as e:
            raise CommandError(str(e)) from e
        r = checked(client, "triage.set", cfg)
        _enrol_answer(r, "triage.set", str(args.port))
    finally:
        client.transport.close()
    result = {
        "port": str(args.port),
        "eui": ident,
        "op": "triage.set",
        "rc": r.rc,
        "host": cfg["host"],
        "tool_port": cfg["port"],
        "peer": cfg["peer"],
        **(r.data or {}),
    }
    emit(
        args,
        result,
        f"hub {ident} on {args.port} enrolled ({r.rc}): it dials triage tool {cfg['peer']} at "
        f"{cfg['host']}:{cfg['port']} over mutually authenticated TLS",
    )
    return 0


# ----------------------------------------------------------------------------- list / stop


def cmd_list(args: argparse.Namespace) -> int:
    from host_tools.cli import emit

    found = list_tools()
    lines = [
        f"{i.name}: {i.listen} as {i.tool}, pty {i.port}, hub {i.hub['eui'] if i.hub else '(none)'}, refused {i.refused}"
        for i in found
    ]
    emit(args, [i.to_json() for i in found], "\n".join(lines) or "no triage tool runs")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from host_tools.cli import CommandError, emit

    try:
        was = stop(args.name)
    except TriageToolError as e:
        raise CommandError(str(e)) from e
    emit(args, {"name": args.name, "stopped": was}, f"stopped {args.name}" if was else f"{args.name} was not running")
    return 0


def register(subparsers) -> None:
    from host_tools.cli import add_json_flag
    from host_tools.connect import add_port_args
    from host_tools.pki import ENV_DIR, default_dir

    top = subparsers.add_parser(
        "triage",
        help="the Triage System Interface: the facility's Triage Tool and a technician's session over TLS",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="triage_command", metavar="ACTION")
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])

    def pki_arg(p) -> None:
        p.add_argument("--pki", metavar="DIR", help=f"PKI directory (default ${ENV_DIR} or {default_dir()})")

    p = sub.add_parser(
        "serve",
        help="run the Triage Tool: accept the hub over TLS and expose its link as --port triage[:NAME]",
    )
    p.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="where hubs dial (default %(default)s)"
    )
    pki_arg(p)
    p.add_argument("--tool", metavar="NAME", help="the tool certificate to present (default: the only one in the PKI)")
    p.add_argument(
        "--expect",
        action="append",
        metavar="EUI",
        help="a hub EUI-64 to accept (repeatable; default: every hub with a certificate in the PKI)",
    )
    p.add_argument("--name", default=DEFAULT_NAME, help="this tool's name for --port triage:NAME (default %(default)s)")
    p.add_argument(
        "--handshake-timeout",
        type=float,
        default=HANDSHAKE_TIMEOUT_S,
        help="seconds a connection may take to authenticate (default %(default)g)",
    )
    p.add_argument(
        "--max-handshakes",
        type=int,
        default=MAX_HANDSHAKES,
        metavar="N",
        help="unauthenticated connections held at once; over it the oldest goes (default %(default)s)",
    )
    p.add_argument(
        "--max-handshakes-per-source",
        type=int,
        default=MAX_HANDSHAKES_PER_SOURCE,
        metavar="N",
        help="unauthenticated connections held at once from one address (default %(default)s)",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "connect",
        help="a technician's session over the triage link: the hub's identity, then commands",
        description="Without COMMAND: show the connected hub and the link, then (on a terminal, or with -i) "
        "read commands one per line - status, config get, config set ..., alerts ... - and run them over "
        "the triage link. With COMMAND: run that one command, e.g. `dbch triage connect config get`.",
    )
    p.add_argument("--port", "-p", default=PORT_PREFIX, help="the Triage Tool: triage[:NAME] (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    p.add_argument(
        "-i", "--interactive", action="store_true", help="read commands from stdin even if it is no terminal"
    )
    add_json_flag(p)
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND ...", help="a dbch command to run over the link")
    p.set_defaults(func=cmd_connect)

    p = sub.add_parser("dial", help="run a simulated hub that dials a Triage Tool (CPython or MicroPython)")
    p.add_argument(
        "--connect", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="the Triage Tool (default %(default)s)"
    )
    pki_arg(p)
    p.add_argument("--eui", help="the hub's EUI-64 (default: the only hub certificate in the PKI)")
    p.add_argument("--tool", metavar="NAME", help="the tool name the hub expects (default: the only tool in the PKI)")
    p.add_argument("--fs", metavar="DIR", help="the hub's storage directory (default: <cache>/dbch/triage-hub/EUI)")
    p.add_argument("--micropython", action="store_true", help="run the hub on the MicroPython unix port (mbedTLS)")
    p.add_argument("--sessions", type=int, help="end after this many sessions (default: dial again for ever)")
    p.add_argument("--max-failures", type=int, help="end after this many failed dials in a row")
    p.add_argument("--retry", type=float, default=5.0, help="seconds between dials (default 5)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for connect and handshake (default 10)")
    add_json_flag(p)
    p.set_defaults(func=cmd_dial)

    p = sub.add_parser(
        "enrol",
        help="give a hub its triage link: the Triage Tool's address and the hub's credentials from the PKI",
        description="Send a hub (--port) the configuration it needs to dial its Triage Tool itself: the "
        "tool's address (--tool HOST:PORT), the hub's own certificate and key and the CA from the PKI, and "
        "the name the tool's certificate must carry (one request, triage.set, answered I0). The hub's EUI is "
        "the one the board reports (--hub checks it). --clear makes the hub forget the link (triage.clear).",
    )
    add_port_args(p)
    pki_arg(p)
    p.add_argument("--tool", metavar="HOST:PORT", help="where the hub dials its Triage Tool")
    p.add_argument("--hub", metavar="EUI", help="the hub's EUI-64, checked against the board's (default: the board's)")
    p.add_argument(
        "--tool-name",
        metavar="NAME",
        help="the tool certificate name the hub expects (default: the only tool in the PKI)",
    )
    p.add_argument("--clear", action="store_true", help="make the hub forget its triage link instead")
    add_json_flag(p)
    p.set_defaults(func=cmd_enrol)

    p = sub.add_parser("list", help="list running Triage Tools")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("stop", help="stop a Triage Tool")
    p.add_argument("--name", default=DEFAULT_NAME, help="which one (default %(default)s)")
    add_json_flag(p)
    p.set_defaults(func=cmd_stop)


if __name__ == "__main__":
    from host_tools import cli

    sys.exit(cli.main(["triage", *sys.argv[1:]]))

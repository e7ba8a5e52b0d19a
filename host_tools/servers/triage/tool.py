"""The Triage Tool (`dbch triage serve`): it listens for hubs, authenticates each over TLS in one
non-blocking handshake loop, and puts the hub that got through on its pty (relay.PtyRelay).

One thread accepts TCP connections and runs every handshake at once (selectors), each with a
deadline; unauthenticated connections are bounded per source and in all (handshakes.Handshakes).
A refused handshake is counted in the state file and in the incident recorder (kept across
restarts, incidents.IncidentRecord); a connection that times out, closes or is evicted before
authenticating is only "dropped" (handshakes.DropLog).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

from agent import incidents
from hal import tls
from hal.tls_stream import TlsStreamLink
from host_tools.servers.ptys import PtyServer
from host_tools.servers.triage.handshakes import DropLog, Handshake, Handshakes, addr_text
from host_tools.servers.triage.incidents import INCIDENTS_FILE, IncidentRecord
from host_tools.servers.triage.registry import REGISTRY, TriageInfo, TriageToolError
from host_tools.servers.triage.relay import PtyRelay

HANDSHAKE_TIMEOUT_S = 10.0
MAX_HANDSHAKES = 128  # unauthenticated connections held at once, in all
MAX_HANDSHAKES_PER_SOURCE = 32  # ... from one source address
DRAIN_S = 1.0  # after a refused handshake, what the peer still sends is read and dropped this long
KEEP_REFUSALS = 20
_ACCEPT_BATCH = 64  # connections accepted per turn of the loop, so handshakes in progress go on
_LOOP_S = 0.2  # longest wait of the handshake loop (it checks the stop flag as often)
_READ = 4096


class TriageTool(PtyServer):
    """The facility's end: open() makes the pty and starts listening, run() relays until
    request_stop(), close() ends everything. on_event(kind, data) hears of connected, refused,
    dropped, disconnected, replaced, incident and error. state_dir: where the incident
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
        if not handshake_timeout > 0:
            raise TriageToolError("the handshake timeout must be more than 0 s")
        self.name = name
        self.tool = tool
        self.expect = list(expect)
        self.pki = pki
        self.handshake_timeout = handshake_timeout
        self.on_event = on_event or (lambda kind, data: None)
        try:
            self._endpoint = tls.server(cert, key, ca, self.expect, timeout=handshake_timeout)  # checks the material
        except tls.TriageLinkError as e:
            raise TriageToolError(f"the tool's certificate, key or CA cannot be used: {e}") from e
        self.listen_addr = listen
        self.listen = ""
        self.hub: dict | None = None
        self.sessions = 0
        self.refused = 0
        self.refusals: list[dict] = []
        self.dropped: dict[str, int] = {}
        self.incidents = incidents.Incidents(lambda report: self.on_event("incident", report))
        self.record = IncidentRecord(Path(state_dir) / INCIDENTS_FILE if state_dir is not None else None)
        self.restored = self.record.restore(self.incidents)
        self.started = time.time()
        self._pending = Handshakes(max_handshakes, max_handshakes_per_source)
        self._drops = DropLog(self.on_event, lambda: len(self._pending))
        self._relay = PtyRelay(self._connected, self._disconnected)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._lsock: socket.socket | None = None
        self._dirty = False  # counters changed since the state file was written
        self.live = False  # the state file is being kept (set once ServiceRegistry wrote it)

    @property
    def port(self) -> str:  # the pty technicians open
        return self._relay.port

    # -- lifecycle

    def open(self) -> str:
        self._relay.open()
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
        self._endpoint.context.sni_callback = self._hello
        t = threading.Thread(target=self._handshake_loop, name="triage-handshakes", daemon=True)
        t.start()
        self._threads.append(t)
        return self.port

    def run(self) -> None:
        """Relay between the pty and the hub (this thread) until request_stop()."""
        self._relay.run(self._stop.is_set)

    def request_stop(self) -> None:
        self._stop.set()
        self._relay.wake()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(_LOOP_S * 10 + 2)
        self._threads = []
        self._relay.close()
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None

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
            REGISTRY.write_state(self.info())

    def _record(self, err: tls.TriageLinkError) -> None:
        """Count a link error in the incident recorder (under self._lock) and keep the record."""
        if self.incidents.record_link_error(err) is None:
            return
        try:
            self.record.keep(self.incidents)
        except OSError as e:
            self.on_event("error", {"detail": f"cannot keep the incident record in {self.record.path}: {e}"})

    # -- hub sessions (the relay's thread)

    def _connected(self, link: TlsStreamLink, addr) -> None:
        hub = {
            "eui": link.peer,
            "addr": addr_text(addr),
            "version": link.version,
            "suite": link.suite,
            "since": round(time.time(), 3),
        }
        with self._lock:
            self.hub = hub
            self.sessions += 1
            self._save()
        self.on_event("connected", hub)

    def _disconnected(self, link: TlsStreamLink, why: str, by: str | None) -> None:
        old = self.hub
        data = dict(old or {}, reason=why)
        with self._lock:
            if link.error is not None:
                data["reason"] = str(link.error)
                self._record(link.error)
            self.hub = None
            self._save()
        self.on_event("disconnected", data)
        if by is not None:
            self.on_event("replaced", {"old": old, "by": by})

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
                self._drops.flush()
        finally:
            for h in self._pending:
                self._pending.remove(h)
                tls.close_quietly(h.sock)
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
                s = self._endpoint.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError) as e:
                conn.close()
                self._drop(addr, "closed", tls.describe(e))
                continue
            h = Handshake(s, addr, time.monotonic() + self.handshake_timeout)
            victim = self._pending.add(h)
            if victim is not None:
                self._unregister(sel, victim)
                self._finish(victim, "evicted", f"over the bound on handshakes, after {victim.age()}")
            sel.register(s, h.events, h)
            self._step(sel, h)  # its ClientHello may be here already

    def _oldest_out(self, sel) -> None:
        victim = self._pending.oldest()
        if victim is not None:
            self._pending.remove(victim)
            self._unregister(sel, victim)
            self._finish(victim, "evicted", "out of file descriptors")

    def _hello(self, sslsock, server_name, ctx) -> None:
        h = self._pending.get(sslsock)
        if h is not None:
            h.hello = True

    def _step(self, sel, h: Handshake) -> None:
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
            self._failed(sel, h, tls.TriageLinkError(tls.classify(e), tls.describe(e)))
            return
        self._pending.remove(h)
        self._unregister(sel, h)
        try:
            link = self._endpoint.checked(h.sock)  # the client's name; the version and suite
        except tls.TriageLinkError as e:
            tls.close_quietly(h.sock)
            self._refuse(e, h.addr)
            return
        self._relay.offer(link, h.addr)

    def _want(self, sel, h: Handshake, events: int) -> None:
        if h.events != events:
            h.events = events
            sel.modify(h.sock, events, h)

    def _failed(self, sel, h: Handshake, err: tls.TriageLinkError) -> None:
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

    def _drain(self, sel, h: Handshake) -> None:
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
    def _unregister(sel, h: Handshake) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            sel.unregister(h.sock)

    def _finish(self, h: Handshake, reason: str, detail: str) -> None:
        """Close a connection that did not authenticate and log it as dropped (no incident)."""
        if h.draining:
            h.sock.close()
            return
        with contextlib.suppress(OSError):  # reset rather than linger: nothing is owed to it
            h.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls.close_quietly(h.sock)
        self._drop(h.addr, reason, detail)

    def _drop(self, addr, reason: str, detail: str) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
            self._dirty = True
        self._drops.add(reason, detail, addr)

    def _refuse(self, err: tls.TriageLinkError, addr) -> None:
        item = {"kind": err.kind, "detail": err.detail, "addr": addr_text(addr), "at": round(time.time(), 3)}
        with self._lock:
            self.refused += 1
            self.refusals = (self.refusals + [item])[-KEEP_REFUSALS:]
            self._record(err)
            self._save()
        self.on_event("refused", item)


def serve(name: str, on_ready, **options) -> None:
    """Be the Triage Tool called `name` (a TriageTool of `options`, its incident record kept in
    its directory) until SIGTERM, SIGINT or SIGHUP; on_ready(tool, info) once it listens and its
    state file is written."""
    made: list[TriageTool] = []

    def make() -> TriageTool:
        made.append(TriageTool(name=name, state_dir=REGISTRY.server_dir(name), **options))
        return made[0]

    def ready(info: TriageInfo) -> None:
        made[0].live = True
        on_ready(made[0], info)

    REGISTRY.serve(name, make, TriageTool.info, on_ready=ready)

"""The pty a Triage Tool puts in front of its hub: PtyRelay copies bytes between it and the hub's
TLS link, one hub session at a time, the way `dbch vboard` exposes a board.

Linux only (ptys).
"""

from __future__ import annotations

import contextlib
import queue
import select

from hal.tls_stream import TlsStreamLink
from host_tools.servers.ptys import PtyWriter, WakePipe, close_fds, open_pty, read_some

_PTY_WAIT_S = 0.5  # longest wait for room in the pty before hub output is dropped
_IDLE_MS = 200
_READ = 4096


class PtyRelay:
    """The pty technicians open and the hub's link behind it.

    open() makes the pty and returns its path; offer(link, addr) hands over a hub's link that has
    just authenticated (a hal.tls TlsLink, from any thread); run(stopped) copies bytes both ways
    until stopped() is true, woken early by wake(); close() ends everything. One hub session at
    a time: a new link replaces the one on the line. on_start(link, addr) hears of each session
    that starts, on_end(link, why, by) of each that ends (link: a hal.tls_stream.TlsStreamLink, whose
    .error is what failed, if anything; why: "closed" or "replaced"; by: the peer replacing it)."""

    def __init__(self, on_start, on_end):
        self.on_start = on_start
        self.on_end = on_end
        self.port = ""
        self._link: TlsStreamLink | None = None
        self._link_fd = -1
        self._incoming: queue.Queue = queue.Queue()
        self._master = self._slave = -1
        self._waker: WakePipe | None = None
        self._out: PtyWriter | None = None

    def open(self) -> str:
        self._master, self._slave, self.port = open_pty()
        self._out = PtyWriter(self._master, wait_s=_PTY_WAIT_S)
        self._waker = WakePipe()
        return self.port

    def offer(self, link, addr) -> None:
        self._incoming.put((link, addr))
        self.wake()

    def wake(self) -> None:
        if self._waker is not None:
            self._waker.wake()

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        for link, _ in self._offered():
            link.close()
        close_fds(self._master, self._slave)
        self._master = self._slave = -1
        if self._waker is not None:
            self._waker.close()

    def run(self, stopped) -> None:
        poll = select.poll()
        poll.register(self._master, select.POLLIN)
        poll.register(self._waker.fd, select.POLLIN)
        while not stopped():
            self._take_new(poll)
            if self._link is not None:
                self._hub_to_pty()
            self._pty_to_hub()
            if self._link is not None and self._link.eof:
                self._end_session(poll, "closed")
            if self._link is not None and self._link.wait(0) and not self._link.eof:
                continue  # decrypted bytes wait: no poll
            poll.poll(_IDLE_MS)
            self._waker.drain()

    def _offered(self):
        """The (link, addr) offered and not taken yet, oldest first."""
        while True:
            try:
                yield self._incoming.get_nowait()
            except queue.Empty:
                return

    def _take_new(self, poll) -> None:
        for link, addr in self._offered():
            if self._link is not None:
                self._end_session(poll, "replaced", link.peer)
            self._link = TlsStreamLink(link)
            self._link_fd = self._link.fileno()
            poll.register(self._link_fd, select.POLLIN)
            self.on_start(self._link, addr)

    def _end_session(self, poll, why: str, by: str | None = None) -> None:
        link = self._link
        with contextlib.suppress(KeyError, ValueError):
            poll.unregister(self._link_fd)
        self._link = None
        self._link_fd = -1
        link.close()
        self.on_end(link, why, by)

    def _hub_to_pty(self) -> None:
        while True:
            data = self._link.read(_READ)
            if not data:
                return
            self._out.write(data)

    def _pty_to_hub(self) -> None:
        while True:
            data = read_some(self._master, _READ)  # b"" (EIO): nobody holds the device side (we always do)
            if not data:
                return
            if self._link is not None and not self._link.eof:
                self._link.write(data)
            # else: no hub on the line, the bytes go nowhere (as on an unplugged cable)

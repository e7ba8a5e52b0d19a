"""The Triage Tool's unauthenticated connections: the handshakes it holds, bounded per source
address and in all, and the log of those dropped before authenticating."""

from __future__ import annotations

import contextlib
import selectors
import time

from host_tools.servers.triage.registry import TriageToolError

DROP_LOG_EVERY_S = 10.0  # dropped connections: a few logged one by one per interval, then a summary
DROP_LOG_MAX = 10


def addr_text(addr) -> str:
    """HOST:PORT of a socket address."""
    try:
        return f"{addr[0]}:{addr[1]}"
    except (TypeError, IndexError):
        return str(addr)


class Handshake:
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

    def age(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s" + ("" if self.hello else " without a ClientHello")


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
        self.by_source: dict[str, list[Handshake]] = {}

    def __len__(self) -> int:
        return len(self.by_sock)

    def __iter__(self):
        return iter(list(self.by_sock.values()))

    def get(self, sock) -> Handshake | None:
        return self.by_sock.get(sock)

    def add(self, h: Handshake) -> Handshake | None:
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

    def remove(self, h: Handshake) -> None:
        if self.by_sock.pop(h.sock, None) is None:
            return
        group = self.by_source.get(h.source, [])
        with contextlib.suppress(ValueError):
            group.remove(h)
        if not group:
            self.by_source.pop(h.source, None)

    def rekey(self, h: Handshake, sock) -> None:
        """h's socket became `sock` (a refused connection being drained)."""
        self.by_sock.pop(h.sock, None)
        h.sock = sock
        self.by_sock[sock] = h

    @staticmethod
    def _pick(group: list[Handshake]) -> Handshake:
        for h in group:  # oldest first
            if h.draining:
                return h
        for h in group:
            if not h.hello:
                return h
        return group[0]

    def next_deadline(self) -> float | None:
        return min((h.deadline for h in self.by_sock.values()), default=None)

    def oldest(self) -> Handshake | None:
        return min(self.by_sock.values(), key=lambda h: h.started, default=None)


class DropLog:
    """Connections dropped before authenticating, as "dropped" events: the first few of each
    interval one by one, then the rest counted and told in one summary at the end of the
    interval. event(kind, data) tells them; held() is how many handshakes are held now."""

    def __init__(self, event, held):
        self._event = event
        self._held = held
        self._start = 0.0
        self._logged = 0
        self._suppressed: dict[str, int] = {}

    def add(self, reason: str, detail: str, addr) -> None:
        now = time.monotonic()
        if now - self._start >= DROP_LOG_EVERY_S:
            self.flush(True)
            self._start, self._logged, self._suppressed = now, 0, {}
        if self._logged < DROP_LOG_MAX:
            self._logged += 1
            self._event("dropped", {"reason": reason, "detail": detail, "addr": addr_text(addr)})
        else:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1

    def flush(self, force: bool = False) -> None:
        """The summary of the interval, if any was suppressed and it is over (or `force`)."""
        start, suppressed = self._start, self._suppressed
        if not suppressed or not (force or time.monotonic() - start >= DROP_LOG_EVERY_S):
            return
        self._start, self._logged, self._suppressed = time.monotonic(), 0, {}
        self._event(
            "dropped",
            {
                "reason": "summary",
                "detail": f"{sum(suppressed.values())} more in {time.monotonic() - start:.0f} s",
                "counts": dict(suppressed),
                "handshakes": self._held(),
            },
        )

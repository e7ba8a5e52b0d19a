"""The front's durable delivery queue: each Service Response and DCC Alert waiting for its User's
receive URL is a file on disk until the User's endpoint answers 2xx.

A delivery is written whole and synced (file and directory) before the front goes on: before the
hub's alert is acknowledged, before a request's answer is counted as sent. It stays until a 2xx,
however long the endpoint is down (nothing expires), and a front that is stopped or dies finds it
again when it starts. Retries back off: `base` seconds after the first failure, doubling up to
`cap`; the due time is wall-clock time, kept in the file, so a restart keeps the schedule. Each
delivery carries the ResponseID its document holds: the receiver drops a second copy (a 2xx that
was lost on its way back makes the front send once more).

Layout (`directory`):
    <created ns>-<n>.json   {"response_id", "url", "xml", "attempts", "due", "created", "last_error"}
    counter                 the last ResponseID counter handed out
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from host_tools.files import write_file, write_json

DEFAULT_BASE = 1.0
DEFAULT_CAP = 300.0


@dataclass
class Delivery:
    name: str  # its file name
    response_id: str
    url: str
    xml: str
    attempts: int = 0
    due: float = 0.0
    created: float = 0.0
    last_error: str = ""

    def record(self) -> dict:
        d = asdict(self)
        del d["name"]
        return d


class DeliveryQueue:
    """The deliveries in `directory`. clock: wall-clock seconds (time.time; tests give a fast one)."""

    def __init__(
        self,
        directory: Path | str,
        *,
        base: float = DEFAULT_BASE,
        cap: float = DEFAULT_CAP,
        clock: Callable[[], float] = time.time,
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.base, self.cap, self.clock = base, cap, clock
        self._lock = threading.Lock()
        self._n = 0
        self.added = threading.Event()  # set when a delivery is put: the deliverer wakes

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones."""
        return min(self.cap, self.base * 2 ** max(0, attempts - 1))

    def next_counter(self) -> int:
        """A ResponseID counter above every one handed out before (kept on disk): the time in
        milliseconds, as DCC Boxed counts, or one more than the last when that is not larger."""
        with self._lock:
            path = self.dir / "counter"
            try:
                last = int(path.read_text())
            except (OSError, ValueError):
                last = 0
            value = max(last + 1, int(self.clock() * 1000))
            write_file(path, b"%d\n" % value, sync=True)
            return value

    def put(self, response_id: str, url: str, xml: bytes) -> Delivery:
        """Queue one document for `url`, on disk when this returns."""
        with self._lock:
            self._n += 1
            now = self.clock()
            name = "{:020d}-{:06d}.json".format(time.time_ns(), self._n)
            d = Delivery(name, response_id, url, xml.decode("utf-8"), 0, now, now)
            write_json(self.dir / name, d.record(), indent=None, sync=True)
        self.added.set()
        return d

    def _read(self, path: Path) -> Delivery | None:
        try:
            return Delivery(path.name, **json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # gone meanwhile, or a temporary file

    def pending(self) -> list[Delivery]:
        """Every delivery waiting, oldest first."""
        found = (self._read(p) for p in sorted(self.dir.glob("*.json")))
        return [d for d in found if d is not None]

    def due(self, now: float | None = None) -> list[Delivery]:
        now = self.clock() if now is None else now
        return [d for d in self.pending() if d.due <= now]

    def next_due(self) -> float | None:
        """When the earliest waiting delivery is due, or None if none waits."""
        return min((d.due for d in self.pending()), default=None)

    def done(self, d: Delivery) -> None:
        """A 2xx came: the delivery is gone from disk."""
        with contextlib.suppress(FileNotFoundError):
            (self.dir / d.name).unlink()
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def failed(self, d: Delivery, error: str) -> Delivery:
        """It failed: tried again after the backoff."""
        d.attempts += 1
        d.last_error = error
        d.due = self.clock() + self.backoff(d.attempts)
        write_json(self.dir / d.name, d.record(), indent=None, sync=True)
        return d

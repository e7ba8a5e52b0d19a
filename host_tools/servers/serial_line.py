"""A board's serial line as the virtual board's relay sees it: a UART's pace (ByteRateLimiter),
the MicroPython REPL's modes in the board's output (ReplModeTracker, the banners it looks for) and
the tail of that output kept in a file (ConsoleTail).
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Callable

from host_tools.files import write_file

CONSOLE_KEEP = 8 * 1024  # bytes of the board's most recent output kept in the console file

SOFT_REBOOT_LINE = b"MPY: soft reboot\r\n"
RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER_END = b'Type "help()" for more information.\r\n'
# After a soft reset in the raw REPL the new interpreter starts at the friendly REPL and is sent
# Ctrl-A; its friendly banner is cut so the link sees what a board prints: boot output, then the
# raw REPL banner.
FRIENDLY_BEFORE_RAW = re.compile(
    rb'MicroPython [^\r\n]*\r\nType "help\(\)" for more information\.\r\n>>> \r\n(?=raw REPL; CTRL-B to exit\r\n)'
)


class ByteRateLimiter:
    """Paces bytes at `rate` per second as a UART shifting 10 bits a byte does: never faster.

    While there are bytes to send the line shifts without a pause, so the relay that moves them
    may wake late and still carry the line rate: the time it slept is line time, and the bytes
    due by then go at once. `available()` is how many bytes have come off the line by now,
    `consume(n)` records n passed on, `wait_time(n)` is how long until n of them (at most `batch`,
    2 ms of the line: how often a busy relay wakes) have. `hold()` stops the line: nothing to
    send, or the receiver takes no more; it shifts again from the next `available()` or
    `consume()` on, with no credit for the time it stood still (a byte written to an idle UART
    arrives a byte's time later).
    """

    def __init__(self, rate: float, batch: int | None = None, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.batch = max(1, int(batch if batch is not None else self.rate / 500))
        self._clock = clock
        self._credit = 0.0
        self._last = clock()
        self._held = True

    @classmethod
    def for_baud(cls, baud: int, clock: Callable[[], float] = time.monotonic) -> ByteRateLimiter:
        return cls(baud / 10.0, clock=clock)

    def _refill(self, now: float | None) -> None:
        now = self._clock() if now is None else now
        if self._held:
            self._held = False  # it shifts from now: the time it stood still earns nothing
        elif now > self._last:
            self._credit += (now - self._last) * self.rate
        self._last = max(self._last, now)

    def hold(self, now: float | None = None) -> None:
        self._refill(now)
        self._credit = 0.0
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    def available(self, now: float | None = None) -> int:
        self._refill(now)
        return int(self._credit + 1e-9)

    def consume(self, n: int, now: float | None = None) -> None:
        self._refill(now)
        self._credit -= n

    def wait_time(self, n: int = 1, now: float | None = None) -> float:
        self._refill(now)
        n = min(n, self.batch)
        missing = n - self._credit
        return 0.0 if missing <= 1e-9 else missing / self.rate


class ReplModeTracker:
    """Follows the board's output to know whether its REPL is the raw one (for soft reset)."""

    _MARKERS = ((RAW_REPL_BANNER, True), (FRIENDLY_BANNER_END, False))
    _KEEP = max(len(m) for m, _ in _MARKERS) - 1

    def __init__(self, raw: bool = False):
        self.raw = raw
        self._tail = b""

    def reset(self, raw: bool) -> None:
        self.raw = raw
        self._tail = b""

    def feed(self, data: bytes) -> None:
        buf = self._tail + bytes(data)
        best_end = -1
        for marker, raw in self._MARKERS:
            i = buf.rfind(marker)
            end = i + len(marker)
            # a marker wholly inside the kept tail was already seen
            if i >= 0 and end > len(self._tail) and end > best_end:
                best_end, self.raw = end, raw
        self._tail = buf[-self._KEEP :]


class ConsoleTail:
    """The last `keep` bytes a board printed, kept in the file `path` (None: kept nowhere).

    add(data) takes output; the file is rewritten whole (readers never see half a file) by
    write(), which the relay calls at once when the board ends and otherwise once due() (at most
    every `every` seconds while output flows) has come.
    """

    def __init__(self, path: Path | str | None, keep: int = CONSOLE_KEEP, every: float = 0.2):
        self.path = Path(path) if path is not None else None
        self.keep = keep
        self.every = every
        self._tail = bytearray()
        self._since: float | None = None  # when output came that the file does not have yet

    def add(self, data: bytes) -> None:
        if self.path is None:
            return
        self._tail += data
        del self._tail[: -self.keep]
        if self._since is None:
            self._since = time.monotonic()

    def due(self) -> float | None:
        """When the file is next to be written (time.monotonic()), None if it has everything."""
        return None if self._since is None else self._since + self.every

    def write(self) -> None:
        self._since = None
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            write_file(self.path, bytes(self._tail))

"""The virtual board's launcher: it owns the pty clients open, runs and restarts the MicroPython
unix port on a second pty (host_tools.servers.unix_port) and relays bytes between the two the way
a board's UART would (host_tools.servers.serial_line). What that means for a client is told in
host_tools.servers.vboard.

Linux only (ptys, /proc, pidfd).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Callable

from host_tools.firmware.hardware import hardware_image
from host_tools.servers.ptys import PtyServer, WakePipe, close_fds, open_pty, read_some
from host_tools.servers.serial_line import (
    FRIENDLY_BEFORE_RAW,
    RAW_REPL_BANNER,
    SOFT_REBOOT_LINE,
    ByteRateLimiter,
    ConsoleTail,
    ReplModeTracker,
)
from host_tools.servers.unix_port import (
    HARD_RESET_STATUS,
    check_baud,
    child_setup,
    interpreter_argv,
    parse_heap,
    sigint_caught,
)

_QUEUE_MAX = 64 * 1024  # bytes held per direction before the relay stops reading (back-pressure)
_HUP_RECHECK_S = 0.02  # how often a board nobody is connected to looks for a client
_RESPAWN_MIN_S = 0.2  # minimum time between two interpreter starts (a crash loop stays cheap)
_RAW_HOLD_S = 3.0  # longest time output is held while the raw REPL banner is awaited
_CTRL_C = 0x03


class VirtualBoard(PtyServer):
    """The launcher: owns the client pty, runs and restarts the interpreter, relays bytes.

    Use as a context manager or call open()/close(); run() relays until request_stop().
    request_stop() and request_reset() may be called from signal handlers or other threads.
    """

    def __init__(
        self,
        fs: Path | str,
        *,
        baud: int | None = None,
        heap: str | None = None,
        name: str | None = None,
        python: str | None = None,
        console: Path | str | None = None,
    ):
        self.fs = Path(fs).expanduser().resolve()
        self.console = ConsoleTail(console)  # the output's tail, kept in the file `console`
        self.baud = check_baud(baud)
        self.heap = parse_heap(heap)
        self.name = name
        self.python = python or sys.executable
        self.port: str | None = None
        self.boots = 0  # interpreter starts so far (power-on counts)
        self._m1 = self._m2 = self._s2 = -1
        self._waker: WakePipe | None = None
        self._child: subprocess.Popen | None = None
        self._pidfd = -1
        self._spawned_at = 0.0
        self._pending_spawn: tuple[bool, float] | None = None  # (raw, not before)
        self._inq = bytearray()  # client -> board
        self._outq = bytearray()  # board -> client
        self._hold: bytearray | None = None  # board output held until the raw REPL banner
        self._hold_until = 0.0
        self._tracker = ReplModeTracker()
        self._in_lim = ByteRateLimiter.for_baud(self.baud) if self.baud else None
        self._out_lim = ByteRateLimiter.for_baud(self.baud) if self.baud else None
        self._connected = False
        self._hup_poll: select.poll | None = None
        self._stop = False
        self._reset = False
        self.hardware = hardware_image()  # its simulated world (host_tools.firmware.hardware), mounted at each boot

    # -- lifecycle

    @property
    def pid(self) -> int | None:
        """The pid of the current interpreter process, if one runs."""
        return self._child.pid if self._child and self._child.poll() is None else None

    def open(self) -> str:
        """Create the ptys and power the board on; returns the port path."""
        self.fs.mkdir(parents=True, exist_ok=True)
        self._m1, s1, self.port = open_pty()
        os.close(s1)  # no client yet: the master now reports HUP until someone opens the port
        self._m2, self._s2, _ = open_pty()
        self._waker = WakePipe()
        self._hup_poll = select.poll()
        self._hup_poll.register(self._m1, select.POLLIN)
        self.console.write()  # what an earlier run printed is not this board's
        self._spawn(raw=False)
        return self.port

    def close(self) -> None:
        """Power off: end the interpreter and release the ptys (the port path disappears)."""
        self._kill_child()
        if self.console.due() is not None:
            self.console.write()
        close_fds(self._m1, self._m2, self._s2)
        self._m1 = self._m2 = self._s2 = -1
        if self._waker is not None:
            self._waker.close()

    def request_stop(self) -> None:
        self._stop = True
        self._wake()

    def request_reset(self) -> None:
        """Press the reset button: a hard reset (friendly REPL, boot.py and main.py run)."""
        self._reset = True
        self._wake()

    def _wake(self) -> None:
        if self._waker is not None:
            self._waker.wake()

    # -- the interpreter

    def _spawn(self, raw: bool) -> None:
        self._pending_spawn = None
        with contextlib.suppress(termios.error):
            termios.tcflush(self._s2, termios.TCIFLUSH)  # a rebooting board loses what was in its RX buffer
        with contextlib.suppress(termios.error):
            tty.setraw(self._s2, termios.TCSANOW)
        if raw:
            os.write(self._m2, b"\x01")  # the new interpreter enters the raw REPL at once
            self._hold = bytearray()
            self._hold_until = time.monotonic() + _RAW_HOLD_S
        self._tracker.reset(raw)
        env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
        self._child = subprocess.Popen(
            interpreter_argv(self.fs, raw=raw, heap=self.heap, python=self.python, hardware=self.hardware),
            stdin=self._s2,
            stdout=self._s2,
            stderr=self._s2,
            cwd=str(self.fs),
            env=env,
            start_new_session=True,
            preexec_fn=child_setup,
        )
        self._spawned_at = time.monotonic()
        self.boots += 1
        self._pidfd = -1
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self._pidfd = os.pidfd_open(self._child.pid)

    def _kill_child(self) -> int | None:
        child, self._child = self._child, None
        if self._pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = -1
        if child is None:
            return None
        if child.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                child.kill()
        try:
            return child.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            return None

    def _on_child_exit(self) -> None:
        rc = self._kill_child()
        self._read_board(drain=True)
        self._flush_hold()
        if rc == HARD_RESET_STATUS:
            raw = False
        else:
            # Ctrl-D, sys.exit(), machine.soft_reset(), or a crash: a soft reboot in the same REPL
            raw = self._tracker.raw
            self._queue_out(SOFT_REBOOT_LINE)
        self.console.write()  # what it printed before it ended, at once
        self._schedule_spawn(raw)

    def _hard_reset(self) -> None:
        self._reset = False
        self._kill_child()
        self._read_board(drain=True)
        self._flush_hold()
        self._schedule_spawn(False)

    def _schedule_spawn(self, raw: bool) -> None:
        self._pending_spawn = (raw, self._spawned_at + _RESPAWN_MIN_S)

    # -- byte relay

    def _queue_out(self, data: bytes) -> None:
        self.console.add(data)
        if self._hold is not None:
            self._hold += data
            if RAW_REPL_BANNER in self._hold:
                self._outq += FRIENDLY_BEFORE_RAW.sub(b"", bytes(self._hold), count=1)
                self._hold = None
            elif len(self._hold) > _QUEUE_MAX:
                self._flush_hold()
        else:
            self._outq += data

    def _flush_hold(self) -> None:
        if self._hold is not None:
            self._outq += self._hold
            self._hold = None

    def _read_board(self, drain: bool = False) -> None:
        while len(self._outq) < _QUEUE_MAX or drain:
            data = read_some(self._m2)
            if not data:
                return
            self._tracker.feed(data)
            self._queue_out(data)

    def _read_client(self) -> None:
        while len(self._inq) < _QUEUE_MAX:
            data = read_some(self._m1)
            if data is None:
                return
            if not data:  # EIO: the last client closed the port
                self._set_connected(False)
                return
            self._inq += data

    def _check_client(self) -> None:
        """A client is connected while someone holds the pty's device side open (no HUP)."""
        events = self._hup_poll.poll(0) if self._hup_poll else []
        flags = events[0][1] if events else 0
        if flags & select.POLLIN:
            self._read_client()
        self._set_connected(not (flags & select.POLLHUP))

    def _set_connected(self, connected: bool) -> None:
        if self._connected and not connected:
            # what the last client left unread must not greet the next one
            with contextlib.suppress(termios.error):
                termios.tcflush(self._m1, termios.TCOFLUSH)
        self._connected = connected

    def _pump_out(self, now: float) -> None:
        self._pump(self._outq, self._out_lim, now, self._to_client)

    def _pump_in(self, now: float) -> None:
        self._pump(self._inq, self._in_lim, now, self._to_board)

    @staticmethod
    def _pump(queue: bytearray, limiter: ByteRateLimiter | None, now: float, send) -> None:
        """Pass on what `queue` holds, as fast as `limiter` (the baud rate, if any) lets it:
        send(data) returns how much of `data` it took and how much it tried to (both may be
        less than all of it); the bytes taken leave the queue, and it stops at a short write. The
        line stands still while the queue is empty or the receiver takes no more (limiter.hold)."""
        while queue:
            n = len(queue)
            if limiter:
                n = min(n, limiter.available(now))
                if n <= 0:
                    return
            taken, tried = send(bytes(queue[:n]))
            if limiter:
                limiter.consume(taken, now)
            del queue[:taken]
            if taken < tried:
                break
        if limiter:
            limiter.hold(now)

    def _to_client(self, data: bytes) -> tuple[int, int]:
        if not self._connected:
            return len(data), len(data)  # nobody listens: the bytes go nowhere, at line speed
        try:
            return os.write(self._m1, data), len(data)
        except (BlockingIOError, InterruptedError):
            return 0, len(data)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            self._set_connected(False)
            return len(data), len(data)

    def _to_board(self, data: bytes) -> tuple[int, int]:
        """Bytes up to a Ctrl-C, or the Ctrl-C alone: a KeyboardInterrupt when the interpreter
        catches SIGINT, else a byte on its stdin."""
        cut = data.find(_CTRL_C)
        if cut == 0:
            child = self._child
            if child is not None and child.poll() is None and sigint_caught(child.pid):
                os.kill(child.pid, signal.SIGINT)  # KeyboardInterrupt, and the byte is consumed
                return 1, 1
            return self._write_board(data[:1]), 1
        if cut > 0:
            data = data[:cut]
        return self._write_board(data), len(data)

    def _write_board(self, data: bytes) -> int:
        try:
            return os.write(self._m2, data)
        except (BlockingIOError, InterruptedError):
            return 0

    # -- the loop

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Relay and supervise until request_stop() (or `until()` returns true)."""
        if self._m1 < 0:
            self.open()
        poller = select.poll()
        while not self._stop and not (until and until()):
            self.step(poller)

    def step(self, poller: select.poll | None = None, max_wait: float = 0.5) -> None:
        """One round of the relay: move what can move, then wait for something to do."""
        poller = poller or select.poll()
        now = time.monotonic()
        if self._reset:
            self._hard_reset()
        if self._child is not None and self._pidfd < 0 and self._child.poll() is not None:
            self._on_child_exit()
        if self._pending_spawn and now >= self._pending_spawn[1]:
            self._spawn(self._pending_spawn[0])
        if self._hold is not None and now >= self._hold_until:
            self._flush_hold()
        due = self.console.due()
        if due is not None and now >= due:
            self.console.write()
        self._check_client()
        self._pump_in(now)
        self._pump_out(now)

        timeout = max_wait
        fds: dict[int, int] = {self._waker.fd: select.POLLIN}
        if self._connected:
            ev = select.POLLIN if len(self._inq) < _QUEUE_MAX else 0
            if self._outq and (not self._out_lim or self._out_lim.available(now) > 0):
                ev |= select.POLLOUT
            fds[self._m1] = ev
        else:
            timeout = min(timeout, _HUP_RECHECK_S)
        ev2 = select.POLLIN if len(self._outq) < _QUEUE_MAX else 0
        if self._inq and (not self._in_lim or self._in_lim.available(now) > 0):
            ev2 |= select.POLLOUT
        if ev2:
            fds[self._m2] = ev2
        if self._pidfd >= 0:
            fds[self._pidfd] = select.POLLIN
        elif self._child is not None:
            timeout = min(timeout, 0.05)
        # wake for the pacing only when it is what holds bytes back (else poll waits for the fd)
        if self._outq and self._out_lim and (not self._connected or not self._out_lim.available(now)):
            timeout = min(timeout, self._out_lim.wait_time(len(self._outq), now))
        if self._inq and self._in_lim and not self._in_lim.available(now):
            timeout = min(timeout, self._in_lim.wait_time(len(self._inq), now))
        if self._pending_spawn:
            timeout = min(timeout, max(0.0, self._pending_spawn[1] - now))
        if self._hold is not None:
            timeout = min(timeout, max(0.0, self._hold_until - now))
        if self.console.due() is not None:
            timeout = min(timeout, max(0.0, self.console.due() - now))

        for fd, ev in fds.items():
            poller.register(fd, ev)
        try:
            events = poller.poll(max(0, int(timeout * 1000 + 0.999)))
        finally:
            for fd in fds:
                poller.unregister(fd)

        for fd, ev in events:
            if fd == self._waker.fd:
                self._waker.drain()
            elif fd == self._m1:
                if ev & select.POLLIN:
                    self._read_client()
                if ev & (select.POLLHUP | select.POLLERR):
                    self._set_connected(False)
            elif fd == self._m2:
                if ev & select.POLLIN:
                    self._read_board()
            elif fd == self._pidfd:
                self._on_child_exit()

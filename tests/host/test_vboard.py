"""The virtual board: the real MicroPython unix port on a pty, driven by mpremote and pyserial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

serial = pytest.importorskip("serial")

from host_tools.servers import vboard  # noqa: E402
from host_tools.servers.serial_line import ByteRateLimiter, ReplModeTracker  # noqa: E402
from host_tools.servers.unix_port import BOOT_FILE, HARD_RESET_STATUS, interpreter_argv  # noqa: E402
from host_tools.servers.vboard import VBoardError  # noqa: E402
from tests.kits.cachekit import private_cache  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NAME = "t"

# ----------------------------------------------------------------------------- helpers


def mpremote(port: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def read_until(link, marker: bytes) -> bytes:
    data = link.read_until(marker)
    assert data.endswith(marker), f"no {marker!r} from the board; got {data!r}"
    return data


def wait_for(check, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_link(port: str):
    link = serial.Serial(port, timeout=10)
    time.sleep(0.1)  # let the board see its client before it prints what we wait for
    return link


def boots(fs: Path) -> int:
    try:
        return (fs / "boots.txt").read_text().count("boot")
    except OSError:
        return 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def pty_identity(path: str):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_ctime_ns)


def pty_gone(path: str, identity) -> bool:
    """The pty is gone; its /dev/pts number may already serve a new pty of someone else."""
    now = pty_identity(path)
    return now is None or now != identity


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with private_cache(tmp_path_factory) as (root, _mp):
        yield root


@pytest.fixture(scope="module")
def board(cache, tmp_path_factory):
    fs = tmp_path_factory.mktemp("flash")
    info = vboard.ensure_running(NAME, fs=fs)
    yield info
    vboard.stop(NAME)


# ----------------------------------------------------------------------------- pure logic


def test_rate_limiter_paces_at_the_configured_rate():
    now = [100.0]
    lim = ByteRateLimiter.for_baud(9600, clock=lambda: now[0])
    assert lim.rate == 960.0
    assert lim.available() == 0  # a byte written to an idle line arrives a byte's time later
    sent = 0
    while sent < 2048:
        n = min(2048 - sent, lim.available())
        if n == 0:
            wait = lim.wait_time(2048 - sent)
            assert wait > 0
            now[0] += wait
            continue
        lim.consume(n)
        sent += n
    assert now[0] - 100.0 == pytest.approx(2048 / 960.0, rel=1e-6)


def test_rate_limiter_carries_the_line_rate_when_woken_late():
    # a relay that wakes 1.3 ms late each time (poll's millisecond granularity, a busy machine)
    # still passes on what the line shifted meanwhile: the rate is the line's, and never more
    now = [0.0]
    lim = ByteRateLimiter.for_baud(115200, clock=lambda: now[0])
    sent, log = 0, []
    while sent < 40000:
        n = min(40000 - sent, lim.available())
        if n:
            lim.consume(n)
            sent += n
            log.append((now[0], sent))
        now[0] += lim.wait_time(40000 - sent) + 0.0013
    assert all(done <= t * 11520 + 1e-6 for t, done in log)  # never ahead of the wire
    assert log[-1][0] == pytest.approx(40000 / 11520, abs=0.003)


def test_rate_limiter_stands_still_while_held():
    now = [0.0]
    lim = ByteRateLimiter(100.0, clock=lambda: now[0])
    now[0] += 3600.0
    assert lim.available() == 0  # an hour idle earns nothing
    now[0] += 0.05
    assert lim.available() == 5
    lim.consume(5)
    assert lim.available() == 0
    assert lim.wait_time(1) == pytest.approx(0.01)
    now[0] += 0.02
    assert lim.available() == 2
    lim.hold()  # the receiver is full: the line waits for it
    now[0] += 10.0
    assert lim.available() == 0
    with pytest.raises(ValueError):
        ByteRateLimiter(0)


def test_repl_tracker_follows_the_last_banner_even_split_across_reads():
    t = ReplModeTracker()
    assert t.raw is False
    t.feed(b">>> \r\nraw REPL; CTRL")
    assert t.raw is False
    t.feed(b"-B to exit\r\n>")
    assert t.raw is True
    t.feed(b"OK\x04\x04>")  # raw REPL output keeps it raw
    assert t.raw is True
    t.feed(b'\r\nMicroPython x on y; linux\r\nType "help()" for more information.\r\n>>> ')
    assert t.raw is False
    t.feed(b"more output")  # a banner already seen is not counted again
    assert t.raw is False
    t.feed(b'Type "help()" for more information.\r\n>>> \r\nraw REPL; CTRL-B to exit\r\n>')
    assert t.raw is True


def test_names_heap_and_ports_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert vboard.cache_root() == tmp_path / "dbch" / "vboard"
    assert vboard.REGISTRY.state_path("a-1") == tmp_path / "dbch" / "vboard" / "a-1" / "vboard.json"
    for bad in ("", "../x", ".hidden", "a/b", "-x"):
        with pytest.raises(VBoardError):
            vboard.REGISTRY.check_name(bad)
    assert vboard.parse_heap("128K") == "128K"
    assert vboard.parse_heap(" 65536 ") == "65536"
    for bad in ("12Q", "K", "-1", "1.5M"):
        with pytest.raises(VBoardError):
            vboard.parse_heap(bad)
    with pytest.raises(VBoardError):
        vboard.check_baud(5)
    assert vboard.resolve_port("/dev/ttyUSB0") == "/dev/ttyUSB0"
    with pytest.raises(VBoardError):
        vboard.resolve_port("vboard:nothere", start=False)
    with pytest.raises(VBoardError):
        vboard.resolve_port("")
    assert vboard.read_state("nothere") is None
    assert vboard.stop("nothere") is False
    with pytest.raises(VBoardError):
        vboard.reset("nothere")


def test_cache_root_ignores_a_relative_xdg_cache_home(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert vboard.cache_root() == Path.home() / ".cache" / "dbch" / "vboard"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert vboard.cache_root() == Path.home() / ".cache" / "dbch" / "vboard"


def test_interpreter_argv_passes_the_heap_and_boot_mode(tmp_path):
    argv = interpreter_argv(tmp_path, raw=True, heap="128K")
    assert argv[0] == sys.executable
    assert argv[argv.index("-X") + 1] == "heapsize=128K"
    assert argv[-5:] == ["-i", str(BOOT_FILE), str(tmp_path), "raw", str(HARD_RESET_STATUS)]
    assert BOOT_FILE.is_file()
    assert interpreter_argv(tmp_path)[-5:] == ["-i", str(BOOT_FILE), str(tmp_path), "friendly", str(HARD_RESET_STATUS)]
    assert "-X" not in interpreter_argv(tmp_path)


# ----------------------------------------------------------------------------- a live board


def test_mpremote_exec_runs_code_on_the_board(board):
    assert board.port.startswith("/dev/pts/")
    r = mpremote(board.port, "exec", "print(1+1)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"
    r = mpremote(board.port, "exec", "import os; print(os.getcwd()); print(1/0)")
    assert r.returncode != 0
    assert "ZeroDivisionError" in r.stdout + r.stderr


def test_mpremote_fs_cp_writes_into_the_flash_dir(board, tmp_path):
    fs = Path(board.fs)
    src = tmp_path / "hello.py"
    src.write_text("GREETING = 'hi from flash'\n")
    r = mpremote(board.port, "fs", "cp", str(src), ":hello.py")
    assert r.returncode == 0, r.stderr
    assert (fs / "hello.py").read_text() == src.read_text()
    # "/" on the board is the flash directory, as on a real board
    r = mpremote(board.port, "fs", "cp", str(src), ":/lib_hello.py")
    assert r.returncode == 0, r.stderr
    assert (fs / "lib_hello.py").exists()
    (fs / "lib").mkdir(exist_ok=True)
    (fs / "lib" / "inlib.py").write_text("VALUE = 7\n")
    r = mpremote(
        board.port, "exec", "import hello, inlib, os; print(hello.GREETING, inlib.VALUE, sorted(os.listdir('/')))"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hi from flash 7 ")
    assert "'hello.py'" in r.stdout and "'lib'" in r.stdout
    r = mpremote(board.port, "fs", "cat", ":hello.py")
    assert "hi from flash" in r.stdout


MAIN_BOOT_MARK = """\
import os
with open('boots.txt', 'a') as f:
    f.write('boot\\n')
with open('cwd.txt', 'w') as f:
    f.write(os.getcwd())
print('MARKER-MAIN', len(os.listdir()))
"""


def test_main_runs_at_boot_and_again_on_reboot(board):
    fs = Path(board.fs)
    (fs / "boots.txt").unlink(missing_ok=True)
    (fs / "main.py").write_text(MAIN_BOOT_MARK)
    (fs / "boot.py").write_text("print('MARKER-BOOT')\n")
    try:
        vboard.reset(NAME)  # the reset button: a hard reset runs boot.py then main.py
        wait_for(lambda: boots(fs) == 1, what="main.py at boot")
        assert (fs / "cwd.txt").read_text() == "/"  # the flash dir is the board's root and cwd

        # Ctrl-D at the friendly REPL is a soft reboot: boot.py, main.py, REPL
        with open_link(board.port) as link:
            link.write(b"\r\x03")
            read_until(link, b">>> ")
            time.sleep(0.2)
            link.reset_input_buffer()
            link.write(b"\x04")
            out = read_until(link, b"for more information.\r\n>>> ")
        assert b"MPY: soft reboot\r\n" in out
        assert out.index(b"MARKER-BOOT") < out.index(b"MARKER-MAIN") < out.index(b"for more information")
        assert boots(fs) == 2

        # a soft reset from the raw REPL (mpremote soft-reset) skips main.py, as on a board
        r = mpremote(board.port, "soft-reset")
        assert r.returncode == 0, r.stderr
        r = mpremote(board.port, "exec", "print('still here')")
        assert r.stdout.strip() == "still here"
        assert boots(fs) == 2

        # machine.reset() exists on the virtual board: mpremote reset runs main.py again
        r = mpremote(board.port, "reset")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: boots(fs) == 3, what="main.py after mpremote reset")
    finally:
        (fs / "main.py").unlink()
        (fs / "boot.py").unlink()


MAIN_ECHO = """\
import os, sys, micropython
if 'binary.flag' in os.listdir():
    micropython.kbd_intr(-1)
print('ECHO READY')
while True:
    b = sys.stdin.buffer.read(1)
    if b == b'\\x00':
        break
    sys.stdout.buffer.write(b)
print('ECHO DONE')
"""


def test_pyserial_talks_to_main_py_over_stdin(board):
    fs = Path(board.fs)
    (fs / "main.py").write_text(MAIN_ECHO)
    try:
        with open_link(board.port) as link:
            vboard.reset(NAME)  # returns once the new boot runs: what we send now reaches it
            # no waiting for a banner: it may have gone by before we listened
            link.write(b"ping-1")
            read_until(link, b"ping-1")
            data = bytes(range(4, 256)) * 4
            link.write(data)
            assert link.read(len(data)) == data
            # Ctrl-C interrupts main.py and leaves the REPL
            link.write(b"\x03")
            out = read_until(link, b">>> ")
            assert b"KeyboardInterrupt" in out
            assert b'File "main.py"' in out
            link.write(b"print(6*7)\r")
            assert b"42" in read_until(link, b">>> ")

            # with kbd_intr(-1) every byte, 0x03 included, is data for the program
            (fs / "binary.flag").write_text("")
            link.write(b"\x04")
            read_until(link, b"ECHO READY\n")
            data = bytes(range(1, 256))
            link.write(data)
            assert link.read(len(data)) == data
            link.write(b"\x00")
            read_until(link, b"ECHO DONE\n")
            read_until(link, b">>> ")
    finally:
        (fs / "main.py").unlink()
        (fs / "binary.flag").unlink(missing_ok=True)


MAIN_BULK = """\
import sys
while True:
    b = sys.stdin.buffer.read(1)
    if b == b'?':
        sys.stdout.buffer.write(b'!')
    elif b == b'g':
        break
sys.stdout.buffer.write(b'x' * 2048 + b'END')
"""


def handshake(link) -> None:
    """Ask main.py until it answers: a client cannot count on output from before it connected."""
    link.timeout = 0.5
    try:
        for _ in range(40):
            link.write(b"?")
            if link.read(1) == b"!":
                link.reset_input_buffer()
                return
        raise AssertionError("main.py never answered")
    finally:
        link.timeout = 10


def test_baud_paces_the_link_and_heap_caps_memory(cache, tmp_path):
    fs = tmp_path / "slow"
    fs.mkdir()
    (fs / "main.py").write_text(MAIN_BULK)
    info = vboard.ensure_running("slow", fs=fs, baud=9600, heap="64K")
    try:
        assert (info.baud, info.heap) == (9600, "64K")
        with open_link(info.port) as link:
            handshake(link)  # main.py ran at power-on
            start = time.monotonic()
            link.write(b"g")
            out = read_until(link, b"END")
            elapsed = time.monotonic() - start
            assert out == b"x" * 2048 + b"END"
            # "g" and 2051 bytes back at 960 bytes/s: it cannot be faster than that
            minimum = (1 + len(out)) / 960.0
            assert elapsed >= minimum, (elapsed, minimum)
        r = mpremote(info.port, "exec", "import gc; gc.collect(); print(gc.mem_free() + gc.mem_alloc())")
        assert r.returncode == 0, r.stderr
        assert 32 * 1024 < int(r.stdout.strip()) <= 64 * 1024
    finally:
        assert vboard.stop("slow") is True


def test_ensure_running_reuses_the_live_board(board, tmp_path):
    again = vboard.ensure_running(NAME)
    assert (again.pid, again.port, again.fs) == (board.pid, board.port, board.fs)
    assert vboard.ensure_running(NAME, fs=board.fs).pid == board.pid
    assert vboard.resolve_port(f"vboard:{NAME}") == board.port
    with pytest.raises(VBoardError, match="running on"):
        vboard.ensure_running(NAME, fs=tmp_path)
    with pytest.raises(VBoardError, match="baud"):
        vboard.ensure_running(NAME, baud=115200)
    state = json.loads(vboard.REGISTRY.state_path(NAME).read_text())
    assert state["port"] == board.port and state["pid"] == board.pid
    r = subprocess.run(
        [sys.executable, "-m", "host_tools.cli.vboard", "--status", "--name", NAME, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["port"] == board.port
    # a second launcher for the same name refuses to start
    r = subprocess.run(
        [sys.executable, "-m", "host_tools.cli.vboard", "--serve", "--name", NAME],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert r.returncode == 1
    assert "already running" in r.stderr


def test_default_board_and_stop(cache):
    info = vboard.ensure_running()
    assert info.name == "default"
    assert Path(info.fs) == cache / "dbch" / "vboard" / "default" / "flash"
    assert vboard.resolve_port("vboard") == info.port
    interpreter = wait_for(lambda: children(info.pid), what="the interpreter process")[0]
    identity = pty_identity(info.port)
    assert vboard.stop() is True
    assert not vboard.REGISTRY.state_path().exists()
    assert not alive(info.pid)
    wait_for(lambda: not alive(interpreter), what="the interpreter to end")
    assert pty_gone(info.port, identity)
    assert vboard.read_state() is None
    assert vboard.stop() is False
    r = subprocess.run(
        [sys.executable, "-m", "host_tools.cli.vboard", "--status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert r.returncode == 3
    assert json.loads(r.stdout) == {"name": "default", "running": False}


def test_serve_in_the_foreground_cleans_up_on_ctrl_c(cache, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli.vboard", "--serve", "--name", "fg", "--fs", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        info = vboard.read_state("fg")
        assert info is not None and info.port == port and info.pid == proc.pid
        assert info.fs == str(tmp_path.resolve())
        interpreter = wait_for(lambda: children(proc.pid), what="the interpreter process")[0]
        identity = pty_identity(port)
        r = mpremote(port, "exec", "print('up')")
        assert r.stdout.strip() == "up"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not vboard.REGISTRY.state_path("fg").exists()
    wait_for(lambda: not alive(interpreter), what="the interpreter to end")
    assert pty_gone(port, identity)

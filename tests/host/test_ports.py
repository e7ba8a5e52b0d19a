"""Ports and errors as users meet them, through the real command line (`python -m host_tools.cli`
in a subprocess, under a private XDG_CACHE_HOME): a named virtual board or CPython agent that is
not running is an error and nothing is started (unless --start), the shared options work before
the command, $DBCH_PORT is the default port, a port another program holds is reported as busy
and by whom, and a board whose agent fails shows what it printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("serial")
pytest.importorskip("mpremote")

from agent import wire  # noqa: E402
from host_tools.firmware import (
    handover,  # noqa: E402
)
from host_tools.link import (
    console,  # noqa: E402
)
from host_tools.link.client import LinkError  # noqa: E402
from host_tools.link.ports import SerialTransport, port_holders  # noqa: E402
from host_tools.servers import (
    simagent,  # noqa: E402
    vboard,  # noqa: E402
)
from tests.kits.cachekit import private_cache  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BOARD = "lab1"  # a running virtual board (nothing flashed on it)
AGENT = "lab2"  # a running CPython agent
BROKEN = "broken"  # a virtual board started by `dbch flash --start`, then broken
BROKEN_IMPORT = "dbch_no_such_module"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with private_cache(tmp_path_factory) as (root, mp):
        mp.delenv("DBCH_PORT", raising=False)
        yield root


@pytest.fixture(scope="module")
def running(cache, tmp_path_factory):
    """One virtual board and one CPython agent, running."""
    board = vboard.ensure_running(BOARD, fs=tmp_path_factory.mktemp("flash"))
    agent = simagent.ensure_running(AGENT, fs=tmp_path_factory.mktemp("simfs"))
    return board, agent


def dbch(*argv: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "host_tools.cli", *argv],
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def listed(kind: str) -> list[str]:
    """The names `dbch vboard --list` (kind "vboard") or `dbch agent --list` ("agent") shows."""
    r = dbch(kind, "--list", "--json")
    assert r.returncode == 0, r.stderr
    return [i["name"] for i in json.loads(r.stdout)]


# ----------------------------------------------------------------------------- named ports


def test_a_named_virtual_board_that_is_not_running_is_an_error_and_not_started(cache, running):
    r = dbch("status", "--port", "vboard:nosuchboard")
    assert r.returncode != 0 and r.stdout == ""
    assert f"virtual board 'nosuchboard' is not running; running: {BOARD}" in r.stderr
    assert "dbch vboard --name nosuchboard" in r.stderr and "--start" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (cache / "dbch" / "vboard" / "nosuchboard").exists()
    assert listed("vboard") == [BOARD]


def test_a_named_cpython_agent_that_is_not_running_is_an_error_and_not_started(cache, running):
    r = dbch("status", "--port", "sim:nosuchagent")
    assert r.returncode != 0 and r.stdout == ""
    assert f"simulated agent 'nosuchagent' is not running; running: {AGENT}" in r.stderr
    assert "dbch agent --name nosuchagent" in r.stderr and "--start" in r.stderr
    assert not (cache / "dbch" / "agent" / "nosuchagent").exists()
    assert listed("agent") == [AGENT]


def test_start_starts_a_named_agent(cache, running):
    r = dbch("--start", "--port", "sim:started", "status", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["eui"] == "00-DB-12-34-56-78-90-A2"
    assert "started" in listed("agent")
    simagent.stop("started")


def test_the_default_board_is_still_started_on_demand(cache):
    try:
        r = dbch("--timeout", "1", "status")
        assert "default" in listed("vboard")
        # nothing is flashed on it: the error says so
        assert r.returncode == 1 and "nothing is flashed on it" in r.stderr and "dbch flash" in r.stderr
    finally:
        vboard.stop("default")


# ----------------------------------------------------------------------------- options and $DBCH_PORT


def test_shared_options_work_before_the_command(cache, running):
    r = dbch("--port", f"sim:{AGENT}", "--json", "--timeout", "3", "status")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["eui"] == "00-DB-12-34-56-78-90-A2"
    # given both before and after the command, the one after it wins
    r = dbch("--port", "vboard:nosuchboard", "status", "--port", f"sim:{AGENT}", "--json")
    assert r.returncode == 0, r.stderr
    assert "eui" in json.loads(r.stdout)
    # before a command that has no port, it is refused rather than ignored
    r = dbch("--port", f"sim:{AGENT}", "vboard", "--list")
    assert r.returncode == 2 and "`dbch vboard` takes no --port" in r.stderr


def test_dbch_port_is_the_default_port(cache, running):
    r = dbch("status", "--json", env={"DBCH_PORT": f"sim:{AGENT}"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["eui"] == "00-DB-12-34-56-78-90-A2"
    r = dbch("status", env={"DBCH_PORT": "vboard:fromenv"})
    assert r.returncode == 1 and "virtual board 'fromenv' is not running" in r.stderr
    assert not (cache / "dbch" / "vboard" / "fromenv").exists()
    # --port still wins over it
    r = dbch("status", "--json", "--port", f"sim:{AGENT}", env={"DBCH_PORT": "vboard:fromenv"})
    assert r.returncode == 0, r.stderr
    r = dbch("--help")
    assert "$DBCH_PORT" in r.stdout and "--start" in r.stdout


# ----------------------------------------------------------------------------- a busy port


def _wait_for_holder(port: str, pid: int, wait: float = 20.0) -> None:
    deadline = time.monotonic() + wait
    while not any(p == pid for p, _ in port_holders(port)):
        assert time.monotonic() < deadline, f"pid {pid} never opened {port}"
        time.sleep(0.05)


def test_a_port_another_program_reads_is_reported_busy_by_whom(cache, running):
    _, agent = running
    follower = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "alerts", "--follow", "--port", f"sim:{AGENT}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_holder(agent.port, follower.pid)
        r = dbch("status", "--port", f"sim:{AGENT}", "--timeout", "2")
        assert r.returncode == 1
        assert f"sim:{AGENT} ({agent.port}) is busy: in use by pid {follower.pid}" in r.stderr
        assert "alerts --follow" in r.stderr and "is the agent flashed" not in r.stderr
    finally:
        follower.terminate()
        follower.wait(10)
    assert dbch("status", "--port", f"sim:{AGENT}").returncode == 0  # free again


def test_a_port_held_without_a_lock_is_busy_too(cache, running):
    board, _ = running
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import os, time; fd = os.open({board.port!r}, os.O_RDWR | os.O_NOCTTY); time.sleep(60)",
        ]
    )
    try:
        _wait_for_holder(board.port, holder.pid)
        r = dbch("status", "--port", f"vboard:{BOARD}", "--timeout", "2")
        assert r.returncode == 1 and f"is busy: in use by pid {holder.pid}" in r.stderr
    finally:
        holder.kill()
        holder.wait(10)


# ----------------------------------------------------------------------------- what the board printed


def _break(board: str, code: str) -> vboard.VBoardInfo:
    """Put `code` before the agent's start in the board's main.py (instead of what an earlier
    call put there) and reset the board."""
    info = vboard.read_state(board)
    main_py = Path(info.fs) / "main.py"
    mark = "  # breaks the agent on purpose"
    lines = [line for line in main_py.read_text().splitlines() if not line.endswith(mark)]
    main_py.write_text("\n".join([code + mark, *lines]) + "\n")
    vboard.reset(board)
    return info


def _type_at_repl(port: str, text: bytes) -> None:
    """Type `text` (no line end) into the REPL of the board on `port`, once the REPL has echoed it."""
    t = SerialTransport(port, exclusive=False)
    try:
        t.write(text)
        echo = b""
        deadline = time.monotonic() + 30
        while not echo.endswith(text) and time.monotonic() < deadline:
            echo += t.read(4096)
        assert echo.endswith(text), echo
    finally:
        t.close()


def test_a_broken_agent_shows_the_boards_traceback(cache):
    try:
        r = dbch("flash", "--port", f"vboard:{BROKEN}", "--start", "--json", timeout=300)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["hello"]["board"] == "unix"

        info = _break(BROKEN, f"import {BROKEN_IMPORT}")
        r = dbch("status", "--port", f"vboard:{BROKEN}", "--timeout", "2")
        assert r.returncode == 1 and r.stdout == ""
        assert "no answer to 'status'" in r.stderr
        assert f"ImportError: no module named '{BROKEN_IMPORT}'" in r.stderr
        assert 'File "main.py", line 1, in <module>' in r.stderr
        assert "the agent is not running" in r.stderr

        # after a flash or a reboot: what the board printed, here a MemoryError at boot
        _break(BROKEN, "raise MemoryError('memory allocation failed, allocating 4096 bytes')")
        with pytest.raises(LinkError) as e:
            handover.wait_for_hello(info.port, timeout=3)
        assert "did not answer" in str(e.value)
        assert "MemoryError: memory allocation failed, allocating 4096 bytes" in str(e.value)

        # a real board is asked through its REPL: the virtual board stands in for one here
        text = console.probe_repl(info.port)
        assert "the agent is not running" in text and "soft reset" in text
        assert "MemoryError: memory allocation failed" in text

        # the host's requests are typed into the REPL's line: when their bytes leave a bracket open
        # there, the line end only continues the statement ("... "); the traceback is still shown
        _type_at_repl(info.port, b"x = [1, 2")
        text = console.probe_repl(info.port)
        assert "the agent is not running" in text and "soft reset" in text
        assert "MemoryError: memory allocation failed" in text
    finally:
        vboard.stop(BROKEN)


def test_a_cpython_agent_that_fails_shows_its_log(cache):
    log = simagent.agent_dir("failing") / simagent.LOG_FILE
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        '{\n  "port": "/dev/pts/99"\n}\nTraceback (most recent call last):\n  File "agent/run.py", line 9, in serve\n'
        "OSError: [Errno 28] No space left on device\n"
    )
    text = console.explain_silence("sim:failing")
    assert str(log) in text and "OSError: [Errno 28] No space left on device" in text


def test_console_lines_leave_out_the_wire_frames():
    raw = b"boot\r\n" + wire.encode_frame(b"\xa1ak\x01") + b"Traceback (most recent call last):\r\n  x\r\nE: y\r\n"
    lines = console.console_lines(raw)
    assert lines == ["boot", "Traceback (most recent call last):", "  x", "E: y"]
    assert console.console_lines(b"half a line\nnext\n", cut=True) == ["next"]

"""The link survives any byte: random bytes, 0x00-0x04 among them, on a flashed virtual board's
line never stop the agent; mpremote against a running agent leaves it serving; the "repl" request
hands the line to mpremote, and the agent comes back after the session (seeded, bounded)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from host_tools.firmware import handover
from host_tools.link.client import AgentClient
from host_tools.link.ports import SerialTransport

SEED = 19
WRITES = 30
MPREMOTE_S = 5.0  # against a running agent mpremote waits for a raw REPL that never comes


def _mpremote(port: str, *argv: str) -> subprocess.CompletedProcess | None:
    """mpremote ARGV against the board; None if it had not finished within MPREMOTE_S."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", port, *argv],
            capture_output=True,
            text=True,
            timeout=MPREMOTE_S,
        )
    except subprocess.TimeoutExpired:
        return None


def _noise(rng: random.Random) -> bytes:
    # any byte value, and always the REPL's control characters Ctrl-@..Ctrl-D among them
    data = bytearray(rng.randrange(256) for _ in range(rng.randrange(1, 65)))
    for c in rng.sample(range(5), rng.randrange(1, 6)) + [0x03]:
        data.insert(rng.randrange(len(data) + 1), c)
    return bytes(data)


def test_random_bytes_never_stop_the_agent(dbch_vboard):
    rng = random.Random(SEED)
    boot = dbch_vboard.request("hello").data["boot"]
    transport = SerialTransport(dbch_vboard.port)
    answered = 0
    try:
        client = AgentClient(transport, timeout=3.0, port=dbch_vboard.spec)
        for i in range(WRITES):
            transport.write(_noise(rng))
            r = client.request("hello")
            assert r.ok, f"write {i}: {r.rc} {r.err}"
            assert r.data["boot"] == boot, f"write {i}: the agent restarted"
            answered += 1
    finally:
        transport.close()
    print(f"{answered} of {WRITES} random-byte writes followed by an answered request")
    assert answered == WRITES


@pytest.mark.parametrize("argv", [("exec", "print(1)"), ("fs", "ls"), ("eval", "1+1")])
def test_mpremote_against_the_running_agent_leaves_it_serving(dbch_vboard, argv):
    boot = dbch_vboard.request("hello").data["boot"]
    _mpremote(dbch_vboard.port, *argv)  # it does not get in: Ctrl-C is data to the agent
    status = dbch_vboard.dbch("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert dbch_vboard.request("hello").data["boot"] == boot


def test_repl_request_hands_the_line_over_and_the_agent_comes_back(dbch_vboard):
    boot = dbch_vboard.request("hello").data["boot"]
    assert handover.hand_over(dbch_vboard.port)
    done = _mpremote(dbch_vboard.port, "exec", "print(6 * 7)")
    assert done is not None and done.returncode == 0, done and done.stderr
    assert "42" in done.stdout
    done = _mpremote(dbch_vboard.port, "fs", "ls")
    assert done is not None and done.returncode == 0, done and done.stderr
    assert "main.py" in done.stdout
    hello = handover.take_back(dbch_vboard.port)
    assert hello["boot"] > boot
    status = dbch_vboard.dbch("status")
    assert status.returncode == 0, status.stdout + status.stderr
    # and the agent owns the line again: Ctrl-C is noise
    transport = SerialTransport(dbch_vboard.port)
    try:
        transport.write(b"\r\x03\x03\r\x01")
        r = AgentClient(transport, timeout=3.0).request("hello")
        assert r.ok and r.data["boot"] == hello["boot"]
    finally:
        transport.close()


def test_dbch_mpremote_hands_over_runs_mpremote_and_takes_back(dbch_vboard):
    boot = dbch_vboard.request("hello").data["boot"]
    # the port goes before the command: every word after "--" is mpremote's
    cmd = [sys.executable, "-m", "host_tools.cli", "--port", dbch_vboard.spec, "mpremote", "--", "exec", "print(6 * 7)"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "42" in done.stdout
    assert "agent running again" in done.stderr
    assert dbch_vboard.request("hello").data["boot"] > boot


def test_a_board_left_at_its_repl_gets_its_agent_back_on_the_next_command(dbch_vboard):
    # a plain mpremote session after a hand-over ends at the friendly REPL (no main.py)
    boot = dbch_vboard.request("hello").data["boot"]
    assert handover.hand_over(dbch_vboard.port)
    done = _mpremote(dbch_vboard.port, "exec", "print(1)")
    assert done is not None and done.returncode == 0, done and done.stderr
    status = dbch_vboard.dbch("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "was at its REPL: its agent was started again" in status.stderr
    assert dbch_vboard.request("hello").data["boot"] > boot


def test_a_board_left_in_the_raw_repl_gets_its_agent_back_on_the_next_command(dbch_vboard):
    # an mpremote session cut short leaves the board in the raw REPL (Ctrl-A, no Ctrl-B after it)
    boot = dbch_vboard.request("hello").data["boot"]
    assert handover.hand_over(dbch_vboard.port)
    transport = SerialTransport(dbch_vboard.port)
    try:
        transport.write(b"\r\x01")
        got = b""
        for _ in range(50):
            got += transport.read(4096)
            if b"raw REPL" in got:
                break
        assert b"raw REPL" in got, got
    finally:
        transport.close()
    status = dbch_vboard.dbch("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert dbch_vboard.request("hello").data["boot"] > boot

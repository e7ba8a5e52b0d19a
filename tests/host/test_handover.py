"""host_tools.firmware.handover against stand-in lines: a board at its REPL (it echoes what it is
sent) is told apart from a running agent without waiting out the request's timeout."""

from __future__ import annotations

import pytest

from host_tools.firmware import handover


class ReplLine:
    """A board at MicroPython's friendly REPL: it echoes the printable bytes it is sent. Reading
    it more than `reads` times fails the test (the caller waited on a board that cannot answer)."""

    def __init__(self, banner: bytes = b"", reads: int = 50):
        self.pending = bytearray(banner)
        self.reads = reads
        self.closed = False

    def write(self, data: bytes) -> None:
        self.pending += bytes(b for b in data if 32 <= b < 127)

    def read(self, n: int) -> bytes:
        self.reads -= 1
        if self.reads < 0:
            raise AssertionError("still waiting for an answer a REPL never gives")
        out, self.pending = bytes(self.pending[:n]), self.pending[n:]
        return out

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("banner", [b"", b'Type "help()" for more information.\r\n>>> '])
def test_a_board_at_its_repl_is_not_waited_for(monkeypatch, banner):
    line = ReplLine(banner)
    monkeypatch.setattr(handover, "SerialTransport", lambda port, baud: line)
    assert handover.hand_over("/dev/stand-in", timeout=60.0) is False
    assert line.closed


def test_a_silent_line_is_waited_for_until_the_timeout(monkeypatch):
    # no echo, no prompt: nothing says there is no agent, so the request's timeout decides
    line = ReplLine(reads=10**9)
    line.write = lambda data: None
    monkeypatch.setattr(handover, "SerialTransport", lambda port, baud: line)
    assert handover.hand_over("/dev/stand-in", timeout=0.2) is False
    assert line.reads < 10**9 - 1  # it kept reading


@pytest.mark.parametrize("banner", [b"", b'Type "help()" for more information.\r\n>>> '])
def test_what_is_flashed_is_not_waited_for_on_a_board_at_its_repl(monkeypatch, banner):
    # dbch flash asks the agent what is flashed before a hand-over: a REPL echoes the request
    from host_tools.firmware import warm

    line = ReplLine(banner)
    monkeypatch.setattr(warm, "SerialTransport", lambda port, baud: line)
    assert warm.ask("/dev/stand-in", ["slots/a/agent"], ["main.py"], timeout=60.0) is None
    assert line.closed

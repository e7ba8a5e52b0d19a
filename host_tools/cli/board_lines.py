"""Progress of many boards at once on stderr: on a terminal, one line per board (its port, phase,
bytes and percent) redrawn in place; elsewhere (a pipe, a log file), each step as a plain line
prefixed with its port. Fed with the events of host_tools.firmware.many, one at a time."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO


def _line(ev: dict) -> str:
    """One board's status line for its latest event."""
    port = ev["port"]
    if ev.get("event") == "result":
        if ev.get("ok"):
            f = ev.get("flash") or {}
            return f"{port}: done, {f.get('bytes_written', 0)} bytes written, agent up: device {ev.get('eui')}"
        return f"{port}: FAILED: {ev.get('error')}"
    phase = ev.get("phase", "step")
    what = ev.get("message", "")
    if phase == "write":  # "write PATH (N bytes)": the bytes are in the line already
        what = what.split(" (", 1)[0].removeprefix("write ")
    return (
        f"{port}: {phase:<7} {ev.get('bytes', 0):>7}/{ev.get('total', 0)} bytes {ev.get('percent', 0.0):5.1f}%  {what}"
    )


class BoardLines:
    """Call it with each event. live: redraw one line per board in place (default: when the
    stream is a terminal)."""

    def __init__(self, ports: list[str], stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.ports = [str(p) for p in ports]
        self.lines = {p: f"{p}: waiting" for p in self.ports}
        self.drawn = False

    def __call__(self, ev: dict) -> None:
        if not self.live:
            self.stream.write(_plain(ev) + "\n")
            self.stream.flush()
            return
        self.lines[str(ev["port"])] = _line(ev)
        self._draw()

    def _draw(self) -> None:
        # a line longer than the terminal would wrap and the redraw would go back too few lines
        width = max(20, shutil.get_terminal_size().columns - 1)
        out = []
        if self.drawn:
            out.append(f"\x1b[{len(self.ports)}F")  # back to the first board's line
        for p in self.ports:
            out.append("\x1b[2K" + self.lines[p][:width] + "\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self.drawn = True


def _plain(ev: dict) -> str:
    """An event as a plain line: the step flash reports, prefixed with the board's port."""
    if ev.get("event") == "result":
        return _line(ev)
    return f"{ev['port']}: {ev.get('message', '')} [{ev.get('percent', 0.0):.0f}%]"

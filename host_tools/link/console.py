"""What a board prints besides the agent's frames, for when it does not answer.

explain_silence() says what it printed instead: a virtual board's console, a CPython agent's log
(each port scheme says, host_tools.link.ports.Scheme.explain), or what a real board's REPL shows
(probe_repl). resume_agent() starts the agent again on a board found at its REPL.
"""

from __future__ import annotations

import os
import time

from host_tools.link.client import AgentClient, LinkError
from host_tools.link.ports import DEFAULT_BAUD, SerialTransport, scheme_of, serving

RESUME_TIMEOUT = 20.0  # s for the agent to come up after the soft reset


def resume_agent(transport, timeout: float = RESUME_TIMEOUT) -> bool:
    """Start the agent again on a board that sits at its REPL, over an open transport: True once
    it answers. A line end shows the friendly REPL's prompt (a running agent ignores it); Ctrl-B
    brings a board left in the raw REPL (an mpremote session cut short) to the friendly one. Only
    after a REPL prompt has come back are Ctrl-C (cancel the line the host's requests were typed
    into) and Ctrl-D (soft reset: main.py starts the agent) sent; to an agent, which owns the line
    and has the interrupt character off, the line end and Ctrl-B are noise between frames."""
    transport.write(b"\r")
    lines = console_lines(read_for(transport, 0.6))
    if not lines or not lines[-1].startswith((">>>",) + MID_STATEMENT):
        transport.write(b"\x02")
        lines = console_lines(read_for(transport, 0.6, until=b">>> "))
    if not lines or not lines[-1].startswith((">>>",) + MID_STATEMENT):
        return False
    transport.write(b"\x03")
    read_for(transport, 0.3, until=b">>> ")
    transport.write(b"\x04")
    printed = bytearray()  # what main.py prints: a REPL prompt after it means the agent did not start
    probe = AgentClient(transport, timeout=1.0, on_text=printed.extend)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe.request("hello").ok:
                return True
        except LinkError:
            pass
        if at_repl(console_lines(bytes(printed))):
            return False
    return False


SHOW_LINES = 12  # lines of console output shown when there is no traceback
_LINE_MAX = 200


def console_lines(raw: bytes, cut: bool = False) -> list[str]:
    """The text lines of what a board printed: wire frames taken out, control characters dropped,
    blank lines skipped. cut: raw starts mid-stream (its first, partial line is dropped)."""
    from agent import wire

    if cut:
        raw = raw[raw.find(b"\n") + 1 :]
    parts: list[bytes] = []
    wire.FrameDecoder(on_text=lambda b: parts.append(bytes(b))).feed(raw)
    text = b"".join(parts).decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = []
    for line in text.split("\n"):
        line = "".join(c for c in line if c >= " " or c == "\t").rstrip()
        if line.startswith(">>>") and "Traceback" not in line:
            line = ">>>"  # what the REPL echoed after its prompt is the host's requests
        if line.strip():
            lines.append(line if len(line) <= _LINE_MAX else line[: _LINE_MAX - 3] + "...")
    return lines


def worth_showing(lines: list[str]) -> list[str]:
    """The last traceback in `lines` (up to its exception line), else the last few lines."""
    mark = "Traceback (most recent call last)"
    starts = [i for i, line in enumerate(lines) if mark in line]
    if not starts:
        return lines[-SHOW_LINES:]
    first = lines[starts[-1]]
    shown = [first[first.index(mark) :]]  # not what was echoed before it on that line
    for line in lines[starts[-1] + 1 : starts[-1] + 40]:
        shown.append(line)
        if not line.startswith((" ", "\t")):  # the exception itself
            break
    return shown


def at_repl(lines: list[str]) -> bool:
    return bool(lines) and lines[-1].startswith(">>>")


# The REPL's other prompts: a statement that goes on ("... ") and paste mode ("=== "). The host's
# requests, typed into a REPL's line, can leave one open (an unclosed bracket in their bytes).
MID_STATEMENT = ("...", "===")


def indented(lines: list[str]) -> str:
    return "\n".join("  " + line for line in lines)


def explain_silence(spec: str, path: str | None = None, *, baud: int = DEFAULT_BAUD) -> str:
    """Why the board on `spec` (a --port value or a device path; `path` its device) may not have
    answered, as text for an error message ("" if nothing useful is known): what its port scheme
    shows (a virtual board's recent console output, a CPython agent's log), or what a real
    board's REPL shows (probe_repl)."""
    spec = str(spec).strip()
    path = str(path or spec)
    try:
        found = scheme_of(spec) or serving(path)
        if found is None:
            if "://" not in path and os.path.exists(path):
                return probe_repl(path, baud)
            return ""
        scheme, instance = found
        return scheme.explain(instance, spec) if scheme.explain else ""
    except Exception as e:  # an explanation must never hide the error it explains
        return f"(what the board printed could not be read: {e})"


def read_for(transport: SerialTransport, seconds: float, until: bytes = b"") -> bytes:
    got = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += transport.read(4096)
        if until and got.endswith(until):
            break
    return bytes(got)


def probe_repl(path: str, baud: int = DEFAULT_BAUD) -> str:
    """What a real board on `path` shows, for an error message. A line end is sent (the agent
    ignores it; a REPL answers with its prompt). At the friendly REPL the agent is not running:
    a soft reset (Ctrl-D) runs boot.py and main.py again, and what they print is shown. Ctrl-C,
    which would stop an agent that is only slow to answer, is sent only after a REPL prompt: the
    requests the host sent before were typed into the REPL's line, and when their bytes leave a
    statement open there (the line end brings the "... " prompt), Ctrl-C cancels it."""
    try:
        t = SerialTransport(path, baud, exclusive=False)
    except LinkError:
        return ""
    try:
        t.write(b"\r")
        lines = console_lines(read_for(t, 0.6))
        if lines and lines[-1] in MID_STATEMENT:
            t.write(b"\x03")  # the REPL's own prompt came back: cancel the statement, not an agent
            lines += console_lines(read_for(t, 0.6, until=b">>> "))
        if not at_repl(lines):
            if lines:
                return "the board printed:\n" + indented(lines[-SHOW_LINES:])
            return (
                f"the board printed nothing in reply to a line end: the agent may be busy or stuck, or the baud "
                f"rate is not the board's (--baud). To watch its console: mpremote connect {path} repl, then "
                "reset the board"
            )
        t.write(b"\x04")  # soft reset: main.py runs again and prints what stops the agent
        lines = console_lines(read_for(t, 5.0, until=b">>> "))
    finally:
        t.close()
    text = "the board is at the MicroPython REPL: the agent is not running. After a soft reset it printed:\n"
    return text + (indented(worth_showing(lines)) if lines else "  (nothing)")

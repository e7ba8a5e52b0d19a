"""Turn a --port value into a connected AgentClient.

vboard          the default virtual board (the MicroPython unix port on a pty), started if not running
vboard:NAME     a running virtual board; with --start (start=True) it is started if it is not
sim[:NAME]      the agent under CPython on a pty (dbch agent): the same rule
triage[:NAME]   a hub on the Triage System Interface, through a running `dbch triage serve`
/dev/ttyUSB0    a real board's serial port (or any pyserial URL: socket://host:port, loop://)

The default port is $DBCH_PORT, else vboard. A port another program has open is reported as
busy, naming that program. When a board does not answer, explain_silence() says what it printed
instead: a virtual board's console, a CPython agent's log, or what a real board's REPL shows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from host_tools.cli import CommandError
from host_tools.link.client import (
    AgentClient,
    AgentTimeout,
    LinkError,
    PortBusy,
    SerialTransport,
    busy_message,
    check_not_busy,
)

DEFAULT_PORT = "vboard"
PORT_ENV = "DBCH_PORT"
DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 5.0


def default_port() -> str:
    """$DBCH_PORT, else the default virtual board."""
    return os.environ.get(PORT_ENV, "").strip() or DEFAULT_PORT


class Port(str):
    """A --port value; `start` is true when --start was given with it (see resolve)."""

    start = False

    def __new__(cls, value: str, start: bool = False):
        self = super().__new__(cls, value)
        self.start = bool(start)
        return self


def add_port_args(parser: argparse.ArgumentParser, *, before_command: bool = False) -> None:
    """--port, --start, --baud and --timeout. They are given to each command that opens a port,
    and (before_command) to the main `dbch` parser, where they may come before the command.
    Their defaults are filled in after parsing (port_defaults): what is given after the command
    wins over what is given before it."""
    dest = (lambda name: "_top_" + name) if before_command else (lambda name: name)
    parser.add_argument(
        "--port",
        "-p",
        dest=dest("port"),
        metavar="PORT",
        default=argparse.SUPPRESS,
        help=f"board port: vboard[:NAME] (a virtual board), sim[:NAME] (the CPython agent), triage[:NAME] "
        f"(a hub on a triage tool's TLS link), a device path such as /dev/ttyUSB0, or a pyserial URL "
        f"(default: ${PORT_ENV}, else {DEFAULT_PORT}, the default virtual board). A named virtual board "
        "or agent must be running, unless --start",
    )
    parser.add_argument(
        "--start",
        dest=dest("start"),
        action="store_true",
        default=argparse.SUPPRESS,
        help="start the named virtual board or CPython agent of --port if it is not running",
    )
    parser.add_argument(
        "--baud",
        dest=dest("baud"),
        metavar="BAUD",
        type=int,
        default=argparse.SUPPRESS,
        help=f"serial baud rate for real boards (default {DEFAULT_BAUD})",
    )
    parser.add_argument(
        "--timeout",
        dest=dest("timeout"),
        metavar="SECONDS",
        type=float,
        default=argparse.SUPPRESS,
        help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT:g})",
    )
    if not before_command:
        parser.set_defaults(_port_args=True)


def port_defaults() -> dict:
    """The values of the port options not given on the command line."""
    return {"port": default_port(), "start": False, "baud": DEFAULT_BAUD, "timeout": DEFAULT_TIMEOUT}


def resolve(spec: str, *, start: bool | None = None) -> str:
    """A device path or URL for a --port value.

    start: True starts a virtual board or CPython agent that is not running, False never does,
    None (the default) starts only the default one (bare `vboard` or `sim`), or a named one when
    the value came with --start (a Port). A device another program has open is busy (CommandError).
    """
    if start is None and getattr(spec, "start", False):
        start = True
    spec = str(spec).strip()
    try:
        if spec == "vboard" or spec.startswith("vboard:"):
            from host_tools.servers import vboard

            try:
                path = vboard.resolve_port(spec, start=start)
            except vboard.VBoardError as e:
                raise CommandError(str(e)) from e
        elif spec == "sim" or spec.startswith("sim:"):
            from host_tools.servers import simagent

            try:
                path = simagent.resolve_port(spec, start=start)
            except simagent.SimAgentError as e:
                raise CommandError(str(e)) from e
        elif spec == "triage" or spec.startswith("triage:"):
            from host_tools.servers import triage

            try:
                path = triage.resolve_port(spec)
            except triage.TriageToolError as e:
                raise CommandError(str(e)) from e
        else:
            path = spec
        check_not_busy(path)
    except PortBusy as e:
        raise CommandError(busy_message(e.path, e.holders, label=spec)) from e
    return path


def open_client(args: argparse.Namespace, *, echo_text: bool = False) -> AgentClient:
    spec = getattr(args, "port", None) or default_port()
    baud = getattr(args, "baud", DEFAULT_BAUD)
    if getattr(args, "start", False) and not getattr(spec, "start", False):
        spec = Port(spec, start=True)
    try:
        path = resolve(spec)
        transport = SerialTransport(path, baud)
    except PortBusy as e:
        raise CommandError(busy_message(e.path, e.holders, label=str(spec))) from e
    except LinkError as e:
        raise CommandError(str(e)) from e
    on_text = (lambda b: sys.stderr.write(b.decode("utf-8", "replace"))) if echo_text else None
    return AgentClient(
        transport,
        timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
        on_text=on_text,
        port=str(spec),
        explain=lambda: explain_silence(str(spec), path, baud=baud),
    )


def checked(client: AgentClient, op: str, args: dict | None = None, timeout: float | None = None):
    """Request op; a timeout becomes a CommandError that says what to do. A board found at its
    REPL instead (mpremote left it there, or someone typed into its terminal) gets its agent
    started again (resume_agent), once, and the request is sent again."""
    try:
        return client.request(op, args, timeout)
    except AgentTimeout as e:
        if client.resumed or not resume_agent(client.transport):
            raise CommandError(str(e)) from e
        client.resumed = True
        print(
            f"dbch: the board on {client.port or 'the port'} was at its REPL: its agent was started again",
            file=sys.stderr,
        )
        try:
            return client.request(op, args, timeout)
        except LinkError as e2:
            raise CommandError(str(e2)) from e2
    except LinkError as e:
        raise CommandError(str(e)) from e


RESUME_TIMEOUT = 20.0  # s for the agent to come up after the soft reset


def resume_agent(transport, timeout: float = RESUME_TIMEOUT) -> bool:
    """Start the agent again on a board that sits at its REPL, over an open transport: True once
    it answers. A line end shows the friendly REPL's prompt (a running agent ignores it); Ctrl-B
    brings a board left in the raw REPL (an mpremote session cut short) to the friendly one. Only
    after a REPL prompt has come back are Ctrl-C (cancel the line the host's requests were typed
    into) and Ctrl-D (soft reset: main.py starts the agent) sent; to an agent, which owns the line
    and has the interrupt character off, the line end and Ctrl-B are noise between frames."""
    transport.write(b"\r")
    lines = console_lines(_read_for(transport, 0.6))
    if not lines or not lines[-1].startswith((">>>",) + _MID_STATEMENT):
        transport.write(b"\x02")
        lines = console_lines(_read_for(transport, 0.6, until=b">>> "))
    if not lines or not lines[-1].startswith((">>>",) + _MID_STATEMENT):
        return False
    transport.write(b"\x03")
    _read_for(transport, 0.3, until=b">>> ")
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
        if _at_repl(console_lines(bytes(printed))):
            return False
    return False


# ----------------------------------------------------------------------------- when a board is silent

_SHOW_LINES = 12  # lines of console output shown when there is no traceback
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


def _worth_showing(lines: list[str]) -> list[str]:
    """The last traceback in `lines` (up to its exception line), else the last few lines."""
    mark = "Traceback (most recent call last)"
    starts = [i for i, line in enumerate(lines) if mark in line]
    if not starts:
        return lines[-_SHOW_LINES:]
    first = lines[starts[-1]]
    shown = [first[first.index(mark) :]]  # not what was echoed before it on that line
    for line in lines[starts[-1] + 1 : starts[-1] + 40]:
        shown.append(line)
        if not line.startswith((" ", "\t")):  # the exception itself
            break
    return shown


def _at_repl(lines: list[str]) -> bool:
    return bool(lines) and lines[-1].startswith(">>>")


# The REPL's other prompts: a statement that goes on ("... ") and paste mode ("=== "). The host's
# requests, typed into a REPL's line, can leave one open (an unclosed bracket in their bytes).
_MID_STATEMENT = ("...", "===")


def _indent(lines: list[str]) -> str:
    return "\n".join("  " + line for line in lines)


def _server_for(spec: str, path: str) -> tuple[str, str] | None:
    """("vboard"|"sim"|"triage", NAME) for a --port value or the pty of a running one."""
    for kind in ("vboard", "sim", "triage"):
        if spec == kind or spec.startswith(kind + ":"):
            return kind, spec.partition(":")[2] or "default"
    if "://" in path:
        return None
    from host_tools.servers import simagent, vboard

    real = os.path.realpath(path)
    for kind, infos in (("vboard", vboard.list_boards), ("sim", simagent.list_agents)):
        for info in infos():
            if os.path.realpath(info.port) == real:
                return kind, info.name
    return None


def explain_silence(spec: str, path: str | None = None, *, baud: int = DEFAULT_BAUD) -> str:
    """Why the board on `spec` (a --port value or a device path; `path` its device) may not have
    answered, as text for an error message ("" if nothing useful is known): a virtual board's
    recent console output, a CPython agent's log, or what a real board's REPL shows (probe_repl)."""
    spec = str(spec).strip()
    path = str(path or spec)
    try:
        server = _server_for(spec, path)
        if server is None:
            if "://" not in path and os.path.exists(path):
                return probe_repl(path, baud)
            return ""
        kind, name = server
        if kind == "vboard":
            return _vboard_console(name, spec)
        if kind == "sim":
            return _agent_log(name)
    except Exception as e:  # an explanation must never hide the error it explains
        return f"(what the board printed could not be read: {e})"
    return ""


def _vboard_console(name: str, spec: str) -> str:
    from host_tools.servers import vboard

    info = vboard.read_state(name)
    if info is not None and not (Path(info.fs) / "main.py").exists():
        return f"nothing is flashed on it: its flash {info.fs} has no main.py (dbch flash --port {spec})"
    raw = vboard.console_tail(name)
    lines = console_lines(raw, cut=len(raw) >= vboard.CONSOLE_KEEP)
    if not lines:
        return ""
    text = f"the board's console ({vboard.console_path(name)}) shows:\n" + _indent(_worth_showing(lines))
    if _at_repl(lines):
        text += "\nthe board is at the MicroPython REPL: the agent is not running"
    return text


def _agent_log(name: str) -> str:
    from host_tools.servers import registry as services
    from host_tools.servers import simagent

    log = simagent.agent_dir(name) / simagent.LOG_FILE
    lines = services.log_tail(log, n=6000).splitlines()
    if not any(line.startswith("Traceback") for line in lines):
        return ""
    return f"the agent's log ({log}) shows:\n" + _indent(_worth_showing(lines))


def _read_for(transport: SerialTransport, seconds: float, until: bytes = b"") -> bytes:
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
        lines = console_lines(_read_for(t, 0.6))
        if lines and lines[-1] in _MID_STATEMENT:
            t.write(b"\x03")  # the REPL's own prompt came back: cancel the statement, not an agent
            lines += console_lines(_read_for(t, 0.6, until=b">>> "))
        if not _at_repl(lines):
            if lines:
                return "the board printed:\n" + _indent(lines[-_SHOW_LINES:])
            return (
                f"the board printed nothing in reply to a line end: the agent may be busy or stuck, or the baud "
                f"rate is not the board's (--baud). To watch its console: mpremote connect {path} repl, then "
                "reset the board"
            )
        t.write(b"\x04")  # soft reset: main.py runs again and prints what stops the agent
        lines = console_lines(_read_for(t, 5.0, until=b">>> "))
    finally:
        t.close()
    text = "the board is at the MicroPython REPL: the agent is not running. After a soft reset it printed:\n"
    return text + (_indent(_worth_showing(lines)) if lines else "  (nothing)")

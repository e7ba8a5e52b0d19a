"""The --port values the servers answer to, made known to host_tools.link.ports: vboard[:NAME]
(a virtual board), sim[:NAME] (the agent under CPython) and triage[:NAME] (a hub on a triage
tool's TLS link), with what each shows when its board does not answer.

Each server module is imported only when its port is asked for: on a system without ptys the
other ports still work."""

from __future__ import annotations

from pathlib import Path

from host_tools.link.console import at_repl, console_lines, indented, worth_showing
from host_tools.link.ports import Scheme, register_scheme


def _vboard_resolve(spec: str, start: bool | None) -> str:
    from host_tools.servers import vboard

    return vboard.resolve_port(spec, start=start)


def _vboard_console(name: str, spec: str) -> str:
    """The end of a virtual board's console, or that nothing is flashed on it."""
    from host_tools.servers import vboard

    info = vboard.read_state(name)
    if info is not None and not (Path(info.fs) / "main.py").exists():
        return f"nothing is flashed on it: its flash {info.fs} has no main.py (dbch flash --port {spec})"
    raw = vboard.console_tail(name)
    lines = console_lines(raw, cut=len(raw) >= vboard.CONSOLE_KEEP)
    if not lines:
        return ""
    text = f"the board's console ({vboard.console_path(name)}) shows:\n" + indented(worth_showing(lines))
    if at_repl(lines):
        text += "\nthe board is at the MicroPython REPL: the agent is not running"
    why = vboard.radio_not_in_image(info.fs, "\n".join(lines)) if info is not None else ""
    return text + ("\n" + why if why else "")


def _vboards() -> list[tuple[str, str]]:
    from host_tools.servers import vboard

    return [(info.name, info.port) for info in vboard.list_boards()]


def _sim_resolve(spec: str, start: bool | None) -> str:
    from host_tools.servers import simagent

    return simagent.resolve_port(spec, start=start)


def _agent_log(name: str, spec: str) -> str:
    """The traceback in a CPython agent's log, if there is one."""
    from host_tools.servers import registry as services
    from host_tools.servers import simagent

    log = simagent.agent_dir(name) / simagent.LOG_FILE
    lines = services.log_tail(log, n=6000).splitlines()
    if not any(line.startswith("Traceback") for line in lines):
        return ""
    return f"the agent's log ({log}) shows:\n" + indented(worth_showing(lines))


def _agents() -> list[tuple[str, str]]:
    from host_tools.servers import simagent

    return [(info.name, info.port) for info in simagent.list_agents()]


def _triage_resolve(spec: str, start: bool | None) -> str:
    from host_tools.servers import triage

    return triage.resolve_port(spec)  # a triage tool is started by `dbch triage serve`, never here


register_scheme(Scheme("vboard", _vboard_resolve, _vboard_console, _vboards))
register_scheme(Scheme("sim", _sim_resolve, _agent_log, _agents))
register_scheme(Scheme("triage", _triage_resolve))

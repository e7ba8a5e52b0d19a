"""A technician's session over the triage link (`dbch triage connect`): which hub is on the
Triage Tool and how, then ordinary dbch commands over --port triage[:NAME], typed one per line."""

from __future__ import annotations

import shlex

from host_tools.servers.triage.registry import TriageInfo

HELP = """commands run over the triage link (the ordinary dbch commands, --port added):
  status | config get | config set ... | alerts [--wait S] [--follow] | firmware ...
  info (the session) | help | quit"""


def session(info: TriageInfo) -> dict:
    """What a technician sees of the tool and the hub on it."""
    return {
        "tool": info.name,
        "tool_cert": info.tool,
        "listen": info.listen,
        "pty": info.port,
        "hub": info.hub,
        "sessions": info.sessions,
        "refused": info.refused,
        "last_refusals": info.refusals[-5:],
    }


def command_argv(words: list[str], spec: str, json_out: bool, timeout: float | None = None) -> list[str]:
    """The dbch command line of `words` (e.g. ["config", "get"]) run over the triage port."""
    argv = list(words)
    if "--port" not in argv and "-p" not in argv:
        argv += ["--port", spec]
    if timeout is not None and "--timeout" not in argv:
        argv += ["--timeout", str(timeout)]
    if json_out and "--json" not in argv:
        argv.append("--json")
    return argv


def run_shell(read_line, run, show_session, say) -> int:
    """Commands one per line until "quit" or the end of the input; the exit status of the last
    command run, as in a shell (1 if the tool stopped).

    read_line() gives the next line ("" at the end); run(words) runs a dbch command and returns
    its exit status; show_session() shows the session again ("info"; False if the tool has
    stopped); say(text) tells the technician (help, a line that does not parse)."""
    rc = 0
    while True:
        line = read_line()
        if not line:
            break
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            say(f"dbch: {e}")
            continue
        if not words:
            continue
        if words[0] in ("quit", "exit"):
            break
        if words[0] == "help":
            say(HELP)
            continue
        if words[0] == "info":
            if not show_session():
                return 1
            continue
        rc = run(words)
    return rc

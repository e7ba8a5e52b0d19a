"""`dbch triage dial`: a simulated hub (boards.sim parts, storage in a directory) that dials a
Triage Tool, on CPython or on the MicroPython unix port (mbedTLS, the program
host_tools/onboard/dial.py): the other end of the link, for trying it out and for the tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hal import tls
from host_tools.extras import missing
from host_tools.paths import cache_dir
from host_tools.servers.simhub import make_hal
from host_tools.servers.triage.addresses import parse_hostport
from host_tools.servers.triage.credentials import hub_files, read_material, tool_name
from host_tools.servers.triage.registry import TriageToolError

ROOT = Path(__file__).resolve().parents[3]
PROGRAM = ROOT / "host_tools" / "onboard" / "dial.py"


def hub_fs(eui: str) -> Path:
    """The storage directory of the simulated hub `eui` unless told: <cache>/dbch/triage-hub/EUI."""
    return cache_dir("triage-hub", eui.replace("-", ""), "flash")


@dataclass
class Dial:
    """A simulated hub's dialling: who it is (its EUI and DER files), the tool certificate name
    it expects (peer) and where that tool listens, its storage, and when it ends (None: never)."""

    eui: str
    cert: Path
    key: Path
    ca: Path
    peer: str
    host: str
    port: int
    fs: Path
    timeout: float = 10.0  # s for connect and handshake
    sessions: int | None = None
    max_failures: int | None = None
    retry_s: float = 5.0

    @classmethod
    def from_pki(cls, pki_dir, eui: str | None, tool: str | None, connect: str, fs: str | None, **options) -> Dial:
        """Hub `eui` (default: the only one in the PKI) dialling HOST:PORT `connect`, expecting
        `tool` (default: the only tool in the PKI); its storage `fs` (default hub_fs), made."""
        eui, cert, key, ca = hub_files(pki_dir, eui)
        peer = tool_name(pki_dir, tool)
        host, port = parse_hostport(connect)
        where = Path(fs).expanduser().resolve() if fs else hub_fs(eui)
        where.mkdir(parents=True, exist_ok=True)
        return cls(eui, cert, key, ca, peer, host, port, where, **options)


def dial(d: Dial, stop) -> dict:
    """Run the hub under CPython until it ends (sessions, max_failures) or stop() is true."""
    from agent.triage_link import serve_triage
    from boards import sim

    _, cert, key, ca = read_material((d.eui, d.cert, d.key, d.ca))
    cfg = {"mode": "tls", "cert": cert, "key": key, "ca": ca, "peer": d.peer, "host": d.host, "port": d.port}
    cfg["timeout"] = d.timeout
    try:
        hal = make_hal(d.fs, d.eui)
        hub = serve_triage(
            hal,
            cfg,
            board=sim,
            sessions=d.sessions,
            max_failures=d.max_failures,
            retry_ms=int(d.retry_s * 1000),
            stop=stop,
        )
    except tls.TriageLinkError as e:
        raise TriageToolError(f"the hub refused its triage link configuration: {e}") from e
    return {
        "eui": d.eui,
        "runtime": "cpython",
        "fs": str(d.fs),
        "incidents": hub.incidents.snapshot(),
        "outbox": len(hub.outbox),
    }


def dial_micropython(d: Dial) -> dict:
    """Run the hub on the MicroPython unix port until it ends; SIGTERM or Ctrl-C here reaches it
    as Ctrl-C (KeyboardInterrupt), and it ends cleanly."""
    exe = shutil.which("micropython")
    if exe is None:
        raise TriageToolError(missing("vboard") or "micropython (the unix port) is not on PATH")
    params = {
        "root": str(ROOT),
        "cert": str(d.cert),
        "key": str(d.key),
        "ca": str(d.ca),
        "peer": d.peer,
        "host": d.host,
        "port": d.port,
        "timeout": d.timeout,
        "fs": str(d.fs),
        "eui": d.eui,
        "sessions": d.sessions,
        "max_failures": d.max_failures,
        "retry_ms": int(d.retry_s * 1000),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="dbch-dial-", delete=False) as f:
        json.dump(params, f)
    proc = subprocess.Popen([exe, str(PROGRAM), f.name], stdout=subprocess.PIPE, text=True)
    previous = {
        s: signal.signal(s, lambda *_: proc.send_signal(signal.SIGINT)) for s in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        out, _ = proc.communicate()
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        os.unlink(f.name)
    result = {"eui": d.eui, "runtime": "micropython", "fs": str(d.fs), "exit": proc.returncode}
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["DIAL"]:
            result["tls"] = words[1]
        elif words[:1] == ["RESULT"]:
            result.update(auth_failed=int(words[1]), major_incidents=int(words[2]), outbox=int(words[3]))
        elif words[:1] == ["REFUSED"]:
            result["refused"] = line[len("REFUSED ") :]
        elif words[:1] == ["STOPPED"]:
            result["stopped"] = True
    if proc.returncode != 0:
        raise TriageToolError(
            f"the MicroPython hub ended with status {proc.returncode}: {result.get('refused', out[-500:])}"
        )
    return result

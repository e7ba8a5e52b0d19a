"""A warm re-flash: what is flashed, asked of the running agent over its own link.

Before it hands a board's line over to the REPL, `dbch flash` asks the agent for one digest of
every file it would write or remove (the "flashed" request, agent/flashed.py: the SHA-256 over
each file's path and SHA-256, in an order both sides know) and computes the same over what it
would write. When they are equal nothing on the board would change: the agent keeps running and
the flash is done, in one round trip (two with the hello that says which agent runs). A board
that differs, an agent that does not know the request (E13), or no agent at all, goes the whole
way (host_tools.firmware.flash).
"""

from __future__ import annotations

import hashlib

from host_tools.link.client import AgentClient, LinkError
from host_tools.link.ports import PortBusy, SerialTransport

OP = "flashed"


def expected(wanted: dict[str, bytes], dirs: list[str], files: list[str]) -> tuple[bytes, int]:
    """(the digest agent/flashed.py gives for dirs and files, how many files it covers) of a board
    that holds exactly wanted ({path: bytes}) there."""
    total = hashlib.sha256()
    n = 0
    paths = []
    for d in dirs:
        prefix = d + "/"
        paths += sorted(p for p in wanted if p.startswith(prefix) and "/" not in p[len(prefix) :])
    paths += [p for p in files if p in wanted]
    for p in paths:
        total.update(p.encode() + b"\n" + hashlib.sha256(wanted[p]).digest())
        n += 1
    return total.digest(), n


def ask(
    port: str, dirs: list[str], files: list[str], *, probe: str | None = None, baud: int = 115200, timeout: float = 2.0
):
    """(the agent's digest of dirs and files, its hello, whether the file probe is there if one is
    named) from the agent running on port, or None when no agent there answers the request (none
    runs, or an older one that does not know it). PortBusy if another program has the port open."""
    try:
        transport = SerialTransport(port, baud)
    except PortBusy:
        raise
    except LinkError:
        return None
    text = bytearray()
    try:
        client = AgentClient(transport, timeout=timeout, port=port, on_text=text.extend)
        # a board at its REPL shows a prompt or echoes the request's op name: no agent there
        r = client.request(OP, {"dirs": dirs, "files": files}, give_up=lambda: b">>> " in text or OP.encode() in text)
        if not r.ok or not isinstance(r.data, dict) or not isinstance(r.data.get("sha"), bytes):
            return None
        there = None
        if probe is not None:
            p = client.request(OP, {"files": [probe]})
            there = p.ok and p.data.get("n") == 1
        hello = client.hello()
        return r.data["sha"], (hello.data if hello.ok else None), there
    except LinkError:
        return None
    finally:
        transport.close()

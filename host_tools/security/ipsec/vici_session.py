"""A vici session on charon's socket, and the values vici sends (bytes) as text and numbers."""

from __future__ import annotations

import socket
from pathlib import Path

from host_tools.security.ipsec import SYSTEM_SOCKET, IpsecError

START_HINT = (
    "start strongSwan (`systemctl start strongswan-starter`; scripts/setup-system installs it), "
    "or run a private charon as root with `dbch ipsec charon` and give its --socket"
)


def vici_session(path: str | Path = SYSTEM_SOCKET, timeout: float = 10.0):
    """A vici session on charon's Unix socket."""
    try:
        import vici
    except ImportError as e:
        from host_tools.extras import missing

        raise IpsecError(missing("ipsec") or str(e)) from e
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except OSError as e:
        s.close()
        why = "no vici socket there" if isinstance(e, FileNotFoundError) else e.strerror or str(e)
        raise IpsecError(f"charon is not running or not reachable at {path} ({why}): {START_HINT}") from e
    return vici.Session(s)


def as_text(v) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def as_int(v) -> int | None:
    try:
        return int(as_text(v))
    except (TypeError, ValueError):
        return None

"""Addresses on the triage link: where a Triage Tool listens and where a hub dials it."""

from __future__ import annotations

from host_tools.servers.triage.registry import TriageToolError

DEFAULT_LISTEN = "127.0.0.1:4460"


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """(host, port) of HOST:PORT or PORT (port 0-65535, 0: any free one)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    try:
        n = int(port)
    except ValueError:
        raise TriageToolError(f"bad address {text!r}: use HOST:PORT, e.g. 0.0.0.0:4460") from None
    if not 0 <= n < 65536:
        raise TriageToolError(f"bad port in {text!r}: 0-65535")
    return host, n


def parse_tool_address(text: str) -> tuple[str, int]:
    """HOST:PORT of a Triage Tool as a hub must dial it (both given; port 1-65535)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise TriageToolError(f"bad --tool {text!r}: give the address the hub dials, HOST:PORT (e.g. 192.0.2.10:4460)")
    try:
        n = int(port)
    except ValueError:
        raise TriageToolError(f"bad --tool {text!r}: the port is not a number") from None
    if not 0 < n < 65536:
        raise TriageToolError(f"bad --tool {text!r}: the port must be 1-65535")
    return host, n

"""The triage link's credentials from the development PKI (host_tools.security.pki): a tool's or a
hub's certificate and key and the CA, as DER (what both TLS stacks load), and the hubs a tool
expects. A certificate not given is the only one of its kind in the PKI."""

from __future__ import annotations

from pathlib import Path

from host_tools.security.pki import Issued, Pki, normalize_eui
from host_tools.servers.triage.registry import TriageToolError


def _files(pki: Pki, issued: Issued) -> tuple[str, Path, Path, Path]:
    return issued.name, issued.cert_der, issued.key_der, pki.ca().cert_der


def read_material(files: tuple[str, Path, Path, Path]) -> tuple[str, bytes, bytes, bytes]:
    """(name, cert, key, CA) read from the files tool_files or hub_files name."""
    name, cert, key, ca = files
    try:
        return name, cert.read_bytes(), key.read_bytes(), ca.read_bytes()
    except OSError as e:
        raise TriageToolError(str(e)) from e


def tool_files(pki_dir, tool: str | None) -> tuple[str, Path, Path, Path]:
    """(tool name, cert DER, key DER, CA DER file) of a triage tool in the PKI."""
    pki = Pki(pki_dir)
    name = tool or pki.only("tools", "tool", "--tool", "`dbch pki tool ...`")
    return _files(pki, pki.tool(name))


def hub_files(pki_dir, eui: str | None) -> tuple[str, Path, Path, Path]:
    """(EUI, cert DER, key DER, CA DER file) of a hub in the PKI."""
    pki = Pki(pki_dir)
    ident = normalize_eui(eui) if eui else pki.only("devices", "device", "--eui", "`dbch pki device ...`")
    return _files(pki, pki.device(ident))


def tool_material(pki_dir, tool: str | None) -> tuple[str, bytes, bytes, bytes]:
    """(tool name, cert DER, key DER, CA DER) from the PKI."""
    return read_material(tool_files(pki_dir, tool))


def hub_material(pki_dir, eui: str | None) -> tuple[str, bytes, bytes, bytes]:
    """(EUI, cert DER, key DER, CA DER) of a hub from the PKI."""
    return read_material(hub_files(pki_dir, eui))


def tool_name(pki_dir, tool: str | None = None) -> str:
    """The name of the tool certificate a hub expects: `tool`, else the only one in the PKI."""
    return tool or tool_files(pki_dir, None)[0]


def expected_euis(pki_dir, expect: list[str] | None) -> list[str]:
    """The hub EUIs to accept: --expect, else every hub with a certificate in the PKI."""
    if expect:
        return sorted({normalize_eui(e) for e in expect})
    pki = Pki(pki_dir)
    found = sorted({pki.device("", label=d).name for d in pki.labels("devices")})
    if not found:
        raise TriageToolError("no hub to expect: give --expect EUI, or issue hub certificates with `dbch pki device`")
    return found

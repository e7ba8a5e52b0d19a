"""`dbch triage enrol`: a hub (a flashed board, or any agent port) gets what it needs to dial its
Triage Tool by itself, in one request (triage.set): the tool's address, the hub's certificate and
key and the CA from the PKI (DER), the tool's certificate name. triage.clear takes it back.

The requests go through request(op, args) -> the agent's Response, on a client the caller opened.
"""

from __future__ import annotations

from agent import triage
from agent.hub import RC_UNKNOWN_OP
from hal import tls
from host_tools.servers.triage.credentials import hub_material, tool_name
from host_tools.servers.triage.registry import TriageToolError


def enrol_config(pki_dir, eui: str, tool: str | None, host: str, port: int) -> dict:
    """The triage.set arguments for hub `eui`: agent.triage's TLS configuration (the hub's
    certificate and key, the CA, the tool's certificate name as "peer", all DER) and the Triage
    Tool's address. Checked against the policy the hub applies before it is sent."""
    name, cert, key, ca = hub_material(pki_dir, eui)
    peer = tool_name(pki_dir, tool)
    cfg = {"mode": "tls", "host": host, "port": port, "cert": cert, "key": key, "ca": ca, "peer": peer}
    try:
        triage.tls_endpoint(cfg, False)  # the policy, and the material loads
    except tls.TriageLinkError as e:
        raise TriageToolError(f"the PKI material of hub {name} cannot be used for the triage link: {e}") from e
    return cfg


def _answered(r, op: str, port: str):
    if r.ok:
        return r
    if r.rc == RC_UNKNOWN_OP:
        raise TriageToolError(
            f"the agent on {port} does not know {op} ({r.rc}): its firmware has no triage link; "
            "update it (`dbch firmware`) or flash a current agent, then enrol again"
        )
    raise TriageToolError(f"the hub on {port} refused {op}: {r.rc} {r.err or ''}".rstrip())


def _eui(request) -> str:
    """The EUI the agent says it has ("" if it does not say)."""
    return str((request("hello").data or {}).get("eui") or "")


def forget(request, port: str) -> dict:
    """Make the hub on `port` forget its triage link (triage.clear): what it answered."""
    eui = _eui(request)
    r = _answered(request("triage.clear", {}), "triage.clear", port)
    return {"port": port, "eui": eui, "op": "triage.clear", "rc": r.rc, **(r.data or {})}


def enrol(request, port: str, pki_dir, address: tuple[str, int], hub: str | None, tool: str | None) -> dict:
    """Give the hub on `port` its triage link (triage.set) to the tool at `address` (host, port):
    its own credentials from the PKI (hub: the EUI it must have, checked against the one it
    says), `tool` the tool certificate name it expects (default: the only tool in the PKI).
    What it answered, with where it dials; never the credentials."""
    eui = _eui(request)
    if hub is not None and eui and hub.upper() != eui.upper():
        raise TriageToolError(
            f"the hub on {port} is {eui}, not {hub}: a hub presents its own certificate "
            f"(drop --hub, or give --hub {eui} once `dbch pki device {eui.replace('-', '')}` has issued it)"
        )
    ident = hub or eui
    if not ident:
        raise TriageToolError(f"the agent on {port} did not say its EUI: give --hub EUI")
    cfg = enrol_config(pki_dir, ident, tool, *address)
    r = _answered(request("triage.set", cfg), "triage.set", port)
    return {
        "port": port,
        "eui": ident,
        "op": "triage.set",
        "rc": r.rc,
        "host": cfg["host"],
        "tool_port": cfg["port"],
        "peer": cfg["peer"],
        **(r.data or {}),
    }

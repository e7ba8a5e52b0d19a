"""The fleet's topics and payloads on the broker (see host_tools.fleet): topic names, the alert
code of an upward event, a hub's retained state, and command payloads (JSON, or CBOR with
content type application/cbor)."""

from __future__ import annotations

import json

import cbor2

from host_tools.link.client import Event

CBOR = "application/cbor"


def topic(eui: str, *parts: str) -> str:
    return "/".join(("dbch", eui) + parts)


def alert_code(ev: Event) -> str:
    """The last level of an event's alert topic: an N54's DeviceAlertCode, else its kind."""
    code = ev.data.get("DeviceAlertCode") if isinstance(ev.data, dict) else None
    return str(code or ev.kind)


def state_of(status: dict) -> dict:
    """The retained state of a hub, from its status: identity, firmware, masks, duty cycle."""
    keep = ("eui", "board", "version", "boot", "epoch", "configured", "masks", "channel", "duty", "outbox", "band")
    return {k: status[k] for k in keep if k in status}


def op_of(command: str) -> str:
    """The agent's op for a command topic's last levels: "config/get" and "config.get" alike."""
    return command.replace("/", ".")


def encode_payload(obj, content_type: str | None) -> bytes:
    if content_type == CBOR:
        return cbor2.dumps(obj, canonical=True)
    return json.dumps(obj, sort_keys=True, default=lambda b: b.hex() if isinstance(b, bytes) else str(b)).encode()


def decode_payload(payload: bytes, content_type: str | None):
    """A command's arguments: a JSON object (or CBOR map with content type application/cbor);
    empty is {}. ValueError for anything else."""
    if not payload:
        return {}
    try:
        args = cbor2.loads(payload) if content_type == CBOR else json.loads(payload)
    except Exception as e:  # cbor2 and json raise several types for bad input
        raise ValueError(f"the payload is not {'CBOR' if content_type == CBOR else 'JSON'}: {e}") from e
    if not isinstance(args, dict):
        raise ValueError("the payload must be a map of the op's arguments")
    return args

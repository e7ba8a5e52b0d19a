"""The hub's HAN from the host: the devices it sees, and the simulated devices beside a virtual
board's or CPython agent's hub (agent/han_ops.py answers; hal/sim/han.py simulates them)."""

from __future__ import annotations

from collections.abc import Callable

from agent.eui import format_eui, parse_eui
from hal.han_frame import TYPES
from host_tools.errors import DbchError
from host_tools.link.agent import Agent

DEVICE_TYPES = TYPES[1:]  # ESME, GSME, PPMID, IHD, CAD (type 2)
BEHAVIOURS = ("normal", "silent", "flood", "lossy")
MINUTE_MS = 60000


class HanError(DbchError):
    """The HAN request was refused; the message says why and what to do."""


def eui_text(value: str) -> str:
    """An EUI-64 as DUIS writes it; HanError if value is not one."""
    try:
        return format_eui(parse_eui(value))
    except ValueError as e:
        raise HanError(f"{e}: give an EUI-64 such as 00-00-00-00-00-00-01-01") from None


def _answer(agent: Agent, op: str, args: dict, what: str) -> dict:
    r = agent.request(op, args)
    if r.rc == "E13" and op != "han.list":
        raise HanError(
            f"{what}: {r.err or 'not offered'}; simulated devices live beside a virtual board "
            "(--port vboard[:NAME]) or the CPython agent (--port sim[:NAME])"
        )
    if r.rc == "E13":
        raise HanError(f"{what}: this agent has no HAN (flash a newer agent: dbch flash)")
    if not r.ok:
        raise HanError(f"{what} failed: {r.rc} {r.err or ''}")
    return r.data


def listing(agent: Agent) -> dict:
    """{"capacity", "devices": the hub's table, "duty", "simulated": the simulated devices (only
    on a simulated board)}."""
    return _answer(agent, "han.list", {}, "han list")


def add(agent: Agent, eui: str, kind: str, period_s: int | None = None) -> dict:
    if kind not in DEVICE_TYPES:
        raise HanError(f"device type {kind!r}: one of {', '.join(DEVICE_TYPES)}")
    args = {"eui": eui_text(eui), "type": kind}
    if period_s is not None:
        args["period_s"] = period_s
    return _answer(agent, "han.add", args, f"han add {args['eui']}")


def remove(agent: Agent, eui: str) -> dict:
    eui = eui_text(eui)
    return _answer(agent, "han.remove", {"eui": eui}, f"han remove {eui}")


def script(agent: Agent, eui: str, behaviour: str, burst: int | None = None, loss: int | None = None) -> dict:
    if behaviour not in BEHAVIOURS:
        raise HanError(f"behaviour {behaviour!r}: one of {', '.join(BEHAVIOURS)}")
    args = {"eui": eui_text(eui), "behaviour": behaviour}
    if burst is not None:
        args["burst"] = burst
    if loss is not None:
        args["loss"] = loss
    return _answer(agent, "han.script", args, f"han script {args['eui']}")


def push(
    agent: Agent,
    eui: str,
    length: int = 40,
    essential: bool = False,
    request_id: str | None = None,
    cra: str = "Command",
    count: int = 1,
) -> dict:
    """A message for a joined device, count times: {"outcome": the last one's (sent, held or
    discarded), "outcomes": how many of each, "duty"}."""
    args = {"eui": eui_text(eui), "len": length, "essential": essential, "cra": cra, "count": count}
    if request_id:
        args["request_id"] = request_id
    return _answer(agent, "han.push", args, f"han push {args['eui']}")


def noise(agent: Agent, page: int, channel: int, dbm: int | None) -> dict:
    """An interferer at dbm on (page, channel) of the simulated medium (None: it stops)."""
    args = {"page": page, "channel": channel}
    if dbm is not None:
        args["dbm"] = dbm
    return _answer(agent, "han.noise", args, f"han noise {page}/{channel}")


def run_minutes(agent: Agent, minutes: int, say: Callable[[str], None] = lambda text: None) -> str:
    """Let `minutes` of virtual time pass a minute at a time (the devices act as it passes); the
    duty-cycle state at the end."""
    state = ""
    for m in range(1, minutes + 1):
        r = agent.request("clock.advance", {"ms": MINUTE_MS}, timeout=60)
        if not r.ok:
            raise HanError(f"clock.advance failed: {r.rc} {r.err or ''} (this board's clock is real time)")
        if m % 10 == 0 or m == minutes:
            state = agent.request("status").data["duty"]["state"]
            say(f"   minute {m}/{minutes}: duty cycle {state}")
    return state

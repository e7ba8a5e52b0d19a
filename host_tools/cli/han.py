"""`dbch han list|add|remove|script|noise|push`: the hub's HAN devices, and simulated ones on a virtual
board or the CPython agent."""

from __future__ import annotations

import argparse

from host_tools.cli.groups import add_group
from host_tools.cli.options import open_agent, port_command
from host_tools.cli.output import emit, say
from host_tools.link import han

DESCRIPTION = """\
The devices the hub sees on its radio (EUI, type, joined, suspended, airtime this hour, last
heard, MAC statistics) and, on a virtual board or the CPython agent, the simulated devices around
it: add one (it looks for the network and joins, or is refused past the board's capacity: 8F2D),
remove one (it leaves), or script its behaviour (silent: a GSME goes quiet; flood: a burst of
requests every second; lossy: a share of its frames lost on the air; normal), or make a channel
noisy (an interferer: the hub's energy readings rise and frames on it are lost). The alerts that
follow (duty cycle, scans and channel changes) come up as usual: dbch alerts."""


def register(sub: argparse._SubParsersAction) -> None:
    hsub = add_group(sub, "han", "the HAN devices the hub sees, and simulated ones", DESCRIPTION)
    port_command(hsub.add_parser("list", help="the devices the hub sees (and the simulated ones)"), cmd_list)

    p = hsub.add_parser("add", help="a simulated device joins (virtual board, CPython agent)")
    p.add_argument("eui", metavar="EUI", help="its EUI-64, e.g. 00-00-00-00-00-00-01-01")
    p.add_argument("type", metavar="TYPE", choices=han.DEVICE_TYPES, help="|".join(han.DEVICE_TYPES))
    p.add_argument("--period", type=int, metavar="S", help="seconds between its messages (GSME: its wake period)")
    port_command(p, cmd_add)

    p = hsub.add_parser("remove", help="a simulated device leaves")
    p.add_argument("eui", metavar="EUI")
    port_command(p, cmd_remove)

    p = hsub.add_parser("script", help="script a simulated device's behaviour, and let time pass")
    p.add_argument("eui", metavar="EUI")
    p.add_argument("behaviour", metavar="BEHAVIOUR", choices=han.BEHAVIOURS, help="|".join(han.BEHAVIOURS))
    p.add_argument("--burst", type=int, metavar="N", help="flood: requests a second (1-50, default 10)")
    p.add_argument("--loss", type=int, metavar="PCT", help="lossy: percent of its frames lost (default 50)")
    p.add_argument("--minutes", type=int, default=0, metavar="N", help="then let N virtual minutes pass")
    port_command(p, cmd_script)

    p = hsub.add_parser("noise", help="a channel of the simulated medium gets noisy (an interferer), or quiet again")
    p.add_argument("page", type=int, metavar="PAGE", help="28-31")
    p.add_argument("channel", type=int, metavar="CHANNEL")
    p.add_argument("dbm", type=int, nargs="?", metavar="DBM", help="its level, -120 to 0 dBm (absent: it stops)")
    p.add_argument("--minutes", type=int, default=0, metavar="N", help="then let N virtual minutes pass")
    port_command(p, cmd_noise)

    p = hsub.add_parser("push", help="a message from the hub to a joined device (a DCC command, a tariff)")
    p.add_argument("eui", metavar="EUI")
    p.add_argument("--len", type=int, default=40, help="its length in bytes (1-100, default 40)")
    p.add_argument("--essential", action="store_true", help="essential traffic (goes even when Critical)")
    p.add_argument("--request-id", metavar="RID", help="the DUIS RequestID it carries (originator:target:counter)")
    p.add_argument("--cra", choices=("Command", "Response", "Alert"), default="Command", help="its CRA flag")
    p.add_argument("--count", type=int, default=1, help="send it this many times (1-1000)")
    port_command(p, cmd_push)


def _kb(us: int) -> str:
    return f"{us / 1e6:.2f} s"


def table(data: dict) -> str:
    rows = data.get("devices") or []
    lines = [f"{len(rows)} of {data.get('capacity')} device(s) joined; duty cycle {data.get('duty')}"]
    if rows:
        lines.append(
            f"{'EUI':23}  {'type':5}  joined  suspended  {'airtime/h':>10}  {'heard/h':>9}  last heard  MAC total/fail/retry"
        )
        for r in rows:
            last = "never" if r.get("last_heard_s") is None else f"{r['last_heard_s']} s ago"
            mac = "/".join(str(v) for v in r["mac"][:3]) if r.get("mac") else "-"
            lines.append(
                f"{r['eui']:23}  {r['type']:5}  {'yes' if r['joined'] else 'no':6}  {'yes' if r['suspended'] else 'no':9}"
                f"  {_kb(r['airtime_us']):>10}  {_kb(r['heard_us']):>9}  {last:10}  {mac}"
            )
    joined = {r["eui"] for r in rows}
    for s in data.get("simulated") or []:
        if s["eui"] not in joined:
            why = f"refused {s['refused']}x (no capacity)" if s.get("refused") else "not joined"
            lines.append(f"{s['eui']:23}  {s['type']:5}  simulated, {why}, {s['behaviour']}")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    data = han.listing(open_agent(args))
    emit(args, data, table(data))
    return 0


def _sim_text(d: dict) -> str:
    state = "joined" if d["joined"] else (f"refused {d['refused']}x (no capacity)" if d["refused"] else "not joined")
    return f"{d['eui']} {d['type']}: {state}, {d['behaviour']}"


def cmd_add(args: argparse.Namespace) -> int:
    d = han.add(open_agent(args), args.eui, args.type, args.period)
    emit(args, d, _sim_text(d))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    d = han.remove(open_agent(args), args.eui)
    emit(args, d, f"{d['eui']} left")
    return 0


def cmd_script(args: argparse.Namespace) -> int:
    agent = open_agent(args)
    d = han.script(agent, args.eui, args.behaviour, args.burst, args.loss)
    if args.minutes:
        d["duty"] = han.run_minutes(agent, args.minutes, say)
    emit(args, d, _sim_text(d) + (f"; duty cycle {d['duty']}" if args.minutes else ""))
    return 0


def cmd_noise(args: argparse.Namespace) -> int:
    agent = open_agent(args)
    d = han.noise(agent, args.page, args.channel, args.dbm)
    if args.minutes:
        d["duty"] = han.run_minutes(agent, args.minutes, say)
    ch = agent.request("channel").data
    d["channel"] = ch
    on = ", ".join(f"{p}/{c} at {dbm} dBm" for p, c, dbm in d["interference"]) or "none"
    emit(
        args, d, f"interference: {on}; the hub operates on " + (f"{ch['page']}/{ch['channel']}" if ch else "no channel")
    )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    d = han.push(open_agent(args), args.eui, args.len, args.essential, args.request_id, args.cra, args.count)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(d["outcomes"].items()))
    emit(args, d, f"{counts} (duty cycle {d['duty']})")
    return 0

# The han.* requests (`dbch han`), loaded when one comes:
#   han.list                     the devices the hub sees (agent/han.py's table) and, on a board
#                                with a simulated medium, the simulated devices on it
#   han.push {eui, len, essential, request_id, cra, count}
#                                a message for a device (a DCC command with its RequestID, or a
#                                tariff or firmware block that can wait), count times
#   han.add {eui, type, period_s}, han.remove {eui}, han.script {eui, behaviour, burst, loss}
#                                the simulated devices (hal/sim/han.py): only on a board whose
#                                radio is on a simulated medium (the virtual board, the CPython
#                                agent); elsewhere E13
#   han.noise {page, channel, dbm}  an interferer on a channel of the simulated medium (dbm
#                                absent: it stops)
# Each runs the simulated world up to now first, so what the devices did meanwhile is heard.
from agent.han import eui_arg, han_of

_WORLD = "hal.sim.han"
OPS = ("han.list", "han.push", "han.add", "han.remove", "han.script", "han.noise")


def _world(hub, make):
    # the simulated HAN on the board's medium: a simulated board (boards.sim, boards.unix) puts
    # its medium in the HAL and carries hal.sim.han in its manifest; loaded by name, so that no
    # other board's image needs it
    medium = getattr(hub.hal, "medium", None)
    if medium is None or not make:
        return getattr(medium, "han", None)
    return __import__(_WORLD, None, None, ["world_of"]).world_of(medium, getattr(hub.radio, "band", "868"))


def handle(hub, op, args):
    # (rc, data, err); ValueError from the arguments is E49
    if op not in OPS:
        return "E13", None, "unknown operation {!r}".format(op)
    sim = op in ("han.add", "han.remove", "han.script", "han.noise")
    world = _world(hub, sim)
    if sim and world is None:
        return "E13", None, "this board has no simulated HAN (a real board's devices are real)"
    try:
        if world is not None:
            world.advance(0, hub.tick)
        if op == "han.list":
            return "I0", _listing(hub, world), None
        if op == "han.noise":
            world.noise(args.get("page"), args.get("channel"), args.get("dbm"))
            return "I0", {"interference": [[k[0], k[1], v] for k, v in world.medium.interference.items()]}, None
        eui = eui_arg(args)
        if op == "han.push":
            return _push(hub, eui, args)
        if op == "han.add":
            period = args.get("period_s")
            d = world.add(eui, args.get("type"), period)
            world.advance(0, hub.tick)  # it looks for the network and joins at once
            return "I0", _sim_row(d, hub), None
        if op == "han.remove":
            world.remove(eui)
            world.advance(0, hub.tick)
            return "I0", {"eui": args["eui"], "removed": True}, None
        d = world.script(eui, args.get("behaviour"), args.get("burst"), args.get("loss"))
        return "I0", _sim_row(d, hub), None
    except (ValueError, TypeError) as e:
        return "E49", None, str(e)


def _push(hub, eui, args):
    han = han_of(hub)
    if eui not in han.table:
        return "E49", None, "{} has not joined this hub".format(args["eui"])
    length = args.get("len", 40)
    request_id = args.get("request_id")
    cra = args.get("cra", "Command")
    essential = args.get("essential", False)
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= 100:
        raise ValueError("len must be 1-100")
    if request_id is not None and (not isinstance(request_id, str) or request_id.count(":") != 2):
        raise ValueError("request_id must be a DUIS RequestID (originator:target:counter)")
    if cra not in ("Command", "Response", "Alert"):
        raise ValueError("cra must be Command, Response or Alert")
    count = args.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise ValueError("count must be 1-1000")
    outcomes = {}
    for _ in range(count):
        outcome = han.push(eui, length, bool(essential), request_id, cra)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return "I0", {"outcome": outcome, "outcomes": outcomes, "duty": hub.duty.state}, None


def _sim_row(d, hub):
    from agent.eui import format_eui

    row = d.state(hub.clock.monotonic_ms())
    row["eui"] = format_eui(row["eui"])
    return row


def _listing(hub, world):
    now = hub.clock.monotonic_ms()
    han = han_of(hub)
    data = {
        "capacity": han.capacity,
        "devices": han.rows(now),
        "duty": hub.duty.state,
    }
    if world is not None:
        data["simulated"] = [_sim_row(d, hub) for d in world.devices]
    return data

# Start the agent on a HAL: the hub, and a server on the board's link. Boards' main.py calls
# serve(); a reboot request ends the loop and the board's reset (if any) runs.
#
# On the board's console the agent owns the line (hal/stream_link.py: no byte, 0x03 included,
# interrupts it) until the host asks for it with the "repl" request: answered I0, then the loop
# ends, Ctrl-C is on again and main.py returns to the REPL, where mpremote finds the board as
# usual. The agent starts again on the next soft reset from the friendly REPL (Ctrl-D at ">>> ":
# main.py runs; `dbch flash` and `dbch mpremote` end their sessions so, and any dbch command that
# finds the board at a REPL prompt does the same) or on a hard reset. A soft reset inside the raw
# REPL skips main.py, on a board as on the virtual board, so mpremote's own resets keep the line.
#
# A hub that holds a triage configuration (Store record "triage": `dbch triage enrol`) also dials
# its Triage Tool (agent.triage_link.Dialer), polled in the same loop as the console's server; the
# triage.* requests that set, clear and show it are offered on the local link only, and load
# agent.triage_link when first used, so a hub that is not enrolled never loads it. A board without
# a network (its module's TRIAGE_LINK is False) has no triage link in its image: it neither offers
# those requests nor dials.
#
# The heap policy on MicroPython, set as the agent starts (main.py imports this module before the
# agent's others): the GC also runs after every GC_EVERY bytes allocated, not only when an
# allocation fails. Without it the garbage of loading modules and of booting fills the heap to
# its top before the first collection, the objects kept meanwhile end up spread over all of it,
# and a 128 KB heap is left with 30 KB free in holes of a few hundred bytes: then the next module
# (the firmware service at boot, the validator for config.set) or the next pool of interned
# names does not fit, whatever is free. Collected early, what the agent keeps stays packed low
# and the free space above it in one piece. (bench/bench_footprint.py shows both.)
from hal.compat import collect_every, unload

GC_EVERY = 8192
collect_every(GC_EVERY)

from agent.hub import RC_OK, Hub  # noqa: E402  (after the heap policy: loading them is garbage)
from agent.server import Server  # noqa: E402

_TRIAGE_OPS = ("triage.set", "triage.clear", "triage.status")
_DIAL_BACKOFF_MS = 60000  # at most this long between two dials of an unreachable Triage Tool


def _local_handle(hub, link, dialer):
    # The requests only the local link offers: "repl" and "flashed" (on the console: the hand-over
    # to the REPL, and what is flashed, agent/flashed.py) and triage.*; the rest are the hub's.
    # dialer: a one-item list holding the Dialer in use, or None.
    handle = hub.handle
    console = getattr(link, "console", False)
    triage = _TRIAGE_OPS if getattr(hub.board, "TRIAGE_LINK", True) else ()

    def handle_local(req):
        op = req.get("op")
        if op == "repl" and console:
            link.hand_over()
            return RC_OK, None, None
        if op == "flashed" and console:
            from agent import flashed

            try:
                return flashed.handle(hub.hal.storage, req.get("a") or {})
            finally:
                flashed = None
                unload("agent.flashed")
        if op in triage:
            from agent import triage_link

            return triage_link.handle(hub, req, dialer, _DIAL_BACKOFF_MS)
        return handle(req)

    hub.ops = hub.ops + triage + (("repl", "flashed") if console else ())
    return handle_local


def _start_dialer(hub, dialer):
    cfg = hub.store.get("triage")
    if cfg is None or not getattr(hub.board, "TRIAGE_LINK", True):
        return
    from agent import triage_link

    triage_link.start(hub, cfg, dialer, _DIAL_BACKOFF_MS)


def serve(hal, board=None, on_text=None, idle_ms=20):
    dialer = [None]
    try:
        hub = Hub(hal, board)
        link = hal.link
        server = Server(hub, link, on_text=on_text, handle=_local_handle(hub, link, dialer))
        _start_dialer(hub, dialer)
        while not hub.reboot_requested and not getattr(link, "eof", False):
            server.poll()
            if dialer[0] is not None:
                dialer[0].poll()
            link.wait(idle_ms)
    finally:
        if dialer[0] is not None:
            dialer[0].close()
        hal.deinit()  # closes the link: on the console, Ctrl-C interrupts again
    if hub.reboot_requested and getattr(hal, "reset", None):
        hal.reset()
    return hub

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
from agent.hub import RC_OK, Hub
from agent.server import Server


def _offer_repl(hub, link):
    # the "repl" request belongs to the console link, not to the hub: only there is it offered
    handle = hub.handle

    def handle_repl(req):
        if req.get("op") == "repl":
            link.hand_over()
            return RC_OK, None, None
        return handle(req)

    hub.handle = handle_repl
    hub.ops = hub.ops + ("repl",)


def serve(hal, board=None, on_text=None):
    try:
        hub = Hub(hal, board)
        server = Server(hub, hal.link, on_text=on_text)
        if getattr(hal.link, "console", False):
            _offer_repl(hub, hal.link)
        server.run()
    finally:
        hal.deinit()  # closes the link: on the console, Ctrl-C interrupts again
    if hub.reboot_requested and getattr(hal, "reset", None):
        hal.reset()
    return hub

# Start the agent on a HAL: the hub, and a server on the board's link. Boards' main.py calls
# serve(); a reboot request ends the loop and the board's reset (if any) runs.
from agent.hub import Hub
from agent.server import Server


def serve(hal, board=None, on_text=None):
    hub = Hub(hal, board)
    server = Server(hub, hal.link, on_text=on_text)
    try:
        server.run()
    finally:
        hal.deinit()
    if hub.reboot_requested and getattr(hal, "reset", None):
        hal.reset()
    return hub

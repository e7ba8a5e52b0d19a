# One module per board: data plus a small factory (make_hal). load() is the one place a board,
# and so a platform, is chosen; nothing here touches hardware until make_hal() is called.

BOARDS = ("sim", "unix", "heltec_wifi_lora32_v3", "pico_rfm69", "nucleo_wl55jc")


def load(name):
    """The board module called name (see BOARDS)."""
    if name not in BOARDS:
        raise ValueError("unknown board {!r}; boards: {}".format(name, ", ".join(BOARDS)))
    return __import__("boards." + name, None, None, ["make_hal"])

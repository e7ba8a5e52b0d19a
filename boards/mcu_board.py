# What the real MCU boards' make_hal() share (heltec_wifi_lora32_v3, pico_rfm69, nucleo_wl55jc):
# its own module, so the virtual and simulated boards do not load it.

# The shared part of the real boards' make_hal(band=BAND, **overrides). The board module
# (by name) holds the data: BANDS, PINS, TX_POWER_CAP_DBM, STORAGE_ROOT, SPI_BAUDRATE.
# Overrides: pins (merged over PINS), tx_power_cap_dbm, storage_root, spi_baudrate, link (a
# Link or None; default: the serial console), and the board's own `options` (with their
# defaults). make_radio(machine, pins, band, cap, baudrate, clock, **options) builds the radio.
def build_hal(module_name, band, overrides, make_radio, **options):
    import sys

    import machine

    from hal.contracts import Hal
    from hal.fs_storage import FileStorage
    from hal.mcu import ConfigError, McuClock, McuIdentity

    board = sys.modules[module_name]
    if band not in board.BANDS:
        raise ConfigError("band must be one of {}, not {!r}".format(board.BANDS, band))
    pins = dict(board.PINS)
    pins.update(overrides.pop("pins", {}))
    cap = overrides.pop("tx_power_cap_dbm", board.TX_POWER_CAP_DBM)
    root = overrides.pop("storage_root", board.STORAGE_ROOT)
    baudrate = overrides.pop("spi_baudrate", board.SPI_BAUDRATE)
    link = overrides.pop("link", "console")
    for key in list(options):
        options[key] = overrides.pop(key, options[key])
    if overrides:
        raise ConfigError("unknown override(s): {}".format(", ".join(sorted(overrides))))
    clock = McuClock()
    radio = make_radio(machine, pins, band, cap, baudrate, clock, **options)
    if link == "console":
        from hal.stream_link import StreamLink

        link = StreamLink(sys.stdin.buffer, sys.stdout.buffer)
    return Hal(
        radio=radio,
        clock=clock,
        storage=FileStorage(root),
        link=link,
        identity=McuIdentity(machine.unique_id),
        board=board,
        reset=machine.reset,
    )


def spi_bus(machine, spi_id, baudrate, pins):
    # An SPI bus in mode 0 on pins["sck"], pins["mosi"], pins["miso"].
    Pin = machine.Pin
    return machine.SPI(
        spi_id,
        baudrate=baudrate,
        polarity=0,
        phase=0,
        sck=Pin(pins["sck"]),
        mosi=Pin(pins["mosi"]),
        miso=Pin(pins["miso"]),
    )

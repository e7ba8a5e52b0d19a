# Raspberry Pi Pico (RP2040) with a HopeRF RFM69HCW breakout on SPI0, MicroPython's rp2 port.
# Data, plus make_hal(); `machine` and the drivers are imported inside make_hal only, so
# importing this module touches nothing. The wiring is this project's (the Pico has no fixed
# radio pins): SPI0 SCK GP18, MOSI GP19, MISO GP16, NSS GP17, RESET GP20, DIO0 GP21.
NAME = "pico_rfm69"
MCU = "RP2040"
RADIO = "RFM69HCW"
BAND = "868"  # the module variant fitted: RFM69HCW-868 (pages 28-30) or -915 (page 31)
BANDS = ("868", "915")
PINS = {
    "sck": 18,
    "mosi": 19,
    "miso": 16,
    "cs": 17,  # NSS
    "reset": 20,  # RESET, active high
    "dio0": 21,  # PacketSent / PayloadReady
}
SPI_ID = 0
SPI_BAUDRATE = 8000000  # RFM69 SPI: up to 10 MHz
HIGH_POWER = True  # an H module: PA1/PA2 on PA_BOOST, -2..+20 dBm
TX_POWER_CAP_DBM = 14  # 25 mW ERP, the EN 300 220 limit for most 863-870 MHz sub-bands
REGULATED_DUTY_CYCLE_PERMILLE = 25  # 2.5 %
STORAGE_ROOT = "/dbch"
DESCRIPTION = (
    "Raspberry Pi Pico + RFM69HCW: SPI0 on GP18/19/16, NSS GP17, RESET GP20, DIO0 GP21; "
    "868 or 915 MHz module variant chosen by BAND."
)


def make_hal(band=BAND, **overrides):
    """The board's Hal. overrides: tx_power_cap_dbm, storage_root, spi_baudrate, pins (a dict
    merged over PINS), link (a Link or None; default: the serial console), high_power. The radio
    is configured on first use (or radio.init())."""
    import sys

    import machine

    from hal.contracts import Hal
    from hal.fs_storage import FileStorage
    from hal.mcu import ConfigError, McuClock, McuIdentity
    from hal.rfm69 import Rfm69

    if band not in BANDS:
        raise ConfigError("band must be one of {}, not {!r}".format(BANDS, band))
    pins = dict(PINS)
    pins.update(overrides.pop("pins", {}))
    cap = overrides.pop("tx_power_cap_dbm", TX_POWER_CAP_DBM)
    root = overrides.pop("storage_root", STORAGE_ROOT)
    baudrate = overrides.pop("spi_baudrate", SPI_BAUDRATE)
    link = overrides.pop("link", "console")
    high_power = overrides.pop("high_power", HIGH_POWER)
    if overrides:
        raise ConfigError("unknown override(s): {}".format(", ".join(sorted(overrides))))
    Pin = machine.Pin
    spi = machine.SPI(
        SPI_ID,
        baudrate=baudrate,
        polarity=0,
        phase=0,
        sck=Pin(pins["sck"]),
        mosi=Pin(pins["mosi"]),
        miso=Pin(pins["miso"]),
    )
    clock = McuClock()
    radio = Rfm69(
        spi,
        Pin(pins["cs"], Pin.OUT, value=1),
        band=band,
        tx_power_cap_dbm=cap,
        reset=Pin(pins["reset"], Pin.OUT, value=0),
        dio0=Pin(pins["dio0"], Pin.IN),
        clock=clock,
        high_power=high_power,
    )
    if link == "console":
        from hal.stream_link import StreamLink

        link = StreamLink(sys.stdin.buffer, sys.stdout.buffer)
    return Hal(
        radio=radio,
        clock=clock,
        storage=FileStorage(root),
        link=link,
        identity=McuIdentity(machine.unique_id),
        board=sys.modules[__name__],
        reset=machine.reset,
    )

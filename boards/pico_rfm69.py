# Raspberry Pi Pico (RP2040) with a HopeRF RFM69HCW breakout on SPI0, MicroPython's rp2 port.
# Data, plus make_hal(); `machine` and the drivers are imported inside make_hal only, so
# importing this module touches nothing. The wiring is this project's (the Pico has no fixed
# radio pins): SPI0 SCK GP18, MOSI GP19, MISO GP16, NSS GP17, RESET GP20, DIO0 GP21.
from hal.compat import const

NAME = "pico_rfm69"
MCU = "RP2040"
HAN_CAPACITY = 16  # HAN devices that may join (agent/han.py); the next raises 8F2D
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

# No network on a Pico (the rp2 port's build for it has no WiFi, no socket, no ssl): no Triage
# link, and the agent does not offer its requests.
TRIAGE_LINK = False
# What this board's image carries beyond the agent's core (host_tools.firmware.build reads it from
# this source; a private const(), so the board never holds it): its MCU parts, the RFM69 driver.
_MANIFEST = const(
    (
        "boards.mcu_board",
        "hal.fs_storage",
        "hal.mcu",
        "hal.stream_link",
        "hal.radio_driver",
        "hal.rfm69",
    )
)


def make_hal(band=BAND, **overrides):
    """The board's Hal; overrides: see boards.mcu_board.build_hal, plus high_power. The radio is configured on
    first use (or radio.init())."""
    from boards.mcu_board import build_hal

    return build_hal(__name__, band, overrides, make_radio, high_power=HIGH_POWER)


def make_radio(machine, pins, band, cap, baudrate, clock, high_power=HIGH_POWER):
    from boards.mcu_board import spi_bus
    from hal.rfm69 import Rfm69

    Pin = machine.Pin
    return Rfm69(
        spi_bus(machine, SPI_ID, baudrate, pins),
        Pin(pins["cs"], Pin.OUT, value=1),
        band=band,
        tx_power_cap_dbm=cap,
        reset=Pin(pins["reset"], Pin.OUT, value=0),
        dio0=Pin(pins["dio0"], Pin.IN),
        clock=clock,
        high_power=high_power,
    )

# Heltec WiFi LoRa 32 (V3): ESP32-S3 with a Semtech SX1262 (TCXO fed from DIO3 at 1.8 V, RF
# switch driven by DIO2), MicroPython's esp32 port. Data, plus make_hal(); `machine` and the
# drivers are imported inside make_hal only, so importing this module touches nothing.
from hal.compat import const

NAME = "heltec_wifi_lora32_v3"
MCU = "ESP32-S3"
HAN_CAPACITY = 32  # HAN devices that may join (agent/han.py); the next raises 8F2D
RADIO = "SX1262"
BAND = "868"  # the module variant fitted: "868" (pages 28-30) or "915" (page 31)
BANDS = ("868", "915")  # the SX1262 front end is sold for both
PINS = {
    "sck": 9,
    "mosi": 10,
    "miso": 11,
    "cs": 8,  # NSS
    "reset": 12,  # NRESET, active low
    "busy": 13,
    "dio1": 14,  # IRQ
    "vext": 36,  # active-low supply of the OLED and external parts; left alone here
    "led": 35,
}
SPI_ID = 1
SPI_BAUDRATE = 8000000
TCXO_MV = 1800
TX_POWER_CAP_DBM = 14  # 25 mW ERP, the EN 300 220 limit for most 863-870 MHz sub-bands
REGULATED_DUTY_CYCLE_PERMILLE = 25  # 2.5 %
STORAGE_ROOT = "/dbch"
DESCRIPTION = (
    "Heltec WiFi LoRa 32 V3: ESP32-S3 + SX1262 (TCXO 1.8 V on DIO3, DIO2 RF switch), "
    "SPI1 on GPIO 9/10/11, NSS 8, RESET 12, BUSY 13, DIO1 14; 863-928 MHz hardware, "
    "868 or 915 MHz module variant chosen by BAND."
)

# The ESP32-S3's WiFi carries the Triage link (agent.triage_link: TLS to the Triage Tool).
TRIAGE_LINK = True
# What this board's image carries beyond the agent's core (host_tools.firmware.build reads it from
# this source; a private const(), so the board never holds it): its MCU parts, the SX1262 driver,
# the Triage link.
_MANIFEST = const(
    (
        "boards.mcu_board",
        "hal.fs_storage",
        "hal.mcu",
        "hal.stream_link",
        "hal.radio_driver",
        "hal.sx126x",
        "agent.triage_link",
        "agent.triage",
        "hal.tls",
        "hal.tls_stream",
        "hal.x509",
    )
)


def make_hal(band=BAND, **overrides):
    """The board's Hal; overrides: see boards.mcu_board.build_hal. The radio is configured on
    first use (or radio.init())."""
    from boards.mcu_board import build_hal

    return build_hal(__name__, band, overrides, make_radio)


def make_radio(machine, pins, band, cap, baudrate, clock):
    from boards.mcu_board import spi_bus
    from hal.sx126x import Sx1262

    Pin = machine.Pin
    return Sx1262(
        spi_bus(machine, SPI_ID, baudrate, pins),
        Pin(pins["cs"], Pin.OUT, value=1),
        Pin(pins["busy"], Pin.IN),
        band=band,
        tx_power_cap_dbm=cap,
        reset=Pin(pins["reset"], Pin.OUT, value=1),
        irq=Pin(pins["dio1"], Pin.IN),
        clock=clock,
        tcxo_mv=TCXO_MV,
        dio2_rf_switch=True,
        dcdc=True,
    )

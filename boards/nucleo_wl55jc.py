# ST NUCLEO-WL55JC1 (high-band variant, 868/915 MHz): STM32WL55JC with its internal sub-GHz
# radio, MicroPython's stm32 port (board NUCLEO_WL55). Data, plus make_hal(); `machine` and
# `stm` are imported inside make_hal only, so importing this module touches nothing.
from hal.compat import const

NAME = "nucleo_wl55jc"
MCU = "STM32WL55JC"
HAN_CAPACITY = 32  # HAN devices that may join (agent/han.py); the next raises 8F2D
RADIO = "STM32WL SUBGHZ"
BAND = "868"  # "868" (pages 28-30) or "915" (page 31): the JC1 board covers both
BANDS = ("868", "915")
PINS = {
    # RF switch (UM2592): FE_CTRL1, FE_CTRL2, FE_CTRL3
    "fe_ctrl1": "C4",
    "fe_ctrl2": "C5",
    "fe_ctrl3": "C3",
    # the radio itself is on the internal SUBGHZSPI: no NSS/BUSY/RESET/IRQ pins
}
SPI_ID = "SUBGHZ"
SPI_BAUDRATE = 8000000  # RM0453: SUBGHZSPI at most 16 MHz
TCXO_MV = 1700  # HSE32 TCXO fed from PB0-VDDTCXO
TX_POWER_CAP_DBM = 14  # 25 mW ERP, the EN 300 220 limit for most 863-870 MHz sub-bands
REGULATED_DUTY_CYCLE_PERMILLE = 25  # 2.5 %
STORAGE_ROOT = "/flash/dbch"
DESCRIPTION = (
    "NUCLEO-WL55JC1: STM32WL55JC sub-GHz radio (SX126x-class core on SUBGHZSPI, LP and HP "
    "PAs, TCXO 1.7 V), RF switch FE_CTRL1/2/3 on PC4/PC5/PC3; 868 or 915 MHz by BAND."
)

# No network on the NUCLEO-WL55JC1 (the stm32 port's build for it has no socket, no ssl): no
# Triage link, and the agent does not offer its requests.
TRIAGE_LINK = False
# What this board's image carries beyond the agent's core (host_tools.firmware.build reads it from
# this source; a private const(), so the board never holds it): its MCU parts, the STM32WL driver
# (on the SX126x-class core's).
_MANIFEST = const(
    (
        "boards.mcu_board",
        "hal.fs_storage",
        "hal.mcu",
        "hal.stream_link",
        "hal.radio_driver",
        "hal.stm32wl",
        "hal.sx126x",
    )
)


def make_hal(band=BAND, **overrides):
    """The board's Hal; overrides: see boards.mcu_board.build_hal. The radio is configured on
    first use (or radio.init())."""
    from boards.mcu_board import build_hal

    return build_hal(__name__, band, overrides, make_radio)


def make_radio(machine, pins, band, cap, baudrate, clock, stm=None):
    """The radio driver on `machine` and `stm` (the port's, unless a stand-in is given)."""
    if stm is None:
        import stm

    from hal.stm32wl import NucleoFrontEnd, Stm32wlRadio

    Pin = machine.Pin
    front_end = NucleoFrontEnd(
        Pin(pins["fe_ctrl1"], Pin.OUT, value=0),
        Pin(pins["fe_ctrl2"], Pin.OUT, value=0),
        Pin(pins["fe_ctrl3"], Pin.OUT, value=0),
    )
    return Stm32wlRadio(
        machine.SPI(SPI_ID, baudrate=baudrate),
        stm,
        band=band,
        tx_power_cap_dbm=cap,
        front_end=front_end,
        clock=clock,
        tcxo_mv=TCXO_MV,
    )

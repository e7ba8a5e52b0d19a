# The virtual board: the MicroPython unix port on a pty (dbch vboard). Real time that the host
# may fast-forward, a simulated radio medium, the flash directory as storage, the console as link.
# Its radio: SimRadio, or a real board's driver on a simulated chip (boards.simchips), chosen by
# make_hal(radio=...) or by the board's "radio" record (the file data/radio in its flash, holding
# a kind such as "sx1262" or a board name such as "heltec_wifi_lora32_v3").
from hal.compat import const

NAME = "unix"
MCU = "unix port"
RADIO = "sim"
BAND = "868"
TX_POWER_CAP_DBM = 14
REGULATED_DUTY_CYCLE_PERMILLE = 25
DESCRIPTION = "Virtual board: MicroPython unix port on a pty, simulated sub-GHz medium"
DATA_DIR = "data"
FW_MAX_CHUNK = 1024  # firmware bytes a fw.chunk carries: small frames for a small heap
TRIAGE_LINK = True  # the unix port has socket and ssl: the Triage link runs as on a board with WiFi
# What this board's image carries beyond the agent's core (host_tools.firmware.build reads it from
# this source; a private const(), so the board never holds it): the simulated clock and radio
# medium, and for the radio record every real board's module, its driver and its chip simulated.
_MANIFEST = const(
    (
        "hal.fs_storage",
        "hal.mcu",
        "hal.stream_link",
        "hal.sim",
        "hal.sim.clock",
        "hal.sim.radio",
        "boards.simchips",
        "hal.sim.chips",
        "hal.sim.chips.air",
        "hal.sim.chips.bus",
        "hal.sim.chips.machine",
        "hal.sim.chips.rfm69",
        "hal.sim.chips.stm32wl",
        "hal.sim.chips.sx126x",
        "boards.heltec_wifi_lora32_v3",
        "boards.pico_rfm69",
        "boards.nucleo_wl55jc",
        "boards.mcu_board",
        "hal.radio_driver",
        "hal.sx126x",
        "hal.rfm69",
        "hal.stm32wl",
        "agent.triage_link",
        "agent.triage",
        "hal.tls",
        "hal.tls_stream",
        "hal.x509",
    )
)


def _identity(storage):
    # A virtual board gets a random EUI-64 at its first boot and keeps it in its flash.
    from hal.mcu import StaticIdentity

    eui = storage.read("eui")
    if eui is None or len(eui) != 8:
        import os

        eui = bytearray(os.urandom(8))
        eui[0] = (eui[0] & 0xFC) | 0x02  # locally administered, unicast
        eui = bytes(eui)
        storage.write("eui", eui)
    return StaticIdentity(eui)


def _reset():
    # The virtual board's launcher provides machine.reset(): the interpreter restarts and boots.
    import machine

    machine.reset()


def make_hal(band=BAND, seed=None, radio=None):
    import sys

    from hal.contracts import Hal
    from hal.fs_storage import FileStorage
    from hal.mcu import McuClock
    from hal.sim.clock import FastForwardClock
    from hal.sim.radio import Medium, SimRadio
    from hal.stream_link import StreamLink

    clock = FastForwardClock(McuClock())
    storage = FileStorage(DATA_DIR)
    identity = _identity(storage)
    # the lean medium with a short recent-transmission ring: the airtime logs are the tests', not
    # a small heap's
    medium = Medium(clock, seed=seed if seed is not None else identity.eui64()[7] + 1, recent_size=8)
    if radio is None:
        radio = storage.read("radio")
        radio = radio.decode().strip() if radio else "sim"
    if radio == "sim":
        radio = SimRadio(medium, clock, band=band, tx_power_dbm=TX_POWER_CAP_DBM)
    else:  # a driver and its chip: loaded only when asked for (a small heap)
        from boards.simchips import make_radio

        radio = make_radio(radio, clock, medium, band, TX_POWER_CAP_DBM)[0]
    link = StreamLink(sys.stdin.buffer, sys.stdout.buffer)
    return Hal(radio, clock, storage, link=link, identity=identity, board=sys.modules[__name__], reset=_reset)

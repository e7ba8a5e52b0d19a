# The virtual board: the MicroPython unix port on a pty (dbch vboard). Real time that the host
# may fast-forward, a simulated radio medium, the flash directory as storage, the console as link.
# Its radio: SimRadio, or a real board's driver on a simulated chip (boards.simchips), chosen by
# make_hal(radio=...) or by the board's "radio" record (the file data/radio in its flash, holding
# a kind such as "sx1262" or a board name such as "heltec_wifi_lora32_v3").
from hal.compat import const

NAME = "unix"
MCU = "unix port"
HAN_CAPACITY = 8  # HAN devices that may join (agent/han.py); the next raises 8F2D
RADIO = "sim"
BAND = "868"
TX_POWER_CAP_DBM = 14
REGULATED_DUTY_CYCLE_PERMILLE = 25
DESCRIPTION = "Virtual board: MicroPython unix port on a pty, simulated sub-GHz medium"
DATA_DIR = "data"
FW_MAX_CHUNK = 1024  # firmware bytes a fw.chunk carries: small frames for a small heap
FW_CHUNKS_AHEAD = 2  # compressed fw.chunk requests a host may have unanswered: the pty buffers the next
TRIAGE_LINK = True  # the unix port has socket and ssl: the Triage link runs as on a board with WiFi
# What this board's image carries beyond the agent's core (host_tools.firmware.build reads these
# from this source; private const()s, so the board never holds them): its file system, console
# link and Triage link (_MANIFEST), and what the radio its radio record names needs
# (_RADIO_MANIFEST: a kind of boards.simchips, the first the one a board without a record runs,
# and its modules): for a driver, the real board's module that carries it, the driver, and
# boards.simchips, which runs that module's make_radio() over a simulated chip. A record may also
# name that real board. dbch flash reads the record and builds the image for it.
# The simulated world is this board's hardware, not its firmware (_HARDWARE): the clock, the radio
# medium and SimRadio, the HAN devices, the chips the real drivers run on. The virtual board
# supplies them itself (host_tools.firmware.hardware builds them into a ROMFS image that
# host_tools/onboard/unix_boot.py mounts at /hw), as a real board's flash never holds its radio
# chip: no image carries them, and none lacks them. All are under hal.sim, the one name the boot
# makes importable from /hw (boards.simchips, under the firmware's boards, would have to be
# imported at every boot to be found there: 2.7 KB of a 128 KB heap; the image carries it).
_HARDWARE = const(
    (
        "hal.sim",
        "hal.sim.clock",
        "hal.sim.radio",
        "hal.sim.han",
        "hal.sim.han_device",
        "hal.sim.chips",
        "hal.sim.chips.air",
        "hal.sim.chips.bus",
        "hal.sim.chips.machine",
        "hal.sim.chips.rfm69",
        "hal.sim.chips.stm32wl",
        "hal.sim.chips.sx126x",
    )
)
_MANIFEST = const(
    (
        "hal.fs_storage",
        "hal.mcu",
        "hal.stream_link",
        "agent.triage_link",
        "agent.triage",
        "hal.tls",
        "hal.tls_stream",
        "hal.x509",
    )
)
_RADIO_MANIFEST = const(
    (
        ("sim", ()),
        (
            "sx1262",
            (
                "boards.simchips",
                "boards.heltec_wifi_lora32_v3",
                "boards.mcu_board",
                "hal.radio_driver",
                "hal.sx126x",
            ),
        ),
        (
            "rfm69",
            (
                "boards.simchips",
                "boards.pico_rfm69",
                "boards.mcu_board",
                "hal.radio_driver",
                "hal.rfm69",
            ),
        ),
        (
            "stm32wl",
            (
                "boards.simchips",
                "boards.nucleo_wl55jc",
                "boards.mcu_board",
                "hal.radio_driver",
                "hal.sx126x",
                "hal.stm32wl",
            ),
        ),
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
    else:  # a driver and its chip: loaded only when asked for (a small heap). They are in the image
        # only if the record named them when it was built (_RADIO_MANIFEST); if not, the import
        # fails here and the host says why (host_tools.servers.vboard.radio_not_in_image)
        from boards.simchips import make_radio

        radio = make_radio(radio, clock, medium, band, TX_POWER_CAP_DBM)[0]
    link = StreamLink(sys.stdin.buffer, sys.stdout.buffer)
    hal = Hal(radio, clock, storage, link=link, identity=identity, board=sys.modules[__name__], reset=_reset)
    hal.medium = medium  # the simulated world's air: its HAN devices (hal.sim.han) live on it
    return hal

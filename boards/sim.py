# A simulated hub for CPython (and the unix port): virtual clock, simulated radio medium,
# storage in a directory or in a simulated flash. Tests and the CPython agent build on it.
# Its radio is one of boards.simchips.RADIOS: a real driver on a simulated chip, or SimRadio.
from hal.compat import const

NAME = "sim"
MCU = "host"
HAN_CAPACITY = 24  # HAN devices that may join (agent/han.py); the next raises 8F2D
RADIO = "sim"
# SimRadio unless asked: a driver costs ~30x per frame, and the month-long endurance runs, the
# fuzzing and the host tools' agents are about the agent, not the radio (the hub tests run on all)
DEFAULT_RADIO = "sim"
BAND = "868"
TX_POWER_CAP_DBM = 14
REGULATED_DUTY_CYCLE_PERMILLE = 25
DEFAULT_EUI = "00-DB-12-34-56-78-90-A2"  # the DCC Boxed templates' target device
DESCRIPTION = "Simulated Dual Band CH: virtual clock, simulated sub-GHz medium"
TRIAGE_LINK = True  # CPython and the unix port have socket and ssl: the Triage link runs
# What this board's image carries beyond the agent's core (host_tools.firmware.build reads it from
# this source; a private const(), so the board never holds it): the simulated clock, radio medium
# and flash, and every real board's module, its driver and its chip simulated (boards.simchips).
_MANIFEST = const(
    (
        "hal.fs_storage",
        "hal.mcu",
        "hal.stream_link",
        "hal.sim",
        "hal.sim.vclock",
        "hal.sim.radio",
        "hal.sim.han",
        "hal.sim.han_device",
        "hal.sim.flash",
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


def make_hal(
    storage_dir=None,
    flash=None,
    eui=DEFAULT_EUI,
    band=BAND,
    link=None,
    clock=None,
    medium=None,
    seed=1,
    radio=DEFAULT_RADIO,
):
    """A Hal of simulated parts. Storage: a directory if storage_dir is given, else a SimFlash
    (a new one unless flash is passed, so a test can cut power and boot again on the same one).
    radio: a kind of boards.simchips.RADIOS (a driver on a chip on the medium, or SimRadio), or
    a Radio already on the medium."""
    from hal.contracts import Hal
    from hal.fs_storage import FileStorage
    from hal.mcu import StaticIdentity
    from hal.sim.flash import SimFlash
    from hal.sim.radio import Medium
    from hal.sim.vclock import VirtualClock

    clock = clock or VirtualClock()
    medium = medium or Medium(clock, seed=seed)
    if storage_dir is not None:
        storage = FileStorage(storage_dir)
    else:
        storage = FileStorage("/hub", fs=flash if flash is not None else SimFlash())
    if isinstance(radio, str):
        from boards.simchips import make_radio

        radio = make_radio(radio, clock, medium, band, TX_POWER_CAP_DBM)[0]
    import sys

    hal = Hal(radio, clock, storage, link=link, identity=StaticIdentity(eui), board=sys.modules[__name__])
    hal.medium = medium  # the simulated world's air: its HAN devices (hal.sim.han) live on it
    return hal


class Rig:
    """A hub on simulated hardware whose flash, clock and medium outlive its reboots: what tests
    (and the dbch pytest plugin's `dbch_hub`) drive in-process. A power cut is the flash's
    (rig.flash.cut_after(k), cut_now()); boot() powers on and starts the hub again."""

    def __init__(self, seed=1, eui=DEFAULT_EUI, clock=None, medium=None, radio=DEFAULT_RADIO):
        """clock: a VirtualClock (a new one by default); medium: on that clock (by default a new
        hal.sim.radio.Medium: tests pass one that scripts noise and logs airtime); radio: the
        kind each boot builds (boards.simchips.RADIOS). .chip is the current boot's chip (None
        for SimRadio): a power cut takes it off the medium, the next boot brings a fresh one."""
        from hal.sim.flash import SimFlash
        from hal.sim.radio import Medium
        from hal.sim.vclock import VirtualClock

        self.eui = eui
        self.flash = SimFlash()
        self.clock = clock if clock is not None else VirtualClock()
        self.medium = medium if medium is not None else Medium(self.clock, seed=seed)
        self.radio = radio
        self.chip = None
        self.hub = None
        self.boot()

    def hal(self, link=None):
        from boards.simchips import make_radio

        radio, self.chip = make_radio(self.radio, self.clock, self.medium, BAND, TX_POWER_CAP_DBM)
        return make_hal(flash=self.flash, clock=self.clock, medium=self.medium, link=link, eui=self.eui, radio=radio)

    def boot(self, link=None):
        """Power on and start a new Hub on the same flash, clock and medium."""
        import sys

        from agent.hub import Hub

        if self.hub is not None:  # the board that lost power is off the air
            old = self.hub.radio
            if self.chip is not None:
                self.chip.detach()
            elif old in self.medium.radios:
                self.medium.radios.remove(old)
        self.flash.power_on()
        self.hub = Hub(self.hal(link), sys.modules[__name__])
        return self.hub

    def call(self, op, **args):
        """The hub's answer to one request: (response code, data, error text)."""
        return self.hub.handle({"t": "q", "id": 1, "op": op, "a": args})

    def alerts(self):
        """Pending N54 alerts as (GBCS hex code, payload), oldest first."""
        out = []
        for _seq, kind, data in self.hub.outbox.pending():
            if kind == "N54":
                out.append((data["DeviceAlertCode"], data.get("payload")))
        return out

    def drain(self):
        """Acknowledge everything in the outbox, as a host that received it."""
        for seq, _k, _d in self.hub.outbox.pending():
            self.hub.outbox.ack(seq)

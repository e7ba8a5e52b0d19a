# A simulated hub for CPython (and the unix port): virtual clock, simulated radio medium,
# storage in a directory or in a simulated flash. Tests and the CPython agent build on it.
NAME = "sim"
MCU = "host"
RADIO = "sim"
BAND = "868"
TX_POWER_CAP_DBM = 14
REGULATED_DUTY_CYCLE_PERMILLE = 25
DEFAULT_EUI = "00-DB-12-34-56-78-90-A2"  # the DCC Boxed templates' target device
DESCRIPTION = "Simulated Dual Band CH: virtual clock, simulated sub-GHz medium"


def make_hal(storage_dir=None, flash=None, eui=DEFAULT_EUI, band=BAND, link=None, clock=None, medium=None, seed=1):
    """A Hal of simulated parts. Storage: a directory if storage_dir is given, else a SimFlash
    (a new one unless flash is passed, so a test can cut power and boot again on the same one)."""
    from hal.contracts import Hal
    from hal.fs_storage import FileStorage
    from hal.mcu import StaticIdentity
    from hal.sim.flash import SimFlash
    from hal.sim.radio import Medium, SimRadio
    from hal.sim.vclock import VirtualClock

    clock = clock or VirtualClock()
    medium = medium or Medium(clock, seed=seed)
    if storage_dir is not None:
        storage = FileStorage(storage_dir)
    else:
        storage = FileStorage("/hub", fs=flash if flash is not None else SimFlash())
    radio = SimRadio(medium, clock, band=band, tx_power_dbm=TX_POWER_CAP_DBM)
    import sys

    return Hal(radio, clock, storage, link=link, identity=StaticIdentity(eui), board=sys.modules[__name__])

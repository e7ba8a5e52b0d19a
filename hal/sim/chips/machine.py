# A `machine` module stand-in wired to simulated chips: what a board module's make_radio()
# takes in place of the port's `machine`, so that the real driver runs over a SimSpiBus.
#   SimMachine(bus, pins, uid)  Pin(id, ...) hands out the SimPin wired for that id (a new one
#                               for any other id), SPI(...) the bus, unique_id() the bytes uid.
from hal.sim.chips.bus import SimPin


class _PinFactory:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, machine):
        self._machine = machine

    def __call__(self, pid, mode=-1, pull=-1, value=None, **kwargs):
        m = self._machine
        pin = m.pins.get(pid)
        if pin is None:
            pin = m.pins[pid] = SimPin("pin {}".format(pid), 0)
        m.made_pins[pid] = (mode, pull, value)
        if value is not None:
            pin.value(value)
        return pin


class _SpiFactory:
    def __init__(self, machine):
        self._machine = machine

    def __call__(self, *args, **kwargs):
        self._machine.spi_args.append((args, kwargs))
        return self._machine.bus


class SimMachine:
    """A `machine` module for a board whose radio chip is simulated (see the module comment)."""

    def __init__(self, bus=None, pins=None, uid=b"\x01\x02\x03\x04\x05\x06\x07\x08"):
        self.bus = bus
        self.pins = pins if pins is not None else {}
        self.uid = uid
        self.spi_args = []
        self.made_pins = {}
        self.resets = 0
        self.Pin = _PinFactory(self)
        self.SPI = _SpiFactory(self)

    def unique_id(self):
        return self.uid

    def reset(self):
        self.resets += 1

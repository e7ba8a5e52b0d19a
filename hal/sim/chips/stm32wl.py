# The STM32WL55's sub-GHz radio as its MicroPython port shows it: the SX126x-class core
# (hal.sim.chips.sx126x, variant "stm32wl") behind the internal SUBGHZSPI, whose NSS, BUSY and
# IRQ are the `stm` module's subghz_cs / subghz_is_busy / subghz_irq (SimStm).
from hal.sim.chips.sx126x import SimSx126x


def chip(medium=None, record=True):
    """The radio core, on medium if one is given."""
    return SimSx126x("stm32wl", medium=medium, record=record)


class SimStm:
    """The stm32 port's `stm` module, as far as the sub-GHz radio goes."""

    def __init__(self, bus):
        self.bus = bus
        self.irq_handlers = []

    def subghz_cs(self, level):
        self.bus.select(level)

    def subghz_is_busy(self):
        return bool(self.bus.chip.read_busy())

    def subghz_irq(self, handler):
        self.irq_handlers.append(handler)

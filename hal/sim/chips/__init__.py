# Radio chips simulated at their SPI bus, so that the real drivers (hal.sx126x, hal.rfm69,
# hal.stm32wl) run against them, on a hal.sim.radio.Medium or alone (driver tests):
#   bus.SimPin, bus.SimSpiBus   the pins and the SPI bus between driver and chip
#   air.Air, air.OnAir          a chip's place on the medium: channel from its frequency,
#                               frames out with their airtime, frames in, energy
#   sx126x.SimSx126x            the SX1262 (and the STM32WL's SX126x-class core)
#   stm32wl.SimStm              the STM32WL port's `stm` plumbing (SUBGHZSPI NSS, BUSY, IRQ)
#   rfm69.SimRfm69              the RFM69 (SX1231H)
#   machine.SimMachine          a `machine` module whose Pin/SPI are wired to a chip
# Import the submodule you need; nothing is built at import time.

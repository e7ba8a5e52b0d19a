# What the driver tests (test_sx126x, test_rfm69, test_stm32wl) share beside the chip models of
# hal.sim.chips: a clock whose time moves by itself, so that a driver's timeouts expire.
from hal.contracts import Clock


class FakeClock(Clock):
    def __init__(self, auto_ms=1, utc_start=1767225600):
        self.now = 0
        self.auto_ms = auto_ms
        self.utc_start = utc_start
        self.slept = 0

    def monotonic_ms(self):
        self.now += self.auto_ms
        return self.now

    def utc(self):
        return self.utc_start + self.now // 1000

    def sleep_ms(self, ms):
        self.now += ms
        self.slept += ms

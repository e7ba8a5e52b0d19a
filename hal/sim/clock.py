# The virtual board's clock: real time that a simulation may move forward (never back).
# The virtual clock of tests and host tools is hal.sim.vclock.VirtualClock.
from hal.contracts import Clock


class FastForwardClock(Clock):
    """Real time that a simulation may move forward (never back): a virtual board's clock.

    Wraps a real Clock; advance_ms(ms) adds to an offset, so an hour of duty-cycle history can
    pass in a moment while the board still runs in real time otherwise."""

    def __init__(self, base):
        self.base = base
        self.sleep_ms = base.sleep_ms  # sleeping is real
        self._offset_ms = 0

    def monotonic_ms(self):
        return self.base.monotonic_ms() + self._offset_ms

    def utc(self):
        return self.base.utc() + self._offset_ms // 1000

    def advance_ms(self, ms):
        if not isinstance(ms, int) or ms < 0:
            raise ValueError("cannot advance a clock by {!r} ms".format(ms))
        self._offset_ms += ms

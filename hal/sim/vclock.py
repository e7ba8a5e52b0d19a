# A virtual clock: time moves only through sleep_ms()/advance_ms(), so a simulated day runs in
# seconds and every run is reproducible. Tests and host tools use it; the virtual board runs on
# hal.sim.clock.FastForwardClock instead and does not load this module.
from hal.contracts import Clock

DEFAULT_UTC_START = 1767225600  # 2026-01-01T00:00:00Z


class VirtualClock(Clock):
    def __init__(self, utc_start=DEFAULT_UTC_START):
        if not isinstance(utc_start, int) or utc_start < 0:
            raise ValueError("utc_start must be a non-negative int, not {!r}".format(utc_start))
        self._ms = 0
        self._utc0 = utc_start  # UTC seconds at monotonic 0
        self._timers = []  # [at_ms, order, fn], kept sorted
        self._order = 0

    def monotonic_ms(self):
        return self._ms

    def utc(self):
        return self._utc0 + self._ms // 1000

    def set_utc(self, utc):
        # A time sync: UTC jumps, monotonic time does not.
        self._utc0 = utc - self._ms // 1000

    def advance_ms(self, ms):
        """Move time forward by ms, firing due timers in time order at their own instant."""
        if not isinstance(ms, int) or ms < 0:
            raise ValueError("cannot advance a clock by {!r} ms".format(ms))
        target = self._ms + ms
        timers = self._timers
        while timers and timers[0][0] <= target:
            at, _, fn = timers.pop(0)
            if at > self._ms:
                self._ms = at
            fn()
            # fn may itself have advanced the clock past target
            if self._ms > target:
                target = self._ms
        self._ms = target

    sleep_ms = advance_ms  # sleeping is how virtual time passes

    def call_at(self, at_ms, fn):
        """Call fn() when time reaches at_ms (at once on the next advance if already past)."""
        entry = [at_ms, self._order, fn]
        self._order += 1
        timers = self._timers
        i = len(timers)
        while i and timers[i - 1][0] > at_ms:  # equal times fire in call order
            i -= 1
        timers.insert(i, entry)
        return entry

    def call_later(self, ms, fn):
        return self.call_at(self._ms + ms, fn)

    def cancel(self, entry):
        """Cancel a timer returned by call_at/call_later; False if it already fired."""
        try:
            self._timers.remove(entry)
            return True
        except ValueError:
            return False

    def pending_timers(self):
        return len(self._timers)

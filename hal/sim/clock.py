# A virtual clock: time moves only through sleep_ms()/advance_ms(), so a simulated day runs in
# seconds and every run is reproducible.
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

    def sleep_ms(self, ms):
        self.advance_ms(ms)

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


class FastForwardClock(Clock):
    """Real time that a simulation may move forward (never back): a virtual board's clock.

    Wraps a real Clock; advance_ms(ms) adds to an offset, so an hour of duty-cycle history can
    pass in a moment while the board still runs in real time otherwise."""

    def __init__(self, base):
        self.base = base
        self._offset_ms = 0

    def monotonic_ms(self):
        return self.base.monotonic_ms() + self._offset_ms

    def utc(self):
        return self.base.utc() + self._offset_ms // 1000

    def sleep_ms(self, ms):
        self.base.sleep_ms(ms)

    def advance_ms(self, ms):
        if not isinstance(ms, int) or ms < 0:
            raise ValueError("cannot advance a clock by {!r} ms".format(ms))
        self._offset_ms += ms

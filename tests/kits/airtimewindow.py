# Exact sliding-window airtime, for checking duty-cycle enforcement (labmedium.LabMedium keeps
# one AirtimeWindow per window length it tracks).
#
# Every transmission is counted at its start time in ms. An AirtimeWindow keeps the exact maximum,
# over every half-open window [t, t + window_ms), of the airtime of the frames that START in that
# window (the count a duty-cycle ledger keeps when it books airtime at transmit time; for frames
# that do not overlap it is never less than the physical time on air in the window).
# It is computed incrementally: a queue holds one (start ms, airtime us) entry per distinct start
# ms within the last window (frames sharing a ms are merged), with the running sum. The queue is
# a list of fixed-size chunks of two uint32 arrays (small allocations: MicroPython's heap
# fragments), and start ms is kept modulo 2**32 (every entry is within one window of the newest).
# Memory is bounded by the traffic of ONE window, not by the length of the run: 8 bytes per
# transmit ms; a full hour at 10x the 2.5 % limit with the largest frames (11.1 ms each) is ~81k
# entries, ~650 kB.
from array import array

from hal.compat import const

_MASK = 0xFFFFFFFF
_CHUNK = const(512)  # entries per chunk of the queue


def _zeros(n):
    # a zeroed array of n uint32 without an n-item list (MicroPython takes raw bytes)
    try:
        return array("I", [0]) * n
    except TypeError:
        return array("I", bytearray(4 * n))


class AirtimeWindow:
    """Exact max over all windows [t, t+window_ms) of the airtime of frames starting in them."""

    def __init__(self, window_ms):
        if not isinstance(window_ms, int) or not 0 < window_ms < 0x80000000:
            raise ValueError("window_ms must be a positive int below 2**31, not {!r}".format(window_ms))
        self.window_ms = window_ms
        # A queue of entries in fixed-size chunks (small allocations suit a fragmented heap):
        # the oldest entry is chunk 0 at _h, the next free slot is the last chunk at _e.
        self._tc = [_zeros(_CHUNK)]  # start ms, modulo 2**32
        self._ac = [_zeros(_CHUNK)]  # airtime us of all frames starting that ms
        self._h = 0
        self._e = 0
        self._n = 0
        self.sum_us = 0  # airtime of the entries in the queue
        self.max_us = 0
        self.max_start_ms = None  # first start of the earliest window that reached max_us
        self.last_ms = None  # newest start (full value)

    def __len__(self):
        return self._n

    def _reset(self):
        del self._tc[1:]
        del self._ac[1:]
        self._h = self._e = self._n = 0
        self.sum_us = 0

    def _evict(self, now_ms):
        if self.last_ms is not None and now_ms - self.last_ms >= self.window_ms:
            self._reset()  # all expired (this also keeps the 32-bit differences valid)
            return
        w = self.window_ms
        now = now_ms & _MASK
        tc = self._tc
        ac = self._ac
        while self._n and (now - tc[0][self._h]) & _MASK >= w:
            self.sum_us -= ac[0][self._h]
            self._n -= 1
            self._h += 1
            if not self._n:
                self._reset()
            elif self._h == _CHUNK:
                tc.pop(0)
                ac.pop(0)
                self._h = 0

    def add(self, start_ms, airtime_us):
        if self.last_ms is not None and start_ms < self.last_ms:
            raise ValueError("transmission at {} ms is before the last one ({} ms)".format(start_ms, self.last_ms))
        self._evict(start_ms)
        if self._n and self.last_ms == start_ms:
            self._ac[-1][self._e - 1] += airtime_us
        else:
            if self._e == _CHUNK:
                self._tc.append(_zeros(_CHUNK))
                self._ac.append(_zeros(_CHUNK))
                self._e = 0
            self._tc[-1][self._e] = start_ms & _MASK
            self._ac[-1][self._e] = airtime_us
            self._e += 1
            self._n += 1
        self.last_ms = start_ms
        self.sum_us += airtime_us
        if self.sum_us > self.max_us:
            self.max_us = self.sum_us
            self.max_start_ms = start_ms - ((start_ms - self._tc[0][self._h]) & _MASK)

    def current_us(self, now_ms):
        """Airtime of the frames that started in (now_ms - window_ms, now_ms]."""
        if self.last_ms is not None and now_ms >= self.last_ms:
            self._evict(now_ms)
        return self.sum_us

# The medium of the tests: hal.sim.radio.Medium plus what they script and log.
#
# Script:
#   - background noise per channel, now or at a virtual time: set_noise(page, ch, dbm,
#     at_ms=None); ch=None means the whole page and page=None every channel. Scripted changes
#     apply when time reaches them.
#   - other transmitters that add energy: add_transmitter(page, ch, dbm, start_ms, end_ms)
#     (dbm is the level they arrive with).
# Logs (for checking duty-cycle enforcement):
#   - for each window length in windows_ms, the exact maximum airtime of the frames starting in
#     any one window of that length (airtimewindow.AirtimeWindow):
#     max_window_airtime_us(window_ms), max_window_start_ms(window_ms), window_airtime_us(window_ms).
#   - airtime per clock hour for the last _HOURLY_KEEP hours: hourly_airtime_us(), first_hour().
#   - the last recent_size transmissions: recent(n).
# Airtime figures cover every transmitter on the medium: put the device under test alone on its
# medium (simulate the others with add_transmitter/inject) to measure its own duty cycle.
import math

from hal import phy
from hal.compat import const
from hal.sim.radio import Medium
from tests.kits.airtimewindow import AirtimeWindow

HOUR_MS = const(3600000)
_HOURLY_KEEP = const(24 * 31)  # hours of per-hour airtime kept (a month)


class LabMedium(Medium):
    def __init__(self, clock, windows_ms=(HOUR_MS,), **kw):
        """Other arguments (by keyword) as Medium: seed, noise_dbm, jitter_db, rx_capacity,
        path_loss_db, recent_size."""
        Medium.__init__(self, clock, **kw)
        self._noise = {}  # (page, ch) -> dBm, overrides noise_dbm
        self._script = []  # [at_ms, page, ch, dbm], sorted by time (stable)
        self._tx = []  # scripted transmitters: [page, ch, dbm, start_ms, end_ms or None]
        self._windows = {}
        for w in windows_ms:
            self._windows[w] = AirtimeWindow(w)
        self._window_list = list(self._windows.values())  # (iterating a dict's values allocates)
        self._hourly = []  # airtime us per clock hour, from hour _hour0 (at most _HOURLY_KEEP hours)
        self._hour0 = 0

    # ------------------------------------------------------------ noise script

    def _check(self, page, ch):
        if page is None:
            if ch is not None:
                raise phy.ChannelError("a channel needs a page")
        elif ch is None:
            phy.band_of(page)
        else:
            phy.check(page, ch)

    def set_noise(self, page, ch, dbm, at_ms=None):
        """Background level dbm on (page, ch) from now, or from virtual time at_ms."""
        self._check(page, ch)
        if at_ms is None or at_ms <= self.clock.monotonic_ms():
            self._apply(page, ch, dbm)
            return
        script = self._script
        i = len(script)
        while i and script[i - 1][0] > at_ms:
            i -= 1
        script.insert(i, [at_ms, page, ch, dbm])

    def _apply(self, page, ch, dbm):
        if page is None:
            self.noise_dbm = dbm
            self._noise = {}
        elif ch is None:
            first, last, _ = phy.PLAN[page]
            for c in range(first, last + 1):
                self._noise[(page, c)] = dbm
        else:
            self._noise[(page, ch)] = dbm

    def noise(self, page, ch):
        """The scripted background level on (page, ch) now (no jitter)."""
        phy.check(page, ch)
        now = self.clock.monotonic_ms()
        script = self._script
        while script and script[0][0] <= now:
            _, p, c, dbm = script.pop(0)
            self._apply(p, c, dbm)
        return self._noise.get((page, ch), self.noise_dbm)

    def add_transmitter(self, page, ch, dbm, start_ms=None, end_ms=None):
        """Another transmitter heard at dbm on (page, ch) during [start_ms, end_ms); a handle."""
        phy.check(page, ch)
        if start_ms is None:
            start_ms = self.clock.monotonic_ms()
        entry = [page, ch, dbm, start_ms, end_ms]
        self._tx.append(entry)
        return entry

    def remove_transmitter(self, handle):
        try:
            self._tx.remove(handle)
            return True
        except ValueError:
            return False

    def _background_mw(self, page, ch, now):
        mw = math.pow(10.0, self.noise(page, ch) / 10.0)
        keep = []
        for tx in self._tx:
            if tx[4] is not None and tx[4] <= now:
                continue  # ended: forget it
            keep.append(tx)
            if tx[0] == page and tx[1] == ch and tx[3] <= now:
                mw += math.pow(10.0, tx[2] / 10.0)
        self._tx = keep
        return mw

    # ------------------------------------------------------------ logs

    def queued(self, page, ch):
        q = self._rx.get((page, ch))
        return len(q) if q else 0

    def _logged(self, e):
        # Medium's hook, for each transmission: e is [start_ms, airtime_us, page, ch, length, radio]
        self._log_windows(e[0], e[1])
        self._log_hour(e[0] // HOUR_MS, e[1])

    def _log_windows(self, now, airtime_us):
        for k in range(len(self._window_list)):
            self._window_list[k].add(now, airtime_us)

    def _log_hour(self, hour, airtime_us):
        if hour - self._hour0 >= _HOURLY_KEEP:  # keep the last _HOURLY_KEEP hours only
            start = hour - _HOURLY_KEEP + 1
            self._hourly = self._hourly[start - self._hour0 :]
            self._hour0 = start
        hourly = self._hourly
        while len(hourly) <= hour - self._hour0:
            hourly.append(0)
        hourly[hour - self._hour0] += airtime_us

    def recent(self, n=None):
        """The last n transmissions (default all kept), oldest first: (start_ms, airtime_us,
        page, ch, length)."""
        rec = self._recent
        size = len(rec)
        n = size if n is None else min(n, size)
        out = []
        for k in range(size - n, size):
            e = rec[(self._recent_i + k) % size] if size == self._recent_size else rec[k]
            out.append(tuple(e[:5]))
        return out

    def hourly_airtime_us(self):
        """Airtime in us per clock hour, for the last _HOURLY_KEEP hours at most (index 0 is
        monotonic hour first_hour())."""
        return list(self._hourly)

    def first_hour(self):
        return self._hour0

    def _window(self, window_ms):
        w = self._windows.get(window_ms)
        if w is None:
            raise ValueError("a {} ms window is not tracked (LabMedium(windows_ms=...))".format(window_ms))
        return w

    def max_window_airtime_us(self, window_ms=HOUR_MS):
        """Largest airtime of the frames starting in any one window of window_ms so far."""
        return self._window(window_ms).max_us

    def max_window_start_ms(self, window_ms=HOUR_MS):
        """Start of the first frame of the earliest window that reached the maximum (or None)."""
        return self._window(window_ms).max_start_ms

    def window_airtime_us(self, window_ms=HOUR_MS):
        """Airtime of the frames that started in the last window_ms up to now."""
        return self._window(window_ms).current_us(self.clock.monotonic_ms())

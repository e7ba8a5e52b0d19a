# A simulated radio medium and a Radio on it, driven by a virtual clock (hal.sim.clock).
#
# Medium: what the air looks like, per (page, channel) of hal.phy.PLAN.
#   - background noise in dBm (default noise_dbm on every channel), scriptable now or at a
#     virtual time: set_noise(page, ch, dbm, at_ms=None); ch=None means the whole page and
#     page=None every channel. Scripted changes apply when time reaches them.
#   - other transmitters that add energy: add_transmitter(page, ch, dbm, start_ms, end_ms)
#     (dbm is the level they arrive with), and frames sent by other SimRadios on the medium
#     (tx power minus path_loss_db while they are on air).
#   - energy readings are the power sum of all of these, rounded to whole dBm, plus a small
#     jitter (jitter_db, uniform in [-jitter_db, +jitter_db]) from the medium's own xorshift32
#     generator: the same seed gives the same readings on CPython and MicroPython (the two
#     `random` modules differ, and a shared global generator would couple unrelated code).
#   - frames to receive: inject(page, ch, frame, at_ms=None). Each channel holds at most
#     rx_capacity frames (the oldest is dropped and counted in rx_dropped). With two or more
#     radios on a medium, a frame one of them sends is queued for the others on that channel
#     (first reader takes it).
#
# Airtime log (for checking duty-cycle enforcement): every transmission is counted at its
# start time in ms. For each window length in windows_ms the medium keeps the exact maximum,
# over every half-open window [t, t + window_ms), of the airtime of the frames that START in
# that window (the count a duty-cycle ledger keeps when it books airtime at transmit time; for
# frames that do not overlap it is never less than the physical time on air in the window).
# It is computed incrementally: a queue holds one (start ms, airtime us) entry per distinct
# start ms within the last window (frames sharing a ms are merged), with the running sum. The
# queue is a list of fixed-size chunks of two uint32 arrays (small allocations: MicroPython's
# heap fragments), and start ms is kept modulo 2**32 (every entry is within one window of the
# newest). Memory is bounded by the traffic of ONE window, not by the length of the run:
# 8 bytes per transmit ms; a full hour at 10x the 2.5 % limit with the largest frames
# (11.1 ms each) is ~81k entries, ~650 kB. Frames are never kept as objects except the last
# _RECENT in a ring for inspection (recent()).
# Airtime figures cover every transmitter on the medium: put the device under test alone on its
# medium (simulate the others with add_transmitter/inject) to measure its own duty cycle.
import math
from array import array

from hal import phy
from hal.compat import const
from hal.contracts import Radio, RadioError

HOUR_MS = const(3600000)
MAX_PAYLOAD = phy.MAX_PSDU - phy.FCS_BYTES  # 125 bytes of MAC payload
_RECENT = const(256)
_HOURLY_KEEP = const(24 * 31)  # hours of per-hour airtime kept (a month)
_RX_CAPACITY = const(64)
_MAX_AIRTIME_MS = phy.airtime_us(MAX_PAYLOAD) // 1000 + 1

_MASK = 0xFFFFFFFF
_CHUNK = const(512)  # entries per chunk of the airtime queue


def _zeros(n):
    # a zeroed array of n uint32 without an n-item list (MicroPython takes raw bytes)
    try:
        return array("I", [0]) * n
    except TypeError:
        return array("I", bytearray(4 * n))


def _ceil_ms(us):
    return (us + 999) // 1000


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


class Medium:
    def __init__(
        self,
        clock,
        seed=1,
        noise_dbm=-100,
        jitter_db=1,
        windows_ms=(HOUR_MS,),
        rx_capacity=_RX_CAPACITY,
        path_loss_db=60,
        recent_size=_RECENT,
    ):
        self.clock = clock
        self.noise_dbm = noise_dbm  # background on every channel without its own level
        self.jitter_db = jitter_db
        self.path_loss_db = path_loss_db
        self.rx_capacity = rx_capacity
        self.rx_dropped = 0
        self.frames = 0
        self.airtime_us_total = 0
        self._noise = {}  # (page, ch) -> dBm, overrides noise_dbm
        self._script = []  # [at_ms, page, ch, dbm], sorted by time (stable)
        self._tx = []  # scripted transmitters: [page, ch, dbm, start_ms, end_ms or None]
        self._rx = {}  # (page, ch) -> [[at_ms, frame, sender], ...] sorted by at_ms
        self._radios = []
        self._windows = {}
        for w in windows_ms:
            self._windows[w] = AirtimeWindow(w)
        self._hourly = []  # airtime us per clock hour, from hour _hour0 (at most _HOURLY_KEEP hours)
        self._hour0 = 0
        self._recent_size = recent_size
        self._recent = []  # last _RECENT transmissions: (start_ms, airtime_us, page, ch, length, radio)
        self._recent_i = 0
        x = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF
        self._rng = x or 1

    # ------------------------------------------------------------ randomness

    def _rand(self):
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x

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

    def _apply_due(self):
        now = self.clock.monotonic_ms()
        script = self._script
        while script and script[0][0] <= now:
            _, page, ch, dbm = script.pop(0)
            self._apply(page, ch, dbm)

    def noise(self, page, ch):
        """The scripted background level on (page, ch) now (no jitter)."""
        phy.check(page, ch)
        self._apply_due()
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

    def energy(self, page, ch, exclude=None):
        """Energy on (page, ch) now in whole dBm, as a radio (exclude) would measure it."""
        level = self.noise(page, ch)
        now = self.clock.monotonic_ms()
        mw = math.pow(10.0, level / 10.0)
        keep = []
        for tx in self._tx:
            if tx[4] is not None and tx[4] <= now:
                continue  # ended: forget it
            keep.append(tx)
            if tx[0] == page and tx[1] == ch and tx[3] <= now:
                mw += math.pow(10.0, tx[2] / 10.0)
        self._tx = keep
        for start, airtime, p, c, _, radio in self._on_air(now):
            if p == page and c == ch and radio is not exclude and start + _ceil_ms(airtime) > now:
                mw += math.pow(10.0, (radio.tx_power_dbm - self.path_loss_db) / 10.0)
        dbm = int(round(10.0 * math.log10(mw)))
        j = self.jitter_db
        if j:
            dbm += self._rand() % (2 * j + 1) - j
        return dbm

    def _on_air(self, now):
        # recent transmissions that may still be on air at now (newest first)
        rec = self._recent
        n = len(rec)
        out = []
        for k in range(n):
            e = rec[(self._recent_i - 1 - k) % n]
            if e[0] + _MAX_AIRTIME_MS < now:
                break
            if e[0] <= now:
                out.append(e)
        return out

    # ------------------------------------------------------------ frames in

    def inject(self, page, ch, frame, at_ms=None, sender=None):
        """Queue frame for a radio listening on (page, ch) from virtual time at_ms (now)."""
        phy.check(page, ch)
        if not isinstance(frame, (bytes, bytearray)):
            raise TypeError("a frame is bytes")
        if len(frame) > MAX_PAYLOAD:
            raise ValueError("a frame of {} bytes does not fit ({} max)".format(len(frame), MAX_PAYLOAD))
        if at_ms is None:
            at_ms = self.clock.monotonic_ms()
        q = self._rx.get((page, ch))
        if q is None:
            q = self._rx[(page, ch)] = []
        if len(q) >= self.rx_capacity:
            q.pop(0)
            self.rx_dropped += 1
        i = len(q)
        while i and q[i - 1][0] > at_ms:
            i -= 1
        q.insert(i, [at_ms, bytes(frame), sender])

    def queued(self, page, ch):
        q = self._rx.get((page, ch))
        return len(q) if q else 0

    def take(self, radio, page, ch, until_ms):
        """The first frame on (page, ch) not sent by radio, arriving by until_ms: (at_ms, frame)."""
        q = self._rx.get((page, ch))
        if not q:
            return None
        for i in range(len(q)):
            e = q[i]
            if e[0] > until_ms:
                return None
            if e[2] is not radio:
                q.pop(i)
                return e[0], e[1]
        return None

    # ------------------------------------------------------------ frames out

    def attach(self, radio):
        if radio not in self._radios:
            self._radios.append(radio)

    def detach(self, radio):
        if radio in self._radios:
            self._radios.remove(radio)

    def on_air(self, radio, page, ch, frame, airtime_us):
        """Log one transmission starting now; called by SimRadio.transmit."""
        now = self.clock.monotonic_ms()
        for w in self._windows.values():
            w.add(now, airtime_us)
        self.frames += 1
        self.airtime_us_total += airtime_us
        hour = now // HOUR_MS
        if hour - self._hour0 >= _HOURLY_KEEP:  # keep the last _HOURLY_KEEP hours only
            start = hour - _HOURLY_KEEP + 1
            self._hourly = self._hourly[start - self._hour0 :]
            self._hour0 = start
        hourly = self._hourly
        while len(hourly) <= hour - self._hour0:
            hourly.append(0)
        hourly[hour - self._hour0] += airtime_us
        entry = (now, airtime_us, page, ch, len(frame), radio)
        size = self._recent_size
        if len(self._recent) < size:
            self._recent.append(entry)
            self._recent_i = len(self._recent) % size
        else:
            self._recent[self._recent_i] = entry
            self._recent_i = (self._recent_i + 1) % size
        if len(self._radios) > 1:
            self.inject(page, ch, frame, now + _ceil_ms(airtime_us), radio)

    def recent(self, n=None):
        """The last n transmissions (default all kept), oldest first: (start_ms, airtime_us,
        page, ch, length)."""
        rec = self._recent
        size = len(rec)
        n = size if n is None else min(n, size)
        out = []
        for k in range(size - n, size):
            e = rec[(self._recent_i + k) % size] if size == self._recent_size else rec[k]
            out.append(e[:5])
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
            raise ValueError("a {} ms window is not tracked (Medium(windows_ms=...))".format(window_ms))
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


class SimRadio(Radio):
    def __init__(self, medium, clock=None, band="868", tx_power_dbm=14):
        if band not in ("868", "915"):
            raise ValueError("band must be '868' or '915', not {!r}".format(band))
        self.medium = medium
        self.clock = clock if clock is not None else medium.clock
        self.band = band
        self.tx_power_dbm = tx_power_dbm
        self.page = None
        self.channel = None
        self.frames_sent = 0
        self.frames_received = 0
        self.airtime_us_total = 0
        medium.attach(self)

    def _why_not(self, page, channel):
        try:
            phy.check(page, channel)
        except (ValueError, TypeError) as e:
            return str(e)
        if phy.band_of(page) != self.band:
            return "a {} MHz module cannot tune page {}".format(self.band, page)
        return None

    def can_tune(self, page, channel):
        return self._why_not(page, channel) is None

    def tune(self, page, channel):
        why = self._why_not(page, channel)
        if why is not None:
            raise RadioError(why)
        self.page = page
        self.channel = channel

    def _tuned(self):
        if self.page is None:
            raise RadioError("radio is not tuned")

    def transmit(self, frame):
        self._tuned()
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise RadioError("a frame is bytes, not {}".format(type(frame).__name__))
        n = len(frame)
        if not 0 < n <= MAX_PAYLOAD:
            raise RadioError("frame of {} bytes: 1-{} bytes fit".format(n, MAX_PAYLOAD))
        airtime = phy.airtime_us(n)
        self.medium.on_air(self, self.page, self.channel, bytes(frame), airtime)
        self.frames_sent += 1
        self.airtime_us_total += airtime
        return airtime

    def receive(self, timeout_ms=0):
        """The next frame on the tuned channel, waiting (virtual time) up to timeout_ms."""
        self._tuned()
        if timeout_ms < 0:
            timeout_ms = 0
        now = self.clock.monotonic_ms()
        got = self.medium.take(self, self.page, self.channel, now + timeout_ms)
        if got is None:
            if timeout_ms:
                self.clock.sleep_ms(timeout_ms)
            return None
        at, frame = got
        if at > now:
            self.clock.sleep_ms(at - now)
        self.frames_received += 1
        return frame

    def energy(self, page, channel):
        why = self._why_not(page, channel)
        if why is not None:
            raise RadioError(why)
        return self.medium.energy(page, channel, self)

    def deinit(self):
        self.medium.detach(self)

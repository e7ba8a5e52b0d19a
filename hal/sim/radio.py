# A simulated radio medium and a Radio on it, driven by a clock (the virtual board's
# hal.sim.clock.FastForwardClock, or hal.sim.vclock.VirtualClock in tests).
#
# Medium: the air as a board's radio hears it, per (page, channel) of hal.phy.PLAN.
#   - background noise noise_dbm (dBm) on every channel, and the frames sent by other SimRadios
#     on the medium (tx power minus path_loss_db while they are on air).
#   - energy readings are the power sum of these, rounded to whole dBm, plus a small jitter
#     (jitter_db, uniform in [-jitter_db, +jitter_db]) from the medium's own xorshift32
#     generator: the same seed gives the same readings on CPython and MicroPython (the two
#     `random` modules differ, and a shared global generator would couple unrelated code).
#   - frames to receive: inject(page, ch, frame, at_ms=None). Each channel holds at most
#     rx_capacity frames (the oldest is dropped and counted in rx_dropped). With two or more
#     radios on a medium, a frame one of them sends is queued for the others on that channel
#     (first reader takes it).
#   - every transmission is counted (frames, airtime_us_total) and the last recent_size are kept
#     in a ring (the energy of frames still on air comes from it).
# What host tests and tools script and log - noise that changes over time, other transmitters,
# exact sliding-window airtime, airtime per hour, the recent transmissions - is in
# the tests' LabMedium (tests/portable/labmedium.py), a subclass, so that a board does not carry it.
import math

from hal import phy
from hal.compat import const
from hal.contracts import Radio, RadioError

MAX_PAYLOAD = phy.MAX_PSDU - phy.FCS_BYTES  # 125 bytes of MAC payload
_FRAME_TYPES = (bytes, bytearray, memoryview)  # built once (a tuple of names in a check is built per call)
_RECENT = const(256)
_RX_CAPACITY = const(64)
_LONGEST_MS = phy.airtime_us(MAX_PAYLOAD) // 1000 + 1  # no frame is on air longer


def _ceil_ms(airtime_us):
    return (airtime_us + 999) // 1000


class Medium:
    def __init__(
        self,
        clock,
        seed=1,
        noise_dbm=-100,
        jitter_db=1,
        rx_capacity=_RX_CAPACITY,
        path_loss_db=60,
        recent_size=_RECENT,
    ):
        self.clock = clock
        self.noise_dbm = noise_dbm  # background on every channel
        self.jitter_db = jitter_db
        self.path_loss_db = path_loss_db
        self.rx_capacity = rx_capacity
        self.rx_dropped = 0
        self.frames = 0
        self.airtime_us_total = 0
        self.radios = []  # the SimRadios on this medium (they add and remove themselves)
        self._rx = {}  # (page, ch) -> [[at_ms, frame, sender], ...] sorted by at_ms
        self._queued = 0  # frames in all of them: none, and take() need not look (a chip asks often)
        self._recent_size = recent_size
        # the last transmissions: [start_ms, airtime_us, page, ch, length, radio], a ring whose
        # entries are filled in place once it is full
        self._recent = []
        self._recent_i = 0
        x = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF
        self._rng = x or 1

    # ------------------------------------------------------------ energy

    def _background_mw(self, page, ch, now):
        # the level on (page, ch) at now without other radios' frames, in mW
        phy.check(page, ch)
        return math.pow(10.0, self.noise_dbm / 10.0)

    def energy(self, page, ch, exclude=None):
        """Energy on (page, ch) now in whole dBm, as a radio (exclude) would measure it."""
        mw = self._background_mw(page, ch, self.clock.monotonic_ms())
        if self._on_air_lately():
            mw += self._frames_mw(page, ch, exclude)
        if self.jitter_db:
            return int(round(10.0 * math.log10(mw))) + self._jitter()
        return int(round(10.0 * math.log10(mw)))

    def _on_air_lately(self):
        # a frame may still be on air: the newest started within the longest airtime
        return self._recent and self._recent[self._recent_i - 1][0] >= self.clock.monotonic_ms() - _LONGEST_MS

    def _frames_mw(self, page, ch, exclude):
        # frames of other radios still on air: the recent ring, newest first, back to the longest
        # frame's airtime ago
        now = self.clock.monotonic_ms()
        mw = 0.0
        rec = self._recent
        n = len(rec)
        for k in range(n):
            start, airtime, p, c, _, radio = rec[(self._recent_i - 1 - k) % n]
            if start < now - _LONGEST_MS:
                break
            if start <= now and p == page and c == ch and radio is not exclude and start + _ceil_ms(airtime) > now:
                mw += math.pow(10.0, (radio.tx_power_dbm - self.path_loss_db) / 10.0)
        return mw

    def _jitter(self):
        j = self.jitter_db
        x = self._rng  # xorshift32
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x % (2 * j + 1) - j

    # ------------------------------------------------------------ frames in

    def inject(self, page, ch, frame, at_ms=None, sender=None):
        """Queue (a copy of) frame for a radio listening on (page, ch) from virtual time at_ms (now)."""
        phy.check(page, ch)
        if not isinstance(frame, _FRAME_TYPES):
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
        else:
            self._queued += 1
        i = len(q)
        while i and q[i - 1][0] > at_ms:
            i -= 1
        q.insert(i, [at_ms, bytes(frame), sender])

    def take(self, radio, page, ch, until_ms):
        """The first frame on (page, ch) not sent by radio, arriving by until_ms: (at_ms, frame)."""
        if not self._queued:  # (a chip asks at every transaction while it listens)
            return None
        return self._take(radio, page, ch, until_ms)

    def _take(self, radio, page, ch, until_ms):
        q = self._rx.get((page, ch))
        if not q:
            return None
        for i in range(len(q)):
            e = q[i]
            if e[0] > until_ms:
                return None
            if e[2] is not radio:
                q.pop(i)
                self._queued -= 1
                return e[0], e[1]
        return None

    # ------------------------------------------------------------ frames out

    def on_air(self, radio, page, ch, frame, airtime_us):
        """Log one transmission starting now; called by SimRadio.transmit and the chip models.
        frame (bytes-like) is copied if it is kept."""
        self.frames += 1
        self.airtime_us_total += airtime_us
        e = self._next_recent()
        e[0] = self.clock.monotonic_ms()
        e[1] = airtime_us
        e[2] = page
        e[3] = ch
        e[4] = len(frame)
        e[5] = radio
        self._logged(e)
        if len(self.radios) > 1:
            self._relay(e, frame)

    def _next_recent(self):
        # the entry of the ring to fill: a new one until it is full, then the oldest
        rec = self._recent
        if len(rec) < self._recent_size:
            rec.append([0, 0, 0, 0, 0, None])
            self._recent_i = len(rec) % self._recent_size
            return rec[-1]
        e = rec[self._recent_i]
        self._recent_i = (self._recent_i + 1) % self._recent_size
        return e

    def _logged(self, e):
        """What a subclass keeps of each transmission: e is the ring's entry just filled,
        [start_ms, airtime_us, page, ch, length, radio] (it is filled again later)."""

    def _relay(self, e, frame):
        # a frame sent is queued for the other radios on that channel
        self.inject(e[2], e[3], frame, self._arrival(e), e[5])

    def _arrival(self, e):
        return e[0] + _ceil_ms(e[1])  # its last bit


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
        medium.radios.append(self)

    def _check(self, page, channel):
        # RadioError unless this module can tune (page, channel)
        try:
            phy.check(page, channel)
        except (ValueError, TypeError) as e:
            raise RadioError(str(e))
        if phy.band_of(page) != self.band:
            raise RadioError("a {} MHz module cannot tune page {}".format(self.band, page))

    def can_tune(self, page, channel):
        try:
            self._check(page, channel)
        except RadioError:
            return False
        return True

    def tune(self, page, channel):
        self._check(page, channel)
        self.page = page
        self.channel = channel

    def transmit(self, frame):
        if self.page is None:
            raise RadioError("radio is not tuned")
        if not isinstance(frame, _FRAME_TYPES):
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
        if self.page is None:
            raise RadioError("radio is not tuned")
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
        self._check(page, channel)
        return self.medium.energy(page, channel, self)

    def deinit(self):
        if self in self.medium.radios:
            self.medium.radios.remove(self)

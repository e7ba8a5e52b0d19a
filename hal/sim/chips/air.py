# A simulated chip's place on a hal.sim.radio.Medium: what it tunes decides the channel, what it
# sends goes on the air with its airtime, what others send reaches it.
#   Air(chip, medium)   joins chip to medium (chip.tx_power_dbm is what others hear of it)
#   channel_of(hz)      the (page, ch) of the plan whose centre hz is, or None off the plan
#   .send(hz, frame)    one frame (bytes-like: the medium copies what it keeps) on the air from
#                       now: the ms when its last bit is out
#   .take(hz)           (at_ms, frame) of the next frame for it on hz by now, or None
#   .energy_dbm(hz)     the level on hz now, as the chip's RSSI would read it
#   .wait_until(ms)     the time the chip needs (a driver busy-polling it sees it pass)
#   OnAir               the chip models' base: attach(medium), detach(), .air (None: off it)
# A frequency is read back from the chip's register (a step of 1 Hz on the SX126x, 61 Hz on
# the RFM69): it names a channel when within _TOLERANCE_HZ of the channel's centre.
from hal import phy
from hal.compat import const

_TOLERANCE_HZ = const(1000)
_SPACING_HZ = const(200000)
_MAX_PAYLOAD = phy.MAX_PSDU - phy.FCS_BYTES


_KNOWN = {}  # hz -> channel_of(hz): the chips ask about the few they tune again and again
_KNOWN_MAX = const(512)


def channel_of(hz):
    """(page, ch) whose centre frequency is within _TOLERANCE_HZ of hz, or None."""
    pc = _KNOWN.get(hz, False)
    if pc is False:
        pc = _find(hz)
    return pc


def _find(hz):
    pc = None
    for page in phy.PLAN:
        first, last, base = phy.PLAN[page]
        ch = (hz - base + _SPACING_HZ // 2) // _SPACING_HZ
        if first <= ch <= last and abs(hz - base - ch * _SPACING_HZ) <= _TOLERANCE_HZ:
            pc = (page, ch)
            break
    if len(_KNOWN) >= _KNOWN_MAX:
        _KNOWN.clear()
    _KNOWN[hz] = pc
    return pc


class Air:
    def __init__(self, chip, medium):
        self.chip = chip
        self.medium = medium
        self.clock = medium.clock
        medium.radios.append(chip)

    def leave(self):
        if self.chip in self.medium.radios:
            self.medium.radios.remove(self.chip)

    def now(self):
        return self.clock.monotonic_ms()

    def send(self, hz, frame):
        if not 0 < len(frame) <= _MAX_PAYLOAD:
            return self.now()  # not a frame of the plan's PHY: nobody on the medium hears it
        at = self.now()
        airtime = phy.airtime_us(len(frame))
        self._on_air(channel_of(hz), frame, airtime)
        return at + (airtime + 999) // 1000

    def _on_air(self, pc, frame, airtime):
        # (apart from send: a MicroPython frame within 11 words is not taken from the heap)
        if pc is not None:
            self.medium.on_air(self.chip, pc[0], pc[1], frame, airtime)

    def take(self, hz):
        pc = channel_of(hz)
        if pc is None:
            return None
        return self.medium.take(self.chip, pc[0], pc[1], self.now())

    def energy_dbm(self, hz):
        pc = channel_of(hz)
        if pc is None:
            return self.medium.noise_dbm
        return self.medium.energy(pc[0], pc[1], self.chip)

    def wait_until(self, ms):
        now = self.now()
        if ms > now:
            self.clock.sleep_ms(ms - now)


class OnAir:
    air = None

    def attach(self, medium):
        """Join a hal.sim.radio.Medium (leaving the one before)."""
        self.detach()
        self.air = Air(self, medium)

    def detach(self):
        if self.air is not None:
            self.air.leave()
            self.air = None

# The simulated HAN: smart-metering devices on the radio medium around a hub (DOMAIN.md section 9).
# Part of the simulated world, beside hal.sim.radio's Medium: the hub sees these devices only
# through its radio, in the frame format of hal/han_frame.py. Runs on CPython and MicroPython.
#
# Devices (EUI-64 and type):
#   ESME   mains powered, always listening: a reading up every period (ACK_ME).
#   GSME   battery powered, sleepy: wakes once per wake period, sends POLL (the hub answers with
#          what it holds for it and the Sub-GHz attributes and flags it has set: a ChannelChange
#          it follows) and a reading; hears nothing while asleep.
#   PPMID, IHD, CAD (type 2)   always listening: a request every period, answered by the hub
#          with a DATA response (a reading from its mirror).
# Every device: looks for the network channel by sending BEACON_REQ on each channel of its band
# until the hub answers with BEACON, then JOIN_REQ; a hub whose table is full answers NO_CAPACITY
# and the device tries again after REJOIN_MS. A unicast the hub did not take from the medium (it
# listens on another channel, or the frame was lost) is sent again, up to MAX_RETRIES times,
# then counted as failed; FAILS_TO_SEARCH failures in a row and the device looks for the network
# again. It honours SuspendZCLMessages (non-essential messages are held while suspended), asks
# GetSuspendZCLMessagesStatus when its suspension runs out, and (except the GSME) sends its MAC
# statistics (unicast total, failures, retries over the period) every stats period.
# Scripted behaviour (script()): "normal"; "silent" (sends nothing: a GSME goes quiet); "flood"
# (a burst of requests every second); "lossy" (that share of its frames is lost on the air).
# noise(): a channel gets noisy (an interferer the hub's energy readings hear; frames lost on it).
#
# Time: the world acts in virtual time. advance(ms, tick) moves the clock from one device event
# to the next, and at each one lets the hub run (tick: the hub's own periodic work, in which it
# takes frames from its radio and answers them) and delivers what the hub sent.
import math

from hal import han_frame as hf
from hal import phy
from hal.sim.han_device import PERIODS, STATS_MS, Device, channel_of
from hal.sim.radio import SimRadio

MAX_RETRIES = 3
FAILS_TO_SEARCH = 3
REJOIN_MS = 600000  # a device refused for capacity tries again after 10 minutes
FLOOD_MS = 1000
_BODY = b"\x00" * 40  # a reading
MAX_DEVICES = 64
_AIR_MS = phy.airtime_us(phy.MAX_PSDU - phy.FCS_BYTES) // 1000 + 2  # the longest frame has arrived


class Han:
    def __init__(self, medium, clock=None, band="868", seed=7):
        self.medium = medium
        self.clock = clock or medium.clock
        self.band = band
        self.radio = SimRadio(medium, self.clock, band=band)
        self.devices = []
        self.network = None  # the channel where a beacon was last heard
        self._rng = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1
        self._out = []  # [device, frame, essential, retries] to send at the current step

    # ------------------------------------------------------------ devices
    def find(self, eui):
        for d in self.devices:
            if d.eui == eui:
                return d
        return None

    def add(self, eui, kind, period_s=None):
        """A new device (eui: 8 bytes, kind: a han_frame.TYPES name); it acts at once."""
        hf.type_code(kind)
        if not isinstance(eui, bytes) or len(eui) != 8:
            raise ValueError("an EUI-64 is 8 bytes")
        if self.find(eui) is not None:
            raise ValueError("a device with that EUI is already on the medium")
        if len(self.devices) >= MAX_DEVICES:
            raise ValueError("the simulated HAN holds at most {} devices".format(MAX_DEVICES))
        if period_s is not None and (not isinstance(period_s, int) or not 1 <= period_s <= 86400):
            raise ValueError("period_s must be 1-86400 seconds")
        period = period_s * 1000 if period_s else PERIODS[kind]
        d = Device(eui, kind, period, self.clock.monotonic_ms())
        self.devices.append(d)
        return d

    def remove(self, eui):
        """Take a device off the medium; a joined one says LEAVE first (the hub hears it at its
        next tick)."""
        d = self.find(eui)
        if d is None:
            raise ValueError("no such device")
        if d.joined and d.channel:
            self._transmit(d, hf.LEAVE, b"", d.channel)
        self.devices.remove(d)
        return d

    def script(self, eui, behaviour, burst=None, loss=None):
        d = self.find(eui)
        if d is None:
            raise ValueError("no such device")
        if behaviour not in ("normal", "silent", "flood", "lossy"):
            raise ValueError("behaviour: normal, silent, flood or lossy")
        if burst is not None:
            if not isinstance(burst, int) or not 1 <= burst <= 50:
                raise ValueError("burst must be 1-50")
            d.burst = burst
        if loss is not None:
            if not isinstance(loss, int) or not 0 <= loss <= 100:
                raise ValueError("loss must be 0-100 (percent)")
            d.loss = loss
        elif behaviour == "lossy" and not d.loss:
            d.loss = 50
        if behaviour != "lossy" and loss is None:
            d.loss = 0
        d.behaviour = behaviour
        d.next_ms = min(d.next_ms, self.clock.monotonic_ms())
        return d

    def noise(self, page, channel, dbm=None):
        """An interferer heard at dbm on (page, channel) from now (None: gone): the hub's energy
        readings rise, and frames on that channel are lost, more the louder it is (NOISE_LOSS)."""
        phy.check(page, channel)
        jam = getattr(self.medium, "interference", None)
        if jam is None:
            jam = self.medium.interference = {}
            _hear_interference(self.medium, jam)
        if dbm is None:
            jam.pop((page, channel), None)
        elif not isinstance(dbm, int) or not -120 <= dbm <= 0:
            raise ValueError("dbm must be -120 to 0")
        else:
            jam[(page, channel)] = dbm

    def _noise_loss(self, channel):
        jam = getattr(self.medium, "interference", None)
        dbm = jam.get(channel) if jam else None
        if dbm is None:
            return 0
        return max(0, min(90, (dbm + 95) * 3))  # -95 dBm: none; -65 dBm and above: 90 %

    # ------------------------------------------------------------ time
    def advance(self, ms, tick):
        """Run the world for ms of virtual time; tick() is the hub's periodic work."""
        clock = self.clock
        end = clock.monotonic_ms() + ms
        while True:
            due = None
            for d in self.devices:
                if due is None or d.next_ms < due:
                    due = d.next_ms
            if due is None or due > end:
                break
            now = clock.monotonic_ms()
            if due > now:
                clock.advance_ms(due - now)
            self._step(tick)
        now = clock.monotonic_ms()
        if end > now:
            clock.advance_ms(end - now)
        tick()
        self._listen(tick)
        self._flush(tick)  # the answers the devices owe (ACKs)

    def _step(self, tick):
        now = self.clock.monotonic_ms()
        for d in list(self.devices):
            if d.next_ms <= now:
                d.awake = True
                self._act(d, now, tick)
        self._flush(tick)
        for d in self.devices:
            d.awake = False

    def _act(self, d, now, tick):
        if d.behaviour == "silent":
            d.next_ms = now + d.period_ms
            return
        if not d.joined:
            d.next_ms = now + REJOIN_MS
            if self._search(d, tick):
                wake_s = d.period_ms // 1000 if d.sleepy else 0
                self._queue(d, hf.JOIN_REQ, bytes((hf.type_code(d.type),)) + hf.u16(wake_s), True)
            return
        if d.behaviour == "flood":
            d.next_ms = now + FLOOD_MS
            for _ in range(d.burst):
                self._data(d, hf.REQUEST, now)
        else:
            d.next_ms = now + d.period_ms
            if d.sleepy:
                self._queue(d, hf.POLL, b"", True)
                self._data(d, hf.ACK_ME, now)
            elif d.type == "ESME":
                self._data(d, hf.ACK_ME, now)
            else:
                self._data(d, hf.REQUEST, now)
        if d.suspended_until and now >= d.suspended_until:
            d.suspended_until = 0
            d.asked += 1
            self._queue(d, hf.SUSPEND_Q, b"", True)
        if not d.sleepy and now >= d.stats_ms:
            minutes = (now - d.stats_ms + STATS_MS) // 60000
            page, ch = d.channel
            p = hf.stats(page, ch, d.total, d.failures, d.retries, minutes)
            d.total = d.failures = d.retries = 0
            d.stats_ms = now + STATS_MS
            d.reports += 1
            self._queue(d, hf.STATS, p, True)

    def _data(self, d, flags, now):
        if d.suspended_until and now < d.suspended_until:
            d.held += 1  # SuspendZCLMessages: a ZCL message waits
            return
        self._queue(d, hf.DATA, bytes((flags,)) + _BODY, False)

    # ------------------------------------------------------------ air
    def _queue(self, d, kind, payload, essential):
        d.seq = (d.seq + 1) & 0xFF
        self._out.append([d, hf.encode(kind, d.seq, d.eui, hf.BROADCAST, payload), essential, 0])

    def _lost(self, loss):
        if not loss:
            return False
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x % 100 < loss

    def _transmit(self, d, kind, payload, channel, frame=None):
        r = self.radio
        if frame is None:
            d.seq = (d.seq + 1) & 0xFF
            frame = hf.encode(kind, d.seq, d.eui, hf.BROADCAST, payload)
        if (r.page, r.channel) != channel:
            r.tune(channel[0], channel[1])
        d.airtime_us += r.transmit(frame)
        d.sent += 1
        if self._lost(max(d.loss, self._noise_loss(channel))):  # the hub never hears it
            q = self.medium._rx.get(channel)
            if q and q[-1][2] is r:
                q.pop()
                self.medium._queued -= 1
            return True
        return False

    def _flush(self, tick):
        # send what the devices queued, with MAC retries for what the hub did not take
        rounds = 0
        while self._out and rounds <= 2 * MAX_RETRIES:
            rounds += 1
            out = self._out
            self._out = []
            by_channel = {}
            for e in out:
                d = e[0]
                if d.channel is None:
                    continue
                lost = self._transmit(d, 0, None, d.channel, e[1])
                by_channel.setdefault(d.channel, []).append((e, lost))
            self.clock.advance_ms(_AIR_MS)  # on air
            tick()
            again = []
            for ch, sent in by_channel.items():
                missed = _withdraw(self.medium, self.radio, ch[0], ch[1])
                # the hub takes frames in order: those it missed are the last ones on air
                heard = len([1 for x in sent if not x[1]]) - missed
                for e, lost in sent:
                    d = e[0]
                    if not lost:
                        heard -= 1
                    if not lost and heard >= 0:
                        d.total += 1
                        d.retries += e[3]
                        d.fails_in_row = 0
                    elif e[3] >= MAX_RETRIES:
                        d.total += 1
                        d.failures += 1
                        d.retries += e[3]
                        d.fails_in_row += 1
                        if d.fails_in_row >= FAILS_TO_SEARCH:
                            d.joined = False  # lost the network: look for it again
                            d.fails_in_row = 0
                            d.next_ms = min(d.next_ms, self.clock.monotonic_ms() + d.period_ms)
                    else:
                        e[3] += 1
                        again.append(e)
            self._listen(tick)
            self._follow_moves()
            self._out = again + self._out

    def _listen(self, tick):
        # deliver what the hub sent to the devices that hear it
        channels = []
        for d in self.devices:
            if d.channel is not None and d.channel not in channels:
                channels.append(d.channel)
        now = self.clock.monotonic_ms()
        for ch in channels:
            while True:
                got = self.medium.take(self.radio, ch[0], ch[1], now + _AIR_MS)
                if got is None:
                    break
                f = hf.decode(got[1])
                if f is None or self._lost(self._noise_loss(ch)):
                    continue
                for d in self.devices:
                    if d.channel == ch and (f[3] == d.eui or f[3] == hf.BROADCAST):
                        self._hear(d, f, now)

    def _hear(self, d, f, now):
        kind, _seq, _src, _dst, p = f
        if d.sleepy and not d.awake:
            return  # asleep: the frame is lost for it
        d.got[kind] = d.got.get(kind, 0) + 1
        if kind == hf.JOIN_RSP and p:
            if p[0] == hf.JOINED:
                d.joined = True
                d.next_ms = now + (d.period_ms if d.sleepy else 1000)
            else:
                d.refused += 1
        elif kind == hf.SUSPEND and len(p) >= 2:
            minutes = hf.get_u16(p, 0)
            d.suspended_until = now + minutes * 60000 if minutes else 0
        elif kind == hf.ATTR and len(p) >= 5:
            d.attrs[p[0]] = hf.get_u32(p, 1)
            if p[0] == hf.ATTR_CHANNEL_CHANGE:
                d.move_to = channel_of(d.attrs[p[0]])  # the hub moves there: follow it
        elif kind == hf.DATA and p and p[0] & hf.ACK_ME:
            self._queue(d, hf.ACK, bytes((f[1],)), True)

    def _follow_moves(self):
        for d in self.devices:
            if d.move_to is not None:
                d.channel, d.move_to = d.move_to, None

    def _search(self, d, tick):
        # BEACON_REQ on each channel of the band (the last network channel first) until a BEACON
        order = []
        if self.network is not None:
            order.append(self.network)
        for page in phy.PLAN:
            if phy.band_of(page) != self.band:
                continue
            first, last, _ = phy.PLAN[page]
            for ch in range(first, last + 1):
                if (page, ch) != self.network:
                    order.append((page, ch))
        for ch in order:
            self._transmit(d, hf.BEACON_REQ, b"", ch)
            self.clock.advance_ms(_AIR_MS)
            tick()
            _withdraw(self.medium, self.radio, ch[0], ch[1])
            now = self.clock.monotonic_ms()
            while True:
                got = self.medium.take(self.radio, ch[0], ch[1], now + _AIR_MS)
                if got is None:
                    break
                f = hf.decode(got[1])
                if f is not None and f[0] == hf.BEACON and f[3] in (d.eui, hf.BROADCAST):
                    d.channel = self.network = ch
                    return True
        d.channel = None
        return False


def _withdraw(medium, radio, page, ch):
    # remove the frames radio sent on (page, ch) that nobody has taken; how many there were (the
    # devices learn so that the hub did not hear them). Here, not in Medium, so that a board
    # without a HAN does not carry it.
    q = medium._rx.get((page, ch))
    if not q:
        return 0
    n = len(q)
    q[:] = [e for e in q if e[2] is not radio]
    n -= len(q)
    medium._queued -= n
    return n


def _hear_interference(medium, jam):
    # the medium's background level on a channel, plus the interferers of jam ((page, ch) ->
    # dBm): installed on the medium instance the first time a channel gets noisy
    background = medium._background_mw

    def level(page, ch, now):
        mw = background(page, ch, now)
        dbm = jam.get((page, ch))
        return mw if dbm is None else mw + math.pow(10.0, dbm / 10.0)

    medium._background_mw = level


def world_of(medium, band="868"):
    """The simulated HAN on medium, made on first use (medium.han)."""
    w = getattr(medium, "han", None)
    if w is None:
        w = medium.han = Han(medium, band=band)
    return w

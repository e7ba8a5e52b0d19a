# A simulated stretch of a hub's life on the simulated HAL, for the endurance tests
# (tests/portable/test_endurance.py on both runtimes, tests/host/test_endurance_month.py for a
# whole month on CPython; DBCH_ENDURANCE_DAYS=28 micropython tests/upy/run.py test_endurance for a
# month on MicroPython).
#
# The world: one virtual clock for the air (labmedium.LabMedium) and the host. The device's
# clock restarts at every boot (BootClock: monotonic from 0, UTC from the world), as a board's
# does. Time moves a minute per step; in each step the host (this script) talks to the agent
# through agent.server.Server over an in-memory link, the way a host on serial does:
#   - steady traffic: a "send" request every 5 minutes (a few frames for one of three devices);
#   - duty-cycle episodes: STORM_MINUTES of bursts far above the limits (two devices, essential
#     traffic, one message a minute with a RequestID), raising 8F20/8F22/8F24 and 8F2C, then
#     8F25/8F23/8F21 as the hour rolls on;
#   - channel noise: the operating channel gets 30 dB noisier for NOISE_HOURS a day, so
#     frequency agility moves (8F28, 8F27, 8F26) or, with the week's budget spent, stays (8F28
#     TooManyScansThisWeek);
#   - a DCC scan request a day (8F28);
#   - the host's link goes down for a few hours once a day (events wait in the outbox);
#   - reboots, each followed by a new Hub on the same flash: a requested one ("reboot" op) every
#     week (on day 1 of a run shorter than a week), and a power cut in the middle of the bursts
#     of the week's first storm (SimFlash.cut_after; the radio goes off with it).
# The host acknowledges every event it receives; duplicates (the same seq again) are counted.
# Every alert the hub appends to its outbox is recorded by seq at append time.
#
# Memory: the LabMedium keeps one airtime figure per clock hour (a list that grows with the run);
# it is sized for the whole run at the start, so that the heap figures show the agent's own
# growth, not that list's.
import gc

from agent import wire
from agent.examples import DBCH04_CONFIG
from agent.server import Server
from boards import sim
from hal.contracts import Clock, Link, PowerCut
from hal.sim.flash import SimFlash
from hal.sim.vclock import VirtualClock
from tests.kits.labmedium import LabMedium

MINUTE_MS = 60000
HOUR_MS = 3600000
DAY_MS = 86400000
WEEK_MS = 7 * DAY_MS
LIMIT_US = 25 * 3600000  # 2.5 % of an hour, in microseconds of airtime
STORM_MINUTES = 20
NOISE_HOURS = 4
OUTAGE_HOURS = 3
MAX_SEQ = 16384  # seqs the counters hold (a month issues a few thousand)
MAX_MOVES = 4096  # 8F26 and budget refusals the log holds
_MOVE, _STAY, _FORCED = 0, 1, 2  # kinds in the log: 8F26 (budgeted), 8F28 refused, 8F26 (forced)
DEVICES = ("00-00-00-00-00-00-00-01", "00-00-00-00-00-00-00-02", "00-00-00-00-00-00-00-03")
HUB_EUI = "00-DB-12-34-56-78-90-A2"
CHANGES_PER_WEEK = 5

# The DBCH04 template's configuration, noise measured every 15 minutes.
CONFIG = dict(DBCH04_CONFIG)
CONFIG["MaximumSubGHzChannelChangesPerWeek"] = CHANGES_PER_WEEK
CONFIG["LocalCHNoiseMeasurementPeriod"] = 900


def heap_used():
    """Live heap after a collection: bytes on MicroPython, objects tracked by the GC on CPython."""
    gc.collect()
    if hasattr(gc, "mem_alloc"):
        return gc.mem_alloc()
    return len(gc.get_objects())


class BootClock(Clock):
    """The device's clock: monotonic from 0 at its boot, UTC and the passing of time from the world."""

    def __init__(self, world):
        self.world = world
        self.boot_ms = world.monotonic_ms()

    def monotonic_ms(self):
        return self.world.monotonic_ms() - self.boot_ms

    def utc(self):
        return self.world.utc()

    def sleep_ms(self, ms):
        self.world.advance_ms(ms)

    def advance_ms(self, ms):
        self.world.advance_ms(ms)


class Pipe(Link):
    """The serial line; while it is down, bytes either way are lost."""

    def __init__(self):
        self.to_agent = bytearray()
        self.to_host = bytearray()
        self.up = True

    def read(self, n):
        data = bytes(self.to_agent[:n])
        self.to_agent = self.to_agent[n:]
        return data

    def write(self, data):
        if self.up:
            self.to_host += data

    def wait(self, timeout_ms):
        return bool(self.to_agent)


class Life:
    """A hub, its host and its air for `days` simulated days (see the top of this file)."""

    def __init__(self, days, seed=3, checkpoint_days=None, on_checkpoint=None):
        self.days = days
        self.world = VirtualClock()
        self.medium = LabMedium(self.world, seed=seed)
        if isinstance(getattr(self.medium, "_hourly", None), list):
            self.medium._hourly = [0] * (days * 24 + 2)  # see "Memory" above
        self.flash = SimFlash()
        self.link = Pipe()
        self.decoder = wire.FrameDecoder()
        self.checkpoint_days = checkpoint_days or (7 if days >= 14 else 1)
        self.on_checkpoint = on_checkpoint
        # Everything the host keeps is allocated here, at its full size, so that the heap
        # figures taken during the run do not grow with the host's own records.
        # per seq: times appended to the outbox, times received by the host
        self.appended = bytearray(MAX_SEQ)
        self.received = bytearray(MAX_SEQ)
        self.refused = 0  # appends the outbox refused (full)
        self.duplicates = 0  # events received again with a seq already acknowledged
        self.alerts = {}  # GBCS code -> count, at append
        for code in range(0x8F20, 0x8F2E):
            self.alerts["{:04X}".format(code)] = 0
        self.move_min = [0] * MAX_MOVES  # world minute of each, at append
        self.move_kind = bytearray(MAX_MOVES)
        self.moves = 0
        self.requests = 0
        self.answers = 0
        self.rcs = {"I0": 0, "E13": 0, "E49": 0, "E5": 0}  # response code -> count
        self.cut_answers = 0  # answers to requests the power failed under
        self.internal = []  # (minute, op, err) of answers that report an internal error
        self.unanswered = []  # (minute, op) of requests that got no answer
        self.boots = 0
        self.cuts = 0
        n = days // self.checkpoint_days + 2
        self.heap = [None] * n  # (day, heap_used()) at each checkpoint
        self.flash_writes = [None] * n  # (day, SimFlash.writes) at each checkpoint
        self.checkpoints = 0
        self.noisy = None  # (page, ch) made noisy today
        self.storm_n = 0
        self._id = 0
        self._pending = {}  # request id -> op
        self._cut_expected = False
        self._cut_week = -1
        self.hub = None
        self.server = None
        self.boot()

    # -- the device --------------------------------------------------------------------------
    def boot(self):
        from agent.hub import Hub

        if self.hub is not None:
            self.hub.hal.deinit()  # the old radio leaves the air
        self.flash.power_on()
        self.clock = BootClock(self.world)
        hal = sim.make_hal(flash=self.flash, clock=self.clock, medium=self.medium, link=self.link)
        radio = hal.radio
        transmit = radio.transmit
        flash = self.flash

        def powered(frame):
            # the radio dies with the power (SimFlash only knows about the flash)
            if flash.off:
                raise PowerCut("power cut: the radio is off")
            return transmit(frame)

        radio.transmit = powered
        hub = Hub(hal, sim)
        self._record_appends(hub)
        self.hub = hub
        self.server = Server(hub, self.link)
        self.decoder.reset()
        self.link.to_agent = bytearray()
        self._pending = {}
        self.boots += 1
        self.request("hello", {"events": True})

    def _record_appends(self, hub):
        outbox = hub.outbox
        append = outbox.append
        life = self

        def recorded(kind, data=None):
            seq = append(kind, data)
            if seq is None:
                life.refused += 1
                return seq
            if seq >= MAX_SEQ:
                raise AssertionError("more seqs than the endurance counters hold")
            life.appended[seq] += 1
            if kind == "N54":
                code = data["DeviceAlertCode"]
                life.alerts[code] = life.alerts.get(code, 0) + 1
                payload = data.get("payload") or {}
                # a move, or a scan refused by the week's budget (8F28 TooManyScansThisWeek)
                spent = code == "8F28" and payload.get("status") == "TooManyScansThisWeek"
                if (code == "8F26" or spent) and life.moves < MAX_MOVES:
                    trig = payload.get("trigger")
                    kind = _STAY if spent else _FORCED if trig == "SMHANFormation" else _MOVE
                    life.move_min[life.moves] = life.world.monotonic_ms() // MINUTE_MS
                    life.move_kind[life.moves] = kind
                    life.moves += 1
            return seq

        outbox.append = recorded

    # -- the host ----------------------------------------------------------------------------
    def request(self, op, args=None):
        self._id += 1
        self._pending[self._id] = op
        self.requests += 1
        if self.link.up:
            self.link.to_agent += wire.pack(wire.request(self._id, op, args))

    def _take(self):
        data = bytes(self.link.to_host)
        self.link.to_host = bytearray()
        for body in self.decoder.feed(data):
            m = wire.unpack(body)
            t = m["t"]
            if t == "r":
                op = self._pending.pop(m["id"], None)
                self.answers += 1
                rc = m["rc"]
                self.rcs[rc] = self.rcs.get(rc, 0) + 1
                err = m.get("e") or ""
                if err.startswith("internal error"):
                    if self._cut_expected:
                        self.cut_answers += 1  # the power failed under this request
                    else:
                        self.internal.append((self.world.monotonic_ms() // MINUTE_MS, op, err))
            elif t == "e":
                seq = m["seq"]
                if self.received[seq]:
                    self.duplicates += 1
                else:
                    self.received[seq] = 1
                self.link.to_agent += wire.pack(wire.ack(seq))

    def exchange(self):
        """One pass of the agent's loop, then the host reads what came back."""
        try:
            self.server.poll()
        except PowerCut:
            pass
        if self.flash.off:
            # the power failed during this pass (whether or not the agent noticed)
            self.cuts += 1
            self._take()
            self._cut_expected = False
            self._pending = {}  # what the device did not answer is lost with it
            self.world.advance_ms(10 * MINUTE_MS)  # off for ten minutes
            self.boot()
            return
        self._take()
        self._cut_expected = False
        if self.link.up:
            for rid in list(self._pending):
                self.unanswered.append((self.world.monotonic_ms() // MINUTE_MS, self._pending[rid]))
        self._pending = {}  # requests made while the link was down never reached the device
        if self.hub.reboot_requested:
            self.boot()

    # -- the schedule ------------------------------------------------------------------------
    def _storm_hour(self, day):
        return None if day % 3 != 1 else 9 + (day * 7) % 12

    def minute(self, m):
        day, mod = divmod(m, 1440)
        hour, mm = divmod(mod, 60)
        if m == 0:
            self.request("config.set", {"config": CONFIG})
        if mod == 0 and day > 0 and day % self.checkpoint_days == 0:
            self.checkpoint(day)
        # the link: down for OUTAGE_HOURS from 20:00 every day
        if mm == 0:
            if hour == 20:
                self.link.up = False
            elif hour == 20 + OUTAGE_HOURS:
                self.link.up = True
                self.request("hello", {"events": True})
        if mm % 5 == 0:
            self.request("send", {"count": 20, "len": 100, "device": DEVICES[(m // 5) % 3]})
        storm = self._storm_hour(day)
        if storm is not None and hour == storm and mm < STORM_MINUTES:
            self.storm(day, mm)
        # noise on the operating channel from 03:00 for NOISE_HOURS
        if mm == 0 and hour == 3 + (day % 4):
            op = self.hub.agility.operating
            if op is not None:
                self.noisy = op
                self.medium.set_noise(op[0], op[1], -70)
        if mm == 0 and hour == 3 + (day % 4) + NOISE_HOURS and self.noisy is not None:
            self.medium.set_noise(self.noisy[0], self.noisy[1], -100)
            self.noisy = None
        if hour == 12 and mm == 30:
            self.request("scan")
        if hour == 2 and mm == 0 and (day % 7 == 3 or (self.days < 7 and day == 1)):
            self.request("reboot")

    def storm(self, day, mm):
        self.storm_n += 1
        for d in DEVICES[:2]:
            self.request("send", {"count": 400, "len": 125, "device": d})
        self.request("send", {"count": 100, "len": 125, "essential": True})
        rid = "{}:{}:{}".format(DEVICES[2], HUB_EUI, self.storm_n)
        self.request("send", {"count": 1, "len": 125, "request_id": rid})
        if mm == 3 and day // 7 != self._cut_week:
            # once a week, in its first storm, the power fails in the middle of this minute's
            # bursts (at the first write to the flash while they run, or after them)
            self._cut_week = day // 7
            self.flash.cut_after(1)
            self._cut_expected = True

    def checkpoint(self, day):
        k = self.checkpoints
        self.checkpoints = k + 1
        self.flash_writes[k] = (day, self.flash.writes)
        self.heap[k] = (day, 0)
        self.heap[k] = (day, heap_used())
        if self.on_checkpoint is not None:
            self.on_checkpoint(self, day)

    def heap_figures(self):
        return self.heap[: self.checkpoints]

    def run(self):
        minutes = self.days * 1440
        for m in range(minutes):
            if m:
                self.world.advance_ms(MINUTE_MS)
            self.minute(m)
            self.exchange()
        self.checkpoint(self.days)
        return self

    def drain(self, limit=500):
        """The host stays on line, without traffic, for at least an hour (the duty-cycle states
        fall back) and until the outbox is empty."""
        self.link.up = True
        if self.noisy is not None:
            self.medium.set_noise(self.noisy[0], self.noisy[1], -100)
            self.noisy = None
        self.request("hello", {"events": True})
        for i in range(limit):
            self.world.advance_ms(MINUTE_MS)
            self.exchange()
            if i > 70 and not len(self.hub.outbox) and not self.link.to_agent:
                break

    # -- what the checks read ----------------------------------------------------------------
    def issued(self):
        """Seqs appended (each should be 1)."""
        return [s for s in range(MAX_SEQ) if self.appended[s]]

    def lost(self):
        """Seqs appended but never received by the host."""
        return [s for s in range(MAX_SEQ) if self.appended[s] and not self.received[s]]

    def phantom(self):
        """Seqs received that the hub never appended (an overflow event would be one)."""
        return [s for s in range(MAX_SEQ) if self.received[s] and not self.appended[s]]

    def twice(self):
        return [s for s in range(MAX_SEQ) if self.appended[s] > 1]

    def budget_violations(self):
        """A scan refused for the week's budget (8F28 TooManyScansThisWeek) with fewer than the
        week's changes in the 7 days before it, or a move made with the budget spent: [(day,
        code, changes in the 7 days before)]."""
        out = []
        week = WEEK_MS // MINUTE_MS
        n = self.moves
        changes = [self.move_min[i] for i in range(n) if self.move_kind[i] == _MOVE]
        for i in range(n):
            kind = self.move_kind[i]
            if kind == _FORCED:
                continue
            t = self.move_min[i]
            before = len([c for c in changes if t - week < c < t])
            if (kind == _STAY) != (before >= CHANGES_PER_WEEK):
                out.append((t // 1440, "8F28" if kind == _STAY else "8F26", before))
        return out

    def move_counts(self):
        """(budgeted moves, moves refused by the budget, forced moves)."""
        kinds = [self.move_kind[i] for i in range(self.moves)]
        return kinds.count(_MOVE), kinds.count(_STAY), kinds.count(_FORCED)

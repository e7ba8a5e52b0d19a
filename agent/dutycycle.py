# Duty-cycle management for the sub-GHz radio.
#
# ETSI EN 300 220 measures duty cycle as the cumulative transmit time within a one-hour
# observation period. Zigbee sub-GHz stacks track four states against three thresholds; GBCS
# calls the top one "Regulated" (DOMAIN.md 3). Thresholds are permille of the hour (tenths of a
# percent): normal-limited is Sub GHz Configuration item 5 (0.5-2.0 % -> 5..20), limited-critical
# item 6 (>1.5 and <2.5 % -> 16..24). The regulated limit is the operating channel's (hal.phy
# LIMITS, set by agent/agility.py when it tunes; README "Regulated duty-cycle limits"):
# 0.1 %, 1 % or 2.5 % on the GB channels, before a channel is known the board's (default 2.5 %).
# A channel's limit may be at or below the DCC's thresholds (1 % under a 1.3 % normal-limited
# threshold): the limit binds first, and the states below it are entered with it, in order, at
# the same moment (8F20, 8F22, 8F24 together), and left with it. The ledger counts the airtime of
# every channel against the limit of the channel in use now: never less than the true figure.
#
#   usage >= normal_limited     limited    one device (the top talker) is suspended, 0x8F20
#   usage >= limited_critical   critical   essential traffic only, 0x8F22
#   usage >= regulated - F      regulated  no transmission at all, 0x8F24
#     (F = the airtime of one maximum-size frame: check() refuses any frame that would reach the
#     limit, so checked traffic alone stops just short of it; the hub is regulated once not even
#     one more frame fits, and leaves that state when one fits again)
# and on the way down 0x8F25, 0x8F23, 0x8F21 (the last one releases the suspended device).
# DutyCycle.state is "normal", "limited", "critical" or "regulated". DutyCycle.refusal says why
# check() refused a frame: "regulated", "critical" (not essential), "suspended" (the frame's
# device is the suspended one) or "limit" (the frame would reach the regulated limit).
# Every message refused for duty cycle raises 0x8F2C (RequestID + CRA flag) when it has a
# RequestID. Alerts are returned as (code, payload) lists; the caller persists them. No I/O here.
#
# The ledger
# ----------
# Times are monotonic milliseconds (never wrapping), airtime is microseconds. Airtime is kept in
# a ring of one-minute buckets with a running total, so recording costs the same whatever the
# history: the ring has a fixed number of slots, each stamped with its absolute minute number.
#
# Conservative accounting (why enforcement on the ledger's figure can never let any real one-hour
# window exceed the regulated limit):
# - A transmission recorded at t with airtime d occupies [t, t + d). It is charged, whole, to the
#   bucket holding its last millisecond (end_ms - 1, end_ms = t + ceil(d / 1000)). Charging later
#   than the airtime really happened only makes it stay in the ledger longer.
# - At time T (minute m) the ledger counts every bucket from m - 60 on: all whole buckets that
#   overlap the hour (T - 1 h, T], plus the one bucket ahead that a transmission started in minute
#   m can end in. Any transmission with airtime inside (T - 1 h, T] ends after T - 1 h, so its
#   bucket is >= m - 60 and it is counted: usage_us(T) is never less than the true airtime in the
#   exact sliding hour ending at T (it may be up to one minute's traffic more).
# - check() allows a transmission [t, t + d) only when usage_us(t) + d < limit. Any one-hour
#   window W that the new transmission touches starts after t - 1 h, so every earlier
#   transmission with airtime in W ends after t - 1 h and is in usage_us(t); W's airtime is then
#   at most usage_us(t) + d < limit. Windows it does not touch are unchanged. So, by induction,
#   no one-hour window of transmissions allowed by check() reaches the regulated limit.
# - The ring holds 62 slots: minutes m - 60 .. m + 1. A single record may carry at most one
#   bucket's worth of airtime (60 s), so it always ends within the slot ahead. Times that go
#   backwards are treated as the latest time seen (later charging is the conservative side).
# - Attribution to devices (for choosing whom to suspend) uses the same ring per device, for at
#   most 64 devices (_MAX_DEVICES) at a time; airtime of any further device still counts in the total.

from agent.codes import (
    ALERT_BELOW_CRITICAL_REGULATED,
    ALERT_BELOW_LIMITED_CRITICAL,
    ALERT_BELOW_NORMAL_LIMITED,
    ALERT_CRITICAL_ACTION,
    ALERT_LIMITED_ACTION,
    ALERT_MESSAGE_DISCARDED,
    ALERT_REGULATED_ACTION,
)
from hal.compat import const
from hal.phy import MAX_PSDU, airtime_us

HOUR_MS = const(3600000)
_BUCKET_MS = const(60000)
_US_PER_PERMILLE = const(3600000)  # one permille of an hour, in microseconds
MAX_AIRTIME_US = const(60000000)  # the most one record() may carry: one bucket
_MAX_DEVICES = const(64)  # devices whose airtime is attributed at one time

_WINDOW = const(60)  # buckets before the current one that still overlap the hour
_SLOTS = const(62)  # m - 60 .. m + 1
_NEVER = const(-1000)  # stamp of a slot never used (its amount is 0)
MAX_FRAME_US = airtime_us(MAX_PSDU - 2)  # one maximum-size frame (125-byte payload + FCS)

_ENTER = (None, ALERT_LIMITED_ACTION, ALERT_CRITICAL_ACTION, ALERT_REGULATED_ACTION)
_LEAVE = (None, ALERT_BELOW_NORMAL_LIMITED, ALERT_BELOW_LIMITED_CRITICAL, ALERT_BELOW_CRITICAL_REGULATED)


def permille_to_us(permille):
    """Airtime in microseconds that `permille` of one hour allows (25 -> 90_000_000)."""
    return permille * _US_PER_PERMILLE


class ThresholdError(ValueError):
    def __init__(self, field, msg):
        super().__init__("{}: {}".format(field, msg))
        self.field = field


class AirtimeLedger:
    """Rolling one-hour airtime: a fixed ring of one-minute buckets and a running total."""

    def __init__(self):
        self._stamp = [_NEVER] * _SLOTS
        self._amount = [0] * _SLOTS
        self._total = 0
        self._now = None  # latest time seen, ms
        self._minute = None  # its minute
        # device -> list of _SLOTS amounts (aligned with the ring) + its total at index _SLOTS
        self._devices = {}

    def _advance(self, now_ms):
        if self._now is None:
            self._now = now_ms
            self._minute = now_ms // _BUCKET_MS
            return now_ms
        if now_ms <= self._now:
            return self._now
        self._now = now_ms
        m = now_ms // _BUCKET_MS
        p = self._minute
        if m == p:
            return now_ms
        self._minute = m
        # The ring holds stamps p - 60 .. p + 1; those below m - 60 leave the window.
        hi = m - _WINDOW
        if hi > p + 1:  # everything has expired
            for i in range(_SLOTS):
                self._stamp[i] = _NEVER
                self._amount[i] = 0
            self._total = 0
            self._devices = {}
            return now_ms
        for s in range(p - _WINDOW, hi):
            i = s % _SLOTS
            if self._stamp[i] == s and self._amount[i]:
                self._clear(i)
        return now_ms

    def _clear(self, i):
        self._total -= self._amount[i]
        self._amount[i] = 0
        if self._devices:
            gone = []
            for dev, row in self._devices.items():
                a = row[i]
                if a:
                    row[i] = 0
                    row[_SLOTS] -= a
                    if row[_SLOTS] <= 0:
                        gone.append(dev)
            for dev in gone:
                del self._devices[dev]

    def record(self, now_ms, airtime_us, device=None):
        if not isinstance(airtime_us, int) or airtime_us < 0 or airtime_us > MAX_AIRTIME_US:
            raise ValueError("airtime_us: must be an int in 0..{}".format(MAX_AIRTIME_US))
        now = self._advance(now_ms)
        if not airtime_us:
            return
        end_ms = now + (airtime_us + 999) // 1000
        b = (end_ms - 1) // _BUCKET_MS  # the current minute or the one after
        i = b % _SLOTS
        if self._stamp[i] != b:
            if self._amount[i]:  # cannot happen (see the window invariant); stay consistent
                self._clear(i)
            self._stamp[i] = b
        self._amount[i] += airtime_us
        self._total += airtime_us
        if device is not None:
            row = self._devices.get(device)
            if row is None:
                if len(self._devices) >= _MAX_DEVICES:
                    return
                row = [0] * (_SLOTS + 1)
                self._devices[device] = row
            row[i] += airtime_us
            row[_SLOTS] += airtime_us

    def usage_us(self, now_ms):
        """Airtime counted for the hour ending at now_ms: never less than the true figure."""
        self._advance(now_ms)
        return self._total

    def device_us(self, now_ms, device):
        self._advance(now_ms)
        row = self._devices.get(device)
        return row[_SLOTS] if row else 0

    def top_device(self, now_ms):
        """The device with the most attributed airtime (ties: the smallest id), or None."""
        self._advance(now_ms)
        best = None
        best_us = 0
        for dev, row in self._devices.items():
            us = row[_SLOTS]
            if us > best_us or (us == best_us and best is not None and dev < best):
                best = dev
                best_us = us
        return best

    def snapshot(self, now_ms):
        """[[minutes ago, airtime us], ...] of the non-empty buckets: what a reboot must keep."""
        self._advance(now_ms)
        if self._minute is None:
            return []
        return [[self._minute - self._stamp[i], self._amount[i]] for i in range(_SLOTS) if self._amount[i]]

    def restore(self, buckets, now_ms, elapsed_ms):
        """Put back a snapshot taken elapsed_ms ago (device attribution is not kept). Whole
        minutes only: a bucket stays at least as long as it would have without the reboot."""
        self._advance(now_ms)
        m = self._minute
        shift = max(0, elapsed_ms) // _BUCKET_MS
        for ago, amount in buckets:
            age = ago + shift
            if age > _WINDOW or age < -1 or amount <= 0:
                continue
            s = m - age
            i = s % _SLOTS
            if self._stamp[i] != s:
                self._stamp[i] = s
                self._amount[i] = 0
            self._amount[i] += amount
            self._total += amount

    def storage_size(self):
        """Ints held: the ring plus one row per tracked device (bounded, never per record)."""
        return len(self._stamp) + len(self._amount) + len(self._devices) * (_SLOTS + 1)

    def devices_tracked(self):
        return len(self._devices)


class DutyCycle:
    def __init__(self, normal_limited=10, limited_critical=18, regulated=25):
        self.ledger = AirtimeLedger()
        self._level = 0
        self.suspended = None  # EUI of the device suspended in the limited state
        self.refusal = None  # why the last check() refused, or None
        # who to name when the ledger holds no device's airtime on entering limited: a callable
        # returning an EUI or None (the HAN's device heard most, agent/han.py)
        self.fallback = None
        self.normal_limited = self.limited_critical = self.regulated = 0
        self.set_thresholds(normal_limited, limited_critical, regulated)

    def set_thresholds(self, normal_limited=None, limited_critical=None, regulated=None):
        """Permille of the hour; None keeps the current value. The state is re-evaluated (and
        alerts raised) at the next check/record/update."""
        nl = self.normal_limited if normal_limited is None else normal_limited
        lc = self.limited_critical if limited_critical is None else limited_critical
        rg = self.regulated if regulated is None else regulated
        for field, value, lo, hi in (
            ("normal_limited", nl, 5, 20),  # item 5: 0.5-2.0 %
            ("limited_critical", lc, 16, 24),  # item 6: >1.5 and <2.5 %
            ("regulated", rg, 1, 1000),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ThresholdError(field, "not an integer (permille)")
            if value < lo or value > hi:
                raise ThresholdError(field, "{} outside {}..{} permille".format(value, lo, hi))
        if lc <= nl:
            raise ThresholdError("limited_critical", "must be above normal_limited ({})".format(nl))
        self.normal_limited = nl
        self.limited_critical = lc
        self.regulated = rg

    @property
    def regulated_us(self):
        return permille_to_us(self.regulated)

    @property
    def state(self):
        return ("normal", "limited", "critical", "regulated")[self._level]

    def usage_us(self, now_ms):
        return self.ledger.usage_us(now_ms)

    def usage_permille(self, now_ms):
        # floor, so usage_permille >= p exactly when usage_us >= p permille
        return self.ledger.usage_us(now_ms) // _US_PER_PERMILLE

    def _evaluate(self, now_ms):
        used = self.ledger.usage_us(now_ms)
        if used + MAX_FRAME_US >= permille_to_us(self.regulated):
            target = 3
        elif used >= permille_to_us(self.limited_critical):
            target = 2
        elif used >= permille_to_us(self.normal_limited):
            target = 1
        else:
            target = 0
        alerts = []
        while self._level < target:
            self._level += 1
            if self._level == 1:
                self.suspended = self.ledger.top_device(now_ms)
                if self.suspended is None and self.fallback is not None:
                    self.suspended = self.fallback()
                alerts.append((ALERT_LIMITED_ACTION, {"eui": self.suspended}))
            else:
                alerts.append((_ENTER[self._level], None))
        while self._level > target:
            alerts.append((_LEAVE[self._level], None))
            if self._level == 1:
                self.suspended = None
            self._level -= 1
        return alerts

    def snapshot(self, now_ms):
        return {"b": self.ledger.snapshot(now_ms), "lvl": self._level, "sus": self.suspended}

    def restore(self, snap, now_ms, elapsed_ms):
        """After a reboot: the last hour's airtime and the state as they were; update() then
        raises the falling-below alerts as the restored airtime ages out."""
        self.ledger.restore(snap.get("b") or [], now_ms, elapsed_ms)
        lvl = snap.get("lvl")
        if isinstance(lvl, int) and 0 <= lvl <= 3:
            self._level = lvl
        self.suspended = snap.get("sus")

    def update(self, now_ms):
        """Re-evaluate the state as time passes; returns the alerts of any change."""
        return self._evaluate(now_ms)

    def record(self, now_ms, airtime_us, device=None):
        """Account an actual transmission (airtime in us, at most MAX_AIRTIME_US)."""
        self.ledger.record(now_ms, airtime_us, device)
        return self._evaluate(now_ms)

    def check(self, now_ms, airtime_us, essential=False, device=None, request_id=None, cra=False):
        """May a transmission of airtime_us go now? Returns (allowed, alerts). Does not record."""
        if not isinstance(airtime_us, int) or airtime_us < 0:
            raise ValueError("airtime_us: must be a non-negative int")
        alerts = self._evaluate(now_ms)
        level = self._level
        if level == 3:
            why = "regulated"
        elif level == 2 and not essential:
            why = "critical"
        elif device is not None and device == self.suspended:
            why = "suspended"
        elif self.ledger.usage_us(now_ms) + airtime_us >= permille_to_us(self.regulated):
            why = "limit"
        else:
            why = None
        self.refusal = why
        if why is not None and request_id is not None:
            alerts.append((ALERT_MESSAGE_DISCARDED, {"request_id": str(request_id), "cra": cra}))
        return why is None, alerts

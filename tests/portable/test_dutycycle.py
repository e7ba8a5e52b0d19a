import random
import unittest

from agent import codes
from agent.dutycycle import (
    HOUR_MS,
    MAX_AIRTIME_US,
    MAX_FRAME_US,
    AirtimeLedger,
    DutyCycle,
    ThresholdError,
    permille_to_us,
)

EUI_A = b"\x00\x0d\x6f\x00\x00\x00\x00\x0a"
EUI_B = b"\x00\x0d\x6f\x00\x00\x00\x00\x0b"
EUI_C = b"\x00\x0d\x6f\x00\x00\x00\x00\x0c"
P = permille_to_us(1)  # one permille of the hour in microseconds
MINUTE = 60000  # the ledger's bucket
MAX_DEVICES = 64  # devices whose airtime the ledger attributes at one time
# DutyCycle.state and DutyCycle.refusal values
STATE_NORMAL, STATE_LIMITED, STATE_CRITICAL, STATE_REGULATED = "normal", "limited", "critical", "regulated"
REFUSED_REGULATED, REFUSED_CRITICAL, REFUSED_SUSPENDED, REFUSED_LIMIT = "regulated", "critical", "suspended", "limit"
HOUR_US = HOUR_MS * 1000

L20 = codes.ALERT_LIMITED_ACTION
B21 = codes.ALERT_BELOW_NORMAL_LIMITED
C22 = codes.ALERT_CRITICAL_ACTION
B23 = codes.ALERT_BELOW_LIMITED_CRITICAL
R24 = codes.ALERT_REGULATED_ACTION
B25 = codes.ALERT_BELOW_CRITICAL_REGULATED
D2C = codes.ALERT_MESSAGE_DISCARDED


def add(dc, now_ms, airtime_us, device=None):
    """Record airtime_us at now_ms in chunks a single record may carry; all alerts."""
    alerts = []
    while airtime_us > 0:
        chunk = min(airtime_us, MAX_AIRTIME_US)
        alerts += dc.record(now_ms, chunk, device)
        airtime_us -= chunk
    return alerts


def overlap(a, b, lo, hi):
    return max(0, min(b, hi) - max(a, lo))


class TestLimits(unittest.TestCase):
    def test_regulated_limit_in_microseconds(self):
        self.assertEqual(permille_to_us(25), 90000000)
        self.assertEqual(permille_to_us(1), 3600000)
        self.assertEqual(DutyCycle().regulated_us, 90000000)
        self.assertEqual(DutyCycle(10, 18, 30).regulated_us, 108000000)
        self.assertEqual(HOUR_MS, 3600000)

    def test_codes_are_the_gbcs_ones(self):
        self.assertEqual((L20, B21, C22, B23, R24, B25, D2C), (0x8F20, 0x8F21, 0x8F22, 0x8F23, 0x8F24, 0x8F25, 0x8F2C))


class TestThresholds(unittest.TestCase):
    def test_defaults(self):
        dc = DutyCycle()
        self.assertEqual((dc.normal_limited, dc.limited_critical, dc.regulated), (10, 18, 25))
        self.assertEqual(dc.state, STATE_NORMAL)
        self.assertIsNone(dc.suspended)

    def test_valid_edges(self):
        dc = DutyCycle(5, 16, 25)
        self.assertEqual((dc.normal_limited, dc.limited_critical, dc.regulated), (5, 16, 25))
        dc.set_thresholds(20, 24, 25)
        self.assertEqual((dc.normal_limited, dc.limited_critical, dc.regulated), (20, 24, 25))
        dc.set_thresholds(limited_critical=21)
        self.assertEqual((dc.normal_limited, dc.limited_critical, dc.regulated), (20, 21, 25))

    def _bad(self, field, *args, **kwargs):
        dc = DutyCycle()
        with self.assertRaises(ValueError) as cm:
            dc.set_thresholds(*args, **kwargs)
        self.assertIsInstance(cm.exception, ThresholdError)
        self.assertEqual(cm.exception.field, field)
        self.assertIn(field, str(cm.exception))
        # a refused change leaves the thresholds as they were
        self.assertEqual((dc.normal_limited, dc.limited_critical, dc.regulated), (10, 18, 25))

    def test_out_of_range(self):
        self._bad("normal_limited", 4, 18, 25)
        self._bad("normal_limited", 21, 22, 25)
        self._bad("limited_critical", 10, 15, 25)
        self._bad("limited_critical", 10, 25, 30)
        self._bad("regulated", 10, 18, 0)
        self._bad("regulated", 10, 18, 1001)

    def test_ordering(self):
        self._bad("limited_critical", 20, 16, 25)
        self._bad("limited_critical", 18, 18, 25)

    def test_a_channel_limit_at_or_below_the_thresholds_binds_first(self):
        # a 1 % channel under the DCC's 1.3 / 2.2 % thresholds: the three states come together
        dc = DutyCycle(13, 22, 10)
        self.assertEqual(dc.regulated, 10)
        got = add(dc, 0, 10 * P - MAX_FRAME_US, EUI_A)
        self.assertEqual([c for c, _ in got], [L20, C22, R24])
        self.assertEqual(got[0][1], {"eui": EUI_A})
        self.assertEqual(dc.state, "regulated")
        # and a frame that would reach 1 % is refused although 1.3 % is far off
        self.assertEqual(dc.check(0, 1)[0], False)

    def test_not_integers(self):
        self._bad("normal_limited", 1.0, 18, 25)
        self._bad("normal_limited", "10", 18, 25)
        self._bad("limited_critical", 10, True, 25)
        self._bad("regulated", 10, 18, 2.5)

    def test_constructor_validates(self):
        with self.assertRaises(ThresholdError) as cm:
            DutyCycle(12, 11, 25)
        self.assertEqual(cm.exception.field, "limited_critical")


class TestStates(unittest.TestCase):
    def test_walk_up_and_down(self):
        dc = DutyCycle(10, 18, 25)
        self.assertEqual(add(dc, 0, 10 * P - 1, EUI_A), [])
        self.assertEqual(dc.state, STATE_NORMAL)
        self.assertEqual(dc.usage_permille(0), 9)
        self.assertEqual(dc.record(0, 1, EUI_A), [(L20, {"eui": EUI_A})])
        self.assertEqual((dc.state, dc.suspended, dc.usage_permille(0)), (STATE_LIMITED, EUI_A, 10))
        self.assertEqual(add(dc, 10 * MINUTE, 8 * P - 1, EUI_B), [])
        self.assertEqual(dc.state, STATE_LIMITED)
        self.assertEqual(dc.record(10 * MINUTE, 1, EUI_B), [(C22, None)])
        self.assertEqual(dc.state, STATE_CRITICAL)
        # regulated once not even one more maximum-size frame fits under the limit
        self.assertEqual(add(dc, 20 * MINUTE, 7 * P - MAX_FRAME_US - 1, EUI_C), [])
        self.assertEqual(dc.record(20 * MINUTE, 1, EUI_C), [(R24, None)])
        self.assertEqual((dc.state, dc.usage_us(20 * MINUTE)), (STATE_REGULATED, 25 * P - MAX_FRAME_US))
        self.assertEqual(add(dc, 20 * MINUTE, 3 * P + MAX_FRAME_US, EUI_C), [])  # C: 10 permille in all
        self.assertEqual(dc.usage_permille(20 * MINUTE), 28)
        self.assertEqual(dc.suspended, EUI_A)  # kept through critical and regulated
        # nothing leaves while the minute-0 bucket still overlaps the hour
        self.assertEqual(dc.update(61 * MINUTE - 1), [])
        self.assertEqual(dc.state, STATE_REGULATED)
        # then one threshold at a time, each with its own alert
        self.assertEqual(dc.update(61 * MINUTE), [(B25, None)])
        self.assertEqual((dc.state, dc.usage_permille(61 * MINUTE)), (STATE_CRITICAL, 18))
        self.assertEqual(dc.update(70 * MINUTE), [])
        self.assertEqual(dc.update(71 * MINUTE), [(B23, None)])
        self.assertEqual((dc.state, dc.suspended), (STATE_LIMITED, EUI_A))
        self.assertEqual(dc.usage_permille(71 * MINUTE), 10)
        self.assertEqual(dc.update(81 * MINUTE), [(B21, None)])
        self.assertEqual((dc.state, dc.suspended, dc.usage_us(81 * MINUTE)), (STATE_NORMAL, None, 0))
        self.assertEqual(dc.update(200 * MINUTE), [])

    def test_jump_up_and_down_in_one_step(self):
        dc = DutyCycle(20, 24, 1000)
        self.assertEqual(add(dc, 0, 70000000, EUI_B), [])  # 19.4 permille: normal here
        dc.set_thresholds(5, 16, 19)
        self.assertEqual(dc.update(1), [(L20, {"eui": EUI_B}), (C22, None), (R24, None)])
        self.assertEqual(dc.state, STATE_REGULATED)
        dc.set_thresholds(20, 24, 1000)
        self.assertEqual(dc.update(2), [(B25, None), (B23, None), (B21, None)])
        self.assertEqual((dc.state, dc.suspended), (STATE_NORMAL, None))

    def test_fall_through_all_thresholds_as_time_passes(self):
        dc = DutyCycle()
        alerts = add(dc, 1000, 26 * P, EUI_C)
        self.assertEqual(alerts, [(L20, {"eui": EUI_C}), (C22, None), (R24, None)])
        self.assertEqual(dc.update(HOUR_MS + 2 * MINUTE), [(B25, None), (B23, None), (B21, None)])

    def test_two_steps_in_one_record(self):
        dc = DutyCycle(20, 24, 1000)
        self.assertEqual(dc.record(0, 60000000, EUI_A), [])
        self.assertEqual(dc.record(5, 39000000, EUI_B), [(L20, {"eui": EUI_A}), (C22, None)])
        self.assertEqual(dc.state, STATE_CRITICAL)


class TestActions(unittest.TestCase):
    def test_suspends_the_top_talker(self):
        dc = DutyCycle()
        self.assertEqual(dc.record(0, 20000000), [])  # the hub's own traffic is not a device
        self.assertEqual(dc.record(100, 12000000, EUI_B), [])
        self.assertEqual(dc.record(200, 3000000, EUI_C), [])
        # A's frame crosses 36 s but B has the most attributed airtime
        self.assertEqual(dc.record(300, 1000000, EUI_A), [(L20, {"eui": EUI_B})])
        self.assertEqual(dc.suspended, EUI_B)
        ok, alerts = dc.check(400, 1000, device=EUI_B, request_id="r1")
        self.assertFalse(ok)
        self.assertEqual(dc.refusal, REFUSED_SUSPENDED)
        self.assertEqual(alerts, [(D2C, {"request_id": "r1", "cra": False})])
        ok, alerts = dc.check(400, 1000, essential=True, device=EUI_B)
        self.assertEqual((ok, alerts, dc.refusal), (False, [], REFUSED_SUSPENDED))
        self.assertEqual(dc.check(400, 1000, device=EUI_A), (True, []))
        self.assertIsNone(dc.refusal)
        self.assertEqual(dc.check(400, 1000), (True, []))
        # released when the hour has passed
        self.assertEqual(dc.update(HOUR_MS + 2 * MINUTE), [(B21, None)])
        self.assertEqual(dc.check(HOUR_MS + 2 * MINUTE, 1000, device=EUI_B), (True, []))

    def test_top_talker_tie_and_window(self):
        dc = DutyCycle()
        dc.record(0, 30000000, EUI_B)  # leaves the window before the others
        dc.record(30 * MINUTE, 10000000, EUI_C)
        dc.record(30 * MINUTE, 10000000, EUI_A)
        self.assertEqual(dc.state, STATE_LIMITED)
        self.assertEqual(dc.suspended, EUI_B)
        self.assertEqual(dc.update(62 * MINUTE), [(B21, None)])
        self.assertEqual(dc.ledger.device_us(62 * MINUTE, EUI_B), 0)
        self.assertEqual(dc.ledger.top_device(62 * MINUTE), EUI_A)  # tie: the smaller EUI
        self.assertEqual(dc.record(62 * MINUTE, 16000000, None), [(L20, {"eui": EUI_A})])

    def test_limited_without_devices(self):
        dc = DutyCycle()
        self.assertEqual(dc.record(0, 40000000), [(L20, {"eui": None})])
        self.assertEqual(dc.check(1, 1000, device=EUI_A), (True, []))

    def test_critical_allows_essential_only(self):
        dc = DutyCycle()
        add(dc, 0, 65000000, EUI_A)
        self.assertEqual(dc.state, STATE_CRITICAL)
        ok, alerts = dc.check(10, 1000, device=EUI_B, request_id="rq-7", cra=True)
        self.assertEqual((ok, dc.refusal), (False, REFUSED_CRITICAL))
        self.assertEqual(alerts, [(D2C, {"request_id": "rq-7", "cra": True})])
        self.assertEqual(dc.check(10, 1000, essential=True, device=EUI_B), (True, []))
        # essential still never reaches the regulated limit: 65 s + 25 s = 90 s
        ok, alerts = dc.check(10, 25000000, essential=True, request_id=42)
        self.assertEqual((ok, dc.refusal), (False, REFUSED_LIMIT))
        self.assertEqual(alerts, [(D2C, {"request_id": "42", "cra": False})])
        self.assertEqual(dc.check(10, 24999999, essential=True), (True, []))

    def test_regulated_refuses_everything(self):
        dc = DutyCycle()
        add(dc, 0, 25 * P, EUI_A)
        self.assertEqual(dc.state, STATE_REGULATED)
        for essential in (False, True):
            for device in (None, EUI_B):
                ok, alerts = dc.check(5, 0, essential=essential, device=device)
                self.assertEqual((ok, alerts, dc.refusal), (False, [], REFUSED_REGULATED))

    def test_limit_applies_in_every_state(self):
        dc = DutyCycle()
        dc.record(0, 30000000)
        self.assertEqual(dc.state, STATE_NORMAL)
        ok, _ = dc.check(1, 60000000)
        self.assertEqual((ok, dc.refusal), (False, REFUSED_LIMIT))
        self.assertEqual(dc.check(1, 59999999), (True, []))
        ok, _ = dc.check(1, 500000000, essential=True)  # longer than the limit itself
        self.assertFalse(ok)

    def test_refusal_alert_follows_state_alerts(self):
        dc = DutyCycle(20, 24, 1000)
        add(dc, 0, 65000000, EUI_C)
        self.assertEqual(dc.state, STATE_NORMAL)
        dc.set_thresholds(10, 18, 25)
        ok, alerts = dc.check(1, 1000, request_id="A:B:1", cra=True)
        self.assertFalse(ok)
        self.assertEqual(alerts, [(L20, {"eui": EUI_C}), (C22, None), (D2C, {"request_id": "A:B:1", "cra": True})])

    def test_no_refusal_alert_without_request_id_or_when_allowed(self):
        dc = DutyCycle()
        add(dc, 0, 25 * P)
        self.assertEqual(dc.check(1, 10), (False, []))
        dc2 = DutyCycle()
        self.assertEqual(dc2.check(1, 10, request_id="x", cra=True), (True, []))

    def test_bad_airtime(self):
        dc = DutyCycle()
        for bad in (-1, 1.5, "10"):
            with self.assertRaises(ValueError):
                dc.check(0, bad)
            with self.assertRaises(ValueError):
                dc.record(0, bad)
        with self.assertRaises(ValueError):
            dc.record(0, MAX_AIRTIME_US + 1)
        self.assertEqual(dc.usage_us(0), 0)


class TestLedger(unittest.TestCase):
    def test_whole_buckets_that_overlap_the_hour(self):
        led = AirtimeLedger()
        led.record(59000, 1000)  # [59 s, 60 s): bucket 0
        self.assertEqual(led.usage_us(HOUR_MS + MINUTE - 1), 1000)  # hour still touches minute 0
        self.assertEqual(led.usage_us(HOUR_MS + MINUTE), 0)

    def test_frame_crossing_a_minute_counts_until_its_end_leaves(self):
        led = AirtimeLedger()
        led.record(59990, 20000)  # [59.99 s, 60.01 s)
        self.assertEqual(led.usage_us(59990), 20000)
        # the true hour ending at 61 min still holds 10 ms of it
        self.assertEqual(led.usage_us(HOUR_MS + MINUTE), 20000)
        self.assertEqual(led.usage_us(HOUR_MS + 2 * MINUTE - 1), 20000)
        self.assertEqual(led.usage_us(HOUR_MS + 2 * MINUTE), 0)

    def test_full_bucket_ahead(self):
        led = AirtimeLedger()
        led.record(MINUTE - 1, MAX_AIRTIME_US, EUI_A)  # ends in the next minute, one slot ahead
        led.record(MINUTE + 5, MAX_AIRTIME_US, EUI_A)
        self.assertEqual(led.usage_us(2 * MINUTE), 2 * MAX_AIRTIME_US)
        # the first ended before 61 min + 1 ms: gone from the hour ending at 62 min
        self.assertEqual(led.usage_us(HOUR_MS + 2 * MINUTE - 1), 2 * MAX_AIRTIME_US)
        self.assertEqual(led.usage_us(HOUR_MS + 2 * MINUTE), MAX_AIRTIME_US)
        self.assertEqual(led.usage_us(HOUR_MS + 3 * MINUTE), 0)
        self.assertEqual(led.devices_tracked(), 0)

    def test_time_going_backwards_counts_as_latest(self):
        led = AirtimeLedger()
        led.record(10 * MINUTE, 1000)
        led.record(5 * MINUTE, 2000)  # taken as 10 min: stays at least as long
        self.assertEqual(led.usage_us(HOUR_MS + 10 * MINUTE), 3000)
        self.assertEqual(led.usage_us(HOUR_MS + 11 * MINUTE), 0)

    def test_long_idle_gap_clears_everything(self):
        led = AirtimeLedger()
        for i in range(100):
            led.record(i * 700, 5000, (EUI_A, EUI_B, None)[i % 3])
        self.assertEqual(led.usage_us(70000), 500000)
        self.assertEqual(led.usage_us(10 * HOUR_MS), 0)
        self.assertEqual(led.devices_tracked(), 0)
        led.record(10 * HOUR_MS, 7, EUI_C)
        self.assertEqual(led.usage_us(10 * HOUR_MS), 7)
        self.assertEqual(led.top_device(10 * HOUR_MS), EUI_C)

    def test_device_rows_are_bounded(self):
        led = AirtimeLedger()
        for i in range(MAX_DEVICES + 10):
            led.record(0, 10, bytes([0, 0, 0, 0, 0, 0, i >> 8, i & 0xFF]))
        self.assertEqual(led.devices_tracked(), MAX_DEVICES)
        self.assertEqual(led.usage_us(0), 10 * (MAX_DEVICES + 10))

    def test_storage_constant_after_100k_records(self):
        dc = DutyCycle()
        devices = (EUI_A, EUI_B, EUI_C, None)
        t = 0
        for n in range(1000):
            dc.record(t, 900, devices[n % 4])
            t += 37
        size = dc.ledger.storage_size()
        self.assertEqual(size, 62 * 2 + 3 * 63)
        for n in range(100000):
            dc.record(t, 900, devices[n % 4])
            t += 37
        self.assertEqual(dc.ledger.storage_size(), size)
        self.assertEqual(dc.ledger.devices_tracked(), 3)
        self.assertGreater(t, 60 * MINUTE)


class TestRandomOverload(unittest.TestCase):
    def test_ten_times_the_allowed_traffic(self):
        random.seed(868)
        dc = DutyCycle(10, 18, 25)
        limit = dc.regulated_us
        devices = (EUI_A, EUI_B, EUI_C, None)
        allowed = []  # (start_us, end_us), in time order, never overlapping
        offered = 0
        refusals = 0
        discards = 0
        last_discard = None
        seen = {}
        lo = 0  # first allowed transmission that may still touch the hour ending now
        t = 0
        n = 0
        horizon = 5 * HOUR_MS
        while t < horizon:
            d = random.randint(5000, 1500000)
            essential = random.random() < 0.3
            device = random.choice(devices)
            cra = random.random() < 0.5
            rid = "0-0:0-0:{}".format(n)
            ok, alerts = dc.check(t, d, essential=essential, device=device, request_id=rid, cra=cra)
            offered += d
            for code, payload in alerts:
                seen[code] = seen.get(code, 0) + 1
                if code == D2C:
                    discards += 1
                    last_discard = (payload["request_id"], payload["cra"])
            if ok:
                alerts = dc.record(t, d, device)
                for code, _ in alerts:
                    seen[code] = seen.get(code, 0) + 1
                allowed.append((t * 1000, t * 1000 + d))
            else:
                refusals += 1
                self.assertEqual(last_discard, (rid, cra))
            # the ledger is never below the exact airtime of the hour ending now
            now_us = t * 1000
            while lo < len(allowed) and allowed[lo][1] <= now_us - HOUR_US:
                lo += 1
            exact = 0
            for i in range(lo, len(allowed)):
                exact += overlap(allowed[i][0], allowed[i][1], now_us - HOUR_US, now_us)
            self.assertGreaterEqual(dc.usage_us(t), exact)
            # next attempt after this one's airtime; quiet spells let the states fall
            quiet = (t // (20 * MINUTE)) % 5 == 4
            gap = random.randint(10000, 120000) if quiet else random.randint(0, 3000)
            t += (d + 999) // 1000 + gap
            n += 1

        self.assertEqual(refusals, discards)
        self.assertGreater(offered * HOUR_MS // horizon, 8 * limit)  # about 10x the allowed traffic
        self.assertLess(offered * HOUR_MS // horizon, 13 * limit)
        for code in (L20, C22, R24, B21, B23, B25, D2C):
            self.assertIn(code, seen)

        # exact maximum over every one-hour window [s, s + 1 h): the airtime in a window is
        # piecewise linear in s and peaks where s is a start or s + 1 h is an end
        starts = [a for a, _ in allowed] + [b - HOUR_US for _, b in allowed]
        starts.sort()
        worst = 0
        first = 0
        for s in starts:
            while first < len(allowed) and allowed[first][1] <= s:
                first += 1
            total = 0
            i = first
            while i < len(allowed) and allowed[i][0] < s + HOUR_US:
                total += overlap(allowed[i][0], allowed[i][1], s, s + HOUR_US)
                i += 1
            if total > worst:
                worst = total
        self.assertLess(worst, limit)
        self.assertGreater(worst, limit * 8 // 10)  # the limit was really pressed


class TestSnapshot(unittest.TestCase):
    def test_a_reboot_keeps_the_last_hour(self):
        dc = DutyCycle(10, 18, 25)
        add(dc, 0, 12 * P, EUI_A)
        add(dc, 30 * MINUTE, 7 * P, EUI_B)
        self.assertEqual(dc.state, STATE_CRITICAL)
        snap = dc.snapshot(31 * MINUTE)
        # the new boot's monotonic clock starts again at 0; 5 minutes passed in between
        again = DutyCycle(10, 18, 25)
        again.restore(snap, 0, 5 * MINUTE)
        self.assertEqual(again.state, STATE_CRITICAL)
        self.assertEqual(again.usage_us(0), 19 * P)
        self.assertEqual(again.suspended, EUI_A)
        # the minute-0 traffic was 36 minutes old: it leaves 25 minutes later, not before
        self.assertEqual(again.update(24 * MINUTE), [])
        self.assertEqual(again.update(25 * MINUTE), [(B23, None), (B21, None)])
        self.assertEqual(again.usage_us(25 * MINUTE), 7 * P)

    def test_old_snapshot_is_forgotten_and_bad_levels_ignored(self):
        dc = DutyCycle()
        add(dc, 0, 12 * P, EUI_A)
        again = DutyCycle()
        again.restore({"b": dc.snapshot(0)["b"], "lvl": 9}, 0, 2 * HOUR_MS)
        self.assertEqual((again.usage_us(0), again.state), (0, STATE_NORMAL))

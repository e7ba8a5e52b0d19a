# The duty-cycle ledger's boundaries, each pinned by the rule it keeps: which minute a
# transmission is charged to, how old restored airtime may be and still count, how a device's
# attributed airtime adds up and leaves, who the top talker is on a tie, what a snapshot's level
# restores, and what the refusals say.
import unittest

from agent.dutycycle import MAX_AIRTIME_US, AirtimeLedger, DutyCycle, ThresholdError

EUI_A = b"\x00\x0d\x6f\x00\x00\x00\x00\x0a"
EUI_B = b"\x00\x0d\x6f\x00\x00\x00\x00\x0b"
EUI_C = b"\x00\x0d\x6f\x00\x00\x00\x00\x0c"
MINUTE = 60000  # the ledger's bucket, ms
WINDOW = 60  # minutes before the current one that the ledger still counts


class TestRestoreWindow(unittest.TestCase):
    """After a reboot, restored airtime counts for exactly as long as it would have without it."""

    def test_airtime_exactly_one_window_old_still_counts_after_a_reboot(self):
        led = AirtimeLedger()
        led.restore([[WINDOW, 5000]], 100 * MINUTE, 0)
        self.assertEqual(led.usage_us(100 * MINUTE), 5000)
        # and it leaves at the next minute, as it would have without the reboot
        self.assertEqual(led.usage_us(101 * MINUTE - 1), 5000)
        self.assertEqual(led.usage_us(101 * MINUTE), 0)

    def test_airtime_one_window_old_once_the_time_off_is_added_still_counts(self):
        led = AirtimeLedger()
        # 59 minutes old at the snapshot, and one whole minute passed before the reboot
        led.restore([[WINDOW - 1, 5000]], 0, MINUTE)
        self.assertEqual(led.usage_us(0), 5000)

    def test_airtime_older_than_one_window_is_not_restored(self):
        led = AirtimeLedger()
        led.restore([[WINDOW + 1, 5000]], 100 * MINUTE, 0)
        self.assertEqual(led.usage_us(100 * MINUTE), 0)
        led.restore([[WINDOW, 5000]], 100 * MINUTE, MINUTE)
        self.assertEqual(led.usage_us(100 * MINUTE), 0)

    def test_airtime_of_this_minute_and_the_minute_ahead_is_restored(self):
        # a transmission that crosses into the next minute is charged to the minute ahead (-1)
        led = AirtimeLedger()
        led.restore([[0, 700], [-1, 300]], 10 * MINUTE, 0)
        self.assertEqual(led.usage_us(10 * MINUTE), 1000)
        # the minute-ahead airtime stays one minute longer than this minute's
        self.assertEqual(led.usage_us((11 + WINDOW) * MINUTE), 300)
        self.assertEqual(led.usage_us((12 + WINDOW) * MINUTE), 0)

    def test_a_bucket_more_than_one_minute_ahead_is_not_restored(self):
        # a snapshot never holds one: the ring only reaches one minute ahead
        led = AirtimeLedger()
        led.restore([[-2, 5000], [-30, 5000]], 10 * MINUTE, 0)
        self.assertEqual(led.usage_us(10 * MINUTE), 0)
        self.assertEqual(led.snapshot(10 * MINUTE), [])

    def test_negative_or_empty_buckets_never_lower_the_restored_airtime(self):
        led = AirtimeLedger()
        led.restore([[5, 1000], [3, -500], [4, 0]], 10 * MINUTE, 0)
        self.assertEqual(led.usage_us(10 * MINUTE), 1000)
        self.assertEqual(led.snapshot(10 * MINUTE), [[5, 1000]])

    def test_a_one_microsecond_bucket_is_restored(self):
        led = AirtimeLedger()
        led.restore([[1, 1]], 10 * MINUTE, 0)
        self.assertEqual(led.usage_us(10 * MINUTE), 1)

    def test_one_bucket_too_old_does_not_lose_the_ones_after_it(self):
        led = AirtimeLedger()
        led.restore([[WINDOW + 10, 9000], [-2, 9000], [3, -1], [5, 2000], [7, 3000]], 100 * MINUTE, 0)
        self.assertEqual(led.usage_us(100 * MINUTE), 5000)

    def test_restored_and_recorded_airtime_of_one_minute_both_leave_an_hour_later(self):
        led = AirtimeLedger()
        led.record(10 * MINUTE, 4000)  # sent after the boot, before the snapshot was read back
        led.restore([[0, 6000]], 10 * MINUTE, 0)
        self.assertEqual(led.snapshot(10 * MINUTE), [[0, 10000]])
        self.assertEqual(led.usage_us((10 + WINDOW) * MINUTE), 10000)
        self.assertEqual(led.usage_us((11 + WINDOW) * MINUTE), 0)


class TestChargedMinute(unittest.TestCase):
    """A transmission is charged to the minute holding its last millisecond."""

    def test_a_transmission_ending_on_a_minute_boundary_is_charged_to_the_minute_it_ends_in(self):
        led = AirtimeLedger()
        led.record(59000, 1000000)  # 59.000 s .. 60.000 s: its last millisecond is in minute 0
        self.assertEqual(led.snapshot(59000), [[0, 1000000]])
        self.assertEqual(led.usage_us(WINDOW * MINUTE + 59999), 1000000)
        self.assertEqual(led.usage_us((WINDOW + 1) * MINUTE), 0)

    def test_a_transmission_one_microsecond_past_the_boundary_is_charged_to_the_next_minute(self):
        led = AirtimeLedger()
        led.record(59000, 1000001)
        self.assertEqual(led.snapshot(59000), [[-1, 1000001]])
        self.assertEqual(led.usage_us((WINDOW + 1) * MINUTE), 1000001)
        self.assertEqual(led.usage_us((WINDOW + 2) * MINUTE), 0)

    def test_zero_airtime_may_be_recorded_and_counts_nothing(self):
        led = AirtimeLedger()
        led.record(0, 0, EUI_A)
        self.assertEqual((led.usage_us(0), led.devices_tracked(), led.top_device(0)), (0, 0, None))
        dc = DutyCycle()
        self.assertEqual(dc.record(0, 0, EUI_A), [])
        self.assertEqual(dc.state, "normal")

    def test_one_record_may_carry_one_whole_minute_and_no_more(self):
        led = AirtimeLedger()
        led.record(0, MAX_AIRTIME_US)
        self.assertEqual(led.usage_us(0), MAX_AIRTIME_US)
        with self.assertRaises(ValueError) as cm:
            led.record(0, MAX_AIRTIME_US + 1)
        self.assertEqual(str(cm.exception), "airtime_us: must be an int in 0..60000000")
        with self.assertRaises(ValueError):
            led.record(0, -1)
        self.assertEqual(led.usage_us(0), MAX_AIRTIME_US)


class TestDeviceAirtime(unittest.TestCase):
    """A device's attributed airtime is exactly its airtime in the counted hour."""

    def test_a_devices_airtime_adds_up_across_records(self):
        led = AirtimeLedger()
        led.record(0, 1000, EUI_A)
        led.record(10, 2000, EUI_A)
        led.record(5 * MINUTE, 500, EUI_B)
        led.record(6 * MINUTE, 4000, EUI_A)
        self.assertEqual(led.device_us(6 * MINUTE, EUI_A), 7000)
        self.assertEqual(led.device_us(6 * MINUTE, EUI_B), 500)
        self.assertEqual(led.device_us(6 * MINUTE, EUI_C), 0)
        self.assertEqual(led.usage_us(6 * MINUTE), 7500)

    def test_a_devices_airtime_follows_the_hour_as_minutes_leave_and_slots_are_reused(self):
        # two records a minute for three hours: every ring slot is emptied and used again
        led = AirtimeLedger()
        sent = []  # (minute, airtime)
        for m in range(3 * WINDOW):
            for k, us in enumerate((1 + m % 7, 1000 + 37 * m)):
                led.record(m * MINUTE + 1000 * (k + 1), us, EUI_A)
                sent.append((m, us))
            want = sum(us for when, us in sent if when >= m - WINDOW)
            self.assertEqual(led.device_us(m * MINUTE + 5000, EUI_A), want, "minute {}".format(m))
            self.assertEqual(led.usage_us(m * MINUTE + 5000), want)
        self.assertEqual(led.devices_tracked(), 1)
        # and once the last minute has left, the device is forgotten
        last = 3 * WINDOW - 1
        self.assertEqual(led.device_us((last + WINDOW + 1) * MINUTE, EUI_A), 0)
        self.assertEqual(led.devices_tracked(), 0)

    def test_a_device_with_one_microsecond_left_in_the_hour_is_still_tracked(self):
        led = AirtimeLedger()
        led.record(0, 1000, EUI_A)
        led.record(10 * MINUTE, 1, EUI_A)
        led.record(20 * MINUTE, 50, EUI_B)
        self.assertEqual(led.device_us((WINDOW + 1) * MINUTE, EUI_A), 1)
        self.assertEqual(led.devices_tracked(), 2)
        self.assertEqual(led.device_us((WINDOW + 11) * MINUTE, EUI_A), 0)
        self.assertEqual(led.devices_tracked(), 1)

    def test_a_device_seen_once_is_charged_its_airtime_and_nothing_more(self):
        led = AirtimeLedger()
        led.record(0, 3, EUI_C)
        self.assertEqual(led.device_us(0, EUI_C), 3)


class TestTopTalker(unittest.TestCase):
    """The device suspended in the limited state: the most airtime, and on a tie the smallest id."""

    def _tie(self, order):
        led = AirtimeLedger()
        for dev in order:
            led.record(0, 2000, dev)
        return led.top_device(0)

    def test_on_a_tie_the_smallest_id_is_the_top_talker_whatever_the_order_seen(self):
        for order in ((EUI_A, EUI_B, EUI_C), (EUI_C, EUI_B, EUI_A), (EUI_B, EUI_C, EUI_A), (EUI_B, EUI_A, EUI_C)):
            self.assertEqual(self._tie(order), EUI_A, repr(order))

    def test_more_airtime_beats_a_smaller_id(self):
        led = AirtimeLedger()
        led.record(0, 2000, EUI_A)
        led.record(0, 2001, EUI_C)
        led.record(0, 2000, EUI_B)
        self.assertEqual(led.top_device(0), EUI_C)

    def test_a_device_with_a_single_microsecond_can_be_the_top_talker(self):
        led = AirtimeLedger()
        led.record(0, 1, EUI_B)
        self.assertEqual(led.top_device(0), EUI_B)


class TestRestoredState(unittest.TestCase):
    """A snapshot's state level (0..3) is put back as it was; anything else is ignored."""

    def test_restoring_a_normal_snapshot_puts_a_limited_hub_back_to_normal(self):
        dc = DutyCycle(10, 18, 25)
        dc.record(0, MAX_AIRTIME_US, EUI_A)
        self.assertEqual(dc.state, "limited")
        dc.restore({"b": [], "lvl": 0, "sus": None}, 0, 0)
        self.assertEqual((dc.state, dc.suspended), ("normal", None))

    def test_a_regulated_hub_is_regulated_at_once_after_a_reboot_and_not_announced_again(self):
        dc = DutyCycle(10, 18, 25)
        t = 0
        for _ in range(3):  # 180 s of airtime: past the 90 s limit of 25 permille
            dc.record(t, MAX_AIRTIME_US, EUI_A)
            t += 1000
        self.assertEqual(dc.state, "regulated")
        snap = dc.snapshot(t)
        again = DutyCycle(10, 18, 25)
        again.restore(snap, 0, 0)
        self.assertEqual(again.state, "regulated")
        self.assertEqual(again.update(0), [])

    def test_a_level_past_regulated_in_a_snapshot_is_ignored(self):
        dc = DutyCycle()
        dc.restore({"b": [], "lvl": 4}, 0, 0)
        self.assertEqual(dc.state, "normal")
        dc.restore({"b": [], "lvl": -1}, 0, 0)
        self.assertEqual(dc.state, "normal")

    def test_no_refusal_before_the_first_check(self):
        dc = DutyCycle()
        self.assertIsNone(dc.refusal)
        dc.check(0, 1000)
        self.assertIsNone(dc.refusal)


class TestRefusalMessages(unittest.TestCase):
    """A refused setting or airtime says which field, which value and which range."""

    def _message(self, **kw):
        with self.assertRaises(ThresholdError) as cm:
            DutyCycle().set_thresholds(**kw)
        return cm.exception.field, str(cm.exception)

    def test_a_threshold_out_of_range_names_the_value_and_the_range(self):
        self.assertEqual(
            self._message(normal_limited=4), ("normal_limited", "normal_limited: 4 outside 5..20 permille")
        )
        self.assertEqual(
            self._message(limited_critical=25), ("limited_critical", "limited_critical: 25 outside 16..24 permille")
        )
        self.assertEqual(self._message(regulated=1001), ("regulated", "regulated: 1001 outside 1..1000 permille"))

    def test_a_threshold_that_is_not_an_integer_says_so(self):
        self.assertEqual(
            self._message(normal_limited="10"), ("normal_limited", "normal_limited: not an integer (permille)")
        )

    def test_thresholds_out_of_order_name_the_one_below(self):
        self.assertEqual(
            self._message(normal_limited=16, limited_critical=16),
            ("limited_critical", "limited_critical: must be above normal_limited (16)"),
        )

    def test_a_negative_airtime_check_says_what_is_allowed(self):
        with self.assertRaises(ValueError) as cm:
            DutyCycle().check(0, -1)
        self.assertEqual(str(cm.exception), "airtime_us: must be a non-negative int")

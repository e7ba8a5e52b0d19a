import unittest

from hal.contracts import Clock
from hal.sim.clock import DEFAULT_UTC_START, VirtualClock


class TestVirtualClock(unittest.TestCase):
    def test_starts_at_zero_and_2026(self):
        c = VirtualClock()
        self.assertIsInstance(c, Clock)
        self.assertEqual(c.monotonic_ms(), 0)
        self.assertEqual(c.utc(), 1767225600)
        self.assertEqual(DEFAULT_UTC_START, 1767225600)

    def test_advance_and_sleep(self):
        c = VirtualClock(utc_start=1000)
        c.advance_ms(999)
        self.assertEqual(c.monotonic_ms(), 999)
        self.assertEqual(c.utc(), 1000)  # whole seconds only
        c.sleep_ms(1)
        self.assertEqual(c.monotonic_ms(), 1000)
        self.assertEqual(c.utc(), 1001)
        c.sleep_ms(0)
        self.assertEqual(c.monotonic_ms(), 1000)
        c.advance_ms(24 * 3600 * 1000)
        self.assertEqual(c.utc(), 1001 + 86400)

    def test_bad_values(self):
        c = VirtualClock()
        with self.assertRaises(ValueError):
            c.advance_ms(-1)
        with self.assertRaises(ValueError):
            c.sleep_ms(1.5)
        with self.assertRaises(ValueError):
            VirtualClock(utc_start=-5)
        self.assertEqual(c.monotonic_ms(), 0)

    def test_set_utc_keeps_monotonic(self):
        c = VirtualClock(utc_start=100)
        c.advance_ms(5500)
        c.set_utc(2000)
        self.assertEqual(c.utc(), 2000)
        self.assertEqual(c.monotonic_ms(), 5500)
        c.advance_ms(1000)
        self.assertEqual(c.utc(), 2001)

    def test_timers_fire_in_order_at_their_time(self):
        c = VirtualClock()
        seen = []
        c.call_at(300, lambda: seen.append(("b", c.monotonic_ms())))
        c.call_at(100, lambda: seen.append(("a", c.monotonic_ms())))
        c.call_at(300, lambda: seen.append(("c", c.monotonic_ms())))
        c.call_at(900, lambda: seen.append(("d", c.monotonic_ms())))
        c.advance_ms(299)
        self.assertEqual(seen, [("a", 100)])
        self.assertEqual(c.monotonic_ms(), 299)
        c.advance_ms(1)
        self.assertEqual(seen, [("a", 100), ("b", 300), ("c", 300)])
        self.assertEqual(c.pending_timers(), 1)
        c.advance_ms(1000)
        self.assertEqual(seen[-1], ("d", 900))
        self.assertEqual(c.monotonic_ms(), 1300)

    def test_call_later_and_cancel(self):
        c = VirtualClock()
        seen = []
        c.advance_ms(50)
        t = c.call_later(10, lambda: seen.append(1))
        c.call_later(20, lambda: seen.append(2))
        self.assertTrue(c.cancel(t))
        self.assertFalse(c.cancel(t))
        c.advance_ms(100)
        self.assertEqual(seen, [2])

    def test_timer_that_advances_the_clock(self):
        c = VirtualClock()
        seen = []

        def busy():
            c.advance_ms(500)  # e.g. a scripted action that takes time
            seen.append(c.monotonic_ms())

        c.call_at(100, busy)
        c.call_at(200, lambda: seen.append(c.monotonic_ms()))
        c.advance_ms(300)
        # the 200 ms timer fired during the busy action, at its own time
        self.assertEqual(seen, [200, 600])
        self.assertEqual(c.monotonic_ms(), 600)

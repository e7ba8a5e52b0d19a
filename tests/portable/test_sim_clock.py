import unittest

from hal.contracts import Clock
from hal.sim.clock import FastForwardClock
from hal.sim.vclock import DEFAULT_UTC_START, VirtualClock


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


class TestFastForwardClock(unittest.TestCase):
    def test_wraps_a_base_and_moves_forward(self):
        base = VirtualClock(utc_start=5000)
        base.advance_ms(1500)
        c = FastForwardClock(base)
        self.assertIsInstance(c, Clock)
        self.assertIs(c.base, base)
        self.assertEqual(c.monotonic_ms(), 1500)
        self.assertEqual(c.utc(), 5001)
        c.advance_ms(3600000)  # an hour passes at once
        self.assertEqual(c.monotonic_ms(), 3601500)
        self.assertEqual(c.utc(), 5001 + 3600)
        self.assertEqual(base.monotonic_ms(), 1500)  # the base is not moved
        base.advance_ms(500)  # real time goes on underneath
        self.assertEqual(c.monotonic_ms(), 3602000)
        self.assertEqual(c.utc(), 5002 + 3600)

    def test_sleep_is_the_base_sleep(self):
        base = VirtualClock()
        c = FastForwardClock(base)
        c.advance_ms(10)
        c.sleep_ms(250)
        self.assertEqual(base.monotonic_ms(), 250)
        self.assertEqual(c.monotonic_ms(), 260)

    def test_never_back(self):
        c = FastForwardClock(VirtualClock())
        for bad in (-1, 1.5, "1", None):
            with self.assertRaises(ValueError):
                c.advance_ms(bad)
        self.assertEqual(c.monotonic_ms(), 0)
        c.advance_ms(0)
        self.assertEqual(c.monotonic_ms(), 0)

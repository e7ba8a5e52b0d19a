import unittest

from hal import phy
from hal.contracts import Radio, RadioError
from hal.sim.radio import MAX_PAYLOAD, Medium, SimRadio
from hal.sim.vclock import VirtualClock
from tests.kits.airtimewindow import AirtimeWindow
from tests.kits.labmedium import HOUR_MS, LabMedium


def _setup(band="868", **kw):
    clock = VirtualClock()
    kw.setdefault("jitter_db", 0)
    medium = LabMedium(clock, **kw)
    return clock, medium, SimRadio(medium, clock, band=band)


def _brute_max(frames, window_ms):
    # Reference: max over windows [s_i, s_i + W) of the airtime of frames starting in them.
    best = 0
    for s, _ in frames:
        total = 0
        for t, a in frames:
            if s <= t < s + window_ms:
                total += a
        best = max(best, total)
    return best


class TestTuning(unittest.TestCase):
    def test_868_module(self):
        _, _, r = _setup("868")
        self.assertIsInstance(r, Radio)
        for page, ch in ((28, 0), (28, 26), (29, 27), (29, 34), (30, 35), (30, 61)):
            self.assertTrue(r.can_tune(page, ch), (page, ch))
            r.tune(page, ch)
            self.assertEqual((r.page, r.channel), (page, ch))
        for page, ch in (
            (31, 0),
            (31, 26),
            (28, 27),
            (29, 26),
            (30, 62),
            (27, 0),
            (32, 0),
            (28, -1),
            ("28", 1),
            (28, 1.0),
        ):
            self.assertFalse(r.can_tune(page, ch), (page, ch))
            with self.assertRaises(RadioError):
                r.tune(page, ch)
        self.assertEqual((r.page, r.channel), (30, 61))  # a refused tune changes nothing

    def test_915_module(self):
        _, _, r = _setup("915")
        self.assertTrue(r.can_tune(31, 0))
        self.assertTrue(r.can_tune(31, 26))
        self.assertFalse(r.can_tune(31, 27))
        self.assertFalse(r.can_tune(28, 0))
        with self.assertRaises(RadioError):
            r.tune(28, 0)
        r.tune(31, 5)
        self.assertEqual(r.channel, 5)

    def test_bad_band(self):
        clock = VirtualClock()
        with self.assertRaises(ValueError):
            SimRadio(Medium(clock), clock, band="433")


class TestTransmit(unittest.TestCase):
    def test_airtime_and_counters(self):
        clock, medium, r = _setup()
        with self.assertRaises(RadioError):
            r.transmit(b"x")  # not tuned
        r.tune(28, 3)
        self.assertEqual(r.transmit(b"\x01" * 10), 1920)  # (8+2+2+10+2) bytes * 80 us
        self.assertEqual(r.transmit(bytearray(MAX_PAYLOAD)), phy.airtime_us(125))
        self.assertEqual(phy.airtime_us(125), 11120)
        self.assertEqual(r.frames_sent, 2)
        self.assertEqual(r.airtime_us_total, 1920 + 11120)
        self.assertEqual(medium.frames, 2)
        self.assertEqual(medium.airtime_us_total, 1920 + 11120)
        self.assertEqual(clock.monotonic_ms(), 0)  # transmit advances nothing
        self.assertEqual(medium.recent(), [(0, 1920, 28, 3, 10), (0, 11120, 28, 3, 125)])

    def test_bad_frames(self):
        _, medium, r = _setup()
        r.tune(28, 3)
        for bad in (b"", bytes(126), bytes(127)):
            with self.assertRaises(RadioError):
                r.transmit(bad)
        with self.assertRaises(RadioError):
            r.transmit("text")
        self.assertEqual(r.frames_sent, 0)
        self.assertEqual(medium.frames, 0)

    def test_recent_is_a_bounded_ring(self):
        clock, medium, r = _setup()
        r.tune(28, 1)
        for i in range(300):
            r.transmit(bytes(1 + i % 100))
            clock.advance_ms(10)
        rec = medium.recent()
        self.assertEqual(len(rec), 256)
        self.assertEqual(rec[-1], (2990, phy.airtime_us(1 + 299 % 100), 28, 1, 1 + 299 % 100))
        self.assertEqual(rec[0][0], 440)  # frame 44
        self.assertEqual(medium.recent(2)[0][0], 2980)


class TestEnergy(unittest.TestCase):
    def test_background_and_script(self):
        clock, medium, r = _setup()
        self.assertEqual(r.energy(28, 5), -100)
        medium.set_noise(28, 5, -70)
        self.assertEqual(r.energy(28, 5), -70)
        self.assertEqual(r.energy(28, 6), -100)
        # noisy from hour 3, quieter from hour 5
        medium.set_noise(29, 30, -60, at_ms=3 * HOUR_MS)
        medium.set_noise(29, 30, -90, at_ms=5 * HOUR_MS)
        clock.advance_ms(3 * HOUR_MS - 1)
        self.assertEqual(r.energy(29, 30), -100)
        clock.advance_ms(1)
        self.assertEqual(r.energy(29, 30), -60)
        clock.advance_ms(2 * HOUR_MS - 1)
        self.assertEqual(r.energy(29, 30), -60)
        clock.advance_ms(1)
        self.assertEqual(r.energy(29, 30), -90)
        self.assertEqual(medium.noise(29, 30), -90)

    def test_page_and_all(self):
        _, medium, r = _setup()
        medium.set_noise(30, None, -80)
        self.assertEqual(r.energy(30, 35), -80)
        self.assertEqual(r.energy(30, 61), -80)
        self.assertEqual(r.energy(29, 34), -100)
        medium.set_noise(None, None, -95)
        self.assertEqual(r.energy(30, 40), -95)
        self.assertEqual(r.energy(28, 0), -95)
        with self.assertRaises(phy.ChannelError):
            medium.set_noise(28, 30, -50)
        with self.assertRaises(phy.ChannelError):
            medium.set_noise(33, None, -50)
        with self.assertRaises(phy.ChannelError):
            medium.set_noise(None, 4, -50)

    def test_energy_on_untunable_page(self):
        _, _, r = _setup("868")
        with self.assertRaises(RadioError):
            r.energy(31, 0)
        with self.assertRaises(RadioError):
            r.energy(28, 40)

    def test_transmitters_add_energy(self):
        clock, medium, r = _setup()
        h = medium.add_transmitter(28, 2, -100, start_ms=1000, end_ms=2000)
        self.assertEqual(r.energy(28, 2), -100)
        clock.advance_ms(1000)
        self.assertEqual(r.energy(28, 2), -97)  # two equal powers: +3 dB
        self.assertEqual(r.energy(28, 3), -100)
        medium.add_transmitter(28, 2, -50)
        self.assertEqual(r.energy(28, 2), -50)
        clock.advance_ms(1000)
        self.assertEqual(r.energy(28, 2), -50)  # the first one ended
        self.assertFalse(medium.remove_transmitter(h))

    def test_other_radio_on_air(self):
        clock, medium, r = _setup()
        other = SimRadio(medium, clock, tx_power_dbm=10)
        other.tune(28, 7)
        other.transmit(bytes(100))  # 9120 us on air
        self.assertEqual(r.energy(28, 7), 10 - 60)
        self.assertEqual(other.energy(28, 7), -100)  # a radio does not hear itself
        clock.advance_ms(10)
        self.assertEqual(r.energy(28, 7), -100)

    def test_jitter_is_reproducible(self):
        def readings(seed):
            clock = VirtualClock()
            medium = kind(clock, seed=seed, jitter_db=1)
            r = SimRadio(medium, clock)
            return [r.energy(28, i % 27) for i in range(60)]

        kind = Medium
        a = readings(7)
        self.assertEqual(a, readings(7))
        self.assertNotEqual(a, readings(8))
        kind = LabMedium
        self.assertEqual(readings(7), a)  # the same air with nothing scripted
        for v in a:
            self.assertIn(v, (-101, -100, -99))
        self.assertEqual(len(set(a)), 3)


class TestReceive(unittest.TestCase):
    def test_injected_frames(self):
        clock, medium, r = _setup()
        with self.assertRaises(RadioError):
            r.receive()
        r.tune(28, 3)
        self.assertIsNone(r.receive())
        medium.inject(28, 3, b"one")
        medium.inject(28, 3, bytearray(b"two"))
        medium.inject(28, 4, b"elsewhere")
        self.assertEqual(r.receive(), b"one")
        self.assertEqual(r.receive(), b"two")
        self.assertIsNone(r.receive())
        self.assertEqual(r.frames_received, 2)
        self.assertEqual(medium.queued(28, 4), 1)
        r.tune(28, 4)
        self.assertEqual(r.receive(), b"elsewhere")

    def test_timeout_waits_in_virtual_time(self):
        clock, medium, r = _setup()
        r.tune(29, 30)
        medium.inject(29, 30, b"later", at_ms=500)
        self.assertIsNone(r.receive(0))
        self.assertIsNone(r.receive(100))
        self.assertEqual(clock.monotonic_ms(), 100)
        self.assertEqual(r.receive(1000), b"later")
        self.assertEqual(clock.monotonic_ms(), 500)

    def test_bad_injection_and_queue_bound(self):
        _, medium, r = _setup(rx_capacity=3)
        with self.assertRaises(phy.ChannelError):
            medium.inject(28, 99, b"x")
        with self.assertRaises(ValueError):
            medium.inject(28, 1, bytes(126))
        with self.assertRaises(TypeError):
            medium.inject(28, 1, "text")
        for i in range(5):
            medium.inject(28, 1, bytes([i]))
        self.assertEqual(medium.rx_dropped, 2)
        r.tune(28, 1)
        self.assertEqual([r.receive(), r.receive(), r.receive(), r.receive()], [b"\x02", b"\x03", b"\x04", None])

    def test_radio_to_radio(self):
        clock, medium, a = _setup()
        b = SimRadio(medium, clock)
        a.tune(28, 9)
        b.tune(28, 9)
        a.transmit(b"hello")
        self.assertIsNone(a.receive())  # not its own frame
        self.assertEqual(b.receive(20), b"hello")
        self.assertEqual(clock.monotonic_ms(), 2)  # arrives when it is off the air (1.36 ms)
        b.deinit()
        a.transmit(b"nobody")
        self.assertEqual(medium.queued(28, 9), 0)


class TestAirtimeWindow(unittest.TestCase):
    def _send(self, clock, r, plan):
        # plan: (at_ms, payload length); returns [(start, airtime)]
        out = []
        for at, n in plan:
            clock.advance_ms(at - clock.monotonic_ms())
            out.append((at, r.transmit(bytes(n))))
        return out

    def test_hand_built_example(self):
        clock, medium, r = _setup(windows_ms=(1000,))
        r.tune(28, 0)
        # airtimes: 10 B -> 1920 us, 50 B -> 5120 us, 125 B -> 11120 us
        self._send(clock, r, [(0, 10), (400, 50), (999, 10), (1000, 125), (1400, 10), (2500, 50)])
        # windows: [0,1000): 1920+5120+1920 = 8960; [400,1400): 5120+1920+11120 = 18160;
        # [999,1999): 1920+11120+1920 = 14960; [1000,2000): 13040; [1400,2400): 1920; [2500,..): 5120
        self.assertEqual(medium.max_window_airtime_us(1000), 18160)
        self.assertEqual(medium.max_window_start_ms(1000), 400)
        self.assertEqual(medium.window_airtime_us(1000), 5120)  # only the 2500 ms frame in (1500, 2500]
        clock.advance_ms(1000)
        self.assertEqual(medium.window_airtime_us(1000), 0)
        self.assertEqual(medium.max_window_airtime_us(1000), 18160)
        with self.assertRaises(ValueError):
            medium.max_window_airtime_us()  # the hour is not tracked on this medium

    def test_window_edges(self):
        # frames exactly one window apart never share a window; one ms less and they do
        clock, medium, r = _setup(windows_ms=(HOUR_MS,))
        r.tune(28, 0)
        self._send(clock, r, [(0, 125), (HOUR_MS, 125)])
        self.assertEqual(medium.max_window_airtime_us(), 11120)
        clock, medium, r = _setup()
        r.tune(28, 0)
        self._send(clock, r, [(0, 125), (HOUR_MS - 1, 125)])
        self.assertEqual(medium.max_window_airtime_us(), 2 * 11120)
        self.assertEqual(medium.max_window_airtime_us(HOUR_MS), 2 * 11120)

    def test_same_ms_frames_add_up(self):
        clock, medium, r = _setup(windows_ms=(10,))
        r.tune(28, 0)
        for _ in range(5):
            r.transmit(bytes(10))
        clock.advance_ms(10)
        r.transmit(bytes(10))
        self.assertEqual(medium.max_window_airtime_us(10), 5 * 1920)

    def test_matches_brute_force(self):
        clock, medium, r = _setup(windows_ms=(1000, 5000, 20000))
        r.tune(30, 40)
        x = 12345
        plan = []
        t = 0
        for _ in range(300):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            t += (x >> 8) % 400  # gaps of 0-399 ms, repeats included
            plan.append((t, 1 + (x >> 4) % MAX_PAYLOAD))
        frames = self._send(clock, r, plan)
        for w in (1000, 5000, 20000):
            self.assertEqual(medium.max_window_airtime_us(w), _brute_max(frames, w), w)
        self.assertEqual(medium.max_window_airtime_us(20000) > medium.max_window_airtime_us(1000), True)

    def test_memory_is_one_window(self):
        w = AirtimeWindow(1000)
        for i in range(5000):
            w.add(i * 100, 1000)
        self.assertEqual(len(w), 10)  # starts in (t - 1000, t]
        self.assertEqual(w.max_us, 10000)
        with self.assertRaises(ValueError):
            w.add(0, 1)  # time never goes back
        with self.assertRaises(ValueError):
            AirtimeWindow(0)

    def test_long_run_matches_reference(self):
        # thousands of entries: the queue grows and sheds chunks; checked against a two-pointer
        # reference over the whole log
        w = AirtimeWindow(2000)
        x = 99
        t = 0
        frames = []
        most = 0
        for i in range(4000):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            t += 3000 if i % 1700 == 1699 else (x >> 9) % 3  # bursts, then a quiet gap
            a = 1200 + (x >> 3) % 9921
            frames.append((t, a))
            w.add(t, a)
            most = max(most, len(w))
        best = 0
        j = 0
        total = 0
        for i in range(len(frames)):
            while j < len(frames) and frames[j][0] < frames[i][0] + 2000:
                total += frames[j][1]
                j += 1
            best = max(best, total)
            total -= frames[i][1]
        self.assertEqual(w.max_us, best)
        self.assertGreater(most, 1024)  # three chunks in use at times
        last = frames[-1][0]
        self.assertEqual(w.current_us(last), sum(a for s, a in frames if s > last - 2000))
        self.assertEqual(w.current_us(last + 2000), 0)

    def test_32_bit_wrap_and_long_gaps(self):
        w = AirtimeWindow(1000)
        base = (1 << 32) - 500
        w.add(base, 100)
        w.add(base + 600, 200)  # past 2**32 ms
        w.add(base + 999, 300)
        self.assertEqual(w.max_us, 600)
        self.assertEqual(w.max_start_ms, base)
        w.add(base + 1000, 50)  # the first one leaves the window
        self.assertEqual(w.sum_us, 550)
        w.add(base + 1000 + (1 << 32), 7)  # a gap of 2**32 ms: nothing left to share with
        self.assertEqual(w.sum_us, 7)
        self.assertEqual(w.current_us(base + 2000 + (1 << 32)), 0)
        self.assertEqual(w.max_us, 600)
        with self.assertRaises(ValueError):
            AirtimeWindow(1 << 31)

    def test_hourly_sums(self):
        clock, medium, r = _setup()
        r.tune(28, 0)
        r.transmit(bytes(10))
        clock.advance_ms(2 * HOUR_MS + 5)
        r.transmit(bytes(10))
        r.transmit(bytes(10))
        self.assertEqual(medium.hourly_airtime_us(), [1920, 0, 3840])


class HourlyLogIsBounded(unittest.TestCase):
    def test_a_year_of_hours_keeps_a_month(self):
        clock = VirtualClock()
        medium = LabMedium(clock, windows_ms=(), recent_size=4)
        radio = SimRadio(medium, clock)
        radio.tune(28, 1)
        for _ in range(6):
            radio.transmit(b"x" * 10)
            clock.advance_ms(60 * 24 * 3600 * 1000)  # two months
        radio.transmit(b"x" * 10)
        hourly = medium.hourly_airtime_us()
        self.assertLessEqual(len(hourly), 24 * 31)
        self.assertEqual(hourly[-1], 1920)
        self.assertEqual(medium.first_hour() + len(hourly) - 1, clock.monotonic_ms() // 3600000)
        self.assertEqual(len(medium.recent()), 4)


class TestBoardMedium(unittest.TestCase):
    # hal.sim.radio.Medium alone, as the virtual board builds it: no scripts, no logs but the ring
    def _board(self, **kw):
        clock = VirtualClock()
        medium = Medium(clock, seed=5, recent_size=8, **kw)
        return clock, medium, SimRadio(medium, clock, band="868", tx_power_dbm=14)

    def test_carries_no_lab_parts(self):
        _, medium, _ = self._board()
        for name in ("set_noise", "add_transmitter", "recent", "hourly_airtime_us", "max_window_airtime_us"):
            self.assertFalse(hasattr(medium, name), name)
        with self.assertRaises(TypeError):
            Medium(VirtualClock(), windows_ms=(HOUR_MS,))  # windows are kept by LabMedium

    def test_background_and_bad_channels(self):
        _, medium, r = self._board(jitter_db=0)
        self.assertEqual(r.energy(28, 5), -100)
        medium.noise_dbm = -87
        self.assertEqual(r.energy(30, 61), -87)
        with self.assertRaises(phy.ChannelError):
            medium.energy(28, 27)
        with self.assertRaises(RadioError):
            r.energy(31, 0)  # a 915 MHz page

    def test_ring_is_bounded_and_counts(self):
        clock, medium, r = self._board(jitter_db=0)
        other = SimRadio(medium, clock, tx_power_dbm=0)
        other.tune(29, 30)
        r.tune(29, 30)
        for _ in range(20):
            other.transmit(bytes(50))  # 5120 us each, all at 0 ms
        self.assertEqual(medium.frames, 20)
        self.assertEqual(medium.airtime_us_total, 20 * 5120)
        self.assertEqual(len(medium._recent), 8)
        self.assertEqual(r.energy(29, 30), 0 - 60 + 9)  # the 8 frames in the ring, summed: +9 dB
        self.assertEqual(other.energy(29, 30), -100)
        clock.advance_ms(6)
        self.assertEqual(r.energy(29, 30), -100)
        self.assertEqual(r.receive(), bytes(50))  # the frames were queued for r on arrival
        self.assertEqual(medium.rx_dropped, 0)

    def test_radios_join_and_leave(self):
        _, medium, r = self._board()
        self.assertEqual(medium.radios, [r])
        r.deinit()
        r.deinit()  # twice is harmless
        self.assertEqual(medium.radios, [])

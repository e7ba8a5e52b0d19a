# McuClock (wrap counting, epochs), the EUI-64 derivation, StaticIdentity, RadioDriver rules.
import hashlib
import time
import unittest

from hal import phy
from hal.contracts import Clock, Identity, RadioError
from hal.mcu import ConfigError, McuClock, McuIdentity, StaticIdentity, eui64_from_unique_id
from hal.radio_driver import MAX_PAYLOAD, RadioDriver


class Ticks:
    """A scripted tick source."""

    def __init__(self, values):
        self.values = list(values)

    def __call__(self):
        return self.values.pop(0)


class Clocks(unittest.TestCase):
    def test_counts_wraps(self):
        t = Ticks([990, 995, 5, 500, 999, 0, 1, 998, 3])
        c = McuClock(ticks=t, period=1000, time_fn=lambda: 0, epoch_year=1970)
        got = [c.monotonic_ms() for _ in range(8)]
        self.assertEqual(got, [995, 1005, 1500, 1999, 2000, 2001, 2998, 3003])

    def test_never_goes_backwards_across_many_wraps(self):
        period = 256
        values = [(i * 37) % period for i in range(1, 400)]
        c = McuClock(ticks=Ticks([0] + values), period=period, time_fn=lambda: 0, epoch_year=1970)
        last = -1
        for k in range(len(values)):
            now = c.monotonic_ms()
            self.assertGreater(now, last)
            self.assertEqual(now, (k + 1) * 37)
            last = now

    def test_injected_ticks_need_a_period(self):
        with self.assertRaises(ConfigError):
            McuClock(ticks=lambda: 0)
        with self.assertRaises(ConfigError):
            McuClock(ticks=lambda: 0, period=1)

    def test_utc_epochs(self):
        c1970 = McuClock(ticks=lambda: 0, period=1000, time_fn=lambda: 1767225600, epoch_year=1970)
        self.assertEqual(c1970.utc(), 1767225600)
        c2000 = McuClock(ticks=lambda: 0, period=1000, time_fn=lambda: 0, epoch_year=2000)
        self.assertEqual(c2000.utc(), 946684800)  # 2000-01-01T00:00:00Z
        c2000 = McuClock(ticks=lambda: 0, period=1000, time_fn=lambda: 820540800.9, epoch_year=2000)
        self.assertEqual(c2000.utc(), 1767225600)  # 2026-01-01, seconds truncated

    def test_port_defaults(self):
        c = McuClock()
        self.assertIsInstance(c, Clock)
        self.assertEqual(c.epoch_year, time.gmtime(0)[0])
        self.assertGreaterEqual(c.period, 2**29)
        a = c.monotonic_ms()
        c.sleep_ms(2)
        b = c.monotonic_ms()
        self.assertGreaterEqual(b, a)
        self.assertLess(abs(c.utc() - (int(time.time()) + (946684800 if c.epoch_year == 2000 else 0))), 5)

    def test_sleep_uses_the_injected_sleeper(self):
        slept = []
        c = McuClock(ticks=lambda: 0, period=1000, time_fn=lambda: 0, epoch_year=1970, sleep_ms=slept.append)
        c.sleep_ms(7)
        c.sleep_ms(0)
        self.assertEqual(slept, [7])


class Identities(unittest.TestCase):
    def test_eui48_is_encapsulated(self):
        mac = b"\x24\x0a\xc4\x12\x34\x56"
        self.assertEqual(eui64_from_unique_id(mac), b"\x24\x0a\xc4\xff\xfe\x12\x34\x56")

    def test_other_ids_are_hashed_and_locally_administered(self):
        uid = bytes(range(12))
        want = bytearray(hashlib.sha256(b"dbch-eui64" + uid).digest()[:8])
        want[0] = (want[0] & 0xFC) | 0x02
        got = eui64_from_unique_id(uid)
        self.assertEqual(got, bytes(want))
        self.assertEqual(got, b"\x1a\xdd\x4e\xf8\xba\xee\x14\x83")
        self.assertEqual(got[0] & 0x03, 0x02)  # U/L = local, I/G = individual
        for uid in (b"\x00" * 8, b"\xff" * 8, bytes(range(16)), b"\x01"):
            eui = eui64_from_unique_id(uid)
            self.assertEqual(len(eui), 8)
            self.assertEqual(eui[0] & 0x03, 0x02)
        self.assertNotEqual(eui64_from_unique_id(b"\x00" * 8), eui64_from_unique_id(b"\x00" * 7 + b"\x01"))
        with self.assertRaises(ConfigError):
            eui64_from_unique_id(b"")

    def test_mcu_identity(self):
        calls = []

        def unique_id():
            calls.append(1)
            return b"\x24\x0a\xc4\x12\x34\x56"

        ident = McuIdentity(unique_id)
        self.assertIsInstance(ident, Identity)
        self.assertEqual(ident.eui64(), b"\x24\x0a\xc4\xff\xfe\x12\x34\x56")
        self.assertEqual(ident.eui64(), b"\x24\x0a\xc4\xff\xfe\x12\x34\x56")
        self.assertEqual(len(calls), 1)  # read once
        self.assertEqual(McuIdentity(bytes(12)).eui64(), eui64_from_unique_id(bytes(12)))

    def test_static_identity(self):
        eui = b"\x00\xdb\x12\x34\x56\x78\x90\xa2"
        self.assertEqual(StaticIdentity(eui).eui64(), eui)
        self.assertEqual(StaticIdentity(bytearray(eui)).eui64(), eui)
        self.assertEqual(StaticIdentity("00-DB-12-34-56-78-90-A2").eui64(), eui)
        self.assertEqual(StaticIdentity("00db1234567890a2").eui64(), eui)
        for bad in (b"\x00" * 7, b"\x00" * 9, "00-DB-12", "zz" * 8, 12345, None):
            with self.assertRaises(ConfigError):
                StaticIdentity(bad)
        self.assertTrue(issubclass(ConfigError, ValueError))


class Toy(RadioDriver):
    MIN_DBM = -5
    MAX_DBM = 17

    def __init__(self, band, cap):
        RadioDriver.__init__(self, band, cap, clock=None)
        self.freqs = []
        self.powers = []
        self.inits = 0

    def init(self):
        self.inits += 1
        self.ready = True
        self._apply_power(self.tx_power_dbm)

    def _set_frequency(self, hz):
        self.freqs.append(hz)

    def _apply_power(self, dbm):
        self.powers.append(dbm)


class DriverRules(unittest.TestCase):
    def test_band_rules(self):
        r = Toy("868", 14)
        self.assertTrue(r.can_tune(28, 0) and r.can_tune(29, 34) and r.can_tune(30, 61))
        self.assertFalse(r.can_tune(31, 0))
        self.assertFalse(r.can_tune(28, 27))
        self.assertFalse(r.can_tune("28", 0))
        r.tune(30, 61)
        self.assertEqual((r.page, r.channel, r.frequency_hz), (30, 61, phy.frequency_hz(30, 61)))
        self.assertEqual(r.freqs, [875450000])
        self.assertEqual(r.inits, 1)  # first use initialises
        with self.assertRaises(RadioError):
            r.tune(31, 3)
        with self.assertRaises(phy.ChannelError):
            r.tune(29, 0)
        self.assertEqual(r.page, 30)  # a refused tune changes nothing
        u = Toy("915", 14)
        self.assertTrue(u.can_tune(31, 26))
        self.assertFalse(u.can_tune(28, 1))

    def test_power_and_frames(self):
        r = Toy("915", 14)
        self.assertEqual(r.tx_power_dbm, 14)
        self.assertEqual(r.set_tx_power(16), 14)
        self.assertEqual(r.powers, [])  # not applied before init
        r.init()
        self.assertEqual(r.set_tx_power(-20), -5)
        self.assertEqual(r.powers, [14, -5])
        self.assertEqual(Toy("868", 30).tx_power_dbm, 17)
        self.assertEqual(MAX_PAYLOAD, 125)
        self.assertEqual(r._check_frame(bytes(125)), 125)
        for bad in (b"", bytes(126), 7):
            with self.assertRaises(RadioError):
                r._check_frame(bad)
        with self.assertRaises(ConfigError):
            Toy("868", -6)
        with self.assertRaises(ConfigError):
            Toy(868, 14)


if __name__ == "__main__":
    unittest.main()

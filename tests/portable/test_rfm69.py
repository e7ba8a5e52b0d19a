# The RFM69 driver against the bus-level SimRfm69 (SX1231H register map, 66-byte FIFO).
import unittest

from hal import phy
from hal.contracts import RadioError
from hal.mcu import ConfigError
from hal.rfm69 import Rfm69, frf_reg
from hal.sim.chips.bus import SimSpiBus
from hal.sim.chips.rfm69 import RF_SLEEP, RF_STANDBY, SimRfm69
from tests.kits.chipkit import FakeClock

FXOSC = 32000000


def expected_frf(hz):
    return (hz * 2**19 + FXOSC // 2) // FXOSC  # Fstep = 32 MHz / 2^19, nearest step


def plan_hz(page, ch):
    return (915350000 if page == 31 else 863250000) + 200000 * ch


PAGE_CHANNELS = {28: range(27), 29: range(27, 35), 30: range(35, 62), 31: range(27)}


def make(band="868", cap=14, dio0=True, high_power=True, tx_rate=4, rx_rate=4):
    chip = SimRfm69(tx_rate=tx_rate, rx_rate=rx_rate)
    bus = SimSpiBus(chip)
    radio = Rfm69(
        bus,
        bus.cs_pin(),
        band=band,
        tx_power_cap_dbm=cap,
        reset=chip.reset_pin(),
        dio0=chip.dio0_pin() if dio0 else None,
        clock=FakeClock(),
        high_power=high_power,
    )
    return radio, chip, bus


class Configuration(unittest.TestCase):
    def test_constructing_touches_no_hardware(self):
        radio, chip, bus = make()
        self.assertEqual(bus.transactions, [])
        self.assertEqual(chip.resets, 0)

    def test_init_registers(self):
        radio, chip, _ = make()
        radio.init()
        r = chip.regs
        self.assertEqual(chip.resets, 1)
        self.assertEqual(r[0x02] & 0x60, 0x00)  # packet mode
        self.assertEqual(r[0x02] & 0x18, 0x00)  # FSK
        self.assertEqual(r[0x02] & 0x03, 0x02)  # Gaussian BT 0.5
        self.assertEqual((r[0x03] << 8) | r[0x04], 320)  # 32 MHz / 100 kbit/s
        self.assertEqual((r[0x03], r[0x04]), (0x01, 0x40))
        fdev = (35000 * 2**19 + FXOSC // 2) // FXOSC
        self.assertEqual(fdev, 573)
        self.assertEqual((r[0x05], r[0x06]), (0x02, 0x3D))
        self.assertEqual((r[0x2C], r[0x2D]), (0x00, 0x08))  # 8-byte preamble
        self.assertEqual(r[0x2E], 0x88)  # sync on, 2 bytes
        self.assertEqual((r[0x2F], r[0x30]), (0x90, 0x4E))
        self.assertEqual(r[0x37] & 0x80, 0x80)  # variable length
        self.assertEqual(r[0x37] & 0x60, 0x40)  # whitening
        self.assertEqual(r[0x37] & 0x10, 0x10)  # CRC on
        self.assertEqual(r[0x37] & 0x08, 0x08)  # CrcAutoClearOff
        self.assertEqual(r[0x38], 125)
        self.assertEqual(r[0x3C], 0x80 | 32)
        self.assertEqual(r[0x19], 0x42)  # 125 kHz single-sided
        self.assertEqual(chip.mode, RF_STANDBY)
        self.assertEqual(chip.violations, [])

    def test_absent_module(self):
        radio, chip, _ = make()
        chip.present = False
        with self.assertRaises(RadioError):
            radio.init()
        self.assertFalse(radio.ready)

    def test_bad_settings(self):
        with self.assertRaises(ConfigError):
            make(band="900")
        with self.assertRaises(ConfigError):
            make(cap=-5)  # below the H module's -2 dBm

    def test_deinit_sleeps(self):
        radio, chip, _ = make()
        radio.tune(28, 1)
        radio.deinit()
        self.assertEqual(chip.mode, RF_SLEEP)
        self.assertFalse(radio.ready)
        radio.transmit(b"after sleep")  # first use configures it again
        self.assertEqual(chip.sent[-1][0], expected_frf(plan_hz(28, 1)))


class Channels(unittest.TestCase):
    def test_every_lower_band_channel(self):
        radio, chip, _ = make()
        for page in (28, 29, 30):
            for ch in PAGE_CHANNELS[page]:
                hz = plan_hz(page, ch)
                radio.tune(page, ch)
                self.assertEqual(chip.frf(), expected_frf(hz), (page, ch))
                # within half a step (30.5 Hz) of the plan
                self.assertLessEqual(abs(chip.frf() * FXOSC - hz * 2**19), FXOSC // 2)
        self.assertEqual(chip.violations, [])

    def test_every_upper_band_channel(self):
        radio, chip, _ = make(band="915")
        for ch in PAGE_CHANNELS[31]:
            radio.tune(31, ch)
            self.assertEqual(chip.frf(), expected_frf(plan_hz(31, ch)))

    def test_rounding(self):
        self.assertEqual(frf_reg(863250000), 14143488)  # exact
        self.assertEqual(frf_reg(863450000), 14146765)  # 14146764.8
        self.assertEqual(frf_reg(863650000), 14150042)  # 14150041.6

    def test_refusals(self):
        radio, chip, bus = make()
        with self.assertRaises(RadioError):
            radio.tune(31, 0)
        self.assertFalse(radio.can_tune(31, 0))
        for page, ch in ((28, 27), (30, 34), (33, 1), (29, None)):
            self.assertFalse(radio.can_tune(page, ch))
            with self.assertRaises(phy.ChannelError):
                radio.tune(page, ch)
        self.assertEqual(bus.transactions, [])
        upper, _, _ = make(band="915")
        with self.assertRaises(RadioError):
            upper.energy(30, 40)


class Power(unittest.TestCase):
    def test_h_module_levels(self):
        radio, chip, _ = make(cap=20)
        radio.init()
        self.assertEqual(chip.regs[0x11], 0x60 | 31)  # +20: PA1+PA2, -11 + 31
        self.assertEqual(radio.set_tx_power(17), 17)
        self.assertEqual(chip.regs[0x11], 0x60 | 31)  # -14 + 31
        self.assertEqual(radio.set_tx_power(14), 14)
        self.assertEqual(chip.regs[0x11], 0x60 | 28)
        self.assertEqual(radio.set_tx_power(13), 13)
        self.assertEqual(chip.regs[0x11], 0x40 | 31)  # PA1 only, -18 + 31
        self.assertEqual(radio.set_tx_power(-9), -2)
        self.assertEqual(chip.regs[0x11], 0x40 | 16)

    def test_cap_clamps(self):
        radio, chip, _ = make(cap=14)
        radio.init()
        self.assertEqual(radio.set_tx_power(20), 14)
        self.assertEqual(chip.regs[0x11], 0x60 | 28)

    def test_plain_module_uses_pa0(self):
        radio, chip, _ = make(cap=14, high_power=False)
        radio.init()
        self.assertEqual(radio.tx_power_dbm, 13)  # the W/CW module tops out at +13
        self.assertEqual(chip.regs[0x11], 0x80 | 31)
        self.assertEqual(radio.set_tx_power(-18), -18)
        self.assertEqual(chip.regs[0x11], 0x80)

    def test_high_power_registers_only_during_tx(self):
        radio, chip, _ = make(cap=20)
        radio.tune(28, 0)
        radio.transmit(b"loud")
        _, payload, level, pa1, pa2, ocp = chip.sent[0]
        self.assertEqual((payload, level, pa1, pa2, ocp), (b"loud", 0x7F, 0x5D, 0x7C, 0x0F))
        self.assertEqual((chip.regs[0x5A], chip.regs[0x5C], chip.regs[0x13]), (0x55, 0x70, 0x1A))
        radio.set_tx_power(14)
        radio.transmit(b"quiet")
        self.assertEqual(chip.sent[1][3:], (0x55, 0x70, 0x1A))
        self.assertIsNone(radio.receive(0))
        self.assertEqual(chip.violations, [])


class Transmit(unittest.TestCase):
    def test_frames_longer_than_the_fifo(self):
        # rates in bytes per SPI transaction; the fake clock moves 1 ms per reading, so rates
        # below about 3 would be slower than the air itself (80 us a byte)
        for tx_rate in (4, 8, 16):
            for dio0 in (True, False):
                radio, chip, _ = make(dio0=dio0, tx_rate=tx_rate)
                radio.tune(30, 40)
                frame = bytes((i * 7) & 0xFF for i in range(125))
                self.assertEqual(radio.transmit(frame), (8 + 2 + 2 + 125 + 2) * 80)
                self.assertEqual(chip.sent[-1][:2], (expected_frf(plan_hz(30, 40)), frame))
                self.assertEqual(chip.mode, RF_STANDBY)
                self.assertEqual(chip.violations, [], (tx_rate, dio0))

    def test_short_frames(self):
        radio, chip, _ = make()
        radio.tune(28, 0)
        for n in (1, 2, 65, 66, 67):
            radio.transmit(bytes(n))
            self.assertEqual(chip.sent[-1][1], bytes(n))
        self.assertEqual(chip.violations, [])

    def test_bad_frames(self):
        radio, chip, _ = make()
        radio.tune(28, 0)
        for frame in (b"", bytes(126), [1, 2]):
            with self.assertRaises(RadioError):
                radio.transmit(frame)
        self.assertEqual(chip.sent, [])

    def test_not_tuned(self):
        radio, _, _ = make()
        with self.assertRaises(RadioError):
            radio.transmit(b"x")

    def test_packet_sent_never_comes(self):
        for dio0 in (True, False):
            radio, chip, _ = make(dio0=dio0)
            radio.tune(28, 0)
            chip.tx_outcome = "hang"
            with self.assertRaises(RadioError):
                radio.transmit(b"stuck")
            with self.assertRaises(RadioError):
                radio.transmit(bytes(125))  # FIFO never drains
            self.assertEqual(chip.mode, RF_STANDBY)
            chip.tx_outcome = "done"
            radio.transmit(b"fine")
            self.assertEqual(chip.sent[-1][1], b"fine")


class Receive(unittest.TestCase):
    def test_frames_longer_than_the_fifo(self):
        for rx_rate in (1, 4, 8):  # a frame already coming in is finished past the timeout
            radio, chip, _ = make(rx_rate=rx_rate)
            radio.tune(28, 12)
            frame = bytes((i * 3) & 0xFF for i in range(125))
            chip.incoming.append([frame, True, expected_frf(plan_hz(28, 12))])
            self.assertEqual(radio.receive(100), frame)
            self.assertEqual(chip.overruns, 0)
            self.assertEqual(chip.violations, [])

    def test_short_frame_then_nothing(self):
        radio, chip, _ = make()
        radio.tune(28, 12)
        chip.incoming.append([b"hi", True, None])
        self.assertEqual(radio.receive(10), b"hi")
        self.assertIsNone(radio.receive(0))
        self.assertIsNone(radio.receive(5))

    def test_bad_crc_other_channel_too_long(self):
        radio, chip, _ = make()
        radio.tune(28, 12)
        chip.incoming.append([b"x" * 80, False, None])
        chip.incoming.append([b"there", True, expected_frf(plan_hz(28, 13))])
        chip.incoming.append([b"y" * 126, True, None])  # longer than RegPayloadLength
        chip.incoming.append([b"good", True, None])
        self.assertEqual(radio.receive(100), b"good")
        self.assertEqual(radio.crc_errors, 1)
        self.assertEqual(chip.filtered, 1)
        self.assertEqual(len(chip.incoming), 1)
        self.assertEqual(chip.violations, [])

    def test_fifo_overrun_restarts_rx(self):
        radio, chip, _ = make(rx_rate=70)  # faster than the driver can drain
        radio.tune(28, 12)
        chip.incoming.append([bytes(120), True, None])
        self.assertIsNone(radio.receive(5))
        self.assertGreaterEqual(radio.overruns, 1)
        chip.rx_rate = 4
        chip.incoming.append([b"after", True, None])
        self.assertEqual(radio.receive(20), b"after")

    def test_timeout_mid_frame_finishes_the_frame(self):
        radio, chip, _ = make(rx_rate=4)
        radio.tune(28, 12)
        chip.incoming.append([bytes(range(100)), True, None])
        self.assertEqual(radio.receive(0), bytes(range(100)))


class Energy(unittest.TestCase):
    def test_rssi_value(self):
        radio, chip, _ = make()
        radio.tune(28, 3)
        chip.rssi_by_frf[expected_frf(plan_hz(29, 30))] = 181
        self.assertEqual(radio.energy(29, 30), -90)
        self.assertEqual(radio.energy(29, 31), -100)
        self.assertEqual(chip.frf(), expected_frf(plan_hz(28, 3)))
        self.assertEqual(chip.mode, RF_STANDBY)
        self.assertEqual(chip.violations, [])


if __name__ == "__main__":
    unittest.main()

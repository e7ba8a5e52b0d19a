# The SX1262 driver against the bus-level SimSx126x: configuration bytes as the datasheet
# gives them, frequency words for every channel, refusals, TX/RX/energy paths and failures.
import unittest

from hal import phy
from hal.contracts import RadioError
from hal.mcu import ConfigError
from hal.sim.chips.bus import SimSpiBus
from hal.sim.chips.sx126x import RX, SLEEP, STBY_RC, SimSx126x
from hal.sx126x import Sx1262, rf_frequency_reg
from tests.kits.chipkit import FakeClock

# Expected values, computed here from the datasheet formulas, not taken from the driver.
XTAL = 32000000
BR = 32 * XTAL // 100000  # DS 13.4.5: 32 * Fxtal / bitrate
FDEV = (35000 * 2**25 + XTAL // 2) // XTAL  # Fdev * 2^25 / Fxtal, nearest


def expected_freq_word(hz):
    return (hz * 2**25 + XTAL // 2) // XTAL  # DS 13.4.1, nearest step (driver's rounding)


def plan_hz(page, ch):
    # DOMAIN.md section 1: lower band 863.25 + 0.2*ch MHz, upper band 915.35 + 0.2*ch MHz
    return (915350000 if page == 31 else 863250000) + 200000 * ch


PAGE_CHANNELS = {28: range(27), 29: range(27, 35), 30: range(35, 62), 31: range(27)}


def make(band="868", cap=14, irq=True, reset=True, **kw):
    chip = SimSx126x()
    bus = SimSpiBus(chip)
    clock = FakeClock()
    radio = Sx1262(
        bus,
        bus.cs_pin(),
        chip.busy_pin(),
        band=band,
        tx_power_cap_dbm=cap,
        reset=chip.reset_pin() if reset else None,
        irq=chip.dio1_pin() if irq else None,
        clock=clock,
        tcxo_mv=1800,
        dio2_rf_switch=True,
        dcdc=True,
        **kw,
    )
    return radio, chip, bus


class Configuration(unittest.TestCase):
    def test_constructing_touches_no_hardware(self):
        radio, chip, bus = make()
        self.assertEqual(bus.transactions, [])
        self.assertEqual(chip.resets, 0)
        self.assertFalse(radio.ready)

    def test_register_formulas(self):
        self.assertEqual(BR, 0x002800)
        self.assertEqual(FDEV, 0x008F5C)

    def test_init_writes_the_gb868_phy(self):
        radio, chip, bus = make()
        radio.init()
        self.assertTrue(radio.ready)
        self.assertEqual(chip.resets, 1)
        self.assertEqual(chip.packet_type, 0x00)  # GFSK
        # SetModulationParams: BR (3), pulse shape BT 0.5 = 0x09, RX bandwidth, Fdev (3)
        mp = chip.mod_params
        self.assertEqual((mp[0] << 16) | (mp[1] << 8) | mp[2], BR)
        self.assertEqual(mp[3], 0x09)
        self.assertEqual(mp[4], 0x0A)  # 234.3 kHz
        self.assertEqual((mp[5] << 16) | (mp[6] << 8) | mp[7], FDEV)
        self.assertEqual(mp, bytes((0x00, 0x28, 0x00, 0x09, 0x0A, 0x00, 0x8F, 0x5C)))
        # SetPacketParams: 64-bit preamble, detector 16 bits, 16-bit sync, no address filter,
        # variable length, 125-byte max payload, CRC 2 bytes inverted, whitening on
        self.assertEqual(chip.packet_params, bytes((0x00, 0x40, 0x05, 0x10, 0x00, 0x01, 125, 0x06, 0x01)))
        self.assertEqual(bytes(chip.regs[0x06C0:0x06C2]), b"\x90\x4e")
        self.assertEqual(bytes(chip.regs[0x06BC:0x06C0]), b"\x1d\x0f\x10\x21")
        self.assertEqual(chip.regs[0x06B8], 0xA1)  # bits 7:1 preserved, seed bit 8 set
        self.assertEqual(chip.regs[0x06B9], 0xFF)
        self.assertEqual(chip.regs[0x08D8], 0xC8 | 0x1E)  # DS 15.2
        self.assertEqual(chip.image_cal, (0xD7, 0xDB))
        self.assertEqual(chip.tcxo, (0x02, 320))  # 1.8 V, 5 ms
        self.assertEqual(chip.calibrations, [0x7F])
        self.assertTrue(chip.dio2_rf_switch)
        self.assertEqual(chip.regulator, 0x01)
        self.assertEqual((chip.tx_base, chip.rx_base), (0x00, 0x80))
        self.assertEqual(chip.irq_mask, 0x0243)
        self.assertEqual(chip.dio1_mask, 0x0203)
        self.assertEqual(chip.errors, 0)
        self.assertEqual(chip.violations, [])

    def test_915_variant_calibrates_its_image_band(self):
        radio, chip, _ = make(band="915")
        radio.init()
        self.assertEqual(chip.image_cal, (0xE1, 0xE9))

    def test_absent_chip_is_a_radio_error(self):
        radio, chip, _ = make()
        chip.present = False
        with self.assertRaises(RadioError):
            radio.init()
        self.assertFalse(radio.ready)

    def test_busy_stuck_high_is_a_radio_error(self):
        radio, chip, _ = make(reset=False)
        chip.stuck_busy = True
        with self.assertRaises(RadioError):
            radio.init()

    def test_bad_settings(self):
        with self.assertRaises(ConfigError):
            make(band="433")
        with self.assertRaises(ConfigError):
            make(cap="14")
        with self.assertRaises(ConfigError):
            make(cap=-20)
        chip = SimSx126x()
        bus = SimSpiBus(chip)
        with self.assertRaises(ConfigError):
            Sx1262(bus, bus.cs_pin(), chip.busy_pin(), "868", 14, tcxo_mv=1900)

    def test_deinit_sleeps_and_init_wakes(self):
        for reset in (True, False):
            radio, chip, _ = make(reset=reset)
            radio.tune(28, 3)
            radio.deinit()
            self.assertEqual(chip.mode, SLEEP)
            self.assertFalse(radio.ready)
            radio.init()  # cold start: configuration written again, channel restored
            self.assertEqual(chip.mode, STBY_RC)
            self.assertEqual(chip.freq_reg, expected_freq_word(plan_hz(28, 3)))
            self.assertEqual(chip.violations, [])


class Channels(unittest.TestCase):
    def test_every_lower_band_channel(self):
        radio, chip, bus = make()
        for page in (28, 29, 30):
            for ch in PAGE_CHANNELS[page]:
                self.assertTrue(radio.can_tune(page, ch))
                radio.tune(page, ch)
                self.assertEqual(chip.freq_reg, expected_freq_word(plan_hz(page, ch)), (page, ch))
                self.assertEqual(radio.frequency_hz, plan_hz(page, ch))
        word = expected_freq_word(plan_hz(30, 61))
        self.assertEqual(
            bus.transactions[-1], bytes((0x86, word >> 24, (word >> 16) & 255, (word >> 8) & 255, word & 255))
        )
        self.assertEqual(chip.violations, [])

    def test_every_upper_band_channel(self):
        radio, chip, _ = make(band="915")
        for ch in PAGE_CHANNELS[31]:
            radio.tune(31, ch)
            self.assertEqual(chip.freq_reg, expected_freq_word(plan_hz(31, ch)))

    def test_rounding_is_to_the_nearest_step(self):
        hz = plan_hz(28, 1)  # 863.45 MHz: 905392947.2 steps
        self.assertEqual(rf_frequency_reg(hz), 905392947)
        hz = plan_hz(28, 3)  # 863.85 MHz: 905812377.6 steps
        self.assertEqual(rf_frequency_reg(hz), 905812378)
        self.assertEqual(rf_frequency_reg(plan_hz(28, 0)), 863250000 * 2**25 // XTAL)  # exact

    def test_other_band_is_refused(self):
        radio, chip, bus = make()
        self.assertFalse(radio.can_tune(31, 0))
        with self.assertRaises(RadioError):
            radio.tune(31, 0)
        with self.assertRaises(RadioError):
            radio.energy(31, 5)
        upper, _, _ = make(band="915")
        for page in (28, 29, 30):
            self.assertFalse(upper.can_tune(page, PAGE_CHANNELS[page][0]))
            with self.assertRaises(RadioError):
                upper.tune(page, PAGE_CHANNELS[page][0])
        self.assertEqual(chip.freq_reg, None)

    def test_impossible_channels(self):
        radio, _, bus = make()
        for page, ch in ((28, 27), (29, 26), (29, 35), (30, 62), (27, 0), (32, 0), (28, -1), (28, "1")):
            self.assertFalse(radio.can_tune(page, ch))
            with self.assertRaises(phy.ChannelError):
                radio.tune(page, ch)
        with self.assertRaises(phy.ChannelError):
            radio.energy(30, 99)
        self.assertEqual(bus.transactions, [])  # refused before touching the chip


class Power(unittest.TestCase):
    def test_default_is_the_cap_with_the_optimal_pa_setting(self):
        radio, chip, _ = make(cap=14)
        radio.init()
        self.assertEqual(radio.tx_power_dbm, 14)
        self.assertEqual(chip.pa_config, (0x02, 0x02, 0x00, 0x01))  # DS table 13-21, +14 dBm
        self.assertEqual(chip.tx_params, (22, 0x02))

    def test_clamped_to_the_cap(self):
        radio, chip, _ = make(cap=14)
        radio.init()
        self.assertEqual(radio.set_tx_power(22), 14)
        self.assertEqual(chip.pa_config, (0x02, 0x02, 0x00, 0x01))
        self.assertEqual(radio.set_tx_power(10), 10)
        self.assertEqual(chip.pa_config, (0x04, 0x07, 0x00, 0x01))
        self.assertEqual(chip.tx_params, (10, 0x02))
        self.assertEqual(radio.set_tx_power(-40), -9)
        self.assertEqual(chip.tx_params, (-9, 0x02))
        with self.assertRaises(ConfigError):
            radio.set_tx_power(10.5)

    def test_a_higher_cap(self):
        radio, chip, _ = make(cap=30)
        radio.init()
        self.assertEqual(radio.tx_power_dbm, 22)  # the chip's maximum
        self.assertEqual(radio.set_tx_power(20), 20)
        self.assertEqual(chip.pa_config, (0x03, 0x05, 0x00, 0x01))
        self.assertEqual(chip.tx_params, (22, 0x02))


class Transmit(unittest.TestCase):
    def test_frame_goes_out_on_the_tuned_channel(self):
        radio, chip, _ = make()
        radio.tune(29, 30)
        frame = bytes(range(125))
        airtime = radio.transmit(frame)
        self.assertEqual(airtime, (8 + 2 + 2 + 125 + 2) * 8 * 10)  # 10 us a bit at 100 kbit/s
        self.assertEqual(len(chip.sent), 1)
        freq, payload, tx_params, _ = chip.sent[0]
        self.assertEqual(freq, expected_freq_word(plan_hz(29, 30)))
        self.assertEqual(payload, frame)
        self.assertEqual(tx_params, (22, 0x02))
        self.assertEqual(chip.last(0x8C)[6], 125)
        timeout = chip.tx_timeout
        self.assertEqual(timeout, (11 + 50) * 64)  # 15.625 us steps
        self.assertEqual(chip.irq, 0)  # cleared after TxDone
        self.assertEqual(chip.violations, [])

    def test_short_frame_and_polling_without_irq_pin(self):
        radio, chip, _ = make(irq=False)
        radio.tune(28, 0)
        self.assertEqual(radio.transmit(b"\x41\x88"), (8 + 2 + 2 + 2 + 2) * 80)
        self.assertEqual(chip.sent[0][1], b"\x41\x88")
        self.assertEqual(chip.violations, [])

    def test_bad_frames(self):
        radio, chip, _ = make()
        radio.tune(28, 0)
        for frame in (b"", bytes(126), bytes(300), "text", None):
            with self.assertRaises(RadioError):
                radio.transmit(frame)
        self.assertEqual(chip.sent, [])

    def test_not_tuned(self):
        radio, chip, _ = make()
        with self.assertRaises(RadioError):
            radio.transmit(b"abc")
        self.assertEqual(chip.count(0x83), 0)

    def test_tx_done_never_comes(self):
        for irq in (True, False):
            radio, chip, _ = make(irq=irq)
            radio.tune(28, 0)
            chip.tx_outcome = "hang"
            with self.assertRaises(RadioError):
                radio.transmit(b"hello")
            self.assertEqual(chip.mode, STBY_RC)  # left in standby
            chip.tx_outcome = "done"
            self.assertGreater(radio.transmit(b"again"), 0)  # and usable again
            self.assertEqual(chip.violations, [])

    def test_chip_timeout_irq(self):
        radio, chip, _ = make()
        radio.tune(28, 0)
        chip.tx_outcome = "timeout"
        with self.assertRaises(RadioError):
            radio.transmit(b"hello")

    def test_busy_stuck_during_transmit(self):
        radio, chip, _ = make()
        radio.tune(28, 0)
        chip.stuck_busy = True
        with self.assertRaises(RadioError):
            radio.transmit(b"hello")


class Receive(unittest.TestCase):
    def test_frame_on_the_tuned_channel(self):
        radio, chip, _ = make()
        radio.tune(28, 10)
        chip.incoming.append([b"hello hub", True, expected_freq_word(plan_hz(28, 10))])
        self.assertEqual(radio.receive(100), b"hello hub")
        self.assertEqual(radio.last_rssi_dbm, -80)
        self.assertEqual(chip.mode, RX)  # continuous RX stays on
        self.assertEqual(chip.last(0x82), b"\xff\xff\xff")
        self.assertEqual(chip.last(0x8C)[6], 125)
        self.assertIsNone(radio.receive(20))
        self.assertEqual(chip.violations, [])

    def test_polling_without_irq_pin(self):
        radio, chip, _ = make(irq=False)
        radio.tune(28, 10)
        chip.incoming.append([b"x" * 125, True, None])
        self.assertEqual(radio.receive(50), b"x" * 125)

    def test_other_channel_and_bad_crc_are_not_frames(self):
        radio, chip, _ = make()
        radio.tune(28, 10)
        chip.incoming.append([b"elsewhere", True, expected_freq_word(plan_hz(28, 11))])
        chip.incoming.append([b"garbled", False, None])
        chip.incoming.append([b"good", True, None])
        self.assertEqual(radio.receive(50), b"good")
        self.assertEqual(radio.crc_errors, 1)
        self.assertIsNone(radio.receive(0))
        self.assertEqual(len(chip.incoming), 1)  # the other channel's frame is still out there

    def test_zero_timeout_looks_once(self):
        radio, chip, _ = make()
        radio.tune(28, 10)
        self.assertIsNone(radio.receive(0))
        chip.incoming.append([b"now", True, None])
        self.assertEqual(radio.receive(0), b"now")

    def test_transmit_stops_rx_and_receive_restarts_it(self):
        radio, chip, _ = make()
        radio.tune(28, 10)
        self.assertIsNone(radio.receive(0))
        radio.transmit(b"ping")
        self.assertNotEqual(chip.mode, RX)
        chip.incoming.append([b"pong", True, None])
        self.assertEqual(radio.receive(10), b"pong")
        self.assertEqual(chip.violations, [])

    def test_not_tuned(self):
        radio, _, _ = make()
        with self.assertRaises(RadioError):
            radio.receive(10)


class Energy(unittest.TestCase):
    def test_rssi_inst_is_minus_half_the_value(self):
        radio, chip, _ = make()
        radio.tune(28, 3)
        chip.rssi_by_freq[expected_freq_word(plan_hz(28, 20))] = 181
        self.assertEqual(radio.energy(28, 20), -90)  # -90.5 dBm, half dB truncated toward 0
        self.assertEqual(radio.energy(28, 21), -100)  # default 200
        self.assertIsInstance(radio.energy(28, 21), int)
        # back on the tuned channel, not receiving
        self.assertEqual(chip.freq_reg, expected_freq_word(plan_hz(28, 3)))
        self.assertEqual(chip.mode, STBY_RC)
        self.assertEqual(chip.violations, [])

    def test_energy_without_a_tuned_channel(self):
        radio, chip, _ = make(band="915")
        chip.rssi_raw = 140
        self.assertEqual(radio.energy(31, 26), -70)
        self.assertTrue(radio.ready)


if __name__ == "__main__":
    unittest.main()

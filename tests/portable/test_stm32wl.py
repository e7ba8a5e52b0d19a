# The STM32WL55 sub-GHz radio driver: the SX126x command set through the `stm` module's
# plumbing (SimStm over a SimSx126x in its stm32wl variant), LP/HP PAs, the Nucleo RF switch.
import unittest

from hal import phy
from hal.contracts import RadioError
from hal.sim.chips.bus import SimPin, SimSpiBus
from hal.sim.chips.stm32wl import SimStm
from hal.sim.chips.sx126x import RX, SLEEP, STBY_RC, SimSx126x
from hal.stm32wl import NucleoFrontEnd, Stm32wlRadio
from tests.kits.chipkit import FakeClock

XTAL = 32000000


def expected_freq_word(hz):
    return (hz * 2**25 + XTAL // 2) // XTAL  # RM0453 Set_RfFrequency, HSE32, nearest step


def plan_hz(page, ch):
    return (915350000 if page == 31 else 863250000) + 200000 * ch


class RecordingFrontEnd(NucleoFrontEnd):
    """The Nucleo switch on fake pins, noting each state and how many SetTx had run by then."""

    def __init__(self, chip):
        self.pins = (SimPin("PC4"), SimPin("PC5"), SimPin("PC3"))
        NucleoFrontEnd.__init__(self, *self.pins)
        self.chip = chip
        self.log = []

    def _set(self, levels, state):
        NucleoFrontEnd._set(self, levels, state)
        self.log.append((state, self.chip.count(0x83)))


def make(band="868", cap=14, front_end=True):
    chip = SimSx126x("stm32wl")
    bus = SimSpiBus(chip)
    stm = SimStm(bus)
    fe = RecordingFrontEnd(chip) if front_end else None
    radio = Stm32wlRadio(bus, stm, band=band, tx_power_cap_dbm=cap, front_end=fe, clock=FakeClock())
    return radio, chip, bus, stm, fe


class Configuration(unittest.TestCase):
    def test_constructing_touches_no_hardware(self):
        radio, chip, bus, stm, fe = make()
        self.assertEqual(bus.transactions, [])
        self.assertEqual(stm.irq_handlers, [])
        self.assertEqual(fe.log, [])

    def test_init(self):
        radio, chip, bus, stm, fe = make()
        radio.init()
        self.assertEqual(stm.irq_handlers, [None])  # polled: radio IRQ kept off
        self.assertEqual(chip.tcxo, (0x01, 320))  # 1.7 V on PB0-VDDTCXO, 5 ms
        self.assertEqual(chip.last(0x07), b"\x00")  # Clr_Error with ONE parameter byte
        self.assertEqual(chip.errors, 0)
        self.assertEqual(chip.calibrations, [0x7F])
        self.assertFalse(chip.dio2_rf_switch)
        self.assertEqual(chip.regulator, 0)  # LDO unless asked
        self.assertEqual(chip.packet_type, 0x00)
        self.assertEqual(chip.mod_params, bytes((0x00, 0x28, 0x00, 0x09, 0x0A, 0x00, 0x8F, 0x5C)))
        self.assertEqual(chip.packet_params, bytes((0x00, 0x40, 0x05, 0x10, 0x00, 0x01, 125, 0x06, 0x01)))
        self.assertEqual(bytes(chip.regs[0x06C0:0x06C2]), b"\x90\x4e")
        self.assertEqual(chip.regs[0x08D8], 0xC8)  # the SX1262 clamp workaround is not applied
        self.assertEqual(chip.image_cal, (0xD7, 0xDB))
        # +14 dBm on the LP PA (RM0453 table 35): duty 0x04, HpMax 0, PaSel 1; power +14
        self.assertEqual(chip.pa_config, (0x04, 0x00, 0x01, 0x01))
        self.assertEqual(chip.tx_params, (14, 0x02))
        self.assertEqual(chip.regs[0x08E7], 0x18)  # 60 mA limit for the LP PA
        self.assertEqual(fe.state, "off")
        self.assertEqual(chip.violations, [])

    def test_busy_stuck(self):
        radio, chip, _, _, _ = make()
        chip.stuck_busy = True
        with self.assertRaises(RadioError):
            radio.init()

    def test_sleep_and_wake_through_subghz_cs(self):
        radio, chip, _, _, _ = make()
        radio.tune(28, 2)
        radio.deinit()
        self.assertEqual(chip.mode, SLEEP)
        radio.init()
        self.assertEqual(chip.mode, STBY_RC)
        self.assertEqual(chip.freq_reg, expected_freq_word(plan_hz(28, 2)))
        self.assertEqual(chip.violations, [])

    def test_a_radio_left_asleep_by_an_earlier_run_is_woken(self):
        radio, chip, bus, stm, _ = make()
        radio.init()
        radio.deinit()  # e.g. a soft reboot after this: the radio has no reset line
        self.assertEqual(chip.mode, SLEEP)
        again = Stm32wlRadio(bus, stm, band="868", tx_power_cap_dbm=14, clock=FakeClock())
        again.init()
        self.assertTrue(again.ready)
        self.assertEqual(chip.mode, STBY_RC)
        self.assertEqual(chip.violations, [])


class Channels(unittest.TestCase):
    def test_every_channel_of_each_variant(self):
        for band, pages in (("868", (28, 29, 30)), ("915", (31,))):
            radio, chip, _, _, _ = make(band=band)
            for page in pages:
                first, last, _ = phy.PLAN[page]
                for ch in range(first, last + 1):
                    radio.tune(page, ch)
                    self.assertEqual(chip.freq_reg, expected_freq_word(plan_hz(page, ch)))
            self.assertEqual(chip.violations, [])

    def test_refusals(self):
        radio, _, bus, _, _ = make(band="915")
        with self.assertRaises(RadioError):
            radio.tune(28, 0)
        with self.assertRaises(phy.ChannelError):
            radio.tune(31, 27)
        self.assertFalse(radio.can_tune(30, 40))
        self.assertTrue(radio.can_tune(31, 26))
        self.assertEqual(bus.transactions, [])


class Power(unittest.TestCase):
    def test_lp_and_hp_settings(self):
        radio, chip, _, _, _ = make(cap=22)
        radio.init()
        self.assertEqual(radio.tx_power_dbm, 22)
        self.assertEqual(chip.pa_config, (0x04, 0x07, 0x00, 0x01))  # HP
        self.assertEqual(chip.tx_params, (22, 0x02))
        self.assertEqual(chip.regs[0x08E7], 0x38)  # 140 mA
        cases = (
            (20, (0x03, 0x05, 0x00, 0x01), 22, 0x38),
            (17, (0x02, 0x03, 0x00, 0x01), 22, 0x38),
            (16, (0x04, 0x07, 0x00, 0x01), 16, 0x38),
            (15, (0x06, 0x00, 0x01, 0x01), 14, 0x18),
            (14, (0x04, 0x00, 0x01, 0x01), 14, 0x18),
            (12, (0x04, 0x00, 0x01, 0x01), 12, 0x18),
            (10, (0x01, 0x00, 0x01, 0x01), 13, 0x18),
        )
        for dbm, pa, power, ocp in cases:
            self.assertEqual(radio.set_tx_power(dbm), dbm)
            self.assertEqual((chip.pa_config, chip.tx_params[0], chip.regs[0x08E7]), (pa, power, ocp), dbm)
        self.assertEqual(radio.set_tx_power(-30), -17)
        self.assertEqual(chip.tx_params[0], -17)

    def test_cap(self):
        radio, chip, _, _, _ = make(cap=14)
        radio.init()
        self.assertEqual(radio.set_tx_power(22), 14)
        self.assertEqual(chip.pa_config[2], 0x01)  # still the LP PA


class RadioPaths(unittest.TestCase):
    def test_transmit_switches_the_front_end_around_set_tx(self):
        radio, chip, _, _, fe = make()
        radio.tune(28, 20)
        self.assertEqual(radio.transmit(b"\x01\x02\x03"), (8 + 2 + 2 + 3 + 2) * 80)
        self.assertEqual(chip.sent[0][:2], (expected_freq_word(plan_hz(28, 20)), b"\x01\x02\x03"))
        self.assertIn(("tx_lp", 0), fe.log)  # switched to TX before SetTx ran
        self.assertEqual(fe.log[-1], ("off", 1))
        self.assertEqual([p.value() for p in fe.pins], [0, 0, 0])
        self.assertEqual(chip.violations, [])

    def test_hp_transmit(self):
        radio, chip, _, _, fe = make(cap=22)
        radio.tune(28, 20)
        radio.set_tx_power(20)
        radio.transmit(b"far")
        self.assertIn(("tx_hp", 0), fe.log)

    def test_receive_and_energy(self):
        radio, chip, _, _, fe = make()
        radio.tune(29, 28)
        chip.incoming.append([b"meter", True, None])
        self.assertEqual(radio.receive(10), b"meter")
        self.assertEqual(fe.state, "rx")
        self.assertEqual(chip.mode, RX)
        self.assertEqual([p.value() for p in fe.pins], [1, 0, 1])
        chip.rssi_by_freq[expected_freq_word(plan_hz(29, 30))] = 190
        self.assertEqual(radio.energy(29, 30), -95)
        self.assertEqual(chip.freq_reg, expected_freq_word(plan_hz(29, 28)))
        self.assertEqual(fe.state, "off")
        self.assertEqual(chip.violations, [])

    def test_tx_failures(self):
        for outcome in ("hang", "timeout"):
            radio, chip, _, _, fe = make()
            radio.tune(28, 0)
            chip.tx_outcome = outcome
            with self.assertRaises(RadioError):
                radio.transmit(b"x")
            self.assertEqual(fe.state, "off")
        with self.assertRaises(RadioError):
            radio.transmit(bytes(126))

    def test_without_a_front_end(self):
        radio, chip, _, _, _ = make(front_end=False)
        radio.tune(28, 0)
        radio.transmit(b"bare")
        self.assertEqual(chip.sent[0][1], b"bare")


if __name__ == "__main__":
    unittest.main()

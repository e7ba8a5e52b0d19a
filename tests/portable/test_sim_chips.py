# The chip models on the simulated medium, under the real drivers: a frame goes on the air on
# the channel the frequency register names, with its airtime; frames others send arrive in the
# chip; RSSI is the medium's energy; a board module's radio runs on a wired chip.
import unittest

from agent.hub import Hub
from boards import simchips
from hal import phy
from hal.mcu import StaticIdentity
from hal.sim.chips.air import channel_of
from hal.sim.radio import Medium
from hal.sim.vclock import VirtualClock

DRIVERS = ("sx1262", "rfm69", "stm32wl")


def world(**kw):
    clock = VirtualClock()
    kw.setdefault("jitter_db", 0)
    return clock, Medium(clock, **kw)


class Channels(unittest.TestCase):
    def test_every_channel_of_the_plan_from_its_frequency(self):
        for page, (first, last, _) in phy.PLAN.items():
            for ch in range(first, last + 1):
                hz = phy.frequency_hz(page, ch)
                self.assertEqual(channel_of(hz), (page, ch))
                self.assertEqual(channel_of(hz + 61), (page, ch))  # an RFM69 step off
        self.assertIsNone(channel_of(phy.frequency_hz(28, 0) + 100000))  # between two channels
        self.assertIsNone(channel_of(433920000))

    def test_a_driver_transmits_on_the_channel_it_tuned(self):
        for kind in DRIVERS:
            clock, medium = world()
            radio, chip = simchips.make_radio(kind, clock, medium, "868", 14)
            listener, _ = simchips.make_radio("sim", clock, medium, "868", 14)
            radio.tune(29, 30)
            self.assertEqual(radio.transmit(b"on 29/30"), phy.airtime_us(8))
            self.assertEqual((medium.frames, medium.airtime_us_total), (1, phy.airtime_us(8)), kind)
            listener.tune(29, 31)
            self.assertIsNone(listener.receive(50), kind)
            listener.tune(29, 30)
            self.assertEqual(listener.receive(50), b"on 29/30", kind)
            self.assertEqual(chip.frames_sent, 1)
            self.assertEqual(chip.violations, [], kind)


class Airtime(unittest.TestCase):
    def test_a_transmission_lasts_its_airtime(self):
        for kind in DRIVERS:
            clock, medium = world()
            radio, _ = simchips.make_radio(kind, clock, medium, "868", 14)
            radio.tune(28, 3)
            start = clock.monotonic_ms()
            radio.transmit(b"x" * 125)
            # the driver waits for TxDone / PacketSent: the frame's airtime (11.1 ms) has passed
            self.assertEqual(clock.monotonic_ms() - start, (phy.airtime_us(125) + 999) // 1000, kind)

    def test_what_others_hear_of_a_chip_is_its_pa_output(self):
        for kind in DRIVERS:
            for cap in (14, 10, 2):
                clock, medium = world()
                radio, chip = simchips.make_radio(kind, clock, medium, "868", cap)
                radio.tune(28, 3)
                radio.transmit(b"power")
                self.assertEqual(chip.tx_power_dbm, cap, (kind, cap))


class Receive(unittest.TestCase):
    def test_frames_from_the_medium_reach_the_driver(self):
        for kind in DRIVERS:
            clock, medium = world()
            radio, chip = simchips.make_radio(kind, clock, medium, "868", 14)
            radio.tune(30, 40)
            medium.inject(30, 40, b"first", at_ms=5)
            medium.inject(30, 41, b"elsewhere")
            medium.inject(30, 40, b"y" * 125, at_ms=30)
            self.assertEqual(radio.receive(100), b"first", kind)
            self.assertGreaterEqual(clock.monotonic_ms(), 5)
            self.assertEqual(radio.receive(100), b"y" * 125, kind)
            self.assertGreaterEqual(clock.monotonic_ms(), 30)
            self.assertIsNone(radio.receive(20), kind)
            self.assertEqual(chip.violations, [], kind)

    def test_two_drivers_talk_to_each_other(self):
        for a_kind in DRIVERS:
            for b_kind in DRIVERS:
                clock, medium = world()
                a, _ = simchips.make_radio(a_kind, clock, medium, "915", 14)
                b, _ = simchips.make_radio(b_kind, clock, medium, "915", 14)
                a.tune(31, 7)
                b.tune(31, 7)
                b.receive(0)  # b listening
                a.transmit(b"ping")
                self.assertEqual(b.receive(50), b"ping", (a_kind, b_kind))
                b.transmit(b"pong")
                self.assertEqual(a.receive(50), b"pong", (a_kind, b_kind))


class Energy(unittest.TestCase):
    def test_rssi_is_the_medium_energy(self):
        for kind in DRIVERS:
            clock, medium = world(noise_dbm=-97)
            radio, chip = simchips.make_radio(kind, clock, medium, "868", 14)
            radio.tune(28, 3)
            self.assertEqual(radio.energy(28, 9), -97, kind)
            other, _ = simchips.make_radio("sim", clock, medium, "868", 14)
            other.tune(28, 9)
            other.transmit(b"z" * 125)  # 14 dBm less 60 dB of path: -46 dBm while on air
            self.assertEqual(radio.energy(28, 9), -46, kind)
            self.assertEqual(radio.energy(28, 10), -97, kind)
            self.assertEqual(chip.violations, [], kind)

    def test_same_seed_same_readings_as_the_direct_simulation(self):
        readings = {}
        for kind in ("sim",) + DRIVERS:
            clock, medium = world(seed=7, jitter_db=2)
            radio, _ = simchips.make_radio(kind, clock, medium, "868", 14)
            readings[kind] = [radio.energy(28, ch) for ch in range(10)]
        for kind in DRIVERS:
            self.assertEqual(readings[kind], readings["sim"], kind)


class Allocation(unittest.TestCase):
    """On MicroPython every allocation brings the next collection of the whole heap nearer (the
    agent collects after every 8 KB): a frame sent through a driver and its chip allocates
    nothing, not even a call frame taken from the heap (micropython.mem_total counts those)."""

    def mem_total(self):
        try:
            from micropython import mem_total
        except ImportError:
            self.skipTest("micropython.mem_total: MicroPython only")
        return mem_total

    def test_transmit_allocates_nothing_but_the_rfm69_refill_views(self):
        # but the views of a frame the RFM69's FIFO refills from (the frame and 3 bursts: 4
        # memoryviews, 32 bytes each on a 64-bit port)
        mem_total = self.mem_total()
        for kind in DRIVERS:
            for n in (20, 125):  # within the RFM69's FIFO, and a frame it refills
                clock, medium = world(recent_size=2)  # (the medium's ring: full at once)
                radio, _ = simchips.make_radio(kind, clock, medium, "868", 14)
                radio.tune(28, 3)
                frame = bytes(n)
                for _ in range(3):
                    radio.transmit(frame)
                t = mem_total()
                for _ in range(5):
                    radio.transmit(frame)
                views = 4 if kind == "rfm69" and n > 65 else 0
                self.assertLessEqual(mem_total() - t, 5 * views * 32, (kind, n))

    def test_energy_allocates_no_more_than_the_direct_simulation(self):
        mem_total = self.mem_total()
        used = {}
        for kind in ("sim",) + DRIVERS:
            clock, medium = world()
            radio, _ = simchips.make_radio(kind, clock, medium, "868", 14)
            radio.tune(28, 3)
            for ch in range(4):
                radio.energy(28, ch)
            t = mem_total()
            for ch in range(4):
                radio.energy(28, ch)
            used[kind] = mem_total() - t  # the medium's float arithmetic
        for kind in DRIVERS:
            self.assertLessEqual(used[kind], used["sim"], kind)


class Boards(unittest.TestCase):
    def test_a_board_module_runs_a_hub_on_simulated_chips(self):
        for name in ("heltec_wifi_lora32_v3", "pico_rfm69", "nucleo_wl55jc"):
            from agent.examples import DBCH04_CONFIG
            from hal.fs_storage import FileStorage
            from hal.sim.flash import SimFlash

            clock, medium = world()
            storage = FileStorage("/hub", fs=SimFlash())
            hal = simchips.board_hal(name, clock, storage, StaticIdentity(b"\x00\xdb\x01\x02\x03\x04\x05\x06"), medium)
            self.assertEqual(hal.board.NAME, name)
            hub = Hub(hal, hal.board)
            self.assertEqual(
                hub.handle({"t": "q", "id": 1, "op": "config.set", "a": {"config": DBCH04_CONFIG}})[0], "I0"
            )
            rc, data, _ = hub.handle({"t": "q", "id": 2, "op": "send", "a": {"count": 3, "len": 20}})
            self.assertEqual((rc, data["sent"]), ("I0", 3), name)
            self.assertEqual(medium.frames, 3, name)

    def test_kinds_and_refusals(self):
        clock, medium = world()
        for kind in simchips.RADIOS:
            radio, chip = simchips.make_radio(kind, clock, medium, "868", 14)
            self.assertEqual(radio.band, "868")
            self.assertEqual(chip is None, kind == "sim")
        with self.assertRaises(ValueError):
            simchips.make_radio("cc1101", clock, medium, "868", 14)
        with self.assertRaises(ValueError):
            simchips.make_radio("unix", clock, medium, "868", 14)  # a board without a radio chip

    def test_a_power_cut_takes_the_chip_off_the_air(self):
        from boards.sim import Rig

        rig = Rig(radio="sx1262")
        first = rig.chip
        self.assertIn(first, rig.medium.radios)
        rig.boot()
        self.assertNotIn(first, rig.medium.radios)
        self.assertEqual(rig.medium.radios, [rig.chip])


if __name__ == "__main__":
    unittest.main()

# The real-board modules: their data is complete and consistent, importing them needs no
# `machine` and touches nothing, and make_hal() builds a working Hal when `machine` (and `stm`)
# are the bus-level chip simulations of hal.sim.chips.
import sys
import unittest

from boards import simchips
from hal import phy
from hal.contracts import Hal, Radio

BOARD_NAMES = ("heltec_wifi_lora32_v3", "pico_rfm69", "nucleo_wl55jc")
REQUIRED_PINS = {
    "SX1262": ("sck", "mosi", "miso", "cs", "reset", "busy", "dio1"),
    "RFM69HCW": ("sck", "mosi", "miso", "cs", "reset", "dio0"),
    "STM32WL SUBGHZ": ("fe_ctrl1", "fe_ctrl2", "fe_ctrl3"),
}
_MISSING = object()


def board(name):
    return __import__("boards." + name, None, None, ["make_hal"])


class Poison:
    """Stands in for `machine` / `stm` while a board module is imported: any use fails."""

    def __getattr__(self, name):
        raise AssertionError("a board module used the hardware at import ({})".format(name))


class FakeFileStorage:
    def __init__(self, root):
        self.root = root


class FakeFsModule:
    FileStorage = FakeFileStorage


class FakeStreamLink:
    def __init__(self, inp, out):
        self.streams = (inp, out)


class FakeLinkModule:
    StreamLink = FakeStreamLink


class ModuleSwap:
    """Put stand-ins into sys.modules, and put back what was there."""

    def __init__(self):
        self.saved = {}

    def put(self, name, obj):
        if name not in self.saved:
            self.saved[name] = sys.modules.get(name, _MISSING)
        sys.modules[name] = obj

    def drop(self, name):
        if name not in self.saved:
            self.saved[name] = sys.modules.get(name, _MISSING)
        if name in sys.modules:
            del sys.modules[name]

    def restore(self):
        for name, old in self.saved.items():
            if old is _MISSING:
                if name in sys.modules:
                    del sys.modules[name]
            else:
                sys.modules[name] = old
        self.saved = {}


_UIDS = {
    "heltec_wifi_lora32_v3": b"\x48\x27\xe2\x01\x02\x03",  # an ESP32-S3's EUI-48
    "pico_rfm69": b"\xe6\x61\x41\x04\x03\x5b\x2c\x21",
    "nucleo_wl55jc": bytes(range(12)),
}


def wire(name):
    """(machine, stm or None, chip) wired the way the board's PINS say (boards.simchips)."""
    return simchips.wire(board(name), uid=_UIDS[name])


class BoardData(unittest.TestCase):
    def test_every_board_is_complete(self):
        for name in BOARD_NAMES:
            m = board(name)
            self.assertEqual(m.NAME, name)
            for field in ("MCU", "RADIO", "DESCRIPTION", "STORAGE_ROOT"):
                value = getattr(m, field)
                self.assertTrue(isinstance(value, str) and value, (name, field))
            self.assertIn(m.BAND, ("868", "915"))
            self.assertIn(m.BAND, m.BANDS)
            for b in m.BANDS:
                self.assertIn(b, ("868", "915"))
            self.assertEqual(m.REGULATED_DUTY_CYCLE_PERMILLE, 25)
            self.assertIsInstance(m.TX_POWER_CAP_DBM, int)
            self.assertTrue(0 < m.TX_POWER_CAP_DBM <= 14, name)  # 25 mW ERP in 863-870 MHz
            self.assertTrue(callable(m.make_hal))
            self.assertTrue(m.STORAGE_ROOT.startswith("/"))
            self.assertIn(m.TRIAGE_LINK, (True, False))

    def test_pins_present_and_distinct(self):
        for name in BOARD_NAMES:
            m = board(name)
            self.assertIsInstance(m.PINS, dict)
            for role in REQUIRED_PINS[m.RADIO]:
                self.assertIn(role, m.PINS, (name, role))
            ids = list(m.PINS.values())
            for pid in ids:
                self.assertTrue(isinstance(pid, (int, str)), (name, pid))
                self.assertEqual(ids.count(pid), 1, (name, pid))

    def test_import_needs_no_machine_and_has_no_side_effects(self):
        swap = ModuleSwap()
        try:
            swap.put("machine", Poison())
            swap.put("stm", Poison())
            for name in BOARD_NAMES:
                swap.drop("boards." + name)
                m = board(name)
                self.assertFalse(hasattr(m, "machine"), name)
                self.assertFalse(hasattr(m, "stm"), name)
                self.assertFalse(hasattr(m, "Hal"), name)
        finally:
            swap.restore()

    def test_no_top_level_hardware_imports(self):
        for name in BOARD_NAMES:
            with open(_root() + "/boards/" + name + ".py") as f:
                for line in f:
                    if line.startswith("from hal.compat import const"):
                        continue  # the one import at the top: const() touches nothing
                    for bad in ("import machine", "from machine", "import stm", "from stm", "from hal", "import hal"):
                        self.assertFalse(line.startswith(bad), (name, line))


def _root():
    here = __file__.replace("\\", "/")
    cut = here.rfind("/tests/portable/")
    return here[:cut] if cut >= 0 else "."


class MakeHal(unittest.TestCase):
    def setUp(self):
        self.swap = ModuleSwap()
        self.swap.put("hal.fs_storage", FakeFsModule())

    def tearDown(self):
        self.swap.restore()

    def build(self, name, **kw):
        if "link" not in kw:
            kw["link"] = None
        machine, stm, chip = wire(name)
        self.swap.put("machine", machine)
        if stm is not None:
            self.swap.put("stm", stm)
        hal = board(name).make_hal(**kw)
        return hal, machine, stm, chip

    def test_builds_a_hal_without_touching_the_radio(self):
        for name in BOARD_NAMES:
            hal, machine, stm, chip = self.build(name)
            m = board(name)
            self.assertIsInstance(hal, Hal)
            self.assertIsInstance(hal.radio, Radio)
            self.assertIs(hal.board, m)
            self.assertEqual(hal.radio.band, m.BAND)
            self.assertEqual(hal.radio.tx_power_cap_dbm, m.TX_POWER_CAP_DBM)
            self.assertIs(hal.radio.clock, hal.clock)
            self.assertEqual(hal.storage.root, m.STORAGE_ROOT)
            self.assertEqual(len(hal.identity.eui64()), 8)
            self.assertEqual(machine.bus.transactions, [], name)  # nothing sent yet
            self.assertFalse(hal.radio.ready)

    def test_radio_works_on_the_wired_fakes(self):
        for name in BOARD_NAMES:
            hal, machine, stm, chip = self.build(name)
            hal.radio.tune(28, 5)
            self.assertEqual(hal.radio.transmit(b"hello"), (8 + 2 + 2 + 5 + 2) * 80)
            self.assertEqual(chip.sent[-1][1], b"hello", name)
            chip.incoming.append([b"reply", True, None])
            self.assertEqual(hal.radio.receive(50), b"reply", name)
            self.assertEqual(chip.violations, [], name)
            hal.deinit()

    def test_band_decides_the_channels(self):
        for name in BOARD_NAMES:
            for band in board(name).BANDS:
                hal, _, _, _ = self.build(name, band=band)
                self.assertEqual(hal.radio.band, band)
                for page, (first, last, _) in phy.PLAN.items():
                    for ch in range(first, last + 1):
                        self.assertEqual(hal.radio.can_tune(page, ch), phy.band_of(page) == band, (name, page, ch))

    def test_overrides(self):
        hal, machine, _, _ = self.build("pico_rfm69", tx_power_cap_dbm=10, storage_root="/data", spi_baudrate=1000000)
        self.assertEqual(hal.radio.tx_power_cap_dbm, 10)
        self.assertEqual(hal.storage.root, "/data")
        self.assertEqual(machine.spi_args[0][1]["baudrate"], 1000000)
        hal, machine, _, _ = self.build("heltec_wifi_lora32_v3", pins={"cs": 7})
        self.assertIn(7, machine.made_pins)
        for name in BOARD_NAMES:
            with self.assertRaises(ValueError):
                self.build(name, band="433")
            with self.assertRaises(ValueError):
                self.build(name, colour="blue")

    def test_console_link_and_reset(self):
        self.swap.put("hal.stream_link", FakeLinkModule())
        for name in BOARD_NAMES:
            hal, machine, _, _ = self.build(name, link="console")
            self.assertIsInstance(hal.link, FakeStreamLink)
            self.assertIs(hal.link.streams[0], sys.stdin.buffer)
            self.assertIs(hal.link.streams[1], sys.stdout.buffer)
            hal.reset()
            self.assertEqual(machine.resets, 1)
            mine = FakeStreamLink(None, None)
            hal, _, _, _ = self.build(name, link=mine)
            self.assertIs(hal.link, mine)

    def test_identities(self):
        hal, _, _, _ = self.build("heltec_wifi_lora32_v3")
        self.assertEqual(hal.identity.eui64(), b"\x48\x27\xe2\xff\xfe\x01\x02\x03")  # EUI-48 inside
        hal, _, _, _ = self.build("nucleo_wl55jc")
        self.assertEqual(hal.identity.eui64()[0] & 0x03, 0x02)  # derived, locally administered


if __name__ == "__main__":
    unittest.main()

# Which of the agent's modules a hub holds. On MicroPython a module's code lives on the heap, so
# the hub loads the configuration validator and the parts of the firmware service only while
# they are needed (hal.compat.unload, which forgets a module on CPython too): checked on both.
import sys
import unittest

from agent import VERSION
from agent.examples import DBCH04_CONFIG
from hal.compat import unload
from tests.kits.fwkit import Device, Image

FW_CODE = (
    "agent.fw_service",
    "agent.fw_common",
    "agent.boot",
    "agent.fw_staging",
    "agent.fw_activate",
    "agent.fw_install",
    "agent.fw_image",
    "agent.p256",
)


class _Absent:
    pass


def loaded(names=FW_CODE):
    return [n for n in names if n in sys.modules]


class TestCodeOnHeap(unittest.TestCase):
    def setUp(self):
        for name in FW_CODE + ("agent.subghz",):  # what earlier tests (and their kit) imported
            unload(name)

    def ok(self, r):
        self.assertEqual(r[0], "I0", r[2])
        return r[1]

    def assertLoaded(self, names):
        self.assertEqual(loaded(), list(names))

    def test_a_board_without_firmware_files_boots_without_the_firmware_service(self):
        # no slots, no boot state, no activation record: the hub boots with agent.fw_service
        # unavailable (a stand-in without its names takes its place), so it never loads it
        sys.modules["agent.fw_service"] = _Absent()
        try:
            dev = Device(slots=False)
        finally:
            del sys.modules["agent.fw_service"]
        self.assertIsNone(dev.hub.firmware)
        self.assertEqual(self.ok(dev.call("hello"))["version"], VERSION)
        self.assertLoaded([])

    def test_a_board_with_slots_reads_its_version_then_lets_the_service_go(self):
        dev = Device()  # slot a holds version 1.0
        self.assertEqual(self.ok(dev.call("hello"))["version"], "1.0")
        self.assertIsNone(dev.hub.firmware)
        self.assertLoaded([])

    def test_staging_holds_the_parser_until_the_header_is_in_and_no_checking_code(self):
        dev = Device()
        img = Image("2.0", size=2000)
        r = self.ok(dev.send(img, chunk=5, stop_at=5))  # fw.begin, and a chunk inside the header
        self.assertEqual(r["offset"], 5)
        self.assertLoaded(["agent.fw_service", "agent.fw_common", "agent.fw_staging", "agent.fw_image"])
        r = self.ok(dev.send(img, chunk=500, stop_at=1000))  # the header is in: parser let go
        self.assertEqual(r["offset"], 1005)
        self.assertIsNotNone(dev.hub.firmware)
        self.assertLoaded(["agent.fw_service", "agent.fw_common", "agent.fw_staging"])
        st = self.ok(dev.call("fw.status"))  # agent.fw_activate, for this one operation
        self.assertEqual(st["staging"]["staged"], 1005)
        self.assertLoaded(["agent.fw_service", "agent.fw_common", "agent.fw_staging"])
        data = self.ok(dev.send(img, chunk=500))  # the rest, and fw.end: checked and unpacked
        self.assertEqual((data["slot"], data["version"]), ("b", "2.0"))
        self.assertIsNone(dev.hub.firmware)  # nothing pending: the service is let go
        self.assertLoaded([])
        st = self.ok(dev.call("fw.status"))  # loaded again when asked, and let go again
        self.assertEqual(st["slots"]["b"]["version"], "2.0")
        self.assertLoaded([])

    def test_a_refused_signature_leaves_no_signature_code_behind(self):
        dev = Device()
        img = Image("2.0")
        r = dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=Image("2.1").sig)
        self.assertEqual(r[0], "E100")
        # the service stays, holding the count of refused images (agent.incidents' Incidents, when
        # the hub has no recorder of its own), but not the checking code
        self.assertEqual(dev.hub.firmware.updater()._incidents.count("tampered_image"), 1)
        self.assertLoaded(["agent.fw_service", "agent.fw_common", "agent.fw_staging"])

    def test_a_scheduled_activation_keeps_the_service_but_not_the_activation_code(self):
        dev = Device()
        img = Image("2.0")
        self.ok(dev.send(img))
        self.ok(dev.call("fw.activate", hash=img.hash, execution="2099-01-01T00:00:00Z"))
        self.assertIsNotNone(dev.hub.firmware)  # it watches the time
        self.assertLoaded(["agent.fw_service", "agent.fw_common", "agent.fw_staging"])
        self.ok(dev.call("fw.cancel"))
        self.assertIsNone(dev.hub.firmware)
        self.assertLoaded([])

    def test_the_validator_is_loaded_for_one_configuration(self):
        dev = Device(slots=False)
        self.ok(dev.call("config.set", config=dict(DBCH04_CONFIG)))
        self.assertTrue(self.ok(dev.call("status"))["configured"])
        self.assertNotIn("agent.subghz", sys.modules)
        r = dev.call("config.set", config={"bogus": 1})  # refused: loaded and let go again
        self.assertNotEqual(r[0], "I0")
        self.assertNotIn("agent.subghz", sys.modules)


if __name__ == "__main__":
    unittest.main()

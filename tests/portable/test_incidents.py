# The security incident recorder (agent/incidents.py) on a board built without TLS: a refused
# firmware image is recorded, and a Major Security Incident raised, with hal.tls and the triage
# link's code unimportable (as on an rp2 board built without networking). Same on both runtimes.
import sys
import unittest

from agent.fw_common import RC_AUTH
from tests.kits.fwkit import OTHER_D, Device, Image, sign

_HIDDEN = ("hal.tls", "agent.triage", "agent.triage_link")


class _Unimportable:
    # Stands in for a module the board was built without: any use of it fails as its import would.
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        raise ImportError("no module named '{}'".format(self._name))


class TestWithoutTls(unittest.TestCase):
    def setUp(self):
        self.saved = []
        for name in _HIDDEN:
            package, _, leaf = name.rpartition(".")
            parent = sys.modules.get(package)
            held = parent.__dict__.get(leaf) if parent is not None else None
            self.saved.append((name, sys.modules.get(name), parent, leaf, held))
            sys.modules[name] = _Unimportable(name)
            if held is not None:
                delattr(parent, leaf)  # so `from hal import tls` finds the stand-in too

    def tearDown(self):
        for name, module, parent, leaf, held in self.saved:
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
            if held is not None:
                setattr(parent, leaf, held)

    def test_the_stand_ins_are_unimportable(self):
        with self.assertRaises(ImportError):
            from hal.tls import TriageLinkError  # noqa: F401
        with self.assertRaises(ImportError):
            from agent.triage import check_policy  # noqa: F401

    def incidents(self, dev):
        return [d for _k, d in dev.events("incident")]

    def test_a_tampered_image_is_recorded(self):
        dev = Device()
        img = Image("2.0")
        r = dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=sign(img.hash, OTHER_D))
        self.assertEqual(r[0], RC_AUTH)
        inc = dev.hub.firmware.updater()._incidents
        self.assertEqual(inc.count("tampered_image"), 1)
        reports = self.incidents(dev)
        self.assertEqual([(d["trigger"], d["incident"]) for d in reports], [("tampered_image", 1)])
        self.assertIn("bad signature", reports[0]["detail"])

    def test_a_payload_that_is_not_what_was_signed_is_recorded(self):
        dev = Device()
        img = Image("2.0")
        twin = Image("2.0", tag="twin")  # the same length, other bytes
        self.assertEqual(dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig)[0], "I0")
        self.assertEqual(dev.call("fw.chunk", offset=0, data=twin.content)[0], "I0")
        rc, _data, err = dev.call("fw.end")
        self.assertEqual(rc, RC_AUTH, err)
        self.assertEqual([d["trigger"] for d in self.incidents(dev)], ["tampered_image"])

    def test_an_image_below_the_minimum_is_recorded(self):
        dev = Device(first=Image("2.0"))
        self.assertEqual(dev.send(Image("1.0"))[0], "E5")
        self.assertEqual([d["trigger"] for d in self.incidents(dev)], ["image_rollback"])


if __name__ == "__main__":
    unittest.main()

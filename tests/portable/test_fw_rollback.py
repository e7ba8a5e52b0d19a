# Anti-rollback (agent/fw_service.py, agent/fw_staging.py): an image's security counter against the
# hub's minimum. An older image is refused as soon as its header is in, at fw.begin when the
# header is already known, at fw.end and at fw.activate, with E5, and each refusal is a
# security incident; the minimum goes up when a trial is confirmed and survives a power cut at
# every write around that; a signed rollback permission lets one named image in on one named
# hub, and a tampered one is refused.
import unittest

from agent import boot
from agent.boot import BELOW_MIN, MIN_FILE, counter, read_min, version_counter
from hal.contracts import PowerCut
from tests.kits.fwkit import OTHER_D, ROOT, Device, Image, install, permit


def ok(test, r):
    test.assertEqual(r[0], "I0", r[2])
    return r[1]


def rollback_incidents(dev):
    return [d for _k, d in dev.events("incident") if d["trigger"] == "image_rollback"]


def updated(first, nxt):
    """A device that ran first and has confirmed nxt (slot b); first is left in slot a."""
    dev = Device(first=first)
    dev.send(nxt)
    dev.call("fw.activate", hash=nxt.hash, execution=None)
    dev.boot()
    dev.run_healthy()
    return dev


class TestCounter(unittest.TestCase):
    def test_from_the_version(self):
        for v, n in (
            ("0.2.0", 2000),
            ("0.0.1", 1),
            ("1.0", 1000000),
            ("2", 2000000),
            ("1.2.3rc", 1002003),
            ("0.1.0d", 1000),
            ("7.0b", 7000000),
            ("1.2.3.4", 1002003),
            ("999.9.9", 999009009),
            ("dev", 0),
            ("v1.2", 0),
            ("1000.0", 0),
        ):
            self.assertEqual(version_counter(v), n, v)

    def test_the_manifest_field_wins(self):
        self.assertEqual(counter({"version": "9.0", "sec": 5}), 5)
        self.assertEqual(counter({"version": "9.0"}), 9000000)
        self.assertEqual(counter({"version": "9.0", "sec": True}), 9000000)  # not a counter
        self.assertEqual(counter({}), 0)


class TestRefusals(unittest.TestCase):
    def test_the_minimum_starts_at_the_running_image(self):
        dev = Device(first=Image("2.0"))
        self.assertEqual(read_min(dev.flash, ROOT), 2000000)
        st = ok(self, dev.call("fw.status"))
        self.assertEqual((st["sec"], st["min"]), (2000000, 2000000))

    def test_an_older_image_is_refused_when_its_header_is_in(self):
        dev = Device(first=Image("2.0"))
        old = Image("1.5", size=2000)
        r = dev.send(old, chunk=5, stop_at=5)  # begin, and a chunk inside the header: not yet
        self.assertEqual(r[0], "I0", r[2])
        r = dev.send(old, chunk=500, stop_at=600)  # the chunk that completes the header
        self.assertEqual(r[0], "E5")
        self.assertIn("below this hub's minimum 2000000", r[2])
        self.assertEqual(r[1], {"sec": 1005000, "min": 2000000})
        st = ok(self, dev.call("fw.status"))
        self.assertIsNone(st["staging"])  # nothing of it kept
        self.assertIsNone(st["slots"]["b"])
        self.assertFalse(dev.flash.exists("/slots/stage.img"))
        inc = rollback_incidents(dev)
        self.assertEqual(len(inc), 1)
        self.assertIn("1.5", inc[0]["detail"])
        self.assertEqual(dev.call("fw.end")[0], "E5")  # nothing is being received

    def test_the_security_counter_field_decides_not_the_version(self):
        dev = Device(first=Image("2.0"))
        self.assertEqual(dev.send(Image("9.0", sec=5))[0], "E5")
        ok(self, dev.send(Image("0.0.1", sec=2000000)))  # equal: accepted

    def test_equal_and_higher_are_accepted_and_activated(self):
        for nxt in (Image("2.0", tag="another build"), Image("2.1")):
            dev = Device(first=Image("2.0"))
            self.assertEqual(ok(self, dev.send(nxt))["slot"], "b")
            ok(self, dev.call("fw.activate", hash=nxt.hash, execution=None))
            dev.boot()
            dev.run_healthy()
            self.assertEqual(ok(self, dev.call("fw.status"))["boot"]["active"], "b")
            self.assertEqual(rollback_incidents(dev), [])

    def test_the_previous_image_is_refused_at_begin_and_at_activation(self):
        first = Image("1.0")
        dev = updated(first, Image("2.0"))
        self.assertEqual(ok(self, dev.call("fw.status"))["slots"]["a"]["version"], "1.0")
        # its header is known at fw.begin: it is staged in slot a
        r = dev.call("fw.begin", hash=first.hash, size=len(first.content), sig=first.sig)
        self.assertEqual(r[0], "E5")
        self.assertIn("minimum", r[2])
        r = dev.call("fw.activate", hash=first.hash, execution=None)
        self.assertEqual(r[0], "E5")
        self.assertIn("below this hub's minimum 2000000", r[2])
        self.assertFalse(dev.hub.reboot_requested)
        self.assertIsNone(dev.hub.store.get("fw.act"))
        self.assertEqual(len(rollback_incidents(dev)), 1)  # a Major Security Incident, notified once
        self.assertEqual(dev.hub.firmware.updater()._incidents.count("image_rollback"), 2)
        self.assertEqual(dev.state()["active"], "b")

    def test_a_staged_image_is_refused_at_activation_once_the_minimum_passed_it(self):
        dev = Device(first=Image("1.0"))
        mid = Image("1.5")
        ok(self, dev.send(mid))  # allowed when it was staged
        install(dev.flash, "a", Image("3.0"))  # slot a flashed again with a newer image
        dev.boot()
        self.assertEqual(read_min(dev.flash, ROOT), 3000000)
        r = dev.call("fw.activate", hash=mid.hash, execution=None)
        self.assertEqual(r[0], "E5")
        self.assertEqual(len(rollback_incidents(dev)), 1)

    def test_a_staging_resumed_after_the_minimum_went_up_is_refused_at_begin(self):
        dev = Device(first=Image("1.0"))
        mid = Image("1.5", size=2000)
        self.assertEqual(dev.send(mid, stop_at=1000)[0], "I0")
        install(dev.flash, "b", Image("3.0"))  # the other slot: the staging is still there
        boot.start_trial(dev.flash, ROOT, "b", 1)
        dev.boot()
        dev.run_healthy()  # 3.0 confirmed: the minimum goes up
        r = dev.call("fw.begin", hash=mid.hash, size=len(mid.content), sig=mid.sig)
        self.assertEqual(r[0], "E5")
        self.assertIsNone(ok(self, dev.call("fw.status"))["staging"])

    def test_a_scheduled_activation_is_checked_again_when_due(self):
        dev = Device(first=Image("1.0"))
        mid = Image("1.5")
        ok(self, dev.send(mid))
        ok(self, dev.call("fw.activate", hash=mid.hash, execution=dev.clock.utc() + 60))
        f = dev.flash.open(boot.join(ROOT, MIN_FILE), "wb")  # the minimum went past it
        f.write(b'{"sec": 3000000}')
        f.close()
        dev.clock.advance_ms(60000)
        dev.hub.tick()
        self.assertFalse(dev.hub.reboot_requested)
        last = ok(self, dev.call("fw.status"))["last"]
        self.assertEqual(last["result"], "failed")
        self.assertIn("minimum", last["why"])


class TestMinimum(unittest.TestCase):
    def test_raised_when_the_trial_is_confirmed_not_before(self):
        dev = Device(first=Image("1.0"))
        new = Image("2.0")
        ok(self, dev.send(new))
        ok(self, dev.call("fw.activate", hash=new.hash, execution=None))
        self.assertEqual(read_min(dev.flash, ROOT), 1000000)
        dev.boot()
        self.assertTrue(ok(self, dev.call("fw.status"))["trial"])
        self.assertEqual(read_min(dev.flash, ROOT), 1000000)
        dev.run_healthy()
        self.assertEqual(read_min(dev.flash, ROOT), 2000000)

    def test_a_reverted_trial_never_raises_it(self):
        dev = Device(first=Image("1.0"))
        new = Image("2.0")
        ok(self, dev.send(new))
        ok(self, dev.call("fw.activate", hash=new.hash, execution=None))
        for _ in range(boot.MAX_TRIES + 1):
            dev.boot()
        self.assertEqual(dev.slot, "a")
        self.assertEqual(read_min(dev.flash, ROOT), 1000000)
        ok(self, dev.send(Image("1.5")))  # what was allowed still is

    def test_power_cut_at_every_write_around_the_confirmation(self):
        old, new, probe = Image("1.0"), Image("2.0"), Image("1.5")
        n = 1
        cuts = 0
        while True:
            dev = Device(first=old)
            ok(self, dev.send(new))
            ok(self, dev.call("fw.activate", hash=new.hash, execution=None))
            dev.boot()
            dev.flash.cut_at(dev.flash.writes + n)
            try:
                dev.run_healthy()  # the confirmation, the minimum, N64, the records
                dev.flash.cut_at(None)
                cut = False
            except PowerCut:
                cut = True
                cuts += 1
            for _ in range(3):
                dev.boot()
                st = dev.state()
                self.assertIn(read_min(dev.flash, ROOT), (1000000, 2000000))  # never lost, never torn
                if st["active"] == "b" and st["trial"] is None:
                    break
                dev.run_healthy()
            self.assertEqual((st["active"], dev.slot), ("b", "b"))
            # once the new image is confirmed the minimum is its counter, whatever was cut
            self.assertEqual(read_min(dev.flash, ROOT), 2000000)
            self.assertEqual(dev.send(probe)[0], "E5")
            self.assertEqual(dev.call("fw.activate", hash=old.hash, execution=None)[0], "E5")
            self.assertGreaterEqual(len(dev.events("N64")), 1)
            if not cut:
                break
            n += 1
        self.assertGreater(cuts, 4)

    def test_a_cut_between_confirmation_and_minimum_is_finished_at_start(self):
        dev = Device(first=Image("1.0"))
        new = Image("2.0")
        ok(self, dev.send(new))
        ok(self, dev.call("fw.activate", hash=new.hash, execution=None))
        dev.boot()
        boot.confirm(dev.flash, ROOT)  # the boot state says confirmed; the power goes
        self.assertEqual(read_min(dev.flash, ROOT), 1000000)
        dev.boot()
        self.assertEqual(read_min(dev.flash, ROOT), 2000000)

    def test_a_trial_below_the_minimum_is_not_booted(self):
        # the boot state pointing at the old slot (not through fw.activate): the bootloader
        # reverts it before it runs, and the agent on the active slot records the refusal once
        first = Image("1.0")
        dev = updated(first, Image("2.0"))
        st = dev.state()
        boot.start_trial(dev.flash, ROOT, "a", st["attempt"] + 1)
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", False))
        self.assertFalse(dev.hub.reboot_requested)
        st = dev.state()
        self.assertEqual((st["active"], st["trial"], st["tries"]), ("b", None, 0))
        self.assertEqual((st["reverted"]["slot"], st["reverted"]["why"]), ("a", BELOW_MIN))
        self.assertTrue(st["reverted"]["noted"])
        incidents = rollback_incidents(dev)
        self.assertEqual(len(incidents), 1)
        self.assertIn("slot a", incidents[0]["detail"])
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", False))
        self.assertEqual(len(rollback_incidents(dev)), 1)  # noted: not recorded again
        self.assertEqual(read_min(dev.flash, ROOT), 2000000)

    def test_a_trial_below_the_minimum_is_not_run_on(self):
        # the same under a bootloader that does not read the minimum: reverted at start
        first = Image("1.0")
        dev = updated(first, Image("2.0"))
        st = dev.state()
        boot.start_trial(dev.flash, ROOT, "a", st["attempt"] + 1)
        dev.boot(reads_min=False)
        self.assertEqual((dev.slot, dev.trial), ("a", True))
        self.assertTrue(dev.hub.reboot_requested)
        st = dev.state()
        self.assertEqual((st["active"], st["trial"]), ("b", None))
        self.assertEqual(st["reverted"]["why"], BELOW_MIN)
        self.assertEqual(len(rollback_incidents(dev)), 1)
        dev.run_healthy()  # no confirmation of the refused trial
        self.assertEqual(dev.state()["active"], "b")
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", False))
        self.assertEqual(len(rollback_incidents(dev)), 1)  # the agent's own refusal is noted too
        self.assertEqual(read_min(dev.flash, ROOT), 2000000)


class TestPermission(unittest.TestCase):
    def setUp(self):
        self.first = Image("1.0")
        self.dev = updated(self.first, Image("2.0"))

    def activate(self, p=None, img=None):
        args = {"hash": (img or self.first).hash, "execution": None}
        if p is not None:
            args["permit"] = p
        return self.dev.call("fw.activate", **args)

    def test_a_permitted_rollback_is_activated_and_confirmed_once(self):
        dev = self.dev
        p = permit(dev.hub.eui, self.first.hash)
        r = ok(self, self.activate(p))
        self.assertEqual((r["slot"], r["version"]), ("a", "1.0"))
        self.assertTrue(dev.state()["permit"])  # for the bootloader: the trial may be below
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("a", True))
        self.assertFalse(dev.hub.reboot_requested)  # the trial runs: it was permitted
        dev.run_healthy()
        st = ok(self, dev.call("fw.status"))
        self.assertEqual((st["version"], st["boot"]["active"], st["trial"]), ("1.0", "a", False))
        self.assertNotIn("permit", dev.state())  # used once: confirmed
        # the minimum never goes down: what is below it still needs a permission of its own
        self.assertEqual((st["sec"], st["min"]), (1000000, 2000000))
        self.assertEqual(rollback_incidents(dev), [])  # a permitted rollback is no incident
        self.assertEqual(dev.send(Image("1.5"))[0], "E5")
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("a", False))  # and it stays

    def test_a_permitted_image_is_staged(self):
        dev = Device(first=Image("2.0"))
        old = Image("1.0", size=1500)
        self.assertEqual(dev.send(old)[0], "E5")
        p = permit(dev.hub.eui, old.hash)
        self.assertEqual(dev.send(old, stop_at=800, permit=p)[0], "I0")
        dev.boot()  # the staging remembers its permission across a reboot
        self.assertEqual(ok(self, dev.send(old, permit=p))["slot"], "b")
        self.assertEqual(dev.call("fw.activate", hash=old.hash, execution=None)[0], "E5")
        ok(self, dev.call("fw.activate", hash=old.hash, execution=None, permit=p))

    def test_a_tampered_permission_is_refused(self):
        dev = self.dev
        good = permit(dev.hub.eui, self.first.hash)
        bad = bytearray(good)
        bad[12] ^= 1  # inside the signed map
        r = self.activate(bytes(bad))
        self.assertIn(r[0], ("E100", "E49"))  # a changed byte breaks the signature or the map
        bad = bytearray(good)
        bad[-3] ^= 1  # the signature
        r = self.activate(bytes(bad))
        self.assertEqual(r[0], "E100")
        self.assertIn("rollback permission", r[2])
        self.assertEqual(len([d for _k, d in dev.events("incident") if d["trigger"] == "tampered_image"]), 1)
        self.assertEqual(self.activate(permit(dev.hub.eui, self.first.hash, d=OTHER_D))[0], "E100")
        self.assertEqual(self.activate(b"\x00" * 40)[0], "E49")
        self.assertEqual(self.activate(good[:-1])[0], "E49")
        self.assertFalse(dev.hub.reboot_requested)
        self.assertEqual(dev.state()["trial"], None)
        ok(self, self.activate(good))  # the genuine one still works

    def test_a_permission_for_another_hub_or_image_permits_nothing(self):
        dev = self.dev
        r = self.activate(permit(b"\x00\xdb\x12\x34\x56\x78\x90\xff", self.first.hash))
        self.assertEqual(r[0], "E5")
        self.assertIn("for hub", r[2])
        r = self.activate(permit(dev.hub.eui, b"\x42" * 32))
        self.assertEqual(r[0], "E5")
        self.assertIn("for image", r[2])
        self.assertFalse(dev.hub.reboot_requested)
        self.assertEqual(len(rollback_incidents(dev)), 1)

    def test_a_permission_is_used_once(self):
        dev = self.dev
        ok(self, self.activate(permit(dev.hub.eui, self.first.hash)))
        dev.boot()
        dev.run_healthy()  # back on 1.0
        nxt = Image("2.0")
        self.assertTrue(ok(self, dev.send(nxt))["ready"])  # still in slot b
        ok(self, dev.call("fw.activate", hash=nxt.hash, execution=None))
        dev.boot()
        dev.run_healthy()
        self.assertEqual(self.activate()[0], "E5")  # going back again needs the permission again

# Exactly once across a power cut: a configuration change is announced (8F2A, Sub GHz
# Configuration Changed) once, never again under a new seq after a reboot.
#
# The rule these tests pin, for a config.set cut by a power failure at any of its flash writes:
#   - the configuration in force after the reboot is the new one exactly when its record reached
#     the flash, and the old one otherwise (never a mixture);
#   - the configuration in force has been announced exactly once: one 8F2A carrying it in the
#     outbox (here nothing is acknowledged by a host, so every announcement is still pending);
#   - a change whose record did not reach the flash is not in force and is not announced (zero);
#   - a change that was answered I0 is in force and announced exactly once;
#   - the old configuration's announcement is neither lost nor repeated;
#   - never two, however many times the hub boots afterwards, and wherever a boot that has the
#     announcement to finish is itself cut.
import sys
import unittest

from agent.hub import Hub
from hal.contracts import PowerCut
from tests.kits.hubkit import Rig, config

OLD = config()
NEW = config(LowerBandSubGHzChannels0To26=[3, 4])


def announced(rig, cfg):
    """How many 8F2A in the outbox announce cfg."""
    return len([1 for code, p in rig.alerts() if code == "8F2A" and p == cfg])


def boot_cut(rig, k):
    """Power on and start a hub whose k-th flash write (k >= 1) cuts the power; True if it did."""
    rig.flash.power_on()
    rig.flash.cut_after(k)
    try:
        rig.hub = Hub(rig.hal(), sys.modules["boards.sim"])
    except PowerCut:
        return True
    rig.flash.cut_at(None)
    return False


class ExactlyOnce(unittest.TestCase):
    def check(self, rig, where, acknowledged=False):
        in_force = rig.call("config.get")[1]
        self.assertTrue(in_force in (OLD, NEW), where)
        if acknowledged:
            self.assertEqual(in_force, NEW, where)
        self.assertEqual(announced(rig, OLD), 1, where)
        self.assertEqual(announced(rig, NEW), 1 if in_force == NEW else 0, where)
        return in_force

    def test_a_cut_at_every_write_of_config_set_never_announces_twice(self):
        k = 1
        tried = new_in_force = boot_cuts = 0
        while True:
            rig = Rig()
            self.assertEqual(rig.call("config.set", config=OLD)[0], "I0")
            rig.flash.cut_after(k)
            try:
                rc = rig.call("config.set", config=NEW)[0]
            except PowerCut:
                rc = None
            rig.boot()
            where = "cut at write {} of config.set".format(k)
            in_force = self.check(rig, where, acknowledged=rc == "I0")
            rig.boot()  # and again: nothing more is announced
            self.check(rig, where + ", second boot")
            rig.drain()  # the host takes them: acknowledged, they are not made again
            rig.boot()
            self.assertEqual([c for c, _ in rig.alerts() if c == "8F2A"], [], where + ", after the acks")
            if rc is not None:
                self.assertEqual(rc, "I0")
                break  # the request ran whole: every write of it has been cut
            tried += 1
            new_in_force += in_force == NEW
            # the same cut, then a cut at every write of the boot that follows it
            j = 1
            while True:
                rig = Rig()
                rig.call("config.set", config=OLD)
                rig.flash.cut_after(k)
                with self.assertRaises(PowerCut):
                    rig.call("config.set", config=NEW)
                cut = boot_cut(rig, j)
                rig.boot()
                self.check(rig, "{}, then at write {} of the boot".format(where, j))
                if not cut:
                    break
                boot_cuts += 1
                j += 1
            k += 1
        self.assertGreater(tried, 5)  # the request writes the record, the alerts, the agility state
        self.assertTrue(0 < new_in_force < tried)  # both sides of the record's write were cut
        self.assertGreater(boot_cuts, tried)

    def test_an_announcement_acknowledged_before_a_reboot_is_not_made_again(self):
        rig = Rig()
        rig.call("config.set", config=OLD)
        rig.drain()  # the host has it
        for _ in range(3):
            rig.boot()
            self.assertEqual(rig.alerts(), [])
        self.assertEqual(rig.call("config.get")[1], OLD)

    def test_another_alert_raised_first_at_boot_does_not_stand_for_the_announcement(self):
        # The change's record reached the flash, its 8F2A did not; at the next boot another alert
        # takes the seq the record named before the configuration is restored: the change is
        # still announced, once, and not again at the boot after.
        rig = Rig()
        rig.call("config.set", config=OLD)
        rig.drain()
        start = rig.flash.writes
        rig.call("config.set", config=NEW)
        n = rig.flash.writes - start
        waiting = 0
        for k in range(1, n + 1):
            rig = Rig()
            rig.call("config.set", config=OLD)
            rig.drain()
            rig.flash.cut_after(k)
            with self.assertRaises(PowerCut):
                rig.call("config.set", config=NEW)
            rig.flash.power_on()
            rig.hub = AlertFirst(rig.hal(), sys.modules["boards.sim"])
            in_force = rig.call("config.get")[1]
            self.assertEqual(announced(rig, NEW), 1 if in_force == NEW else 0, k)
            codes = [c for c, _ in rig.alerts()]
            self.assertIn("8F2C", codes)
            if "8F2A" in codes and codes.index("8F2C") < codes.index("8F2A"):
                waiting += 1  # the announcement was this boot's to make, after the other alert
            rig.boot()
            self.assertEqual(announced(rig, NEW), 1 if in_force == NEW else 0, k)
        self.assertGreater(waiting, 0)  # some cuts left the announcement to this boot


class AlertFirst(Hub):
    """A hub whose firmware service raises an alert at boot, before the configuration is
    restored (as an activation's N64 would)."""

    def _fw_files(self):
        return True

    def fw(self):
        return self

    def _settle_fw(self):
        self.raise_alerts([(0x8F2C, None)])


class Starved(unittest.TestCase):
    def test_an_announcement_that_fails_is_made_at_the_next_boot_once(self):
        # No power cut: the 8F2A cannot be appended (out of memory) and the hub goes on, raising
        # other alerts under the seq the record named; the next boot announces the change, once.
        for form in ("new", "older"):
            rig = Rig()
            rig.call("config.set", config=OLD)
            rig.drain()
            outbox = rig.hub.outbox
            append = outbox.append
            calls = []

            def starved(kind, data=None, calls=calls, append=append):
                calls.append(kind)
                if len(calls) == 1:
                    raise MemoryError("memory allocation failed")
                return append(kind, data)

            outbox.append = starved
            with self.assertRaises(MemoryError):
                rig.call("config.set", config=NEW)
            outbox.append = append
            self.assertEqual(rig.call("config.get")[1], NEW)  # in force, not announced yet
            self.assertEqual(announced(rig, NEW), 0)
            self.assertEqual(rig.call("scan")[0], "I0")  # other alerts take the seqs
            self.assertGreater(len(rig.alerts()), 0)
            if form == "older":  # a record as an earlier version wrote it
                rig.hub.store.put("subghz", {"cfg": NEW, "announced": False})
            for _ in range(3):
                rig.boot()
                self.assertEqual(announced(rig, NEW), 1, form)
            self.assertEqual(announced(rig, OLD), 0, form)

    def test_a_record_of_an_earlier_version_marked_announced_is_not_announced_again(self):
        rig = Rig()
        rig.call("config.set", config=OLD)
        rig.drain()
        rig.hub.store.put("subghz", {"cfg": OLD, "announced": True})
        rig.boot()
        self.assertEqual(rig.alerts(), [])
        self.assertEqual(rig.call("config.get")[1], OLD)

# The bootloader's decisions (agent/boot.py): trial boots counted before they run, confirm,
# revert after MAX_TRIES, fallback to the bootable slot, and power cuts at every state write; its
# loop (agent/boot_main.py), which holds the choosing code only while it chooses.
import sys
import unittest

from agent import boot, boot_main
from hal.contracts import PowerCut
from hal.sim.flash import SimFlash


def state(**kw):
    st = boot.default_state()
    st.update(kw)
    return st


def both(slot):
    return True


class TestDecide(unittest.TestCase):
    def test_plain_boot_writes_nothing(self):
        self.assertEqual(boot.decide(state(), both), ("a", False, None))
        self.assertEqual(boot.decide(state(active="b"), both), ("b", False, None))

    def test_trial_boots_are_counted_then_reverted(self):
        st = state(trial="b", attempt=4)
        for n in range(1, boot.MAX_TRIES + 1):
            slot, trial, st = boot.decide(st, both)
            self.assertEqual((slot, trial, st["tries"]), ("b", True, n))
            self.assertEqual(boot.running(st), "b")
        slot, trial, st = boot.decide(st, both)
        self.assertEqual((slot, trial), ("a", False))
        self.assertIsNone(st["trial"])
        self.assertEqual(st["reverted"]["slot"], "b")
        self.assertEqual(st["reverted"]["attempt"], 4)
        self.assertIn("not confirmed", st["reverted"]["why"])
        self.assertEqual(boot.running(st), "a")

    def test_unbootable_trial_reverts_at_once(self):
        slot, trial, st = boot.decide(state(trial="b"), lambda s: s == "a")
        self.assertEqual((slot, trial), ("a", False))
        self.assertIn("not bootable", st["reverted"]["why"])

    def test_fallback_to_the_bootable_slot(self):
        slot, trial, st = boot.decide(state(active="a"), lambda s: s == "b")
        self.assertEqual((slot, trial, st["active"]), ("b", False, "b"))

    def test_nothing_bootable_runs_the_root(self):
        self.assertEqual(boot.decide(state(), lambda s: False), (None, False, None))

    def test_damaged_states_read_as_sane(self):
        for bad in (None, [], {"active": "z"}, {"active": "a", "trial": "a"}, {"tries": -1}, {"tries": True}):
            st = boot._clean(bad)
            self.assertIn(st["active"], boot.SLOTS)
            self.assertNotEqual(st["trial"], st["active"])
            self.assertGreaterEqual(st["tries"], 0)

    def test_running(self):
        self.assertEqual(boot.running(state(trial="b", tries=0)), "a")  # reboot not yet done
        self.assertEqual(boot.running(state(trial="b", tries=1)), "b")


def flash_with(slots=("a",)):
    fs = SimFlash()
    for s in slots:
        if not fs.exists("/slots"):
            fs.mkdir("/slots")
        fs.mkdir("/slots/" + s)
        f = fs.open("/slots/{}/{}".format(s, boot.MANIFEST), "wb")
        f.write(b'{"version": "v' + s.encode() + b'", "hash": "00"}')
        f.close()
    return fs


class TestOnFlash(unittest.TestCase):
    def test_missing_or_garbage_state(self):
        fs = flash_with(("a", "b"))
        self.assertEqual(boot.read_state(fs, "/"), boot.default_state())
        f = fs.open("/" + boot.STATE, "wb")
        f.write(b"{not json")
        f.close()
        self.assertEqual(boot.choose(fs, "/"), ("a", False))

    def test_trial_cycle_and_confirm(self):
        fs = flash_with(("a", "b"))
        boot.start_trial(fs, "/", "b", 1)
        self.assertEqual(boot.choose(fs, "/"), ("b", True))
        st = boot.confirm(fs, "/")
        self.assertEqual((st["active"], st["trial"]), ("b", None))
        self.assertEqual(boot.choose(fs, "/"), ("b", False))
        self.assertEqual(boot.read_manifest(fs, "/", "b")["version"], "vb")
        self.assertIsNone(boot.read_manifest(fs, "/", "z"))

    def test_confirm_without_a_running_trial_changes_nothing(self):
        fs = flash_with(("a", "b"))
        boot.start_trial(fs, "/", "b", 1)  # trial set, not booted yet
        st = boot.confirm(fs, "/")
        self.assertEqual((st["active"], st["trial"]), ("a", "b"))

    def test_revert_after_failed_boots(self):
        fs = flash_with(("a", "b"))
        boot.start_trial(fs, "/", "b", 7)
        seen = [boot.choose(fs, "/") for _ in range(boot.MAX_TRIES + 2)]
        self.assertEqual(seen, [("b", True)] * boot.MAX_TRIES + [("a", False)] * 2)
        self.assertEqual(boot.read_state(fs, "/")["reverted"]["attempt"], 7)

    def test_power_cut_at_every_write_of_a_trial(self):
        # start_trial, then boots until confirmed: after a cut anywhere the next boot starts a
        # bootable slot, and the state is the old one or the new one, never a torn file.
        n = 1
        while True:
            fs = flash_with(("a", "b"))
            base = fs.writes
            fs.cut_at(base + n)
            steps = [
                (boot.start_trial, (fs, "/", "b", 1)),
                (boot.choose, (fs, "/")),
                (boot.confirm, (fs, "/")),
            ]
            cut = False
            for fn, args in steps:
                try:
                    fn(*args)
                except PowerCut:
                    cut = True
                    break
            fs.power_on()
            slot, trial = boot.choose(fs, "/")
            self.assertIn(slot, ("a", "b"))
            self.assertTrue(boot.bootable(fs, "/", slot))
            st = boot.read_state(fs, "/")
            self.assertIn(st["active"], ("a", "b"))
            if not cut:
                self.assertEqual((slot, trial), ("b", False))
                break
            n += 1
        self.assertGreater(n, 5)


def _write(fs, path, data):
    f = fs.open(path, "wb")
    f.write(data)
    f.close()


class TestMinimum(unittest.TestCase):
    # The minimum security counter (fwmin.json): a trial below it is not booted, unless its
    # activation carried a rollback permission; a confirmed slot below it still boots.
    def setUp(self):
        fs = self.fs = flash_with(("a", "b"))
        _write(fs, "/slots/a/" + boot.MANIFEST, b'{"version": "2.0", "hash": "00"}')
        _write(fs, "/slots/b/" + boot.MANIFEST, b'{"version": "9.0", "sec": 1000000, "hash": "00"}')
        self.floor(2000000)

    def floor(self, n):
        _write(self.fs, "/" + boot.MIN_FILE, '{{"sec": {}}}'.format(n).encode())

    def test_a_trial_below_the_minimum_is_reverted_before_it_boots(self):
        boot.start_trial(self.fs, "/", "b", 4)
        self.assertEqual(boot.choose(self.fs, "/"), ("a", False))
        st = boot.read_state(self.fs, "/")
        self.assertEqual((st["active"], st["trial"], st["tries"]), ("a", None, 0))
        self.assertEqual(st["reverted"], {"slot": "b", "attempt": 4, "tries": 0, "why": boot.BELOW_MIN})

    def test_a_trial_at_the_minimum_boots(self):
        self.floor(1000000)  # the manifest's "sec" decides, not its version
        boot.start_trial(self.fs, "/", "b", 4)
        self.assertEqual(boot.choose(self.fs, "/"), ("b", True))

    def test_a_permitted_trial_boots_below_the_minimum_once(self):
        boot.start_trial(self.fs, "/", "b", 4, permit=True)
        self.assertEqual(boot.choose(self.fs, "/"), ("b", True))
        self.assertTrue(boot.read_state(self.fs, "/")["permit"])
        st = boot.confirm(self.fs, "/")
        self.assertEqual((st["active"], "permit" in st), ("b", False))
        self.assertEqual(boot.choose(self.fs, "/"), ("b", False))  # confirmed: it boots
        boot.start_trial(self.fs, "/", "a", 5, permit=True)
        boot.start_trial(self.fs, "/", "b", 6)  # a new trial does not inherit the permission
        self.assertNotIn("permit", boot.read_state(self.fs, "/"))

    def test_a_confirmed_slot_below_the_minimum_boots(self):
        self.floor(5000000)
        self.assertEqual(boot.choose(self.fs, "/"), ("a", False))
        self.assertIsNone(boot.read_state(self.fs, "/")["reverted"])

    def test_a_damaged_minimum_is_no_minimum(self):
        _write(self.fs, "/" + boot.MIN_FILE, b"{not json")
        self.assertEqual(boot.read_min(self.fs, "/"), 0)
        boot.start_trial(self.fs, "/", "b", 4)
        self.assertEqual(boot.choose(self.fs, "/"), ("b", True))

    def test_decide_asks_only_for_a_trial_without_a_permission(self):
        asked = []

        def below(slot):
            asked.append(slot)
            return True

        slot, trial, st = boot.decide(state(trial="b"), both, below_min=below)
        self.assertEqual((slot, trial, st["reverted"]["why"], asked), ("a", False, boot.BELOW_MIN, ["b"]))
        self.assertEqual(boot.decide(state(trial="b", permit=True), both, below_min=below)[:2], ("b", True))
        self.assertEqual(boot.decide(state(), both, below_min=below), ("a", False, None))
        self.assertEqual(asked, ["b"])
        # a permission without a trial is dropped as damage
        self.assertNotIn("permit", boot._clean(state(permit=True)))


SLOTS = "agent.boot"  # the choosing code, as a slot has it (on a board: dbchslots, at the root)


def _start():
    return False  # main.py's start(): never called by the fake run below


class TestMain(unittest.TestCase):
    def run_main(self, fs, outcomes, reset=True, printed=None):
        # outcomes: what each boot's agent does, by slot path: an exception to raise, True (it
        # asked for a reboot) or False (it stopped)
        calls = []
        resets = []

        def run(start, path):
            self.assertIs(start, _start)  # main.py's start, handed on as it is
            self.assertNotIn(SLOTS, sys.modules)  # the choosing code holds no heap while it runs
            calls.append(path)
            what = outcomes.pop(0)
            if isinstance(what, BaseException):
                raise what
            return what

        slot = boot_main.main(
            _start,
            "/",
            fs,
            run=run,
            reset=(lambda: resets.append(1)) if reset else None,
            print_exception=printed.append if printed is not None else None,
            slots=SLOTS,
        )
        return slot, calls, resets

    def test_plain_boot(self):
        fs = flash_with(("a", "b"))
        self.assertEqual(self.run_main(fs, [False]), ("a", ["/slots/a"], []))

    def test_a_slot_in_the_romfs_image_boots_from_it(self):
        # `dbch flash` on the virtual board: slot A holds the mark, its modules are in the image
        # mounted at /rom (boot.ROM), under the slot's own path
        fs = flash_with(("a", "b"))
        fs.open("/slots/a/" + boot.ROMFS_MARK, "wb").close()
        for d in (boot.ROM, boot.ROM + "/slots", boot.ROM + "/slots/a"):
            fs.mkdir(d)
        self.assertEqual(self.run_main(fs, [False]), ("a", [boot.ROM + "/slots/a"], []))
        self.assertEqual(boot.module_dir(fs, "/", "b"), "/slots/b")

    def test_a_slot_whose_romfs_image_is_not_mounted_is_not_bootable(self):
        fs = flash_with(("a", "b"))
        fs.open("/slots/a/" + boot.ROMFS_MARK, "wb").close()
        self.assertFalse(boot.bootable(fs, "/", "a"))
        self.assertEqual(self.run_main(fs, [False]), ("b", ["/slots/b"], []))

    def test_reboots_and_resets_that_come_back_boot_again(self):
        fs = flash_with(("a", "b"))
        slot, calls, _r = self.run_main(fs, [True, SystemExit(0xB7), False])
        self.assertEqual(calls, ["/slots/a"] * 3)

    def test_a_crashing_trial_is_reset_until_reverted(self):
        fs = flash_with(("a", "b"))
        boot.start_trial(fs, "/", "b", 3)
        crash = [ImportError("broken image")] * boot.MAX_TRIES
        slot, calls, resets = self.run_main(fs, crash + [False])
        self.assertEqual(slot, "a")
        self.assertEqual(calls, ["/slots/b"] * boot.MAX_TRIES + ["/slots/a"])
        self.assertEqual(len(resets), boot.MAX_TRIES)
        self.assertEqual(boot.read_state(fs, "/")["reverted"]["slot"], "b")

    def test_a_crashing_trial_is_printed_and_booted_again_without_a_reset(self):
        # a board that hands no reset: the next try starts here, as after a reset that returns
        fs = flash_with(("a", "b"))
        boot.start_trial(fs, "/", "b", 3)
        crash = ImportError("broken image")
        printed = []
        slot, calls, resets = self.run_main(fs, [crash] * boot.MAX_TRIES + [False], reset=False, printed=printed)
        self.assertEqual((slot, resets), ("a", []))
        self.assertEqual(calls, ["/slots/b"] * boot.MAX_TRIES + ["/slots/a"])
        self.assertEqual(printed, [crash] * boot.MAX_TRIES)

    def test_a_reset_that_comes_back_as_system_exit_boots_again(self):
        # the virtual board's machine.reset ends in SystemExit: the bootloader boots again
        fs = flash_with(("a", "b"))
        boot.start_trial(fs, "/", "b", 3)
        calls = []

        def run(start, path):
            calls.append(path)
            if path == "/slots/b":
                raise ValueError("trial crashed")
            return False

        def reset():
            raise SystemExit(0xB7)

        self.assertEqual(boot_main.main(_start, "/", fs, run=run, reset=reset, slots=SLOTS), "a")
        self.assertEqual(calls, ["/slots/b"] * boot.MAX_TRIES + ["/slots/a"])

    def test_a_trial_that_reboots_before_confirming_is_reverted(self):
        fs = flash_with(("a", "b"))
        boot.start_trial(fs, "/", "b", 3)
        slot, calls, _r = self.run_main(fs, [True] * boot.MAX_TRIES + [False])
        self.assertEqual(calls[-1], "/slots/a")

    def test_confirmed_crash_and_interrupt_propagate(self):
        fs = flash_with(("a", "b"))
        for what in (ValueError("bug"), KeyboardInterrupt()):
            with self.assertRaises(type(what)) as cm:
                self.run_main(fs, [what])
            self.assertIs(cm.exception, what)  # the agent's own exception, not one of the boot's

    def test_no_slots_runs_from_the_root(self):
        fs = SimFlash()
        self.assertEqual(self.run_main(fs, [False]), (None, [None], []))

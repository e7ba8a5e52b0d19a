# The outbox's boundaries, each pinned by the rule it keeps: the smallest capacity, the limit
# of pending() with the overflow event first or last, what counts as a damaged record, which
# acknowledgements are accepted, and that the highest seq issued survives every ack.
import unittest

from agent.outbox import Outbox
from hal.contracts import PowerCut
from hal.fs_storage import FileStorage
from hal.sim.flash import SimFlash

OVERFLOW = "overflow"
ROOT = "/ob"


def _boot(flash, capacity=8):
    return Outbox(FileStorage(ROOT, flash), capacity)


class TestCapacity(unittest.TestCase):
    def test_an_outbox_of_capacity_one_holds_one_event_and_counts_the_next(self):
        ob = _boot(SimFlash(), 1)
        self.assertEqual(ob.append("a"), 1)
        self.assertIsNone(ob.append("b"))
        self.assertEqual(ob.overflow, {"dropped": 1, "first_seq": 2, "last_seq": 2})

    def test_a_capacity_below_one_is_refused_and_named(self):
        for bad in (0, -1, "8", None):
            with self.assertRaises(ValueError) as cm:
                Outbox(FileStorage(ROOT, SimFlash()), bad)
            self.assertEqual(str(cm.exception), "outbox capacity must be a positive int, not {!r}".format(bad))

    def test_a_bad_event_kind_is_refused_and_named(self):
        ob = _boot(SimFlash())
        with self.assertRaises(ValueError) as cm:
            ob.append("")
        self.assertEqual(str(cm.exception), "event kind must be a non-empty str, not ''")
        with self.assertRaises(ValueError) as cm:
            ob.append(7)
        self.assertEqual(str(cm.exception), "event kind must be a non-empty str, not 7")
        with self.assertRaises(ValueError) as cm:
            ob.append(OVERFLOW)
        self.assertEqual(str(cm.exception), "event kind 'overflow' is reserved")
        self.assertEqual(ob.next_seq, 1)


class TestPendingLimit(unittest.TestCase):
    """pending(limit) returns at most limit events, the overflow event counted as one."""

    def _overflow_first(self):
        # capacity 1: event 1, refused 2 (the overflow event takes seq 2), ack 1, event 3
        ob = _boot(SimFlash(), 1)
        ob.append("a", "a")
        ob.append("b", "b")
        ob.ack(1)
        self.assertEqual(ob.append("c", "c"), 3)
        return ob

    def test_the_limit_holds_when_the_overflow_event_comes_first(self):
        ob = self._overflow_first()
        self.assertEqual(ob.pending(1), [(2, OVERFLOW, {"dropped": 1, "first_seq": 2, "last_seq": 2})])
        self.assertEqual([p[0] for p in ob.pending(2)], [2, 3])

    def test_the_limit_holds_when_the_overflow_event_comes_last(self):
        ob = _boot(SimFlash(), 1)
        ob.append("a", "a")
        ob.append("b", "b")  # refused: the overflow event, seq 2, after event 1
        self.assertEqual(ob.pending(1), [(1, "a", "a")])
        self.assertEqual([p[0] for p in ob.pending(2)], [1, 2])
        self.assertEqual([p[0] for p in ob.pending()], [1, 2])


class TestDamaged(unittest.TestCase):
    """A record that is not the event its name says is damaged: removed and counted as lost."""

    def test_a_record_holding_another_seq_is_damaged(self):
        flash = SimFlash()
        storage = FileStorage(ROOT, flash)
        ob = Outbox(storage, 8)
        for k in "abc":
            ob.append(k, k)
        ob.store.put("ob.2", {"s": 3, "k": "b", "d": "b"})  # well formed, but not event 2
        ob = Outbox(storage, 8)
        self.assertEqual(
            ob.pending(), [(1, "a", "a"), (3, "c", "c"), (4, OVERFLOW, {"dropped": 1, "first_seq": 2, "last_seq": 2})]
        )
        self.assertEqual(ob.damaged, 1)

    def test_every_damaged_record_is_counted(self):
        flash = SimFlash()
        storage = FileStorage(ROOT, flash)
        ob = Outbox(storage, 8)
        for k in "abcd":
            ob.append(k, k)
        storage.write("ob.2", b"\x00garbage\x00")
        storage.write("ob.4", b"\x00garbage\x00")
        ob = Outbox(storage, 8)
        self.assertEqual(
            ob.pending(), [(1, "a", "a"), (3, "c", "c"), (6, OVERFLOW, {"dropped": 2, "first_seq": 2, "last_seq": 4})]
        )
        self.assertEqual(ob.damaged, 2)

    def test_a_damaged_record_after_a_listed_overflow_event_lists_only_its_new_version(self):
        flash = SimFlash()
        storage = FileStorage(ROOT, flash)
        ob = Outbox(storage, 1)
        ob.append("a", "a")
        ob.append("b", "b")  # refused: overflow event seq 2
        ob.ack(1)
        ob.append("c", "c")  # seq 3, after the overflow event
        storage.write("ob.3", b"\x00garbage\x00")
        ob = Outbox(storage, 1)
        self.assertEqual(ob.pending(), [(4, OVERFLOW, {"dropped": 2, "first_seq": 2, "last_seq": 3})])
        self.assertEqual(len(ob), 1)

    def test_two_damaged_records_after_a_listed_overflow_event_list_only_its_newest_version(self):
        flash = SimFlash()
        storage = FileStorage(ROOT, flash)
        ob = Outbox(storage, 2)
        ob.append("a", "a")
        ob.append("b", "b")
        ob.append("c", "c")  # refused: overflow event seq 3
        ob.ack(1)
        ob.ack(2)
        self.assertEqual((ob.append("d", "d"), ob.append("e", "e")), (4, 5))
        storage.write("ob.4", b"\x00garbage\x00")
        storage.write("ob.5", b"\x00garbage\x00")
        ob = Outbox(storage, 2)
        self.assertEqual(ob.pending(), [(7, OVERFLOW, {"dropped": 3, "first_seq": 3, "last_seq": 5})])
        self.assertEqual(ob.damaged, 2)


class TestAck(unittest.TestCase):
    def test_only_an_int_seq_acknowledges_an_event(self):
        ob = _boot(SimFlash())
        ob.append("a")
        for other in (True, 1.0, "1", None):
            self.assertFalse(ob.ack(other), repr(other))
        self.assertEqual([p[0] for p in ob.pending()], [1])
        self.assertTrue(ob.ack(1))

    def test_acking_the_overflow_event_that_holds_the_highest_seq_keeps_that_seq_used(self):
        flash = SimFlash()
        ob = _boot(flash, 1)
        ob.append("a")
        ob.append("b")  # refused: the overflow event takes seq 2, the highest issued
        self.assertTrue(ob.ack(1))
        self.assertTrue(ob.ack(2))
        self.assertEqual(_boot(flash, 1).append("c"), 3)

    def test_an_ack_cut_after_saving_the_highest_seq_saves_it_no_more_when_done_again(self):
        flash = SimFlash()
        ob = _boot(flash)
        for k in "abc":
            ob.append(k)
        before = flash.writes
        ob.ack(3)  # the highest: meta first, then the remove
        n = flash.writes - before
        flash = SimFlash()
        ob = _boot(flash)
        for k in "abc":
            ob.append(k)
        flash.cut_at(before + n)  # meta is on the flash, event 3 is not yet removed
        with self.assertRaises(PowerCut):
            ob.ack(3)
        flash.power_on()
        ob = _boot(flash)
        self.assertEqual(ob.next_seq, 4)
        before = flash.writes
        self.assertTrue(ob.ack(3))
        self.assertEqual(flash.writes - before, 1)  # the remove alone
        self.assertEqual(_boot(flash).append("d"), 4)

import unittest

from agent.outbox import Outbox
from agent.store import Store
from hal.contracts import PowerCut
from hal.fs_storage import FileStorage
from hal.sim.flash import SimFlash

OVERFLOW = "overflow"  # the kind of the overflow event

ROOT = "/ob"


def _boot(flash, capacity=64):
    return Outbox(FileStorage(ROOT, flash), capacity)


class TestOutbox(unittest.TestCase):
    def test_events_are_dated_by_the_clock_when_raised(self):
        now = [1767225600]  # 2026-01-01T00:00:00Z
        flash = SimFlash()
        ob = Outbox(FileStorage(ROOT, flash), utc=lambda: now[0])
        raised = {"DeviceAlertCode": "8F26"}
        ob.append("N54", raised)
        now[0] += 1200  # twenty minutes later, and a reboot between
        ob = Outbox(FileStorage(ROOT, flash), utc=lambda: now[0])
        ob.append("N54", {"DeviceAlertCode": "8F22", "utc": 5})  # already dated: kept
        ob.append("N64", [1, "x"])  # not a map: as it is
        self.assertEqual(
            ob.pending(),
            [
                (1, "N54", {"DeviceAlertCode": "8F26", "utc": 1767225600}),
                (2, "N54", {"DeviceAlertCode": "8F22", "utc": 5}),
                (3, "N64", [1, "x"]),
            ],
        )
        self.assertEqual(raised, {"DeviceAlertCode": "8F26", "utc": 1767225600})  # dated in place

    def test_append_pending_ack(self):
        ob = _boot(SimFlash())
        self.assertEqual(len(ob), 0)
        self.assertEqual(ob.pending(), [])
        self.assertEqual(ob.append("8F20", {"eui": b"\x01" * 8}), 1)
        self.assertEqual(ob.append("8F22"), 2)
        self.assertEqual(ob.append("N64", [1, "x"]), 3)
        self.assertEqual(len(ob), 3)
        self.assertEqual(ob.pending(), [(1, "8F20", {"eui": b"\x01" * 8}), (2, "8F22", None), (3, "N64", [1, "x"])])
        self.assertEqual(ob.pending(2), [(1, "8F20", {"eui": b"\x01" * 8}), (2, "8F22", None)])
        self.assertEqual(ob.pending(0), [])
        self.assertTrue(ob.ack(2))
        self.assertFalse(ob.ack(2))
        self.assertFalse(ob.ack(99))
        self.assertFalse(ob.ack("1"))
        self.assertFalse(ob.ack(None))
        self.assertEqual([p[0] for p in ob.pending()], [1, 3])
        self.assertEqual(len(ob), 2)

    def test_bad_events(self):
        ob = _boot(SimFlash())
        for kind in ("", None, 5, OVERFLOW):
            with self.assertRaises(ValueError):
                ob.append(kind, 1)
        with self.assertRaises(ValueError):  # not encodable: CBORError
            ob.append("x", object())
        self.assertEqual(ob.append("x", 1), 1)  # nothing above used a seq
        with self.assertRaises(ValueError):
            Outbox(FileStorage(ROOT, SimFlash()), 0)

    def test_survives_reboot(self):
        flash = SimFlash()
        ob = _boot(flash)
        ob.append("a", 1)
        ob.append("b", 2)
        ob = _boot(flash)
        self.assertEqual(ob.pending(), [(1, "a", 1), (2, "b", 2)])
        self.assertEqual(ob.append("c", 3), 3)

    def test_seq_never_reused(self):
        flash = SimFlash()
        ob = _boot(flash)
        self.assertEqual(ob.append("a"), 1)
        self.assertTrue(ob.ack(1))
        ob = _boot(flash)
        self.assertEqual(len(ob), 0)
        self.assertEqual(ob.append("b"), 2)
        self.assertEqual(ob.append("c"), 3)
        self.assertTrue(ob.ack(3))
        self.assertTrue(ob.ack(2))
        ob = _boot(flash)
        self.assertEqual(ob.next_seq, 4)
        self.assertEqual(ob.append("d"), 4)

    def test_meta_written_only_for_the_highest(self):
        flash = SimFlash()
        ob = _boot(flash)
        for k in "abcd":
            ob.append(k)
        before = flash.writes
        ob.ack(1)
        ob.ack(2)
        self.assertEqual(flash.writes - before, 2)  # two removes
        ob.ack(4)  # the highest: meta (3 writes) then the remove
        self.assertEqual(flash.writes - before, 6)
        ob.ack(3)
        self.assertEqual(flash.writes - before, 7)
        self.assertEqual(_boot(flash).append("e"), 5)

    def test_shares_a_storage(self):
        flash = SimFlash()
        storage = FileStorage(ROOT, flash)
        store = Store(storage)
        store.put("cfg", {"x": 1})
        ob = Outbox(store, 4)
        ob.append("a")
        other = Outbox(storage, 4, prefix="ev")
        self.assertEqual(other.append("b"), 1)
        self.assertEqual(_boot(flash).pending(), [(1, "a", None)])
        self.assertEqual(store.get("cfg"), {"x": 1})

    def test_overflow_policy(self):
        flash = SimFlash()
        ob = _boot(flash, capacity=3)
        self.assertEqual([ob.append("e", i) for i in range(3)], [1, 2, 3])
        self.assertIsNone(ob.append("e", 3))  # refused: seq 4
        self.assertIsNone(ob.append("e", 4))  # refused: seq 5
        self.assertEqual(len(ob), 4)
        self.assertEqual(ob.refused, 2)
        self.assertEqual(ob.overflow, {"dropped": 2, "first_seq": 4, "last_seq": 5})
        self.assertEqual(
            ob.pending(),
            [
                (1, "e", 0),
                (2, "e", 1),
                (3, "e", 2),
                (5, OVERFLOW, {"dropped": 2, "first_seq": 4, "last_seq": 5}),
            ],
        )
        # the oldest are kept; an ack frees a slot for the next event
        self.assertTrue(ob.ack(1))
        self.assertEqual(ob.append("e", 5), 6)
        self.assertEqual([p[0] for p in ob.pending()], [2, 3, 5, 6])
        # full again: the overflow event is updated under a fresh seq and moves last
        self.assertIsNone(ob.append("e", 6))
        self.assertEqual(ob.pending()[-1], (7, OVERFLOW, {"dropped": 3, "first_seq": 4, "last_seq": 7}))
        self.assertEqual([p[0] for p in ob.pending()], [2, 3, 6, 7])
        self.assertFalse(ob.ack(5))  # an older version: the counts it missed stay
        # survives a reboot
        ob = _boot(flash, capacity=3)
        self.assertEqual(ob.overflow, {"dropped": 3, "first_seq": 4, "last_seq": 7})
        self.assertEqual(len(ob), 4)
        self.assertTrue(ob.ack(7))
        self.assertIsNone(ob.overflow)
        self.assertEqual(len(ob), 3)
        # the next refusal starts a new count
        self.assertIsNone(ob.append("e", 7))
        self.assertEqual(ob.overflow, {"dropped": 1, "first_seq": 8, "last_seq": 8})
        for seq, _, _ in ob.pending():
            self.assertTrue(ob.ack(seq))
        self.assertEqual(len(ob), 0)
        self.assertEqual(ob.append("e", 8), 9)
        self.assertEqual(_boot(flash, 3).append("e", 9), 10)

    def test_damaged_event_is_reported(self):
        flash = SimFlash()
        storage = FileStorage(ROOT, flash)
        ob = Outbox(storage, 8)
        for k in "abc":
            ob.append(k, k)
        storage.write("ob.2", b"\x00garbage\x00")
        ob = Outbox(storage, 8)
        got = ob.pending()
        self.assertEqual(
            got, [(1, "a", "a"), (3, "c", "c"), (4, OVERFLOW, {"dropped": 1, "first_seq": 2, "last_seq": 2})]
        )
        self.assertEqual(ob.damaged, 1)
        self.assertNotIn("ob.2", storage.names())
        self.assertEqual(ob.append("d", "d"), 5)

    def test_names_only_at_start(self):
        # start-up reads the names, meta and overflow records, not the event bodies
        flash = SimFlash()
        storage = FileStorage(ROOT, flash)
        ob = Outbox(storage, 8)
        for i in range(5):
            ob.append("e", i)
        reads = []

        class Counting:
            def __init__(self, inner):
                self.inner = inner

            def read(self, name):
                reads.append(name)
                return self.inner.read(name)

            def names(self):
                return self.inner.names()

        Outbox(Counting(storage), 8)
        self.assertEqual(sorted(reads), ["ob.m", "ob.o"])


class TestOutboxPowerCuts(unittest.TestCase):
    def _setup(self, events=3):
        flash = SimFlash()
        ob = _boot(flash, 8)
        for i in range(events):
            ob.append("e", {"n": i})
        return flash, ob

    def _count(self, op, events=3):
        flash, ob = self._setup(events)
        before = flash.writes
        op(ob)
        return before, flash.writes - before

    def test_cut_during_append(self):
        before, n = self._count(lambda ob: ob.append("new", {"big": "x" * 50}))
        self.assertEqual(n, 3)
        for i in range(1, n + 1):
            flash, ob = self._setup()
            old = ob.pending()
            flash.cut_at(before + i)
            with self.assertRaises(PowerCut):
                ob.append("new", {"big": "x" * 50})
            flash.power_on()
            ob = _boot(flash, 8)
            self.assertEqual(ob.pending(), old, i)  # no half event
            self.assertEqual(ob.append("after", 1), 4)  # seq 4 was never returned

    def test_cut_during_ack(self):
        for target in (2, 3):  # 3 is the highest seq: the ack writes meta first
            before, n = self._count(lambda ob, t=target: ob.ack(t))
            self.assertEqual(n, 1 if target == 2 else 4)
            for i in range(1, n + 1):
                flash, ob = self._setup()
                full = ob.pending()
                flash.cut_at(before + i)
                with self.assertRaises(PowerCut):
                    ob.ack(target)
                flash.power_on()
                ob = _boot(flash, 8)
                got = ob.pending()
                self.assertIn(got, (full, [p for p in full if p[0] != target]), (target, i))
                self.assertEqual(ob.append("after"), 4)
                for seq, _, _ in ob.pending():
                    ob.ack(seq)
                self.assertEqual(_boot(flash, 8).append("x"), 5)

    def test_cut_during_a_sequence(self):
        # appends (some refused: capacity 3), acks of events, of the overflow event and of the
        # highest seq, with a power cut at every mutating write in turn
        script = [
            ("a", "k1"),
            ("a", "k2"),
            ("ack", "k1"),
            ("a", "k3"),
            ("a", "k4"),
            ("a", "k5"),  # refused
            ("a", "k6"),  # refused
            ("ack", "k4"),
            ("a", "k7"),
            ("ack", OVERFLOW),
            ("ack", "k7"),  # the highest
            ("ack", "k2"),
            ("a", "k8"),
            ("ack", "k8"),
        ]
        data = {}
        for op, kind in script:
            if op == "a":
                data[kind] = {"kind": kind, "pad": kind * 8}

        def run(flash):
            state = {"returned": {}, "acked": [], "doing": None, "seen": 0}
            try:
                ob = _boot(flash, 3)
                for step in script:
                    state["doing"] = step
                    op, kind = step
                    if op == "a":
                        seq = ob.append(kind, data[kind])
                        if seq is not None:
                            state["returned"][kind] = seq
                            state["seen"] = max(state["seen"], seq)
                    else:
                        if kind == OVERFLOW:
                            seq = [p[0] for p in ob.pending() if p[1] == OVERFLOW][0]
                        else:
                            seq = state["returned"][kind]
                        state["seen"] = max(state["seen"], seq)
                        self.assertTrue(ob.ack(seq), step)
                        state["acked"].append(kind)
                state["doing"] = None
            except PowerCut:
                pass
            return state

        flash = SimFlash()
        state = run(flash)
        self.assertIsNone(state["doing"])
        self.assertEqual(sorted(state["returned"]), ["k1", "k2", "k3", "k4", "k7", "k8"])
        self.assertEqual(len(_boot(flash, 3)), 1)  # k3 is left
        total = flash.writes
        self.assertGreater(total, 20)
        for i in range(1, total + 1):
            flash = SimFlash()
            flash.cut_at(i)
            state = run(flash)
            self.assertTrue(flash.off, i)
            flash.power_on()
            ob = _boot(flash, 3)
            pend = ob.pending()
            seqs = [p[0] for p in pend]
            self.assertEqual(seqs, sorted(seqs), i)
            self.assertEqual(len(set(seqs)), len(seqs), i)
            by_kind = {}
            for seq, kind, d in pend:
                if kind == OVERFLOW:
                    self.assertGreaterEqual(d["dropped"], 1, i)
                    self.assertLessEqual(d["first_seq"], d["last_seq"], i)
                    continue
                self.assertEqual(d, data[kind], i)  # whole events only
                by_kind[kind] = seq
            doing = state["doing"]
            for kind, seq in state["returned"].items():
                if kind in state["acked"]:
                    self.assertNotIn(kind, by_kind, i)
                elif doing == ("ack", kind):
                    pass  # the ack was cut: either way is right
                else:
                    self.assertEqual(by_kind.get(kind), seq, (i, kind))  # no loss
            for kind in by_kind:
                self.assertIn(kind, state["returned"], i)  # nothing invented
            # seqs only grow, and the outbox works
            for seq in seqs:
                ob.ack(seq)
            new = ob.append("after", 1)
            self.assertGreater(new, state["seen"], i)
            self.assertGreater(new, max(seqs) if seqs else 0, i)
            ob = _boot(flash, 3)
            self.assertEqual(ob.pending(), [(new, "after", 1)], i)

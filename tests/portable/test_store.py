import unittest
from binascii import crc32
from struct import pack

from agent import cbor
from agent.store import Store, decode, encode
from hal.contracts import PowerCut
from hal.fs_storage import FileStorage
from hal.sim.flash import SimFlash

_NONE = object()


def _fresh():
    flash = SimFlash()
    storage = FileStorage("/s", flash)
    return flash, storage, Store(storage)


class TestStore(unittest.TestCase):
    def test_round_trip(self):
        _, storage, st = _fresh()
        values = {
            "i": 42,
            "neg": -7,
            "big": 2**40,
            "s": "text",
            "b": b"\x00\xff",
            "l": [1, "two", [3]],
            "d": {"channel": 12, "mask": [1, 2], 5: None},
            "t": True,
            "f": False,
            "n": None,
        }
        for name, value in values.items():
            st.put(name, value)
        for name, value in values.items():
            self.assertEqual(st.get(name, _NONE), value, name)
        self.assertIsNone(st.get("n", 7))  # a stored None is not the default
        self.assertEqual(st.corrupt, 0)
        again = Store(FileStorage("/s", storage.fs))
        self.assertEqual(again.get("d"), values["d"])

    def test_body_layout(self):
        body = encode({"a": 1})
        data = cbor.dumps({"a": 1})
        self.assertEqual(body, data + pack(">I", crc32(data) & 0xFFFFFFFF))
        self.assertEqual(decode(body), {"a": 1})
        self.assertEqual(decode(body[:-1], "dflt"), "dflt")

    def test_missing_and_delete(self):
        _, _, st = _fresh()
        self.assertIsNone(st.get("x"))
        self.assertEqual(st.get("x", 5), 5)
        st.put("x", 1)
        self.assertTrue(st.delete("x"))
        self.assertFalse(st.delete("x"))
        self.assertEqual(st.get("x", 5), 5)
        self.assertEqual(st.corrupt, 0)

    def test_names(self):
        _, _, st = _fresh()
        st.put("ob.1", 1)
        st.put("ob.2", 2)
        st.put("cfg", 3)
        self.assertEqual(st.names(), ["cfg", "ob.1", "ob.2"])
        self.assertEqual(st.names("ob."), ["ob.1", "ob.2"])

    def test_damaged_records_are_missing_and_counted(self):
        _, storage, st = _fresh()
        good = encode({"v": 1})
        flipped = bytearray(good)
        flipped[1] ^= 0x01
        bad_cbor = b"\xff"  # valid CRC, not CBOR
        bodies = {
            "flipped": bytes(flipped),
            "crc": good[:-1] + bytes([good[-1] ^ 0x80]),
            "short": good[:3],
            "empty": b"",
            "trailing": good + b"\x00",
            "notcbor": bad_cbor + pack(">I", crc32(bad_cbor) & 0xFFFFFFFF),
        }
        for name, body in bodies.items():
            storage.write(name, body)
        for name in bodies:
            self.assertEqual(st.get(name, "dflt"), "dflt", name)
        self.assertEqual(st.corrupt, len(bodies))
        self.assertEqual(sorted(st.corrupt_names), sorted(bodies))
        st.get("flipped")
        self.assertEqual(st.corrupt, len(bodies) + 1)
        self.assertEqual(st.corrupt_names[-1], "flipped")
        self.assertEqual(len(st.corrupt_names), len(bodies))
        st.put("flipped", [1])  # a new put repairs it
        self.assertEqual(st.get("flipped"), [1])

    def test_corrupt_names_are_bounded(self):
        _, storage, st = _fresh()
        for i in range(20):
            storage.write("bad{}".format(i), b"junk")
            st.get("bad{}".format(i))
        self.assertEqual(st.corrupt, 20)
        self.assertEqual(len(st.corrupt_names), 8)
        self.assertEqual(st.corrupt_names[-1], "bad19")

    def test_unencodable_leaves_old_value(self):
        _, _, st = _fresh()
        st.put("k", "old")
        with self.assertRaises(ValueError):  # CBORError
            st.put("k", object())
        self.assertEqual(st.get("k"), "old")
        with self.assertRaises(ValueError):
            st.put("bad/name", 1)

    def test_power_cut_at_every_write_of_a_put(self):
        old = {"cfg": [1, 2, 3]}
        new = {"cfg": [4, 5, 6, 7], "extra": "x" * 40}

        def setup():
            flash, storage, st = _fresh()
            st.put("k", old)
            return flash, st

        flash, st = setup()
        before = flash.writes
        st.put("k", new)
        n = flash.writes - before
        self.assertGreater(n, 0)
        for i in range(1, n + 1):
            flash, st = setup()
            flash.cut_after(i)
            with self.assertRaises(PowerCut):
                st.put("k", new)
            flash.power_on()
            again = Store(FileStorage("/s", flash))
            self.assertIn(again.get("k"), (old, new), i)
            self.assertEqual(again.corrupt, 0)
            again.put("k", new)
            self.assertEqual(again.get("k"), new)

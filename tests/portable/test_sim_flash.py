import unittest

from hal.contracts import PowerCut
from hal.sim.flash import SimFlash


class TestSimFlash(unittest.TestCase):
    def test_files_and_dirs(self):
        f = SimFlash()
        f.mkdir("/d")
        with f.open("/d/a", "wb") as h:
            self.assertEqual(h.write(b"hello"), 5)
        self.assertTrue(f.exists("/d/a"))
        self.assertTrue(f.isdir("/d"))
        self.assertFalse(f.exists("/d/b"))
        with f.open("/d/a", "ab") as h:
            h.write(b" world")
        with f.open("/d/a", "rb") as h:
            self.assertEqual(h.read(5), b"hello")
            self.assertEqual(h.read(), b" world")
            self.assertEqual(h.read(), b"")
        with f.open("/d/a", "r+b") as h:
            h.seek(6)
            h.write(b"W")
            h.seek(0)
            self.assertEqual(h.read(), b"hello World")
            buf = bytearray(3)
            h.seek(-3, 2)
            self.assertEqual(h.readinto(buf), 3)
            self.assertEqual(bytes(buf), b"rld")
        self.assertEqual(f.size("/d/a"), 11)
        f.rename("/d/a", "/d/b")
        self.assertEqual(f.listdir("/d"), ["b"])
        self.assertEqual(f.listdir("/"), ["d"])
        f.remove("/d/b")
        self.assertEqual(f.listdir("/d"), [])
        f.rmdir("/d")
        self.assertEqual(f.listdir("/"), [])

    def test_errors(self):
        f = SimFlash()
        for op in (
            lambda: f.open("/nope", "rb"),
            lambda: f.open("/nope", "r+b"),
            lambda: f.open("/no/dir", "wb"),
            lambda: f.remove("/nope"),
            lambda: f.rename("/nope", "/x"),
            lambda: f.listdir("/nope"),
            lambda: f.size("/nope"),
        ):
            with self.assertRaises(OSError):
                op()
        f.mkdir("/d")
        with self.assertRaises(OSError):
            f.mkdir("/d")
        with self.assertRaises(ValueError):
            f.open("/d/x", "w")
        h = f.open("/d/x", "wb")
        h.close()
        with self.assertRaises(ValueError):
            h.write(b"x")
        with f.open("/d/x", "rb") as h:
            with self.assertRaises(OSError):
                h.write(b"x")

    def test_counting_mutations(self):
        f = SimFlash()
        self.assertEqual(f.writes, 0)
        f.mkdir("/d")  # 1
        h = f.open("/d/a", "wb")  # 2 create
        h.write(b"ab")  # 3
        h.write(b"cd")  # 4
        h.close()
        f.open("/d/a", "rb").read()  # reads count nothing
        f.open("/d/a", "ab").close()  # appending to an existing file creates nothing
        f.open("/d/a", "r+b").close()
        self.assertEqual(f.writes, 4)
        f.open("/d/a", "wb").close()  # 5 truncate
        f.rename("/d/a", "/d/b")  # 6
        f.remove("/d/b")  # 7
        self.assertEqual(f.writes, 7)

    def test_torn_write_and_dead_after_cut(self):
        f = SimFlash()
        with f.open("/a", "wb") as h:
            h.write(b"old!")
        h = f.open("/a", "ab")
        f.cut_after(1)
        with self.assertRaises(PowerCut):
            h.write(b"12345678")
        self.assertTrue(f.off)
        self.assertEqual(f.cuts, 1)
        for op in (lambda: f.open("/a", "rb"), lambda: f.listdir("/"), lambda: f.exists("/a"), lambda: h.write(b"x")):
            with self.assertRaises(PowerCut):
                op()
        f.power_on()
        with self.assertRaises(PowerCut):
            h.write(b"x")  # a handle from before the cut stays dead
        self.assertEqual(f.files(), {"/a": b"old!1234"})  # half of the torn write

    def test_atomic_ops_do_nothing_when_cut(self):
        f = SimFlash()
        with f.open("/a", "wb") as h:
            h.write(b"A")
        with f.open("/b", "wb") as h:
            h.write(b"B")
        for op in (
            lambda: f.rename("/a", "/b"),
            lambda: f.remove("/a"),
            lambda: f.open("/a", "wb"),
            lambda: f.open("/c", "ab"),
            lambda: f.mkdir("/d"),
        ):
            f.cut_after(1)
            with self.assertRaises(PowerCut):
                op()
            f.power_on()
            self.assertEqual(f.files(), {"/a": b"A", "/b": b"B"})
            self.assertEqual(f.listdir("/"), ["a", "b"])

    def test_cut_at_absolute_index(self):
        f = SimFlash()
        f.cut_at(3)
        f.mkdir("/x")
        f.mkdir("/y")
        with self.assertRaises(PowerCut):
            f.mkdir("/z")
        self.assertEqual(f.writes, 3)
        f.power_on()
        self.assertEqual(f.listdir("/"), ["x", "y"])
        f.mkdir("/z")  # the cut is spent
        self.assertEqual(f.writes, 4)

    def test_capacity(self):
        f = SimFlash(capacity=10)
        with f.open("/a", "wb") as h:
            h.write(b"12345678")
            with self.assertRaises(OSError):
                h.write(b"abc")
            h.write(b"ab")
        self.assertEqual(f.used(), 10)

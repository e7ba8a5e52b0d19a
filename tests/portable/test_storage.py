import os
import unittest

from hal.contracts import PowerCut, Storage
from hal.fs_storage import FileStorage, OsFs, check_name
from hal.sim.flash import SimFlash
from tests.kits.tempdirs import rm_tree as _rm_tree
from tests.kits.tempdirs import temp_dir

BAD_NAMES = ("", ".", "..", "a/b", "/a", "a b", "x.tmp", "caf\u00e9", "a" * 65, None, 5, b"abc")
GOOD_NAMES = ("a", "cfg.subghz", "ob.17", "A-Z_0.9", "a" * 64, ".hidden", "tmp")


def _temp_dir():
    return temp_dir("dbch_st_")


class _StorageCases:
    # Shared by the simulated flash and the real file system.

    def make_fs(self):
        raise NotImplementedError

    def setUp(self):
        self.fs, self.root = self.make_fs()
        self.st = FileStorage(self.root, self.fs)

    def test_is_a_storage(self):
        self.assertIsInstance(self.st, Storage)

    def test_write_read_remove(self):
        st = self.st
        self.assertIsNone(st.read("a"))
        st.write("a", b"one")
        self.assertEqual(st.read("a"), b"one")
        st.write("a", bytearray(b"two!"))
        self.assertEqual(st.read("a"), b"two!")
        st.write("empty", b"")
        self.assertEqual(st.read("empty"), b"")
        st.write("bin", bytes(range(256)) * 4)
        self.assertEqual(st.read("bin"), bytes(range(256)) * 4)
        self.assertEqual(st.names(), ["a", "bin", "empty"])
        self.assertEqual(st.size("bin"), 1024)
        self.assertIsNone(st.size("none"))
        self.assertTrue(st.exists("a"))
        self.assertTrue(st.remove("a"))
        self.assertFalse(st.exists("a"))
        self.assertFalse(st.remove("a"))
        self.assertIsNone(st.read("a"))
        self.assertEqual(st.names(), ["bin", "empty"])

    def test_persists_for_a_new_instance(self):
        self.st.write("k", b"v")
        again = FileStorage(self.root, self.fs)
        self.assertEqual(again.read("k"), b"v")

    def test_names(self):
        for name in GOOD_NAMES:
            check_name(name)
            self.st.write(name, b"x")
        self.assertEqual(self.st.names(), sorted(GOOD_NAMES))
        for name in BAD_NAMES:
            with self.assertRaises(ValueError):
                self.st.write(name, b"x")
            with self.assertRaises(ValueError):
                self.st.read(name)
            with self.assertRaises(ValueError):
                self.st.remove(name)
            with self.assertRaises(ValueError):
                self.st.open_blob(name, "wb")

    def test_data_must_be_bytes(self):
        with self.assertRaises(TypeError):
            self.st.write("a", "text")
        with self.assertRaises(TypeError):
            self.st.write("a", None)
        self.assertEqual(self.st.names(), [])

    def test_leftover_tmp_is_ignored_and_cleaned(self):
        st = self.st
        st.write("a", b"committed")
        with self.fs.open(self.root + "/a.tmp", "wb") as f:
            f.write(b"half of a new val")
        with self.fs.open(self.root + "/b.tmp", "wb") as f:
            f.write(b"never committed")
        self.assertEqual(st.names(), ["a"])
        self.assertEqual(st.read("a"), b"committed")
        self.assertFalse(self.fs.exists(self.root + "/a.tmp"))
        self.assertIsNone(st.read("b"))
        self.assertFalse(self.fs.exists(self.root + "/b.tmp"))
        with self.fs.open(self.root + "/c.tmp", "wb") as f:
            f.write(b"x")
        with self.fs.open(self.root + "/d.tmp", "wb") as f:
            f.write(b"x")
        self.assertEqual(st.cleanup(), 2)
        self.assertEqual(sorted(self.fs.listdir(self.root)), ["a"])

    def test_blobs(self):
        st = self.st
        with st.open_blob("img", "wb") as f:
            f.write(b"0123")
        with st.open_blob("img", "ab") as f:
            f.write(b"4567")
        with st.open_blob("img", "r+b") as f:
            f.seek(2)
            f.write(b"xy")
        with st.open_blob("img", "rb") as f:
            self.assertEqual(f.read(3), b"01x")
            self.assertEqual(f.read(), b"y4567")
        self.assertEqual(st.size("img"), 8)
        with self.assertRaises(OSError):
            st.open_blob("missing", "rb")
        for mode in ("r", "w", "a+", "xb"):
            with self.assertRaises(ValueError):
                st.open_blob("img", mode)


class TestSimFlashStorage(_StorageCases, unittest.TestCase):
    def make_fs(self):
        return SimFlash(), "/data/records"

    def test_makes_nested_root(self):
        self.assertEqual(self.fs.listdir("/data"), ["records"])
        FileStorage("/data/records/", self.fs).write("x", b"1")
        self.assertEqual(self.st.read("x"), b"1")

    def test_power_cut_at_every_write(self):
        def fresh():
            flash = SimFlash()
            st = FileStorage("/r", flash)
            st.write("a", b"old value")
            st.write("other", b"untouched")
            return flash, st

        flash, st = fresh()
        before = flash.writes
        st.write("a", b"NEW value that is longer")
        n = flash.writes - before
        self.assertEqual(n, 3)  # create the temporary, write it, rename it
        for i in range(1, n + 2):
            flash, st = fresh()
            flash.cut_after(i)
            try:
                st.write("a", b"NEW value that is longer")
                st.write("after", b"x")  # the cut may land on the next write
            except PowerCut:
                pass
            self.assertTrue(flash.off)
            flash.power_on()
            st = FileStorage("/r", flash)
            got = st.read("a")
            self.assertIn(got, (b"old value", b"NEW value that is longer"), i)
            self.assertEqual(got == b"NEW value that is longer", i > n, i)
            self.assertEqual(st.read("other"), b"untouched")
            self.assertNotIn("a.tmp", flash.listdir("/r"))
            st.write("a", b"again")  # still usable
            self.assertEqual(FileStorage("/r", flash).read("a"), b"again")

    def test_power_cut_during_remove(self):
        flash = SimFlash()
        st = FileStorage("/r", flash)
        st.write("a", b"v")
        flash.cut_after(1)
        with self.assertRaises(PowerCut):
            st.remove("a")
        flash.power_on()
        self.assertEqual(FileStorage("/r", flash).read("a"), b"v")

    def test_full_flash_leaves_old_value(self):
        flash = SimFlash(capacity=40)
        st = FileStorage("/r", flash)
        st.write("a", b"0123456789")
        with self.assertRaises(OSError):
            st.write("a", bytes(35))
        self.assertEqual(st.read("a"), b"0123456789")
        self.assertEqual(flash.listdir("/r"), ["a"])


class TestRealFileStorage(_StorageCases, unittest.TestCase):
    def make_fs(self):
        self.tmp = _temp_dir()
        return OsFs(), self.tmp + "/records"

    def tearDown(self):
        _rm_tree(self.tmp)

    def test_default_fs_is_os(self):
        st = FileStorage(self.root)
        st.write("plain", b"file")
        with open(self.root + "/plain", "rb") as f:
            self.assertEqual(f.read(), b"file")
        self.assertEqual(sorted(os.listdir(self.root)), ["plain"])

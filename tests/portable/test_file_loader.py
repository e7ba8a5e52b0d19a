"""The loader `dbch flash` runs on a board (host_tools/onboard/file_loader.py), in parts: its
frames off a line (a file holds what the host sent), the records of the decompressed stream
(taken here from an uncompressed one), and under MicroPython the whole of it with deflate."""

import binascii
import hashlib
import io
import os
import struct
import unittest

from host_tools.onboard import file_loader as fl
from tests.kits.tempdirs import rm_tree as _rm_tree
from tests.kits.tempdirs import temp_dir


def _temp_dir():
    return temp_dir("dbch_fl_")


def _frame(payload, kind=0x44, crc=None):
    if crc is None:
        crc = binascii.crc32(payload) & 0xFFFFFFFF
    return struct.pack("<BHI", kind, len(payload), crc) + payload


def _record(path, data):
    p = path.encode()
    return bytes([len(p)]) + p + struct.pack("<I", len(data)) + data


def _stream(*records, digest=None):
    """The records, the end of the list and their SHA-256 (or `digest`)."""
    raw = b"".join(records) + b"\0"
    return raw + (digest or hashlib.sha256(raw).digest())


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class _Dir(unittest.TestCase):
    def setUp(self):
        self.tmp = _temp_dir()

    def tearDown(self):
        _rm_tree(self.tmp)

    def line(self, data):
        """Frames(...) over a file holding `data` as the line; the answers go to self.out."""
        path = self.tmp + "/line"
        with open(path, "wb") as f:
            f.write(data)
        self.inp = open(path, "rb")
        self.out = io.BytesIO()
        return fl.Frames(self.inp, self.out, 16, 50)

    def drain(self, frames):
        b = bytearray(1)
        got = bytearray()
        while frames.readinto(b):
            got += b
        return bytes(got)


class TestFrames(_Dir):
    def tearDown(self):
        if getattr(self, "inp", None):
            self.inp.close()
        _Dir.tearDown(self)

    def test_payloads_make_one_stream_and_each_frame_is_answered(self):
        f = self.line(_frame(b"0123456789abcdef") + _frame(b"xyz") + _frame(b"", kind=0x45, crc=0))
        self.assertEqual(self.drain(f), b"0123456789abcdefxyz")
        self.assertEqual(self.out.getvalue(), b"..")
        self.assertTrue(f.ended)

    def test_a_damaged_payload_is_refused_and_not_answered(self):
        good = _frame(b"abc")
        bad = _frame(b"abd", crc=binascii.crc32(b"abc") & 0xFFFFFFFF)
        f = self.line(good + bad)
        with self.assertRaises(fl.Refused) as cm:
            self.drain(f)
        self.assertIn("frame 2 is damaged", str(cm.exception))
        self.assertEqual(self.out.getvalue(), b".")

    def test_a_frame_of_an_unknown_kind_or_too_long_is_malformed(self):
        for data in (_frame(b"abc", kind=0x51), _frame(bytes(17)), _frame(b""), _frame(b"x", kind=0x45)):
            f = self.line(data)
            with self.assertRaises(fl.Refused) as cm:
                self.drain(f)
            self.assertIn("malformed frame 1", str(cm.exception))
            self.inp.close()

    def test_a_stop_frame_ends_it_at_once(self):
        f = self.line(_frame(b"ab") + _frame(b"", kind=0x58, crc=0) + _frame(b"cd"))
        with self.assertRaises(fl.Refused) as cm:
            self.drain(f)
        self.assertIn("the host stopped the copy", str(cm.exception))

    def test_a_line_that_ends_inside_a_frame_is_refused(self):
        for data in (b"D\x03", _frame(b"abc")[:-1]):
            f = self.line(data)
            with self.assertRaises(fl.Refused) as cm:
                self.drain(f)
            self.assertIn("ended inside frame 1", str(cm.exception))
            self.inp.close()

    def test_nothing_more_is_read_after_the_end_frame(self):
        f = self.line(_frame(b"ab") + _frame(b"", kind=0x45, crc=0))
        self.assertEqual(self.drain(f), b"ab")
        f.finish()
        with self.assertRaises(fl.Refused):
            f.next()


class TestRecords(_Dir):
    def receive(self, stream):
        return fl.receive_all(io.BytesIO(stream), io.BytesIO())

    def test_files_are_written_in_place_with_their_folders(self):
        a, b = self.tmp + "/x/y/a.mpy", self.tmp + "/b.json"
        n = self.receive(_stream(_record(a, b"A" * 1300), _record(b, b"{}")))
        self.assertEqual(n, 2)
        self.assertEqual(_read(a), b"A" * 1300)
        self.assertEqual(_read(b), b"{}")
        self.assertEqual(sorted(os.listdir(self.tmp + "/x/y")), ["a.mpy"])

    def _old(self):
        a, b = self.tmp + "/a.mpy", self.tmp + "/b.mpy"
        with open(a, "wb") as f:
            f.write(b"old")
        return a, b

    def test_a_hash_that_differs_leaves_every_file_as_it_was(self):
        a, b = self._old()
        with self.assertRaises(fl.Refused) as cm:
            self.receive(_stream(_record(b, b"written"), _record(a, b"new"), digest=bytes(32)))
        self.assertIn("SHA-256 of the files differs", str(cm.exception))
        self.assertEqual(_read(a), b"old")
        self.assertEqual(os.listdir(self.tmp), ["a.mpy"])  # b.mpy was written, and removed

    def test_a_stream_that_ends_inside_a_file_leaves_nothing_half_written(self):
        a, b = self._old()
        for cut in (_stream(_record(b, b"whole"), _record(a, b"new content"))[:-40], _stream(_record(a, b"x"))[:-1]):
            with self.assertRaises(fl.Refused) as cm:
                self.receive(cut)
            self.assertIn("ended inside a record", str(cm.exception))
            self.assertEqual(_read(a), b"old")
            self.assertEqual(os.listdir(self.tmp), ["a.mpy"])

    def test_a_rename_that_fails_leaves_those_before_it_in_place_and_no_temporary_file(self):
        a, b = self._old()
        os.mkdir(self.tmp + "/c.mpy")  # a folder where a file is to go: os.rename refuses
        with open(self.tmp + "/c.mpy/x", "wb") as f:
            f.write(b"x")
        with self.assertRaises(fl.Refused) as cm:
            self.receive(_stream(_record(b, b"B"), _record(self.tmp + "/c.mpy", b"C"), _record(a, b"A")))
        self.assertIn("c.mpy: cannot put it in place", str(cm.exception))
        self.assertIn("the 1 before it are", str(cm.exception))
        self.assertEqual((_read(a), _read(b)), (b"old", b"B"))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["a.mpy", "b.mpy", "c.mpy"])


# what the host's zlib makes of two records, the end and their SHA-256 (raw deflate, window 2**10): the files
# m/a.mpy (b"abc" * 500) and b.mpy (b"\x00\x03\xff\x04" * 300)
A, B = b"abc" * 500, b"\x00\x03\xff\x04" * 300
COMPRESSED = binascii.unhexlify(
    "63cfd54fd4cb2da8bcc3cac09098943c8a46d1281a45a3689821d624bddc82ca0d2c0c0c0cccff5946f1281ec5a37848"
    "605686999ec50d17fa5efcd23df35ce368fcb78f3f3af7d989ae53bdcd66f3467e4d0800"
)


class TestWithDeflate(_Dir):
    """The frames carry a raw deflate stream made by the host's zlib, decompressed by the board's
    deflate module (MicroPython); on CPython, that the stream is what it stands for."""

    def tearDown(self):
        if getattr(self, "inp", None):
            self.inp.close()
        _Dir.tearDown(self)

    def test_the_stream_is_two_records_and_the_end(self):
        try:
            import zlib
        except ImportError:
            raise unittest.SkipTest("no zlib (MicroPython): the stream is checked on CPython")
        want = _stream(_record("m/a.mpy", A), _record("b.mpy", B))
        self.assertEqual(zlib.decompressobj(-10).decompress(COMPRESSED), want)

    def test_a_compressed_stream_in_frames_is_written_and_checked(self):
        try:
            import deflate
        except ImportError:
            raise unittest.SkipTest("no deflate module (CPython): the vboard tests cover it")
        z = COMPRESSED
        line = b"".join(_frame(z[i : i + 16]) for i in range(0, len(z), 16)) + _frame(b"", kind=0x45, crc=0)
        src = self.line(line)
        cwd = os.getcwd()
        os.chdir(self.tmp)
        try:
            n = fl.receive_all(deflate.DeflateIO(src, deflate.RAW, 10), io.BytesIO())
            src.finish()
        finally:
            os.chdir(cwd)
        self.assertEqual(n, 2)
        self.assertEqual(_read(self.tmp + "/m/a.mpy"), A)
        self.assertEqual(_read(self.tmp + "/b.mpy"), B)
        self.assertEqual(self.out.getvalue(), b"." * ((len(z) + 15) // 16))

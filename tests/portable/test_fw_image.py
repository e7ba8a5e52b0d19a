# The firmware image format (agent/fw_image.py): build, split, and the streaming parser on whole
# and cut-up input, valid and broken; the security counter field and the rollback permission.
import hashlib
import unittest
from struct import pack

from fwkit import Image, files, permit

from agent import cbor
from agent import fw_image as image
from agent.fw_image import ImageError, Parser


class Sink:
    def __init__(self):
        self.out = []
        self.cur = None

    def begin(self, path, n):
        self.cur = [path, n, bytearray()]

    def data(self, mv):
        self.cur[2] += mv

    def end(self):
        p, n, d = self.cur
        self.out.append((p, n, bytes(d)))
        self.cur = None


def parse(content, step=None, **kw):
    sink = Sink()
    p = Parser(sink=sink, **kw)
    if step is None:
        p.feed(content)
    else:
        for i in range(0, len(content), step):
            p.feed(content[i : i + step])
    return p.finish(), sink.out


def header(manifest):
    man = cbor.dumps(manifest)
    return image.MAGIC + bytes([image.FORMAT, 0]) + pack(">H", len(man)) + man


def with_manifest(payload, **changes):
    m = {
        "version": "1.0",
        "board": "sim",
        "size": len(payload),
        "files": 1,
        "sha256": hashlib.sha256(payload).digest(),
    }
    m.update(changes)
    return header(m) + payload


class TestBuildAndParse(unittest.TestCase):
    def test_roundtrip_whole_and_in_pieces(self):
        fl = files("x", count=4, size=500)
        content = image.build("3.1.4", "sim", fl)
        for step in (None, 1, 7, 64, 1000):
            m, out = parse(content, step, board="sim", total=len(content))
            self.assertEqual(m["version"], "3.1.4")
            self.assertEqual(m["files"], 4)
            self.assertEqual([(p, d) for p, _n, d in out], sorted(fl))
            self.assertEqual([n for _p, n, _d in out], [len(d) for _p, d in sorted(fl)])

    def test_content_length_from_head(self):
        img = Image("2.0")
        m, n = image.parse_head(img.content[:200])
        self.assertEqual(n, len(img.content))
        self.assertEqual(m["board"], "sim")

    def test_split_signed_and_unsigned(self):
        img = Image("2.0")
        c, sig = image.split(img.signed())
        self.assertEqual(c, img.content)
        self.assertEqual(sig, img.sig)
        c, sig = image.split(img.content)
        self.assertEqual(c, img.content)
        self.assertIsNone(sig)

    def test_split_refuses_damaged_trailers(self):
        img = Image("2.0")
        with self.assertRaises(ImageError):
            image.split(img.content[:-1])
        with self.assertRaises(ImageError):
            image.split(img.content + b"junk")
        with self.assertRaises(ImageError):
            image.split(img.signed()[:-1])
        with self.assertRaises(ImageError):
            image.split(img.signed() + b"\x00")

    def test_hash_is_of_the_whole_content(self):
        img = Image("2.0")
        self.assertEqual(img.hash, hashlib.sha256(img.signed()[: len(img.content)]).digest())

    def test_empty_file_record(self):
        content = image.build("1", "sim", [("agent/empty.mpy", b""), ("a.mpy", b"x")])
        m, out = parse(content, 3)
        self.assertEqual(out, [("a.mpy", 1, b"x"), ("agent/empty.mpy", 0, b"")])


class TestRefusals(unittest.TestCase):
    def refused(self, content, code="E49", **kw):
        for step in (None, 5):
            with self.assertRaises(ImageError) as cm:
                parse(content, step, **kw)
            self.assertEqual(cm.exception.code, code)
        return str(cm.exception)

    def test_bad_magic_and_format(self):
        content = Image().content
        self.assertIn("magic", self.refused(b"XXXX" + content[4:]))
        self.assertIn("format", self.refused(content[:4] + b"\x02" + content[5:]))

    def test_wrong_board_is_e11(self):
        content = Image(board="heltec_wifi_lora32_v3").content
        self.assertIn("board", self.refused(content, "E11", board="sim"))
        parse(content)  # without a board to check, it is a fine image

    def test_truncated(self):
        content = Image().content
        for cut in (3, 8, 20, len(content) // 2, len(content) - 1):
            self.assertIn("truncated", self.refused(content[:cut]))

    def test_data_after_end(self):
        self.assertIn("after the end", self.refused(Image().content + b"\x00"))

    def test_announced_size_must_agree(self):
        content = Image().content
        self.assertIn("announced", self.refused(content, total=len(content) + 1))

    def test_payload_tampered(self):
        content = bytearray(Image().content)
        content[-10] ^= 1
        self.assertIn("sha256", self.refused(bytes(content), "E100"))

    def test_bad_versions(self):
        payload = image.record("a.mpy", b"1") + b"\x00"
        for v in ("", "123456789", "a b", 5, "v\u00e9"):
            self.refused(with_manifest(payload, version=v))

    def test_manifest_fields(self):
        payload = image.record("a.mpy", b"1") + b"\x00"
        self.refused(with_manifest(payload, files=2))  # fewer records than listed
        self.refused(with_manifest(payload, files=0))
        self.refused(with_manifest(payload, size=len(payload) + 1))
        self.refused(with_manifest(payload, sha256=b"\x00" * 31))
        self.refused(with_manifest(payload, board=""))
        self.refused(header({"version": "1"})[:-1] + b"\xff" + payload)  # not CBOR

    def test_security_counter_field(self):
        payload = image.record("a.mpy", b"1") + b"\x00"
        m, _out = parse(with_manifest(payload, sec=0))
        self.assertEqual(m["sec"], 0)
        self.assertEqual(parse(with_manifest(payload, sec=999999999))[0]["sec"], 999999999)
        for bad in (-1, 1000000000, True, "5", b"\x05"):
            self.assertIn("sec", self.refused(with_manifest(payload, sec=bad)))
        self.assertEqual(image.parse_head(Image("1.0", sec=42).content)[0]["sec"], 42)
        with self.assertRaises(ImageError):
            image.build("1", "sim", [("a.mpy", b"")], {"sec": -5})

    def test_bad_paths(self):
        for p in (b"../x.mpy", b"/x.mpy", b"a//b.mpy", b"a/./b.mpy", b"x.py", b"a b.mpy", b"manifest.json"):
            payload = bytes([len(p)]) + p + pack(">I", 1) + b"1" + b"\x00"
            self.refused(with_manifest(payload))

    def test_duplicate_or_unordered_paths(self):
        payload = image.record("a.mpy", b"1") + image.record("a.mpy", b"2") + b"\x00"
        self.assertIn("order", self.refused(with_manifest(payload, files=2)))
        payload = image.record("b.mpy", b"1") + image.record("a.mpy", b"2") + b"\x00"
        self.assertIn("order", self.refused(with_manifest(payload, files=2)))
        with self.assertRaises(ImageError):
            image.build("1", "sim", [("a.mpy", b"1"), ("a.mpy", b"2")])

    def test_record_past_payload(self):
        payload = bytes([5]) + b"a.mpy" + pack(">I", 1000) + b"1" + b"\x00"
        self.assertIn("past the end", self.refused(with_manifest(payload)))

    def test_build_checks_its_input(self):
        with self.assertRaises(ImageError):
            image.build("toolongversion", "sim", [("a.mpy", b"")])
        with self.assertRaises(ImageError):
            image.build("1", "sim", [("../a.mpy", b"")])


class TestPermit(unittest.TestCase):
    EUI = b"\x00\xdb\x12\x34\x56\x78\x90\xa2"

    def test_roundtrip(self):
        h = hashlib.sha256(b"image").digest()
        p = permit(self.EUI, h)
        signed, eui, digest, sig = image.parse_permit(p)
        self.assertEqual((eui, digest), (self.EUI, h))
        self.assertEqual(signed, image.permit(self.EUI, h))
        self.assertEqual(p, signed + image.trailer(sig))
        self.assertTrue(signed.startswith(image.PERMIT_MAGIC))

    def test_malformed(self):
        h = hashlib.sha256(b"image").digest()
        p = permit(self.EUI, h)
        n = len(image.permit(self.EUI, h))
        for bad in (
            b"",
            b"DBRB",
            image.MAGIC + p[4:],  # an image's magic
            p[:-1],
            p + b"\x00",
            p[:n],  # no signature
            p[:4] + pack(">H", 500) + p[6:],
            image.PERMIT_MAGIC + pack(">H", 3) + cbor.dumps([1]) + p[n:],
            image.PERMIT_MAGIC + pack(">H", 3) + b"\xff\xff\xff" + p[n:],
        ):
            with self.assertRaises(ImageError):
                image.parse_permit(bad)
        for eui, digest in ((b"\x00" * 7, h), (self.EUI, h[:31])):
            with self.assertRaises(ImageError):
                image.permit(eui, digest)

# The firmware image format (agent/fw_image.py): build, split, and the streaming parser on whole
# and cut-up input, valid and broken; the security counter field and the rollback permission.
import hashlib
import unittest
from struct import pack

from agent import cbor
from agent import fw_image as image
from agent.fw_image import RC_AUTH, RC_BOARD, RC_FORMAT, ImageError, Parser
from tests.kits.fwkit import Image, files, permit


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


def refused(case, why, code, fn, *args, **kw):
    """fn(*args, **kw) must raise ImageError with response code `code` and a message that says
    `why`."""
    with case.assertRaises(ImageError) as cm:
        fn(*args, **kw)
    case.assertEqual(cm.exception.code, code)
    case.assertIn(why, str(cm.exception))


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
        n = len(img.content)
        refused(self, "truncated image: {} of {}".format(n - 1, n), RC_FORMAT, image.split, img.content[:-1])
        refused(self, "not a signature trailer", RC_FORMAT, image.split, img.content + b"junk")
        refused(self, "bad signature trailer", RC_FORMAT, image.split, img.signed()[:-1])
        refused(self, "bad signature trailer", RC_FORMAT, image.split, img.signed() + b"\x00")
        short = img.content + image.SIG_MAGIC + pack(">H", 7) + bytes(7)  # a signature of 7 bytes
        refused(self, "bad signature trailer", RC_FORMAT, image.split, short)
        refused(self, "no DBFW magic", RC_FORMAT, image.split, b"DBFX" + img.content[4:])

    def test_head_refusals(self):
        content = Image().content
        mlen = content[6] << 8 | content[7]
        for head, why in (
            (content[:7], "no DBFW magic"),
            (b"DBFX" + content[4:], "no DBFW magic"),
            (content[:4] + b"\x02" + content[5:], "image format 2 not supported"),
            (content[:6] + pack(">H", 0) + content[8:], "bad manifest length 0"),
            (content[:6] + pack(">H", image.MAX_MANIFEST + 1) + content[8:], "bad manifest length 1025"),
            (content[: 8 + mlen - 1], "truncated header"),
            (header({"version": "1"})[:-1] + b"\xff", "manifest is not CBOR"),
            (header({"version": "1"}), "manifest has no board"),
        ):
            with self.subTest(why):
                refused(self, why, RC_FORMAT, image.parse_head, head)
                refused(self, why, RC_FORMAT, image.split, head)

    def test_hash_is_of_the_whole_content(self):
        img = Image("2.0")
        self.assertEqual(img.hash, hashlib.sha256(img.signed()[: len(img.content)]).digest())

    def test_empty_file_record(self):
        content = image.build("1", "sim", [("agent/empty.mpy", b""), ("a.mpy", b"x")])
        m, out = parse(content, 3)
        self.assertEqual(out, [("a.mpy", 1, b"x"), ("agent/empty.mpy", 0, b"")])


class TestRefusals(unittest.TestCase):
    def refused(self, content, why, code=RC_FORMAT, **kw):
        """The parser refuses content, whole and in 5-byte pieces, with code and a message that
        says why."""
        for step in (None, 5):
            refused(self, why, code, parse, content, step, **kw)

    def test_bad_magic_and_format(self):
        content = Image().content
        self.refused(b"XXXX" + content[4:], "no DBFW magic")
        self.refused(content[:4] + b"\x02" + content[5:], "image format 2 not supported")
        for mlen in (0, image.MAX_MANIFEST + 1):
            self.refused(content[:6] + pack(">H", mlen) + content[8:], "bad manifest length {}".format(mlen))

    def test_wrong_board_is_e11(self):
        content = Image(board="heltec_wifi_lora32_v3").content
        self.refused(content, "image is for board 'heltec_wifi_lora32_v3', this is 'sim'", RC_BOARD, board="sim")
        parse(content)  # without a board to check, it is a fine image

    def test_truncated(self):
        content = Image().content
        for cut in (3, 8, 20, len(content) // 2, len(content) - 1):
            self.refused(content[:cut], "truncated image: {} bytes".format(cut))

    def test_data_after_end(self):
        self.refused(Image().content + b"\x00", "data after the end of the image")

    def test_announced_size_must_agree(self):
        content = Image().content
        n = len(content)
        self.refused(content, "image is {} bytes by its manifest, {} were announced".format(n, n + 1), total=n + 1)

    def test_payload_tampered(self):
        content = bytearray(Image().content)
        content[-10] ^= 1
        self.refused(bytes(content), "payload does not match the manifest's sha256", RC_AUTH)

    def test_bad_versions(self):
        payload = image.record("a.mpy", b"1") + b"\x00"
        for v, why in (
            ("", "1 to 8 characters"),
            ("123456789", "1 to 8 characters"),
            (5, "1 to 8 characters"),
            ("a b", "printable ASCII without spaces"),
            ("v\u00e9", "printable ASCII without spaces"),
        ):
            self.refused(with_manifest(payload, version=v), "bad version {!r}: {}".format(v, why))

    def test_manifest_fields(self):
        payload = image.record("a.mpy", b"1") + b"\x00"
        n = len(payload)
        self.refused(with_manifest(payload, files=2), "1 files, the manifest says 2")  # fewer records than listed
        self.refused(with_manifest(payload, files=0), "manifest 'files' must be a positive int, not 0")
        self.refused(with_manifest(payload, files=image.MAX_FILES + 1), "manifest lists 513 files, at most 512")
        self.refused(with_manifest(payload, size=0), "manifest 'size' must be a positive int, not 0")
        self.refused(with_manifest(payload, size=n + 1), "payload is {} bytes, the manifest says {}".format(n, n + 1))
        self.refused(with_manifest(payload, sha256=b"\x00" * 31), "manifest sha256 must be 32 bytes")
        self.refused(with_manifest(payload, board=""), "manifest has no board")
        self.refused(header({"version": "1"})[:-1] + b"\xff" + payload, "manifest is not CBOR")
        self.refused(header([1]) + payload, "manifest is not a map")

    def test_security_counter_field(self):
        payload = image.record("a.mpy", b"1") + b"\x00"
        m, _out = parse(with_manifest(payload, sec=0))
        self.assertEqual(m["sec"], 0)
        self.assertEqual(parse(with_manifest(payload, sec=999999999))[0]["sec"], 999999999)
        why = "manifest sec (security counter) must be an int from 0 to 999999999, not "
        for bad in (-1, 1000000000, True, "5", b"\x05"):
            self.refused(with_manifest(payload, sec=bad), why + repr(bad))
        self.assertEqual(image.parse_head(Image("1.0", sec=42).content)[0]["sec"], 42)
        refused(self, why + "-5", RC_FORMAT, image.build, "1", "sim", [("a.mpy", b"")], {"sec": -5})

    def test_bad_paths(self):
        for p, why in (
            (b"../x.mpy", "empty, '.' or '..' component"),
            (b"/x.mpy", "empty, '.' or '..' component"),
            (b"a//b.mpy", "empty, '.' or '..' component"),
            (b"a/./b.mpy", "empty, '.' or '..' component"),
            (b"x.py", "an image holds .mpy files only"),
            (b"manifest.json", "an image holds .mpy files only"),
            (b"a b.mpy", "only A-Z a-z 0-9 _ . - and /"),
            (b"\xff.mpy", "file path is not text"),
        ):
            payload = bytes([len(p)]) + p + pack(">I", 1) + b"1" + b"\x00"
            if why != "file path is not text":
                why = "bad file path {!r}: {}".format(p.decode(), why)
            self.refused(with_manifest(payload), why)
        payload = bytes([image.MAX_PATH + 1]) + b"a" * 61 + b".mpy" + pack(">I", 1) + b"1" + b"\x00"
        self.refused(with_manifest(payload), "bad file path length 65")

    def test_duplicate_or_unordered_paths(self):
        payload = image.record("a.mpy", b"1") + image.record("a.mpy", b"2") + b"\x00"
        self.refused(with_manifest(payload, files=2), "file a.mpy is out of order")
        payload = image.record("b.mpy", b"1") + image.record("a.mpy", b"2") + b"\x00"
        self.refused(with_manifest(payload, files=2), "file a.mpy is out of order")
        refused(
            self, "file a.mpy appears twice", RC_FORMAT, image.build, "1", "sim", [("a.mpy", b"1"), ("a.mpy", b"2")]
        )

    def test_more_records_than_listed(self):
        payload = image.record("a.mpy", b"1") + image.record("b.mpy", b"2") + b"\x00"
        self.refused(with_manifest(payload, files=1), "more files than the manifest lists")

    def test_record_past_payload(self):
        payload = bytes([5]) + b"a.mpy" + pack(">I", 1000) + b"1" + b"\x00"
        self.refused(with_manifest(payload), "file a.mpy runs past the end of the payload")

    def test_build_checks_its_input(self):
        refused(self, "bad version 'toolongversion'", RC_FORMAT, image.build, "toolongversion", "sim", [("a.mpy", b"")])
        refused(self, "bad file path '../a.mpy'", RC_FORMAT, image.build, "1", "sim", [("../a.mpy", b"")])
        for path in ("", "a" * 61 + ".mpy"):
            refused(self, "bad file path {!r}: 1-64 characters".format(path), RC_FORMAT, image.record, path, b"")
        one = [("a.mpy", b"")]
        refused(self, "manifest too large", RC_FORMAT, image.build, "1", "sim", one, {"pad": "x" * image.MAX_MANIFEST})
        for sig in (bytes(7), bytes(image.MAX_SIG + 1)):
            refused(self, "a signature is 8 to 72 bytes", RC_FORMAT, image.trailer, sig)


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
        names = "names an 8-byte EUI-64 and a 32-byte FirmwareHash"
        not_a_map = cbor.dumps([1])
        for bad, why in (
            (b"", "no DBRB magic"),
            (b"DBRB", "no DBRB magic"),
            (image.MAGIC + p[4:], "no DBRB magic"),  # an image's magic
            (p[:-1], "bad signature trailer on the rollback permission"),
            (p + b"\x00", "bad signature trailer on the rollback permission"),
            (p[:n], "malformed rollback permission"),  # no signature
            (p[:4] + pack(">H", 500) + p[6:], "malformed rollback permission"),
            (image.PERMIT_MAGIC + pack(">H", len(not_a_map)) + not_a_map + p[n:], names),
            (image.PERMIT_MAGIC + pack(">H", 3) + b"\xff\xff\xff" + p[n:], "rollback permission is not CBOR"),
        ):
            with self.subTest(bad):
                refused(self, why, RC_FORMAT, image.parse_permit, bad)
        for eui, digest in ((b"\x00" * 7, h), (self.EUI, h[:31])):
            refused(self, names, RC_FORMAT, image.permit, eui, digest)

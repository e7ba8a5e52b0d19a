# Compressed firmware staging (agent/fw_inflate.py through agent/fw_staging.py) on a simulated hub:
# the image as one raw deflate stream cut into chunks (zlib's on CPython, stored blocks on
# MicroPython: tests.kits.fwkit.Deflater; a zlib stream cut mid-symbol on both, from a vector),
# staged as plain chunks stage it; a damaged chunk refused with nothing of it written; a cut link
# or a power cut mid-stream resumed by a new fw.begin.
import unittest
from binascii import crc32, unhexlify

from agent import fw_inflate
from agent.fw_common import FwError
from hal.compat import unload
from hal.contracts import PowerCut
from tests.kits.fwkit import Deflater, Device, Image, slot_files

STAGE = "/slots/stage.img"


def ok(test, r):
    test.assertEqual(r[0], "I0", r[2])
    return r[1]


def begin(dev, img, z=12):
    return dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig, z=z)


def chunk(dev, args):
    return dev.hub.handle({"t": "q", "id": 1, "op": "fw.chunk", "a": args})


def staged(dev):
    return dev.flash.files().get(STAGE, b"")


def text(n):
    # compressible bytes, as code is: repeated names, varied numbers
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"def handler_%d(self, name, args): return self.table[%d] + name\n" % (i % 37, i * 7 % 101)
        i += 1
    return bytes(out[:n])


def compressible(version="2.0"):
    return Image(version, payload=[("agent/a.mpy", text(2500)), ("agent/b.mpy", text(1900).replace(b"self", b"hub"))])


# zlib (level 9, window 2**9) of text(1200), cut into pieces of 37 compressed bytes: each piece's
# n is what the stream gives once the piece is in (a symbol cut at a piece's end comes with the next)
ZLIB_TEXT_1200 = (
    "8dce3d0ac2401884e1de536c1931c87efbbf5e454456b2d122a6d824f717ad2c2630f5cc03ef5047f52af330d576d7dd"
    "52a7b1577379d75e95f65c8e17d5eabab5597d97f35a1e53bdea9b3afd3e87e10f0b8723c486c3e2a0b69c3602b52375"
    "82da73da7aa803a79d813a923a439d38ed03d499d3c1422d9ae351632e248f981b8e2787b9e57816cc1dc913e69ee33b"
    "ed81d3b2d31e49bed39e386e3ce6b95b3e"
)
ZLIB_TEXT_1200_N = (0, 52, 454, 542, 152)

# zlib (level 9, window 2**9) of the changed text, with the old text's last 512 bytes as its dictionary,
# cut into pieces of 40 bytes; each piece's n as for ZLIB_TEXT_1200
ZLIB_CHANGED = (
    "8dcebb0d80301083e19e2922b1c0bd72970c438122c4fe1b4089900bd7d6f7cbdf55b8b6e034870b62e3b006d4ce6953"
    "a883d4e3d8dbd9d6cbee6b43a1ce85bcc31bc9e930a88bd413eac1e99e504f4ea743adc2f112cc95e485b9717c04e6ce"
    "f1a998c79f3f"
)
ZLIB_CHANGED_N = (113, 467, 331)


class TestInflater(unittest.TestCase):
    def test_a_stream_cut_anywhere_gives_each_pieces_bytes(self):
        data = text(1200)
        d = Deflater(9)
        pieces = list(d.chunks(data, 0, 37))
        self.assertEqual(b"".join(p["z"] for p in pieces), d._stream(data)[0])
        inf = fw_inflate.start(9, ((64, 2048),))
        self.assertIsNotNone(inf)
        got = b""
        for p in pieces:
            got += bytes(inf.take(p, p["offset"]))
        self.assertEqual(got, data)

    def test_a_zlib_stream_cut_mid_symbol(self):
        # made by zlib on CPython (the same on every run): z and each piece's n
        data = text(1200)
        z = unhexlify(ZLIB_TEXT_1200)
        inf = fw_inflate.start(9, ((64, 2048),))
        got = b""
        pos = 0
        for n in ZLIB_TEXT_1200_N:
            piece = data[len(got) : len(got) + n]
            out = inf.take({"z": z[pos : pos + 37], "n": n, "c": crc32(piece) & 0xFFFFFFFF}, len(got))
            got += bytes(out)
            pos += 37
        self.assertEqual(got, data)

    def test_a_piece_asked_for_more_than_it_holds_is_refused(self):
        data = text(1200)
        pieces = list(Deflater(9).chunks(data, 0, 37))
        inf = fw_inflate.start(9, ((64, 2048),))
        p = pieces[0]
        p["n"] += 40
        with self.assertRaises(FwError):
            inf.take(p, 0)

    def _primed(self):
        # a flash whose running slot holds the old text as agent/x.mpy, and an inflater
        from hal.sim.flash import SimFlash

        fs = SimFlash()
        fs.mkdir("/slots")
        fs.mkdir("/slots/a")
        fs.mkdir("/slots/a/agent")
        f = fs.open("/slots/a/agent/x.mpy", "wb")
        f.write(text(900))
        f.close()
        return fs, fw_inflate.start(9, ((64, 2048),))

    def test_a_module_of_the_running_slot_primes_the_window(self):
        # made by zlib on CPython with the old text's last 2**9 bytes as its dictionary
        old = text(900)
        new = old[:300] + b"# a change\n" + old[300:]
        fs, inf = self._primed()
        inf.prime(fs, "/slots/a", "agent/x.mpy")
        z = unhexlify(ZLIB_CHANGED)
        got = b""
        for i, n in enumerate(ZLIB_CHANGED_N):
            piece = new[len(got) : len(got) + n]
            got += bytes(inf.take({"z": z[i * 40 : i * 40 + 40], "n": n, "c": crc32(piece) & 0xFFFFFFFF}, len(got)))
        self.assertEqual(got, new)
        self.assertLess(len(z), len(new) // 5)  # it referred to the window

    def test_the_same_stream_without_the_window_is_refused(self):
        new = text(900)[:300] + b"# a change\n" + text(900)[300:]
        _fs, inf = self._primed()
        z = unhexlify(ZLIB_CHANGED)
        n = ZLIB_CHANGED_N[0]
        with self.assertRaises(FwError):
            inf.take({"z": z[:40], "n": n, "c": crc32(new[:n]) & 0xFFFFFFFF}, 0)

    def test_only_a_module_of_the_running_slot_primes(self):
        fs, inf = self._primed()
        for path in ("agent/none.mpy", "../fwboot.json", "/slots/a/agent/x.mpy", "", 7):
            with self.assertRaises(FwError):
                inf.prime(fs, "/slots/a", path)

    def test_no_window_below_2_to_the_9(self):
        self.assertIsNone(fw_inflate.start(8, ((64, 2048),)))
        self.assertIsNone(fw_inflate.start(True, ((64, 2048),)))


class TestCompressedStaging(unittest.TestCase):
    def test_a_compressed_stream_stages_the_image(self):
        for img in (Image("2.0", size=3000), compressible()):
            dev = Device()
            r = ok(self, begin(dev, img))
            self.assertTrue(9 <= r["z"] <= 12, r)
            self.assertTrue(r["zc"] >= r["chunk"] and r["zn"] >= r["zc"], r)
            data = ok(self, dev.send(img, chunk=700, z=12))
            self.assertEqual((data["hash"], data["slot"]), (img.hash, "b"))
            self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))

    def test_the_window_is_never_larger_than_asked_nor_than_32k(self):
        dev = Device()
        img = Image("2.0")
        self.assertEqual(ok(self, begin(dev, img, z=9))["z"], 9)
        self.assertLessEqual(ok(self, begin(dev, img, z=30))["z"], 15)

    def test_a_board_without_a_decompressor_answers_for_plain_chunks(self):
        import hal.compat as compat

        saved = compat.raw_inflater
        compat.raw_inflater = lambda src, wbits: None  # as hal.compat finds neither deflate nor zlib
        unload("agent.fw_inflate")
        try:
            dev = Device()
            img = compressible()
            r = ok(self, begin(dev, img))
            self.assertNotIn("z", r)
            self.assertNotIn("zn", r)
            ok(self, dev.send(img, chunk=700, z=12))  # the kit sends plain chunks, as the host does
            self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))
        finally:
            compat.raw_inflater = saved
            unload("agent.fw_inflate")

    def test_a_begin_without_z_gets_plain_chunks_only(self):
        dev = Device()
        img = compressible()
        r = ok(self, dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig))
        self.assertNotIn("z", r)
        args = next(Deflater(12).chunks(img.content, 0, 500))
        r = chunk(dev, args)
        self.assertEqual((r[0], r[1]), ("E49", {"offset": 0}))
        self.assertEqual(staged(dev), b"")
        ok(self, dev.send(img, chunk=700))  # plain, as before
        self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))

    def _damaged(self, spoil):
        # a stream whose second chunk is spoiled: refused, nothing of it staged, the stream closed
        # until a new begin, which resumes at the staged offset and completes
        dev = Device()
        img = compressible()
        ok(self, begin(dev, img))
        pieces = list(Deflater(12).chunks(img.content, 0, 400))
        ok(self, chunk(dev, pieces[0]))
        have = pieces[1]["offset"]
        self.assertEqual(staged(dev), img.content[:have])
        r = chunk(dev, spoil(dict(pieces[1])))
        self.assertEqual(r[0], "E49", r)
        self.assertIn("nothing of it is staged", r[2])
        self.assertEqual(staged(dev), img.content[:have])
        # the stream is broken: even the right chunk is refused until a new begin
        r = chunk(dev, pieces[1])
        self.assertEqual((r[0], r[1]), ("E49", {"offset": have}))
        self.assertEqual(staged(dev), img.content[:have])
        self.assertEqual(ok(self, begin(dev, img))["offset"], have)
        ok(self, dev.send(img, chunk=300, z=12))
        self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))
        self.assertIsNone(ok(self, dev.call("fw.status"))["staging"])

    def test_a_chunk_with_damaged_compressed_bytes_is_refused(self):
        def spoil(args):
            z = bytearray(args["z"])
            for i in range(len(z) // 3, len(z) // 3 + 8):
                z[i] ^= 0x5A
            args["z"] = bytes(z)
            return args

        self._damaged(spoil)

    def test_a_chunk_cut_short_is_refused(self):
        def spoil(args):
            args["z"] = args["z"][: len(args["z"]) // 2]
            return args

        self._damaged(spoil)

    def test_a_chunk_whose_crc_differs_is_refused(self):
        def spoil(args):
            args["c"] ^= 1
            return args

        self._damaged(spoil)

    def test_a_chunk_that_claims_more_bytes_than_it_gives_is_refused(self):
        def spoil(args):
            args["n"] += 1
            return args

        self._damaged(spoil)

    def test_a_plain_chunk_ends_the_compressed_stream(self):
        dev = Device()
        img = compressible()
        ok(self, begin(dev, img))
        pieces = list(Deflater(12).chunks(img.content, 0, 300))
        ok(self, chunk(dev, pieces[0]))
        at = pieces[1]["offset"]
        ok(self, dev.call("fw.chunk", offset=at, data=img.content[at : at + 100]))
        r = chunk(dev, pieces[1])  # the stream's next piece, at what is no longer its offset
        self.assertEqual((r[0], r[1]), ("E49", {"offset": at + 100}))
        r = chunk(dev, dict(pieces[1], offset=at + 100))  # nor at the staged one: the stream is closed
        self.assertEqual((r[0], r[1]), ("E49", {"offset": at + 100}))
        self.assertEqual(staged(dev), img.content[: at + 100])
        ok(self, dev.send(img, chunk=300, z=12))
        self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))

    def test_a_chunk_over_the_announced_most_is_refused(self):
        dev = Device()
        img = compressible()
        r = ok(self, begin(dev, img))
        args = next(Deflater(12).chunks(img.content, 0, 4000))
        args["n"] = r["zn"] + 1
        self.assertEqual(chunk(dev, args)[0], "E49")
        self.assertEqual(staged(dev), b"")

    def test_a_cut_link_mid_stream_resumes_with_a_new_stream(self):
        dev = Device()
        img = compressible()
        dev.send(img, chunk=60, stop_at=1500, z=12)
        have = staged(dev)
        self.assertTrue(1500 <= len(have) < len(img.content), len(have))
        self.assertEqual(have, img.content[: len(have)])
        # the host's stream is gone with the link: a new begin, a new stream at the offset
        self.assertEqual(ok(self, begin(dev, img))["offset"], len(have))
        ok(self, dev.send(img, chunk=500, z=12))
        self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))

    def test_a_power_cut_mid_stream_resumes_after_the_reboot(self):
        img = Image("2.0", size=3000)
        resumed = []
        for n in (1, 2, 3, 5, 8, 12):
            dev = Device()
            dev.flash.cut_at(dev.flash.writes + n)
            try:
                dev.send(img, chunk=800, z=12)
                self.fail("no power cut")
            except PowerCut:
                pass
            dev.boot()
            have = staged(dev)
            self.assertEqual(have, img.content[: len(have)])  # a prefix, nothing wrong
            if ok(self, dev.call("fw.status"))["staging"] is not None:
                # no stream after the reboot: a compressed chunk is refused with the offset
                r = chunk(dev, next(Deflater(12).chunks(img.content, len(have), 500)))
                self.assertEqual((r[0], r[1]), ("E49", {"offset": len(have)}))
                resumed.append(len(have))
            ok(self, dev.send(img, chunk=800, z=12))
            self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))
        self.assertTrue([n for n in resumed if n > 0], resumed)  # some cuts fell mid-stream


if __name__ == "__main__":
    unittest.main()

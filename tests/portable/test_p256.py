# ECDSA P-256 verifier (agent/p256.py) on MicroPython and CPython alike, against fixed vectors
# (tests/vectors/p256_fixed.json: made once with `cryptography`, whose verdicts
# tests/host/test_p256_crosscheck.py checks again), NIST CAVP SigVer records, RFC 6979's
# signatures and known points.
import hashlib
import unittest
from binascii import unhexlify

from agent import p256
from tests.kits import vectorkit


def _h(text):
    return unhexlify(text)


def _der_integer(b):
    i = 0
    while i < len(b) - 1 and b[i] == 0:
        i += 1
    b = b[i:]
    if b[0] & 0x80:
        b = b"\x00" + b
    return b"\x02" + bytes([len(b)]) + b


def _der_sig(r, s):
    body = _der_integer(r) + _der_integer(s)
    return b"\x30" + bytes([len(body)]) + body


# The vectors (tests/vectors/p256_*.json says where each set comes from).
FIXED = vectorkit.load("p256_fixed")["vectors"]


def valid_der():
    v = FIXED[0]
    assert v["name"] == "valid DER" and v["valid"]
    return _h(v["key"]), _h(v["digest"]), _h(v["sig"])


class FixedVectors(unittest.TestCase):
    def test_every_fixed_vector_gets_the_expected_verdict(self):
        for v in FIXED:
            with self.subTest(v["name"]):
                self.assertIs(p256.verify(_h(v["key"]), _h(v["digest"]), _h(v["sig"])), v["valid"])

    def test_the_vectors_hold_valid_and_invalid_cases(self):
        verdicts = [v["valid"] for v in FIXED]
        self.assertEqual(len(verdicts), 64)
        self.assertEqual(verdicts.count(True), 12)
        self.assertEqual(verdicts.count(False), len(FIXED) - 12)

    def test_bytearray_and_memoryview_inputs(self):
        key, digest, sig = valid_der()
        self.assertTrue(p256.verify(bytearray(key), bytearray(digest), bytearray(sig)))
        self.assertTrue(p256.verify(memoryview(key), memoryview(digest), memoryview(sig)))

    def test_verify_never_raises_on_wrong_types(self):
        key, digest, sig = valid_der()
        for bad in (None, 0, 32, 65, "", "ab" * 32, [1, 2, 3], (), 1.5, {}):
            with self.subTest(repr(bad)):
                self.assertIs(p256.verify(bad, digest, sig), False)
                self.assertIs(p256.verify(key, bad, sig), False)
                self.assertIs(p256.verify(key, digest, bad), False)
        # an int digest must not be taken for bytes(32) (what bytes(32) would make of it)
        self.assertIs(p256.verify(key, 32, sig), False)

    def test_oversized_inputs_are_refused_without_work(self):
        key, digest, sig = valid_der()
        self.assertIs(p256.verify(key + bytes(4000), digest, sig), False)
        self.assertIs(p256.verify(key, digest + bytes(4000), sig), False)
        self.assertIs(p256.verify(key, digest, sig + bytes(4000)), False)


class NistCavp(unittest.TestCase):
    def test_sigver_p256_sha256_raw_and_der(self):
        records = vectorkit.load("p256_cavp_sigver")["vectors"]
        self.assertEqual(len(records), 15)
        passed = 0
        for v in records:
            digest = hashlib.sha256(_h(v["msg"])).digest()
            key = b"\x04" + _h(v["qx"]) + _h(v["qy"])
            r, s = _h(v["r"]), _h(v["s"])
            with self.subTest(v["qx"]):
                self.assertIs(p256.verify(key, digest, r + s), v["valid"])
                self.assertIs(p256.verify(key, digest, _der_sig(r, s)), v["valid"])
            passed += v["valid"]
        self.assertEqual(passed, 3)


class Rfc6979(unittest.TestCase):
    def setUp(self):
        data = vectorkit.load("p256_rfc6979")
        self.key = _h(data["key"])
        self.sigs = [(v["msg"].encode(), _h(v["r"]), _h(v["s"])) for v in data["vectors"]]
        self.assertEqual([m for m, _r, _s in self.sigs], [b"sample", b"test"])

    def test_published_signatures_verify(self):
        for msg, r, s in self.sigs:
            digest = hashlib.sha256(msg).digest()
            self.assertTrue(p256.verify(self.key, digest, r + s))
            self.assertTrue(p256.verify(self.key, digest, _der_sig(r, s)))

    def test_signatures_do_not_verify_the_other_message(self):
        (m1, r1, s1), (m2, r2, s2) = self.sigs
        self.assertFalse(p256.verify(self.key, hashlib.sha256(m2).digest(), r1 + s1))
        self.assertFalse(p256.verify(self.key, hashlib.sha256(m1).digest(), r2 + s2))


G_UNCOMPRESSED = (
    "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
)


class Encodings(unittest.TestCase):
    def test_parse_public_key_uncompressed_and_compressed(self):
        self.assertEqual(p256.parse_public_key(_h(G_UNCOMPRESSED)), (p256.GX, p256.GY))
        # GY is odd: prefix 0x03; with 0x02 the same x gives -G
        self.assertEqual(p256.parse_public_key(_h("03" + G_UNCOMPRESSED[2:66])), (p256.GX, p256.GY))
        self.assertEqual(p256.parse_public_key(_h("02" + G_UNCOMPRESSED[2:66])), (p256.GX, p256.P - p256.GY))
        key = _h(vectorkit.load("p256_rfc6979")["key"])
        y_even = key[64] & 1 == 0
        compressed = bytes([2 if y_even else 3]) + key[1:33]
        self.assertEqual(p256.parse_public_key(compressed), p256.parse_public_key(key))

    def test_parse_public_key_refusals_are_value_errors(self):
        g = _h(G_UNCOMPRESSED)
        off_curve = g[:64] + bytes([g[64] ^ 1])
        x_too_big = b"\x04" + (p256.P + 1).to_bytes(32, "big") + g[33:]
        for bad in (b"", b"\x00", g[:-1], g + b"\x00", b"\x06" + g[1:], b"\x05" + g[1:], off_curve, x_too_big):
            with self.subTest(bad):
                with self.assertRaises(p256.P256Error):
                    p256.parse_public_key(bad)
                with self.assertRaises(ValueError):
                    p256.parse_public_key(bad)

    def test_decode_signature_der_and_raw_agree(self):
        r = 0x00FF  # both small: DER keeps the sign byte of 0xff
        s = p256.N - 1
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        der = _der_sig(r.to_bytes(32, "big"), s.to_bytes(32, "big"))
        self.assertEqual(der[:7], b"\x30\x27\x02\x02\x00\xff\x02")
        self.assertEqual(p256.decode_signature(der), (r, s))
        self.assertEqual(p256.decode_signature(raw), (r, s))

    def test_decode_signature_refusals(self):
        one = b"\x02\x01\x01"
        cases = (
            b"",
            b"\x30\x06" + one + one + b"\x00",  # trailing byte
            b"\x30\x07" + one + one,  # SEQUENCE length too long
            b"\x30\x07" + one + one + b"\x00",  # trailing byte inside the SEQUENCE
            b"\x30\x05" + one + one,  # SEQUENCE length too short
            b"\x30\x81\x06" + one + one,  # long form length
            b"\x30\x06\x02\x01\x00" + one,  # r = 0
            b"\x30\x06" + one + b"\x02\x01\x00",  # s = 0
            b"\x30\x07\x02\x02\x00\x01" + one,  # non-minimal INTEGER
            b"\x30\x06\x02\x01\xff" + one,  # negative INTEGER
            b"\x30\x06\x02\x00" + one + b"\x00",  # empty INTEGER
            b"\x31\x06" + one + one,  # not a SEQUENCE
            bytes(64),  # raw r = s = 0
            p256.N.to_bytes(32, "big") + (1).to_bytes(32, "big"),  # raw r = n
        )
        self.assertEqual(p256.decode_signature(b"\x30\x06" + one + one), (1, 1))
        for bad in cases:
            with self.subTest(bad):
                with self.assertRaises(p256.P256Error):
                    p256.decode_signature(bad)

    def test_a_64_byte_blob_is_read_as_der_first_then_raw(self):
        # 30 3e | 02 20 <32 bytes> | 02 1a <26 bytes>: strict DER, and also 64 bytes of r||s
        r = bytes([0x11] * 32)
        s = bytes([0x22] * 26)
        blob = b"\x30\x3e\x02\x20" + r + b"\x02\x1a" + s
        self.assertEqual(len(blob), 64)
        self.assertEqual(p256.decode_signature(blob), (int.from_bytes(r, "big"), int.from_bytes(s, "big")))
        self.assertEqual(p256._readings(blob)[1], (int.from_bytes(blob[:32], "big"), int.from_bytes(blob[32:], "big")))


class Arithmetic(unittest.TestCase):
    def test_mul_add_against_known_points(self):
        table = vectorkit.load("p256_mul_add")["vectors"]
        self.assertEqual(len(table), 9)
        for v in table:
            a, b, qx, qy, rx, ry = [int(v[k], 16) for k in ("a", "b", "qx", "qy", "rx", "ry")]
            with self.subTest(a=a, b=b):
                X, Y, Z = p256._mul_add(a, b, qx, qy)
                self.assertEqual(p256._to_affine([(X, Y, Z)]), [(rx, ry)])

    def test_mul_add_reaches_infinity(self):
        self.assertEqual(p256._mul_add(1, p256.N - 1, p256.GX, p256.GY)[2], 0)
        self.assertEqual(p256._mul_add(5, 5, p256.GX, p256.P - p256.GY)[2], 0)
        self.assertEqual(p256._mul_add(0, p256.N, p256.GX, p256.GY)[2], 0)

    def test_wnaf_digits_rebuild_the_scalar(self):
        for w in (4, 5, 6, 7):
            for k in (0, 1, 2, 3, 0xFF, 2**255 + 1, p256.N - 1, 2**256 - 1, 0xA5A5A5A5 << 200):
                digits, count = p256._wnaf(k, w)
                total = 0
                last = -w
                for i in range(count):
                    d = digits[i]
                    if d:
                        self.assertEqual(d & 1, 1)
                        self.assertLess(d & 0x7F, 1 << (w - 1))
                        self.assertGreaterEqual(i - last, w)
                        last = i
                        total += (-(d & 0x7F) if d & 0x80 else d) << i
                self.assertEqual(total, k)

    def test_inverse_and_modular_power(self):
        for x in (1, 2, p256.GX, p256.P - 1):
            self.assertEqual(x * p256._inv(x, p256.P) % p256.P, 1)
            self.assertEqual(x * p256._inv(x, p256.N) % p256.N, 1)
        with self.assertRaises(p256.P256Error):
            p256._inv(0, p256.N)
        self.assertEqual(p256._pow_mod(3, 5, 7), 5)
        self.assertEqual(p256._pow_mod(p256.GX, p256.P - 1, p256.P), 1)

import unittest
from binascii import hexlify, unhexlify

from agent import cbor


def h(s):
    return unhexlify(s.replace(" ", ""))


def hx(b):
    return hexlify(b).decode()


# (value, canonical encoding): RFC 8949 Appendix A plus the protocol's edge cases.
VECTORS = (
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (255, "18ff"),
    (256, "190100"),
    (1000, "1903e8"),
    (65535, "19ffff"),
    (65536, "1a00010000"),
    (1000000, "1a000f4240"),
    (2**32 - 1, "1affffffff"),
    (2**32, "1b0000000100000000"),
    (1000000000000, "1b000000e8d4a51000"),
    (2**64 - 1, "1bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-24, "37"),
    (-25, "3818"),
    (-100, "3863"),
    (-256, "38ff"),
    (-257, "390100"),
    (-1000, "3903e7"),
    (-(2**32), "3affffffff"),
    (-(2**32) - 1, "3b0000000100000000"),
    (-(2**64), "3bffffffffffffffff"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
)

FLOATS = (
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"),
    (0.00006103515625, "f90400"),
    (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"),
    (float("inf"), "f97c00"),
    (float("-inf"), "f9fc00"),
    # at the edges of the half range
    (65536.0, "fa47800000"),
    (65520.0, "fa477ff000"),
    (-131008.0, "fac7ffe000"),
    (2.0**-25, "fa33000000"),
    (3 * 2.0**-25, "fa33c00000"),
    (1.0009765625, "f93c01"),
    (1.00048828125, "fa3f801000"),
    (1.401298464324817e-45, "fa00000001"),  # smallest single subnormal
    (7.006492321624085e-46, "fb3690000000000000"),
)


class Encoding(unittest.TestCase):
    def test_vectors_encode_canonically(self):
        for value, enc in VECTORS:
            with self.subTest(value=value):
                self.assertEqual(hx(cbor.dumps(value)), enc)

    def test_vectors_decode(self):
        for value, enc in VECTORS:
            with self.subTest(enc=enc):
                got = cbor.loads(h(enc))
                self.assertEqual(got, value)
                self.assertEqual(type(got), type(value))

    def test_floats_use_the_shortest_exact_width(self):
        for value, enc in FLOATS:
            with self.subTest(value=value):
                self.assertEqual(hx(cbor.dumps(value)), enc)
                got = cbor.loads(h(enc))
                self.assertIsInstance(got, float)
                self.assertEqual(got, value)

    def test_negative_zero_keeps_its_sign(self):
        self.assertEqual(hx(cbor.dumps(cbor.loads(h("f98000")))), "f98000")

    def test_nan(self):
        self.assertEqual(hx(cbor.dumps(float("nan"))), "f97e00")
        for enc in ("f97e00", "fa7fc00000", "fb7ff8000000000000"):
            x = cbor.loads(h(enc))
            self.assertTrue(x != x)

    def test_half_and_single_precision_decode(self):
        self.assertEqual(cbor.loads(h("f97bff")), 65504.0)
        self.assertEqual(cbor.loads(h("f93555")), 0.333251953125)
        self.assertEqual(cbor.loads(h("f903ff")), 0.00006097555160522461)  # largest subnormal
        self.assertEqual(cbor.loads(h("fa47c35000")), 100000.0)
        self.assertEqual(cbor.loads(h("fa3f800000")), 1.0)

    def test_bytearray_and_tuple_encode_as_bytes_and_array(self):
        self.assertEqual(cbor.dumps(bytearray(b"ab")), cbor.dumps(b"ab"))
        self.assertEqual(cbor.dumps((1, "x")), cbor.dumps([1, "x"]))
        self.assertEqual(cbor.loads(cbor.dumps((1, "x"))), [1, "x"])
        self.assertIsInstance(cbor.loads(cbor.dumps(bytearray(b"ab"))), bytes)

    def test_loads_accepts_bytearray_and_memoryview(self):
        self.assertEqual(cbor.loads(bytearray(h("8301820203820405"))), [1, [2, 3], [4, 5]])
        self.assertEqual(cbor.loads(memoryview(h("6449455446"))), "IETF")

    def test_non_shortest_heads_from_other_encoders_decode(self):
        self.assertEqual(cbor.loads(h("1800")), 0)
        self.assertEqual(cbor.loads(h("1b0000000000000001")), 1)
        self.assertEqual(cbor.loads(h("5801ff")), b"\xff")
        self.assertEqual(cbor.loads(h("fb3ff8000000000000")), 1.5)

    def test_round_trip_nested(self):
        obj = {
            "t": "r",
            "id": 2**32 - 1,
            "rc": "E062801",
            "d": {
                "channels": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
                "mask": 0xFFFFFFFF,
                "blob": bytes(range(256)),
                "ok": True,
                "none": None,
                "neg": -(2**63),
                "ratio": 0.25,
                1: [{"a": [[], {}]}, b"", ""],
                -5: "\u00e9t\u00e9",
            },
        }
        self.assertEqual(cbor.loads(cbor.dumps(obj)), obj)

    def test_long_strings_use_wider_heads(self):
        for n in (23, 24, 255, 256, 65535, 65536):
            b = b"x" * n
            s = "y" * n
            self.assertEqual(cbor.loads(cbor.dumps(b)), b)
            self.assertEqual(cbor.loads(cbor.dumps(s)), s)
            self.assertEqual(len(cbor.dumps(b)), n + (1 if n < 24 else 2 if n < 256 else 3 if n < 65536 else 5))

    def test_nesting_to_the_limit(self):
        obj = 0
        for _ in range(cbor.MAX_DEPTH):
            obj = [obj]
        self.assertEqual(cbor.loads(cbor.dumps(obj)), obj)


class MapOrder(unittest.TestCase):
    def test_keys_sorted_length_first_then_bytewise(self):
        # encoded keys: 0a, 20, 1864, 6161, 6163, 626262
        expected = h("a6 0a03 2004 186406 616101 616305 62626202")
        d1 = {}
        for k, v in (("a", 1), ("bb", 2), (10, 3), (-1, 4), ("c", 5), (100, 6)):
            d1[k] = v
        d2 = {}
        for k, v in ((100, 6), ("c", 5), (-1, 4), (10, 3), ("bb", 2), ("a", 1)):
            d2[k] = v
        self.assertEqual(cbor.dumps(d1), expected)
        self.assertEqual(cbor.dumps(d2), expected)

    def test_same_map_built_in_many_orders_gives_identical_bytes(self):
        keys = ["t", "id", "op", "a", "rc", "seq", "zz", "aaa", "b", 0, 1, 23, 24, -1, -24, -25, 1000, "\u00e9"]
        ref = None
        for rot in range(len(keys)):
            order = keys[rot:] + keys[:rot]
            if rot % 2:
                order.reverse()
            d = {}
            for k in order:
                d[k] = [k]
            enc = cbor.dumps({"outer": d, "x": {"y": d}})
            if ref is None:
                ref = enc
            self.assertEqual(enc, ref)

    def test_nested_maps_sorted_too(self):
        a = cbor.dumps({"a": {"zz": 1, "b": 2}, "b": [{"y": 1, "x": 2}]})
        self.assertEqual(a, h("a2 6161 a2 616202 627a7a01 6162 81 a2 617802 617901"))


# Malformed inputs: each must raise CBORError and nothing else.
MALFORMED = (
    "",  # empty
    "18",
    "1901",
    "1a010203",
    "1b01020304050607",  # truncated heads
    "38",
    "58",
    "78",
    "98",
    "9a01ff00",
    "b8",
    "f900",
    "fa0000",
    "fb000000",
    "41",
    "61",
    "5affffffff00",
    "5bffffffffffffffff010203",
    "7affffffff00",
    "9bffffffffffffffff00",  # huge claimed lengths
    "bbffffffffffffffff00",
    "9affffffff",
    "baffffffff",
    "81",
    "818181818181818181",
    "8200",
    "a1",
    "a20102",
    "a100",
    "a2000000",  # truncated containers
    "1c",
    "1d",
    "1e",
    "3c",
    "5c",
    "7c",
    "9c",
    "bc",
    "dc",
    "fc",
    "fd",
    "fe",  # reserved additional info
    "1f",
    "3f",
    "5f",
    "7f",
    "9f",
    "bf",
    "df",
    "ff",
    "5f41ff",
    "9f01ff",  # indefinite lengths, break
    "c074323031332d30332d32315432303a30343a30305a",
    "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
    "c249010000000000000000",  # tags
    "f7",
    "f0",
    "f820",
    "f8ff",
    "e0",
    "f3",  # undefined, other simple values
    "62c328",
    "61ff",
    "63eda080",  # invalid UTF-8 (the last a surrogate)
    "a18000",
    "a1a000",
    "a1f500",
    "a1f93c0000",
    "a1410000",
    "a1f600",  # map keys not str/int
    "a201020103",
    "a2616101616102",  # duplicate keys
    "0000",
    "8000",
    "a0ff",  # trailing bytes
)


class Malformed(unittest.TestCase):
    def test_malformed_inputs_raise_cbor_error(self):
        for enc in MALFORMED:
            with self.subTest(enc=enc):
                with self.assertRaises(cbor.CBORError):
                    cbor.loads(h(enc))

    def test_cbor_error_is_a_value_error(self):
        self.assertTrue(issubclass(cbor.CBORError, ValueError))

    def test_nesting_beyond_the_limit(self):
        data = b"\x81" * (cbor.MAX_DEPTH + 1) + b"\x00"
        with self.assertRaises(cbor.CBORError):
            cbor.loads(data)
        data = b"\xa1\x00" * (cbor.MAX_DEPTH + 1) + b"\x00"
        with self.assertRaises(cbor.CBORError):
            cbor.loads(data)
        self.assertEqual(cbor.loads(b"\x81" * cbor.MAX_DEPTH + b"\x00") is not None, True)

    def test_huge_length_rejected_before_allocating(self):
        # 2**64-1 claimed items or bytes in a tiny input: must fail on the length, fast
        for head in (b"\x5b", b"\x7b", b"\x9b", b"\xbb"):
            with self.assertRaises(cbor.CBORError):
                cbor.loads(head + b"\xff" * 8 + b"\x00" * 4)

    def test_every_truncation_of_a_valid_item_fails(self):
        good = cbor.dumps({"t": "q", "id": 70000, "op": "set", "a": {"x": [1.5, -300, b"\x00\x01", "z", None]}})
        for n in range(len(good)):
            with self.subTest(n=n):
                with self.assertRaises(cbor.CBORError):
                    cbor.loads(good[:n])

    def test_loads_rejects_non_bytes(self):
        for x in ("00", 0, None, [0]):
            with self.assertRaises(cbor.CBORError):
                cbor.loads(x)


class EncodeErrors(unittest.TestCase):
    def test_ints_out_of_64_bit_range(self):
        for v in (2**64, -(2**64) - 1, 2**100, -(2**100)):
            with self.assertRaises(cbor.CBORError):
                cbor.dumps(v)
            with self.assertRaises(cbor.CBORError):
                cbor.dumps({"x": [v]})

    def test_unsupported_types(self):
        for v in (set(), object(), {1.5: 1}, {True: 1}, {None: 1}, {b"k": 1}, {(1, 2): 1}, [1, object()]):
            with self.assertRaises(cbor.CBORError):
                cbor.dumps(v)

    def test_nesting_beyond_the_limit(self):
        obj = 0
        for _ in range(cbor.MAX_DEPTH + 1):
            obj = {"x": obj}
        with self.assertRaises(cbor.CBORError):
            cbor.dumps(obj)

    def test_self_reference_is_an_error_not_a_crash(self):
        a = []
        a.append(a)
        with self.assertRaises(cbor.CBORError):
            cbor.dumps(a)


class ItemBudget(unittest.TestCase):
    def test_many_small_containers_are_refused_before_they_fill_the_heap(self):
        from agent.cbor import MAX_ITEMS

        ok = cbor.dumps([[0]] * (MAX_ITEMS // 2 - 1))
        self.assertEqual(len(cbor.loads(ok)), MAX_ITEMS // 2 - 1)
        with self.assertRaises(cbor.CBORError):
            cbor.loads(cbor.dumps([[0]] * MAX_ITEMS))
        # the budget is per call
        self.assertEqual(len(cbor.loads(ok)), MAX_ITEMS // 2 - 1)


class RequestIdPeek(unittest.TestCase):
    def test_finds_the_id_past_values_the_decoder_refuses(self):
        tagged = b"\xc4\x82\x21\x19\x6a\xb3"  # a decimal fraction (tag 4)
        body = b"\xa4" + b"\x61t\x61q" + b"\x61a\xa1\x61x" + tagged + b"\x62op\x64ping" + b"\x62id\x18\x2a"
        with self.assertRaises(cbor.CBORError):
            cbor.loads(body)
        self.assertEqual(cbor.request_id(body), 42)

    def test_none_where_there_is_no_usable_id(self):
        self.assertIsNone(cbor.request_id(b""))
        self.assertIsNone(cbor.request_id(b"\x82\x01\x02"))
        self.assertIsNone(cbor.request_id(cbor.dumps({"id": -1})))
        self.assertIsNone(cbor.request_id(cbor.dumps({"id": "7"})))
        self.assertIsNone(cbor.request_id(cbor.dumps({"x": [1, 2, {"y": b"z"}]})))
        self.assertIsNone(cbor.request_id(b"\xa2\x62id"))  # truncated before the value
        self.assertEqual(cbor.request_id(cbor.dumps({"x": [[0]] * 600, "id": 9})), 9)

import unittest
from binascii import crc32
from struct import pack

from agent import cbor, wire

NEVER_IN_FRAME = b"\x00\x01\x02\x03\x04\x0a\x0d"

BODIES = (
    b"",
    b"x",
    b"hello",
    bytes(range(256)),
    bytes(range(255, -1, -1)) * 3,
    b"\x1c\x1d\x1e" * 20,
    b"\x00\x03\x0a\x0d" * 10,
    b"\x1e",
    b"\x1e\x3e",
    cbor.dumps({"t": "q", "id": 1, "op": "ping", "a": {}}),
)


def decode_all(stream, chunk=None, **kw):
    text = []
    d = wire.FrameDecoder(on_text=text.append, **kw)
    frames = []
    if chunk is None:
        frames = d.feed(stream)
    else:
        for i in range(0, len(stream), chunk):
            frames += d.feed(stream[i : i + chunk])
    return frames, b"".join(text), d


def raw_frame(payload):
    # a frame around an arbitrary (unchecked) payload, stuffed like encode_frame does
    out = bytearray(b"\x1c")
    for c in payload:
        if c in wire.ESCAPED:
            out.append(0x1E)
            out.append(c ^ 0x20)
        else:
            out.append(c)
    out.append(0x1D)
    return bytes(out)


def payload_of(body, length=None):
    p = pack(">H", len(body) if length is None else length) + body
    return p + pack(">I", crc32(p) & 0xFFFFFFFF)


class Encoding(unittest.TestCase):
    def test_layout(self):
        f = wire.encode_frame(b"AB")
        p = pack(">H", 2) + b"AB"
        self.assertEqual(f, raw_frame(p + pack(">I", crc32(p) & 0xFFFFFFFF)))
        self.assertEqual(f[0], wire.START)
        self.assertEqual(f[-1], wire.END)
        # LEN 0x0002 is escaped: 0x00 -> ESC 0x20, 0x02 -> ESC 0x22
        self.assertEqual(f[1:5], b"\x1e\x20\x1e\x22")

    def test_no_control_bytes_inside_any_frame(self):
        bodies = list(BODIES) + [bytes((b,)) * 3 for b in range(256)]
        for body in bodies:
            f = wire.encode_frame(body)
            for c in NEVER_IN_FRAME:
                self.assertNotIn(c, f, "byte {} in frame of {!r}".format(c, body[:8]))
            inner = f[1:-1]
            self.assertNotIn(wire.START, inner)
            self.assertNotIn(wire.END, inner)

    def test_delimiters_are_not_printable_and_not_line_ends(self):
        for c in (wire.START, wire.END, wire.ESC):
            self.assertTrue(c < 0x20)
            self.assertNotIn(c, NEVER_IN_FRAME)
            self.assertNotIn(c, b"\x07\x08\x09\x0b\x0c\x11\x13\x1b")

    def test_bytearray_and_memoryview_bodies(self):
        f = wire.encode_frame(b"\x00AB\x1e")
        self.assertEqual(wire.encode_frame(bytearray(b"\x00AB\x1e")), f)
        self.assertEqual(wire.encode_frame(memoryview(b"\x00AB\x1e")), f)

    def test_body_too_large_refused(self):
        wire.encode_frame(b"x" * wire.MAX_BODY)
        with self.assertRaises(wire.WireError) as cm:
            wire.encode_frame(b"x" * (wire.MAX_BODY + 1))
        self.assertEqual(str(cm.exception), "body of 4097 bytes exceeds MAX_BODY 4096")


class Decoding(unittest.TestCase):
    def test_round_trip_every_body(self):
        for body in BODIES:
            frames, text, d = decode_all(wire.encode_frame(body))
            self.assertEqual(frames, [body])
            self.assertEqual(text, b"")
            self.assertEqual(d.errors, 0)
            self.assertEqual(d.frames, 1)
            self.assertIsInstance(frames[0], bytes)

    def test_max_size_body(self):
        body = bytes(range(256)) * (wire.MAX_BODY // 256)
        self.assertEqual(len(body), wire.MAX_BODY)
        frames, _, d = decode_all(wire.encode_frame(body), chunk=100)
        self.assertEqual(frames, [body])

    def test_one_byte_chunks(self):
        stream = b"".join(wire.encode_frame(b) for b in BODIES)
        frames, text, d = decode_all(stream, chunk=1)
        self.assertEqual(frames, list(BODIES))
        self.assertEqual(text, b"")
        self.assertEqual(d.errors, 0)

    def test_every_chunk_size_gives_the_same_result(self):
        stream = b"boot\r\n" + wire.encode_frame(b"\x1e\x00abc") + b"log\n" + wire.encode_frame(bytes(range(40)))
        for chunk in range(1, 40):
            frames, text, d = decode_all(stream, chunk=chunk)
            self.assertEqual(frames, [b"\x1e\x00abc", bytes(range(40))])
            self.assertEqual(text, b"boot\r\nlog\n")

    def test_log_text_interleaved_with_frames(self):
        log = [b"MicroPython v1.29 on unix\r\n", b"W (123) radio: busy\n", b"", b"x", b"\xc3\xa9t\xc3\xa9\n"]
        stream = b""
        bodies = []
        for i, line in enumerate(log):
            stream += line
            body = cbor.dumps({"t": "e", "seq": i, "k": "log", "d": {}})
            bodies.append(body)
            stream += wire.encode_frame(body)
        stream += b">>> "
        for chunk in (None, 1, 7):
            frames, text, d = decode_all(stream, chunk=chunk)
            self.assertEqual(frames, bodies)
            self.assertEqual(text, b"".join(log) + b">>> ")
            self.assertEqual(d.errors, 0)

    def test_text_is_dropped_without_a_callback(self):
        d = wire.FrameDecoder()
        self.assertEqual(d.feed(b"noise\n" + wire.encode_frame(b"ok") + b"more"), [b"ok"])

    def test_garbage_before_between_and_after(self):
        garbage = bytes(range(256)).replace(b"\x1c", b"")  # anything but a START
        stream = garbage + wire.encode_frame(b"one") + garbage + wire.encode_frame(b"two") + garbage
        frames, text, d = decode_all(stream)
        self.assertEqual(frames, [b"one", b"two"])
        self.assertEqual(text, garbage * 3)

    def test_garbage_with_start_bytes_resynchronises(self):
        stream = b"\x1c\x1c\x1czz\x1c\x1e" + wire.encode_frame(b"one") + b"\x1c\x1d" + wire.encode_frame(b"two")
        frames, _, d = decode_all(stream)
        self.assertEqual(frames, [b"one", b"two"])
        self.assertGreater(d.errors, 0)

    def test_corrupted_crc_dropped_and_next_frame_decoded(self):
        bad = bytearray(wire.encode_frame(b"hello world"))
        i = bad.find(b"w")
        bad[i] = ord("W")  # a one-byte change that keeps the stuffing valid
        stream = bytes(bad) + wire.encode_frame(b"next")
        for chunk in (None, 1):
            frames, text, d = decode_all(stream, chunk=chunk)
            self.assertEqual(frames, [b"next"])
            self.assertEqual(d.errors, 1)
            self.assertEqual(text, b"")

    def test_every_single_byte_flip_is_caught(self):
        good = wire.encode_frame(b"\x00flip me\x1e")
        for i in range(1, len(good) - 1):
            for bit in (0x01, 0x10, 0x80):
                f = bytearray(good)
                f[i] ^= bit
                frames, _, d = decode_all(bytes(f) + wire.encode_frame(b"after"))
                self.assertIn(b"after", frames)
                self.assertNotIn(b"\x00flip me\x1e", frames)

    def test_truncated_frame_then_next_frame(self):
        f = wire.encode_frame(b"first frame")
        stream = f[:-4] + wire.encode_frame(b"second")
        frames, _, d = decode_all(stream)
        self.assertEqual(frames, [b"second"])
        self.assertEqual(d.errors, 1)

    def test_line_end_breaks_a_frame_and_the_line_is_shown(self):
        f = wire.encode_frame(b"half written")
        for eol in (b"\n", b"\r", b"\r\n"):
            line = b"Traceback (most recent call last):" + eol
            for chunk in (None, 1):
                frames, text, d = decode_all(f[:6] + line + wire.encode_frame(b"after"), chunk=chunk)
                self.assertEqual(frames, [b"after"])
                self.assertEqual(d.errors, 1)
                # the half frame (unstuffed) then the line
                self.assertEqual(text, b"\x00\x0c" + f[4:6] + line)

    def test_ctrl_bytes_break_a_frame(self):
        for c in b"\x00\x01\x02\x03\x04":
            stream = b"\x1cabc" + bytes((c,)) + b"def\x1d" + wire.encode_frame(b"ok")
            frames, text, d = decode_all(stream)
            self.assertEqual(frames, [b"ok"])
            self.assertEqual(d.errors, 1)
            self.assertEqual(text, bytes((c,)) + b"def\x1d")

    def test_oversize_dropped_then_resynchronised(self):
        big = wire.encode_frame(b"y" * 17)
        for chunk in (None, 1, 5):
            frames, text, d = decode_all(big + wire.encode_frame(b"z" * 16), chunk=chunk, max_body=16)
            self.assertEqual(frames, [b"z" * 16])
            self.assertEqual(d.errors, 1)
            self.assertEqual(text, b"")

    def test_oversize_default_limit(self):
        big = raw_frame(payload_of(b"q" * (wire.MAX_BODY + 1)))
        frames, _, d = decode_all(big + wire.encode_frame(b"ok"), chunk=512)
        self.assertEqual(frames, [b"ok"])
        self.assertEqual(d.errors, 1)

    def test_endless_frame_is_bounded_and_recovers(self):
        d = wire.FrameDecoder()
        d.feed(b"\x1c")
        for _ in range(50):
            self.assertEqual(d.feed(b"\x1e\x3e" * 1000), [])  # escaped ESCs, never an END
        self.assertEqual(d.errors, 1)
        self.assertEqual(d.feed(b"\x1d" + wire.encode_frame(b"back")), [b"back"])
        self.assertEqual(d.errors, 1)

    def test_invalid_payloads_dropped(self):
        cases = (
            b"\x1c\x1d",  # empty
            b"\x1cab\x1d",  # too short
            raw_frame(payload_of(b"abc", length=4)),  # LEN disagrees with the frame
            raw_frame(payload_of(b"abc", length=2)),
            raw_frame(payload_of(b"abc")[:-1] + bytes((payload_of(b"abc")[-1] ^ 1,))),  # CRC wrong
            b"\x1c" + wire.encode_frame(b"abc")[1:-1] + b"\x1e\x1d",  # ESC at the end
            wire.encode_frame(b"abc")[:-1] + b"\x1e\x1e\x1d",  # ESC ESC
            wire.encode_frame(b"abc")[:3] + b"\x1eA" + wire.encode_frame(b"abc")[3:],  # bad escape
        )
        for bad in cases:
            with self.subTest(bad=bad):
                frames, text, d = decode_all(bad + wire.encode_frame(b"good"))
                self.assertEqual(frames, [b"good"])
                self.assertEqual(d.errors, 1)
                self.assertEqual(text, b"")

    def test_escaping_an_unescaped_byte_is_invalid(self):
        # ESC 0x61 would unescape to 0x41 ('A'), which a sender never escapes
        p = payload_of(b"A")
        f = b"\x1c" + raw_frame(p)[1:-1].replace(b"A", b"\x1e\x61") + b"\x1d"
        frames, _, d = decode_all(f)
        self.assertEqual(frames, [])
        self.assertEqual(d.errors, 1)

    def test_feed_accepts_bytearray_and_memoryview(self):
        f = wire.encode_frame(b"abc")
        self.assertEqual(wire.FrameDecoder().feed(bytearray(f)), [b"abc"])
        self.assertEqual(wire.FrameDecoder().feed(memoryview(f)), [b"abc"])


class Messages(unittest.TestCase):
    def test_constructors(self):
        self.assertEqual(wire.request(1, "ping"), {"t": "q", "id": 1, "op": "ping", "a": {}})
        self.assertEqual(wire.request(2, "set", {"ch": 3}), {"t": "q", "id": 2, "op": "set", "a": {"ch": 3}})
        self.assertEqual(wire.response(3, "I0"), {"t": "r", "id": 3, "rc": "I0"})
        self.assertEqual(wire.response(3, "I0", 0), {"t": "r", "id": 3, "rc": "I0", "d": 0})
        self.assertEqual(
            wire.response(4, "E062801", {"x": 1}, "bad channel"),
            {"t": "r", "id": 4, "rc": "E062801", "d": {"x": 1}, "e": "bad channel"},
        )
        self.assertEqual(
            wire.event(5, "alert", {"code": 0x8F20}), {"t": "e", "seq": 5, "k": "alert", "d": {"code": 0x8F20}}
        )
        self.assertEqual(wire.ack(6), {"t": "a", "seq": 6})

    def test_valid_messages_pass_check(self):
        for m in (
            wire.request(0, "ping"),
            wire.request(0xFFFFFFFF, "x", {"a": [1, 2], "b": None}),
            wire.response(1, "I0"),
            wire.response(1, "E1", None, ""),
            wire.response(1, "I0", [1, b"x", {"y": 1.5}]),
            wire.event(0, "k", {}),
            wire.event(7, "alert", {1: 2}),
            wire.ack(0),
        ):
            self.assertIs(wire.check_message(m), m)

    def test_invalid_messages_rejected(self):
        cases = (
            (None, "message is not a map"),
            ([], "message is not a map"),
            ("q", "message is not a map"),
            ({}, "bad message type t=None"),
            ({"id": 1, "op": "x", "a": {}}, "bad message type t=None"),
            ({"t": "x", "id": 1}, "bad message type t='x'"),
            ({"t": ["q"], "id": 1}, "bad message type t=['q']"),
            ({"t": 1, "id": 1}, "bad message type t=1"),
            ({"t": "q", "id": 1, "op": "x"}, "q message lacks 'a'"),  # no args
            ({"t": "q", "op": "x", "a": {}}, "q message lacks 'id'"),  # no id
            ({"t": "q", "id": -1, "op": "x", "a": {}}, "q message: 'id' must be a uint < 2**32"),
            ({"t": "q", "id": True, "op": "x", "a": {}}, "q message: 'id' must be a uint < 2**32"),
            ({"t": "q", "id": 2**32, "op": "x", "a": {}}, "q message: 'id' must be a uint < 2**32"),
            ({"t": "q", "id": "1", "op": "x", "a": {}}, "q message: 'id' must be a uint < 2**32"),
            ({"t": "q", "id": 1.0, "op": "x", "a": {}}, "q message: 'id' must be a uint < 2**32"),
            ({"t": "q", "id": 1, "op": "", "a": {}}, "q message: 'op' must be a non-empty str"),
            ({"t": "q", "id": 1, "op": 5, "a": {}}, "q message: 'op' must be a non-empty str"),
            ({"t": "q", "id": 1, "op": "x", "a": []}, "q message: 'a' must be a map with str keys"),
            ({"t": "q", "id": 1, "op": "x", "a": {1: 2}}, "q message: 'a' must be a map with str keys"),
            ({"t": "q", "id": 1, "op": "x", "a": {}, "z": 0}, "q message: unknown key 'z'"),
            ({"t": "q", "id": 1, "op": "x", "a": {}, 7: 0}, "q message: unknown key 7"),
            ({"t": "r", "id": 1}, "r message lacks 'rc'"),
            ({"t": "r", "id": 1, "rc": ""}, "r message: 'rc' must be a non-empty str"),
            ({"t": "r", "id": 1, "rc": None}, "r message: 'rc' must be a non-empty str"),
            ({"t": "r", "rc": "I0"}, "r message lacks 'id'"),
            ({"t": "r", "id": 1, "rc": "I0", "e": 5}, "r message: 'e' must be a str"),
            ({"t": "r", "id": 1, "rc": "I0", "op": "x"}, "r message: unknown key 'op'"),
            ({"t": "e", "seq": 1, "k": "x"}, "e message lacks 'd'"),
            ({"t": "e", "seq": 1, "k": "x", "d": [1]}, "e message: 'd' must be a map"),
            ({"t": "e", "seq": 1, "k": "", "d": {}}, "e message: 'k' must be a non-empty str"),
            ({"t": "e", "seq": -1, "k": "x", "d": {}}, "e message: 'seq' must be a uint < 2**32"),
            ({"t": "e", "id": 1, "k": "x", "d": {}}, "e message lacks 'seq'"),
            ({"t": "a"}, "a message lacks 'seq'"),
            ({"t": "a", "seq": False}, "a message: 'seq' must be a uint < 2**32"),
            ({"t": "a", "seq": 1, "d": {}}, "a message: unknown key 'd'"),
        )
        for m, why in cases:
            with self.subTest(m=m):
                with self.assertRaises(wire.WireError) as cm:
                    wire.check_message(m)
                self.assertEqual(str(cm.exception), why)

    def test_wire_error_is_a_value_error_and_says_what_is_wrong(self):
        self.assertTrue(issubclass(wire.WireError, ValueError))
        with self.assertRaises(wire.WireError) as cm:
            wire.check_message({"t": "q", "id": 1, "op": "", "a": {}})
        self.assertIn("op", str(cm.exception))
        with self.assertRaises(wire.WireError) as cm:
            wire.check_message({"t": "a", "seq": 1, "zz": 1})
        self.assertIn("zz", str(cm.exception))

    def test_pack_unpack_round_trip(self):
        for m in (
            wire.request(9, "config.set", {"channel": 12, "mask": 0xFFFFFFFF, "blob": b"\x00\x03"}),
            wire.response(9, "I0", {"ok": True}),
            wire.response(9, "E062801", None, "no"),
            wire.event(2**32 - 1, "alert", {"code": 0x8F2D, "t": -1}),
            wire.ack(0),
        ):
            f = wire.pack(m)
            bodies = wire.FrameDecoder().feed(f)
            self.assertEqual(len(bodies), 1)
            self.assertEqual(bodies[0], cbor.dumps(m))
            self.assertEqual(wire.unpack(bodies[0]), m)

    def test_pack_rejects_invalid_and_unencodable(self):
        big = wire.request(1, "x", {"b": b"x" * wire.MAX_BODY})
        for m, why in (
            ({"t": "q"}, "q message lacks 'id'"),
            (wire.request(1, "x", {"s": set()}), "cannot encode message: cannot encode set"),
            (wire.request(1, "x", {"n": 2**64}), "cannot encode message: integer out of 64-bit range"),
            (big, "message of {} bytes exceeds MAX_BODY 4096".format(len(cbor.dumps(big)))),
        ):
            with self.assertRaises(wire.WireError) as cm:
                wire.pack(m)
            self.assertEqual(str(cm.exception), why)

    def test_unpack_bad_cbor_is_a_wire_error(self):
        for body in (b"", b"\xff", b"\xa1", b"\x00\x00", b"\x1bABC"):
            with self.assertRaises(wire.WireError) as cm:
                wire.unpack(body)
            self.assertTrue(str(cm.exception).startswith("bad CBOR: "), str(cm.exception))
            self.assertIsNone(cm.exception.id)

    def test_invalid_request_still_has_an_addressable_id(self):
        body = cbor.dumps({"t": "q", "id": 42, "op": 7})
        with self.assertRaises(wire.WireError) as cm:
            wire.unpack(body)
        self.assertEqual(str(cm.exception), "q message: 'op' must be a non-empty str")
        self.assertEqual(cm.exception.id, 42)
        body = cbor.dumps({"t": "zz", "id": 43})
        with self.assertRaises(wire.WireError) as cm:
            wire.unpack(body)
        self.assertEqual(str(cm.exception), "bad message type t='zz'")
        self.assertEqual(cm.exception.id, 43)
        with self.assertRaises(wire.WireError) as cm:
            wire.unpack(cbor.dumps([1, 2]))
        self.assertEqual(str(cm.exception), "message is not a map")
        self.assertIsNone(cm.exception.id)

    def test_request_id_of(self):
        self.assertEqual(wire.request_id_of({"id": 5}), 5)
        self.assertEqual(wire.request_id_of({"t": "q", "id": 0, "op": ""}), 0)
        for obj in (None, [], {"id": -1}, {"id": True}, {"id": "5"}, {"id": 2**32}, {"seq": 5}, 5):
            self.assertIsNone(wire.request_id_of(obj))

# The wire format's boundaries, each pinned by the rule it keeps: a body of exactly MAX_BODY
# bytes goes through and one more does not, a bad escape is bad even when split across reads,
# the decoder's buffer never outgrows one frame whatever else the read holds, the nearest
# breaker breaks a frame off, every dropped or returned frame is counted, text chunks are never
# empty, and every refused message says what is wrong.
import unittest

from agent import cbor, wire

START, END, ESC = b"\x1c", b"\x1d", b"\x1e"


class NoRoom(wire.FrameDecoder):
    """A decoder on a heap with no block for a frame of more than `room` bytes: growing the
    frame's buffer past it raises MemoryError (the heap is simulated, the decoder is not)."""

    def __init__(self, room, **kw):
        wire.FrameDecoder.__init__(self, **kw)
        self.room = room

    def _take(self, data):
        if self._sk is None and len(self._buf) + len(data) > self.room:
            raise MemoryError("memory allocation failed")
        return wire.FrameDecoder._take(self, data)


def decoder(**kw):
    text = []
    return wire.FrameDecoder(on_text=text.append, **kw), text


def ending_in_an_escape(make):
    """The first frame make(n), n = 1, 2, ..., whose last byte before END is an escaped one."""
    n = 1
    while True:
        frame = wire.pack(make(n))
        if frame[-3] == 0x1E:
            return frame
        n += 1


def body_of_size(size):
    """A valid request whose CBOR body is exactly `size` bytes."""
    pad = 0
    while True:
        body = cbor.dumps(wire.request(1, "x", {"p": "x" * pad}))
        if len(body) >= size:
            break
        pad += 1
    if len(body) != size:
        raise AssertionError("no request of {} bytes".format(size))
    return body


class TestMaxBody(unittest.TestCase):
    def test_a_body_of_exactly_max_body_bytes_is_framed_and_decoded(self):
        body = body_of_size(wire.MAX_BODY)
        self.assertEqual(len(wire.pack_body(cbor.loads(body))), wire.MAX_BODY)
        self.assertEqual(wire.FrameDecoder().feed(wire.encode_frame(body)), [body])

    def test_one_byte_more_is_refused_and_the_sizes_named(self):
        body = body_of_size(wire.MAX_BODY + 1)
        with self.assertRaises(wire.WireError) as cm:
            wire.pack_body(cbor.loads(body))
        self.assertEqual(str(cm.exception), "message of 4097 bytes exceeds MAX_BODY 4096")
        with self.assertRaises(wire.WireError) as cm:
            wire.encode_frame(body)
        self.assertEqual(str(cm.exception), "body of 4097 bytes exceeds MAX_BODY 4096")


class TestEscapes(unittest.TestCase):
    def test_a_bad_escape_split_across_reads_drops_the_frame(self):
        # everything before the ESC is a whole, valid frame: the bad pair still spoils it
        frame = wire.pack(wire.ack(7))
        dec, _ = decoder()
        self.assertEqual(dec.feed(frame[:-1] + ESC), [])
        self.assertEqual(dec.feed(b"\x7f" + END), [])  # 0x7f ^ 0x20 is not an escaped byte
        self.assertEqual((dec.frames, dec.errors), (0, 1))
        self.assertEqual(dec.feed(frame), [wire.pack_body(wire.ack(7))])

    def test_a_bad_escape_spoils_the_frame_whatever_good_bytes_follow_in_later_reads(self):
        frame = ending_in_an_escape(wire.ack)
        dec, _ = decoder()
        for part in (frame[:-2], b"\x7f", frame[-2:]):  # ..ESC | bad | the escaped byte, END
            self.assertEqual(dec.feed(part), [])
        self.assertEqual((dec.frames, dec.errors), (0, 1))
        frame = ending_in_an_escape(lambda n: wire.request(n, "status", {"x": "y" * 300}))
        dec = NoRoom(50)
        for part in (frame[:-2], b"\x7f", frame[-2:]):
            dec.feed(part)
        self.assertEqual((dec.unheld, dec.errors), ([], 1))

    def test_a_frame_that_ends_right_after_an_escape_in_another_read_is_dropped(self):
        dec, _ = decoder()
        self.assertEqual(dec.feed(START + b"ab" + ESC), [])
        self.assertEqual(dec.feed(END), [])
        self.assertEqual((dec.frames, dec.errors), (0, 1))

    def test_a_bad_escape_split_across_reads_drops_a_frame_the_heap_cannot_hold(self):
        frame = wire.pack(wire.request(9, "status", {"x": "y" * 300}))
        dec = NoRoom(50)
        dec.feed(frame[:-1] + ESC)
        dec.feed(b"\x7f" + END)
        self.assertEqual((dec.unheld, dec.errors), ([], 1))


class TestBufferBound(unittest.TestCase):
    """Memory is bounded: the buffer holds at most max_body + 6 unstuffed bytes of one frame."""

    def test_an_oversize_frame_is_never_buffered(self):
        dec, _ = decoder(max_body=16)
        dec.feed(START + b"A" * 5000)
        self.assertLessEqual(len(dec._buf), 16 + 6)
        self.assertEqual(dec.errors, 1)

    def test_escapes_earlier_in_the_same_read_do_not_make_room_for_an_oversize_frame(self):
        dense = wire.encode_frame(b"\x1c\x1d\x1e" * 5)  # 15 bytes that are all escaped
        dec, _ = decoder(max_body=16)
        self.assertEqual(dec.feed(dense + START + b"A" * 23), [b"\x1c\x1d\x1e" * 5])
        self.assertLessEqual(len(dec._buf), 16 + 6)
        self.assertEqual(dec.errors, 1)

    def test_a_broken_off_frame_too_long_to_hold_goes_out_as_it_came(self):
        # 24 bytes that unstuff to 23: one more than a 16-byte body's frame may hold
        part = b"A" * 22 + ESC + b"\x3d"
        dec, text = decoder(max_body=16)
        dec.feed(START + part + b"\n" + ESC + b"\x3d" + ESC + b"\x3d")
        self.assertEqual(text[0], part)
        # one that fits goes out unstuffed
        dec, text = decoder(max_body=16)
        dec.feed(START + b"A" * 21 + ESC + b"\x3d" + b"\n")
        self.assertEqual(text[0], b"A" * 21 + b"\x1d")


class TestUnheld(unittest.TestCase):
    """A request the heap cannot hold gives its id if it is whole and no longer than max_body."""

    def test_a_request_of_exactly_max_body_bytes_gives_its_id(self):
        body = cbor.dumps(wire.request(9, "status", {"x": "y" * 300}))
        dec = NoRoom(50, max_body=len(body))
        self.assertEqual((dec.feed(wire.encode_frame(body)), dec.unheld, dec.errors), ([], [9], 0))

    def test_one_byte_over_max_body_gives_nothing(self):
        body = cbor.dumps(wire.request(9, "status", {"x": "y" * 300}))
        dec = NoRoom(50, max_body=len(body) - 1)
        self.assertEqual((dec.feed(wire.encode_frame(body)), dec.unheld, dec.errors), ([], [], 1))


class TestBreakers(unittest.TestCase):
    def test_each_start_inside_a_frame_begins_a_new_one(self):
        good = wire.pack(wire.ack(3))
        dec, _ = decoder()
        self.assertEqual(dec.feed(START + b"a" + START + b"b" + good), [wire.pack_body(wire.ack(3))])
        self.assertEqual((dec.frames, dec.errors), (1, 2))

    def test_a_line_end_breaks_a_frame_off_even_when_other_breakers_come_later_in_the_read(self):
        dec, text = decoder()
        dec.feed(START + b"abc\rmore" + END + b"x\x03y")
        self.assertEqual(b"".join(text), b"abc\rmore\x1dx\x03y")
        self.assertEqual(text[0], b"abc")
        self.assertEqual(dec.errors, 1)

    def test_text_chunks_are_never_empty(self):
        frame = wire.pack(wire.ack(1))
        dec, text = decoder()
        dec.feed(frame + frame + b"log\n" + frame + START + b"\n" + START)
        dec.feed(frame)
        self.assertEqual(dec.frames, 4)
        self.assertEqual(b"".join(text), b"log\n\n")
        for chunk in text:
            self.assertTrue(len(chunk) > 0, repr(text))


class TestCounts(unittest.TestCase):
    def test_every_good_frame_and_every_dropped_one_is_counted(self):
        good = wire.pack(wire.ack(1))
        bad_crc = good[:-2] + bytes((good[-2] ^ 1,)) + END
        dec, _ = decoder(max_body=16)
        dec.feed(good + bad_crc + good + bad_crc)  # two good, two bad CRCs
        dec.feed(START + b"x\x03" + START + b"y\n")  # two broken off
        dec.feed(START + ESC + b"\x7f" + END + START + ESC + b"\x7f" + END)  # two bad escapes
        dec.feed(START + b"A" * 40 + END + START + b"A" * 40 + END)  # two oversize
        self.assertEqual((dec.frames, dec.errors), (2, 8))


class TestOutOfMemoryOnTheCheck(unittest.TestCase):
    def test_a_frame_whose_check_runs_out_of_memory_is_counted_never_returned_empty(self):
        frame = wire.pack(wire.request(5, "status", {"x": "y" * 300}))
        real = wire.crc32

        def starved(data, *crc):  # the heap has no room for the CRC's view of a long frame
            if len(data) > 100:
                raise MemoryError("memory allocation failed")
            return real(data, *crc)

        dec, _ = decoder()
        wire.crc32 = starved
        try:
            out = dec.feed(frame)
        finally:
            wire.crc32 = real
        self.assertEqual((out, dec.frames, dec.errors), ([], 0, 1))
        self.assertEqual(dec.feed(wire.pack(wire.ack(1))), [wire.pack_body(wire.ack(1))])


class TestRefusalWords(unittest.TestCase):
    def _says(self, obj):
        with self.assertRaises(wire.WireError) as cm:
            wire.check_message(obj)
        return str(cm.exception)

    def test_a_refused_message_says_what_is_wrong(self):
        self.assertEqual(self._says([1]), "message is not a map")
        self.assertEqual(self._says({"t": "x"}), "bad message type t='x'")
        self.assertEqual(self._says({"t": "q", "id": 1, "a": {}}), "q message lacks 'op'")
        self.assertEqual(self._says({"t": "q", "id": -1, "op": "x", "a": {}}), "q message: 'id' must be a uint < 2**32")
        self.assertEqual(
            self._says({"t": "q", "id": 1, "op": "x", "a": {1: 2}}), "q message: 'a' must be a map with str keys"
        )
        self.assertEqual(self._says({"t": "a", "seq": 1, "zz": 1}), "a message: unknown key 'zz'")

    def test_an_unencodable_message_says_why(self):
        with self.assertRaises(wire.WireError) as cm:
            wire.pack_body(wire.request(1, "x", {"n": 2**64}))
        try:
            cbor.dumps(2**64)
            self.fail("2**64 is encodable")
        except cbor.CBORError as e:
            why = str(e)
        self.assertEqual(str(cm.exception), "cannot encode message: " + why)

    def test_bad_cbor_says_so_and_keeps_the_request_id_it_can_find(self):
        body = cbor.dumps({"t": "q", "id": 77, "op": "x", "a": {}})[:-1]  # truncated
        with self.assertRaises(wire.WireError) as cm:
            wire.unpack(body)
        try:
            cbor.loads(body)
            self.fail("a truncated body decodes")
        except cbor.CBORError as e:
            why = str(e)
        self.assertEqual(str(cm.exception), "bad CBOR: " + why)
        self.assertEqual(cm.exception.id, 77)

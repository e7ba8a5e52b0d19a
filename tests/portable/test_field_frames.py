# Every well-framed request is answered: running out of memory (or of stack) on one frame costs
# that frame only, answered E49 when it carries an id, and the rest of the same read is served.
#
# The heap runs out in three places, each made to run out here on purpose:
#   - taking a frame in (the decoder's buffer cannot grow): the decoder follows the frame
#     without its bytes and hands its id over (FrameDecoder.unheld);
#   - copying the body out of that buffer: the buffer itself is handed over (a bytearray);
#   - decoding the body (MemoryError, or RuntimeError for the stack): answered by its id.
# tests/host/test_field_frames.py does the same on the real 128 KB heap of the unix port.
import unittest

from agent import cbor, wire
from agent.server import Server
from tests.kits.fuzzkit import Rng, deep_request
from tests.kits.hubkit import PipeLink, Rig

DEEP = 2000  # one-item arrays in the deep frame: far past cbor.MAX_DEPTH, about 2 KB


def requests_after(first_id, n):
    return b"".join(wire.pack(wire.request(first_id + i, "status")) for i in range(n))


class NoRoom(wire.FrameDecoder):
    """A decoder on a heap with no block larger than `room` bytes for a frame (small ones for a
    read's part of it are there): growing the frame's buffer past it raises MemoryError, after
    part of the bytes went in (as a real extend can leave it)."""

    def __init__(self, room, **kw):
        wire.FrameDecoder.__init__(self, **kw)
        self.room = room
        self.failed = 0

    def _take(self, data):
        if self._sk is None and len(self._buf) + len(data) > self.room:
            self.failed += 1
            wire.FrameDecoder._take(self, data[: len(data) // 2])
            raise MemoryError("memory allocation failed, allocating 2017 bytes")
        return wire.FrameDecoder._take(self, data)


class Starved:
    """Makes `name` in `module` raise `exc` for arguments longer than `over` bytes. For a name
    the module does not define (a builtin), `real` is what it stands for; the builtin bytes is
    stood in for by a subclass, so the module's isinstance(x, bytes) still works."""

    def __init__(self, module, name, exc, over=1000, real=None):
        self.module, self.name, self.exc, self.over = module, name, exc, over
        self.own = getattr(module, name, None)
        self.real = self.own or real
        self.hits = 0

    def __enter__(self):
        real, over, exc, count = self.real, self.over, self.exc, self._count

        if real is bytes:

            class starved(bytes):
                def __new__(cls, x=b"", *args):
                    if len(x) > over:
                        count()
                        raise exc("memory allocation failed")
                    return bytes(x, *args)

        else:

            def starved(x, *args):
                if len(x) > over:
                    count()
                    raise exc("out of it")
                return real(x, *args)

        setattr(self.module, self.name, starved)
        return self

    def _count(self):
        self.hits += 1

    def __exit__(self, *exc):
        if self.own is None:
            delattr(self.module, self.name)
        else:
            setattr(self.module, self.name, self.own)
        return False


class Line:
    def __init__(self, decoder=None):
        self.rig = Rig()
        self.link = PipeLink()
        self.server = Server(self.rig.hub, self.link)
        if decoder is not None:
            self.server.decoder = decoder
        self.host = wire.FrameDecoder()

    def send(self, data):
        # all of it on the line at once: the server reads it 256 bytes at a time
        self.link.to_agent += data
        for _ in range(len(data) // 256 + 3):
            self.server.poll()
        got = [wire.unpack(b) for b in self.host.feed(bytes(self.link.to_host))]
        self.link.to_host = bytearray()
        return [(m["id"], m["rc"]) for m in got if m["t"] == "r"]


class DeepThenValid(unittest.TestCase):
    def expect(self, line, first=100, n=3, starved=None):
        # starved: made to run out of memory once the frames are made
        data = wire.encode_frame(deep_request(first, DEEP)) + requests_after(first + 1, n)
        after = requests_after(first + 50, 1)
        if starved is not None:
            starved.__enter__()
        try:
            got = line.send(data)
            self.assertEqual(sorted(got), [(first, "E49")] + [(first + 1 + i, "I0") for i in range(n)])
            self.assertEqual(line.server.bad_frames, 0)
            # and the line goes on
            self.assertEqual(line.send(after), [(first + 50, "I0")])
        finally:
            if starved is not None:
                starved.__exit__()

    def test_with_memory_enough(self):
        self.expect(Line())

    def test_when_the_frame_cannot_be_held(self):
        d = NoRoom(600)
        line = Line(d)
        self.expect(line)
        self.assertGreater(d.failed, 0)
        self.assertEqual((d.errors, d.unheld), (0, []))

    def test_when_the_body_cannot_be_copied(self):
        s = Starved(wire, "bytes", MemoryError, real=bytes)
        self.expect(Line(), starved=s)
        self.assertEqual(s.hits, 1)

    def test_when_decoding_runs_out_of_memory_or_of_stack(self):
        for exc in (MemoryError, RuntimeError):
            s = Starved(wire, "unpack", exc)
            self.expect(Line(), starved=s)
            self.assertEqual(s.hits, 1, exc)

    def test_everything_runs_out_at_once(self):
        # not held, and finding its id runs out too: dropped (counted), the rest served
        line = Line(NoRoom(600))
        data = wire.encode_frame(deep_request(7, DEEP)) + requests_after(8, 2)
        with Starved(cbor, "request_id_at_end", MemoryError, over=0) as s:
            got = line.send(data)
        self.assertEqual(sorted(got), [(8, "I0"), (9, "I0")])
        self.assertEqual((s.hits, line.server.decoder.errors), (1, 1))

    def test_a_deep_frame_without_an_id_gets_nothing_and_costs_nothing_else(self):
        body = b"\x81" * DEEP + b"\x00"
        for decoder in (None, NoRoom(600)):
            line = Line(decoder)
            got = line.send(wire.encode_frame(body) + requests_after(1, 2) + wire.encode_frame(body))
            self.assertEqual(sorted(got), [(1, "I0"), (2, "I0")])
            self.assertEqual(line.server.bad_frames + line.server.decoder.errors, 2)  # counted, by one or other

    def test_many_reads_in_a_row(self):
        # deep frames and requests interleaved, chunked across the server's reads every way
        line = Line(NoRoom(700))
        stream = b""
        want = []
        for i in range(6):
            stream += wire.encode_frame(deep_request(1000 + i, DEEP - 37 * i))
            stream += requests_after(2000 + 10 * i, i % 3 + 1)
            want += [(1000 + i, "E49")] + [(2000 + 10 * i + k, "I0") for k in range(i % 3 + 1)]
        self.assertEqual(sorted(line.send(stream)), sorted(want))


class FollowedWithoutItsBytes(unittest.TestCase):
    """The decoder's path for a frame the heap cannot hold: only whole requests give an id."""

    def bodies(self):
        rng = Rng(19)
        ops = sorted(Rig().hub.ops)
        for i in range(40):
            rid = (rng.u32() if i % 3 else i) & 0xFFFFFFFF
            try:
                yield rid, cbor.dumps(rng.request(ops, rid))
            except cbor.CBORError:
                continue  # the generator made something the encoder refuses
        yield 5, deep_request(5, DEEP)
        yield 2**32 - 1, cbor.dumps(wire.request(2**32 - 1, "fw.chunk", {"data": b"\x1c\x1d\x1e\x00" * 300}))
        # the longest op whose "id" and "op" entries fit in the tail the decoder keeps, with the
        # longest id (every operation's name is far shorter)
        yield 2**32 - 2, cbor.dumps(wire.request(2**32 - 2, "x" * 31, {"\x1e": "\u00e9" * 30}))

    def test_whole_requests_give_their_id_at_any_point_and_chunking(self):
        for rid, body in self.bodies():
            frame = wire.encode_frame(body)
            for room in (0, 1, 2, 3, 40, 47, 48, 49, 54, len(body) // 2):
                for chunk in (1, 5, 47, 48, 49, 64, 256, len(frame)):
                    d = NoRoom(room)
                    out = []
                    for i in range(0, len(frame), chunk):
                        out += d.feed(frame[i : i + chunk])
                    where = (rid, room, chunk)
                    if d.failed:
                        self.assertEqual((out, d.unheld, d.errors), ([], [rid], 0), where)
                    else:
                        self.assertEqual(out, [body], where)

    def test_an_op_too_long_for_the_tail_gives_nothing(self):
        d = NoRoom(50)
        frame = wire.encode_frame(cbor.dumps(wire.request(2**32 - 2, "x" * 32, {"x": "y" * 300})))
        self.assertEqual((d.feed(frame), d.unheld, d.errors), ([], [], 1))

    def test_damaged_short_or_long_frames_give_nothing(self):
        body = deep_request(77, 300)
        good = wire.encode_frame(body)
        cases = [
            good[:200] + good[201:],  # a byte lost
            good[:150] + b"\x41" + good[150:],  # a byte more
            good[:100] + bytes((good[100] ^ 0x40,)) + good[101:],  # a byte changed
            good[:-3] + b"\x1e\x1d",  # ends after an escape
            good[:-2] + b"\x1e\x7f\x1d",  # a bad escape
        ]
        for case in cases:
            d = NoRoom(50)
            out = d.feed(case)
            self.assertEqual((out, d.unheld), ([], []), case[:20])
            self.assertGreater(d.errors, 0)

    def test_frames_that_are_not_requests_give_nothing(self):
        for msg in (
            wire.response(9, "I0", {"x": "y" * 300}),
            wire.event(9, "N54", {"x": "y" * 300}),
            {"t": "q", "id": 9, "op": "status", "a": {"x": "y" * 300}, "zz": 1},  # not canonical last
            {"t": "q", "id": -9, "op": "status", "a": {"x": "y" * 300}},
            {"t": "q", "id": 2**32, "op": "status", "a": {"x": "y" * 300}},
            {"t": "q", "id": True, "op": "status", "a": {"x": "y" * 300}},
            {"t": "q", "id": 9, "op": 5, "a": {"x": "y" * 300}},
        ):
            d = NoRoom(50)
            self.assertEqual((d.feed(wire.encode_frame(cbor.dumps(msg))), d.unheld), ([], []), msg)
            self.assertEqual(d.errors, 1)

    def test_an_oversize_frame_is_dropped_not_followed_forever(self):
        d = NoRoom(50, max_body=400)
        body = deep_request(3, 1000)
        self.assertEqual((d.feed(wire.encode_frame(body) + wire.encode_frame(b"ok")), d.unheld), ([b"ok"], []))
        self.assertEqual(d.errors, 1)

    def test_the_frame_after_is_held_again(self):
        d = NoRoom(400)
        big, small = deep_request(1, DEEP), deep_request(2, 10)
        out = d.feed(wire.encode_frame(big) + wire.encode_frame(small))
        self.assertEqual((out, d.unheld), ([small], [1]))

    def test_a_line_broken_off_inside_such_a_frame_is_text(self):
        text = []
        d = NoRoom(50, on_text=text.append)
        frame = wire.encode_frame(deep_request(4, DEEP))
        out = d.feed(frame[:600] + b"\r\nboot\r\n" + wire.encode_frame(b"ok"))
        self.assertEqual((out, d.unheld, d.errors), ([b"ok"], [], 1))
        self.assertIn(b"boot", b"".join(text))


class BodiesInPlace(unittest.TestCase):
    """A body handed over as the decoder's own buffer (a bytearray) decodes as bytes do."""

    def test_the_codec_reads_a_bytearray_as_bytes(self):
        rng = Rng(6)
        for i in range(200):
            try:
                body = cbor.dumps(rng.message(("hello", "status", "config.set"), i))
            except cbor.CBORError:
                continue  # the generator made something the encoder refuses
            self.assertEqual(cbor.dumps(cbor.loads(bytearray(body))), body)  # (NaN != NaN)
            self.assertEqual(cbor.request_id(bytearray(body)), cbor.request_id(body))
        for bad in (b"\x62\xed\xa0", b"\x63\xed\xa0\x80", b"\x41", b"\x81\x81"):
            with self.assertRaises(cbor.CBORError):
                cbor.loads(bytearray(bad))
        got = cbor.loads(bytearray(cbor.dumps({"b": b"\x00\x01", "s": "\u00e9"})))
        self.assertEqual(got, {"b": b"\x00\x01", "s": "\u00e9"})
        self.assertTrue(isinstance(got["b"], bytes))

    def test_a_body_that_cannot_be_copied_is_the_buffer(self):
        body = cbor.dumps(wire.request(3, "status", {"x": b"\x1e" * 1500}))
        data = wire.encode_frame(body) + wire.encode_frame(b"small")
        d = wire.FrameDecoder()
        out = []
        with Starved(wire, "bytes", MemoryError, real=bytes) as s:
            for i in range(0, len(data), 256):
                out += d.feed(data[i : i + 256])
        self.assertEqual(s.hits, 1)
        self.assertEqual(out, [body, b"small"])
        self.assertTrue(isinstance(out[0], bytearray))
        self.assertEqual(wire.unpack(out[0])["a"]["x"], b"\x1e" * 1500)

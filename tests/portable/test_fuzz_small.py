# The agent's link under hostile input, at a size both runtimes run in a few seconds: seeded
# random inputs (tests/kits/fuzzkit.py: raw bytes, frames of random bytes, truncated frames,
# messages of every shape, wrong types and keys, huge ints, deep nesting, unknown operations,
# random arguments aimed at every operation, text between frames), each followed by a valid
# hello that must be answered. tests/host/test_fuzz_agent.py runs a larger search on CPython.
import unittest

from agent import cbor, wire
from tests.kits.fuzzkit import LIVENESS_ID, Rng, Target, deep_request, run

SEEDS = (11, 12, 13, 14)
INPUTS = 300


class SeededFuzz(unittest.TestCase):
    def test_seeded_inputs_break_nothing(self):
        for seed in SEEDS:
            target = Target()
            problems = run(target, Rng(seed), INPUTS)
            self.assertEqual(problems[:5], [], "seed {}: {} problems".format(seed, len(problems)))
            # the inputs did reach the handlers: answers of several kinds
            self.assertGreater(target.answered, INPUTS // 3)
            for rc in ("I0", "E13", "E49"):
                self.assertGreater(target.rcs.get(rc, 0), 0, rc)
            # and the hub still works and kept a valid state
            rc, data, _ = target.rig.call("status")
            self.assertEqual(rc, "I0")
            rc, cfg, _ = target.rig.call("config.get")
            self.assertEqual(rc, "I0")
            if cfg is not None:
                self.assertEqual(target.rig.call("config.set", config=cfg)[0], "I0")

    def test_unconfigured_hub_too(self):
        target = Target(configure=False)
        self.assertEqual(run(target, Rng(5), INPUTS // 2)[:5], [])


class Cases(unittest.TestCase):
    def setUp(self):
        self.t = Target()

    def check(self, problems):
        self.assertEqual(problems, [])
        self.assertEqual(self.t.alive(), [])

    def answer(self, msg):
        self.t.line.to_agent += wire.pack(msg)
        self.t.server.poll()
        got = self.t._answers()
        self.assertEqual(len(got), 1, got)
        return got[0]

    def test_decimal_items_take_ascii_digits_only(self):
        # '\u00b2' (superscript two) and '\u0661' (Arabic-Indic one) are str.isdigit() on
        # CPython; DUIS decimals are ASCII. Refused with E062803 on both runtimes, never a crash.
        from tests.kits.hubkit import config

        for text in ("\u00b2", "1.\u00b2", "\u0661.3", "\u0661\u0663"):
            m = self.answer(wire.request(1, "config.set", {"config": config(NormalLimitedDutyCycleThreshold=text)}))
            self.assertEqual(m["rc"], "E062803", (text, m))
        self.assertEqual(self.t.alive(), [])

    def test_maximum_size_requests_that_cost_the_decoder_most(self):
        # {"t": "q", "id": 99, "op": "nope", "a": {"x": [item] * n}} filling MAX_BODY
        prefix = cbor.dumps({"t": "q", "id": 99, "op": "nope"})
        prefix = b"\xa4" + prefix[1:] + cbor.dumps("a") + b"\xa1" + cbor.dumps("x")
        for item in (b"\x00", b"\x61a", b"\x41a", b"\x81\x00", b"\xa1\x00\x00", b"\xf9\x3c\x00"):
            n = (wire.MAX_BODY - len(prefix) - 3) // len(item)
            body = prefix + b"\x99" + bytes((n >> 8, n & 255)) + item * n
            self.assertLessEqual(len(body), wire.MAX_BODY)
            self.check(self.t.feed(wire.encode_frame(body), {99: 1}))
        # unknown operation, or refused as too large to decode (E49): answered either way
        self.assertEqual(sum(self.t.rcs.values()), 6)
        self.assertEqual(set(self.t.rcs) - {"E13", "E49"}, set())

    def test_nesting_up_to_the_decoders_limit_is_answered(self):
        for depth in range(cbor.MAX_DEPTH - 1):
            self.check(self.t.send_body(deep_request(100 + depth, depth)))
        self.assertEqual(self.t.rcs, {"I0": cbor.MAX_DEPTH - 1})
        self.t.rcs = {}
        # deeper: refused by the decoder, answered E49 all the same (the id is found past it)
        deeper = range(cbor.MAX_DEPTH - 1, cbor.MAX_DEPTH + 40, 7)
        for depth in deeper:
            self.check(self.t.feed(wire.encode_frame(deep_request(200 + depth, depth)), {200 + depth: 1}))
        self.assertEqual(self.t.rcs, {"E49": len(deeper)})

    def test_ids_at_the_edges_of_uint32(self):
        for rid, answered in ((0, True), (2**32 - 1, True), (2**32, False), (-1, False), (2**64 - 1, False)):
            body = cbor.dumps({"t": "q", "id": rid, "op": "hello", "a": {}})
            self.check(self.t.feed(wire.encode_frame(body), {rid: 1} if answered else {}))

    def test_huge_and_wrong_arguments_get_e49(self):
        for args in (
            {"count": 2**64 - 1},
            {"count": -(2**64)},
            {"len": 126},
            {"count": True},
            {"device": "00-00-00-00-00-00-00-0G"},
            {"device": "\u00e9" * 16},
            {"request_id": 5},
            {"cra": b"Alert"},
            {"essential": 1},
        ):
            m = self.answer(wire.request(7, "send", args))
            self.assertEqual(m["rc"], "E49", (args, m))
        for args in ({"ms": -1}, {"ms": "1"}, {"ms": 2.5}, {}):
            self.assertEqual(self.answer(wire.request(8, "clock.advance", args))["rc"], "E49", args)
        self.assertEqual(self.answer(wire.request(9, "status", {"x": 2**64 - 1}))["rc"], "I0")

    def test_a_request_split_byte_by_byte_among_text_and_broken_frames(self):
        from tests.kits.hubkit import config

        frame = wire.pack(wire.request(5, "config.set", {"config": config(GSMECurfew=9)}))
        junk = b"log line\r\n\x1cbroken frame\r\nmore text \x1d\x1c\x1d"
        stream = junk + frame + b"\r\n" + wire.pack(wire.request(6, "status"))[:20]
        answers = []
        for i in range(len(stream)):
            self.t.line.to_agent += stream[i : i + 1]
            self.t.server.poll()
            answers += [(m["id"], m["rc"]) for m in self.t._answers()]
        self.assertEqual(answers, [(5, "I0")])  # and the cut-off status is never answered
        self.assertEqual(self.t.rig.call("config.get")[1]["GSMECurfew"], 9)
        self.check([])

    def test_host_messages_of_other_kinds_are_not_answered(self):
        for msg in (wire.ack(3), wire.response(4, "I0"), wire.event(5, "N54", {}), wire.ack(2**32 - 1)):
            self.check(self.t.send(msg))
        # but an ack or event naming an id is malformed: answered E49 to that id
        self.check(self.t.send({"t": "a", "seq": 1, "id": 77}))
        self.assertEqual(self.t.rcs, {"E49": 1})

    def test_liveness_ids_are_apart_from_generated_ones(self):
        self.assertGreater(LIVENESS_ID, 2**31)

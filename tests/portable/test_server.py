import unittest

from agent import cbor, wire
from agent.server import RESEND_MS, Server
from tests.kits.hubkit import PipeLink, Rig, config


def wire_msgs(data):
    return [wire.unpack(b) for b in wire.FrameDecoder().feed(bytes(data))]


class Host:
    def __init__(self):
        self.link = PipeLink()
        self.text = []
        self.decoder = wire.FrameDecoder(on_text=self.text.append)

    def send(self, msg):
        self.link.to_agent += wire.pack(msg)

    def received(self):
        out = [wire.unpack(b) for b in self.decoder.feed(bytes(self.link.to_host))]
        self.link.to_host = bytearray()
        return out


class ClosingLink(PipeLink):
    """A console whose far end has gone: reads give nothing and say so."""

    def read(self, n):
        data = PipeLink.read(self, n)
        if not data:
            self.eof = True
        return data

    def wait(self, timeout_ms):
        return True  # poll reports the hang-up as readable


class StarvedDecoder(wire.FrameDecoder):
    """A frame decoder on a heap that runs out: the first `fail` feeds raise MemoryError."""

    def __init__(self, fail=1):
        wire.FrameDecoder.__init__(self)
        self.fail = fail

    def feed(self, data):
        if self.fail:
            self.fail -= 1
            wire.FrameDecoder.feed(self, data[: len(data) // 2])  # part of it was taken in
            raise MemoryError("memory allocation failed")
        return wire.FrameDecoder.feed(self, data)


class StarvedLink(PipeLink):
    """A console whose writes fail for lack of memory while `fail` is set."""

    fail = 0

    def write(self, data):
        if self.fail:
            self.fail -= 1
            raise MemoryError("memory allocation failed")
        PipeLink.write(self, data)


class ServerTests(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.host = Host()
        self.server = Server(self.rig.hub, self.host.link)

    def ask(self, op, **args):
        self.host.send(wire.request(7, op, args))
        self.server.poll()
        return [m for m in self.host.received() if m["t"] == "r"]

    def test_one_response_per_request(self):
        got = self.ask("hello")
        self.assertEqual(len(got), 1)
        self.assertEqual((got[0]["id"], got[0]["rc"]), (7, "I0"))

    def test_malformed_but_addressable_request_gets_e49(self):
        body = cbor.dumps({"t": "q", "id": 9, "op": 5, "a": {}})
        self.host.link.to_agent += wire.encode_frame(body)
        self.server.poll()
        got = self.host.received()
        self.assertEqual([(m["id"], m["rc"]) for m in got], [(9, "E49")])

    def test_garbage_and_text_are_survived(self):
        self.host.link.to_agent += b"\x1c\x05garbage\r\nhello there\x1dxx" + bytes(range(256))
        self.server.poll()
        self.server.poll()
        self.assertEqual(self.host.received(), [])
        self.assertEqual(self.ask("status")[0]["rc"], "I0")

    def test_events_only_after_subscription_then_until_acked(self):
        self.ask("config.set", config=config())
        self.assertEqual([m for m in self.host.received() if m["t"] == "e"], [])
        self.host.send(wire.request(8, "hello", {"events": True}))
        self.server.poll()
        events = [m for m in self.host.received() if m["t"] == "e"]
        self.assertEqual(len(events), 3)  # 8F2A, 8F27, 8F26
        self.assertEqual(events[0]["d"]["DeviceAlertCode"], "8F2A")
        # not acked: sent again with the same seq after RESEND_MS, not before
        self.server.poll()
        self.assertEqual([m for m in self.host.received() if m["t"] == "e"], [])
        self.rig.clock.advance_ms(RESEND_MS)
        self.server.poll()
        again = [m["seq"] for m in self.host.received() if m["t"] == "e"]
        self.assertEqual(again, [e["seq"] for e in events])
        for e in events:
            self.host.send(wire.ack(e["seq"]))
        self.server.poll()
        self.assertEqual(len(self.rig.hub.outbox), 0)

    def test_run_returns_when_the_link_closes(self):
        link = ClosingLink()
        link.to_agent += wire.pack(wire.request(3, "hello", {}))
        Server(self.rig.hub, link).run()
        self.assertEqual([m["rc"] for m in wire_msgs(link.to_host)], ["I0"])

    def test_unacked_events_survive_reboot_with_their_seq(self):
        self.ask("config.set", config=config())
        seqs = [s for s, _k, _d in self.rig.hub.outbox.pending()]
        hub = self.rig.boot()
        server = Server(hub, self.host.link)
        self.host.send(wire.request(1, "hello", {"events": True}))
        server.poll()
        self.assertEqual([m["seq"] for m in self.host.received() if m["t"] == "e"], seqs)


class OutOfMemory(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.host = Host()
        self.host.link = StarvedLink()
        self.server = Server(self.rig.hub, self.host.link)

    def test_a_frame_that_cannot_be_taken_in_is_dropped_and_the_next_is_answered(self):
        self.server.decoder = StarvedDecoder()
        self.host.send(wire.request(1, "hello"))
        self.server.poll()  # no MemoryError out of the loop
        self.assertEqual(self.host.received(), [])
        self.assertEqual(self.server.bad_frames, 1)
        self.host.send(wire.request(2, "hello"))
        self.server.poll()
        got = self.host.received()
        self.assertEqual([(m["id"], m["rc"]) for m in got], [(2, "I0")])

    def test_a_response_that_cannot_be_framed_goes_out_without_its_data(self):
        self.host.link.fail = 1
        self.host.send(wire.request(3, "status"))
        self.server.poll()
        got = self.host.received()
        self.assertEqual(len(got), 1)
        self.assertEqual((got[0]["id"], got[0]["rc"]), (3, "I0"))
        self.assertNotIn("d", got[0])
        self.assertIn("memory", got[0]["e"])

    def test_a_request_that_runs_out_of_memory_is_answered_and_the_next_is_served(self):
        hub = self.rig.hub
        handle = hub.handle
        calls = []

        def starved(req):  # the first request's handler runs out of heap
            calls.append(req["op"])
            if len(calls) == 1:
                raise MemoryError("memory allocation failed, allocating 640 bytes")
            return handle(req)

        hub.handle = starved
        self.host.send(wire.request(5, "fw.begin", {"hash": b"h" * 32, "size": 100, "sig": b"s" * 8}))
        self.host.send(wire.request(6, "status"))
        self.server.poll()
        got = self.host.received()
        self.assertEqual([(m["id"], m["rc"]) for m in got], [(5, "E49"), (6, "I0")])
        self.assertIn("out of memory", got[0]["e"])
        self.assertIn("640", got[0]["e"])  # what the interpreter said
        self.assertEqual(calls, ["fw.begin", "status"])

    def test_an_event_that_cannot_be_sent_stays_in_the_outbox(self):
        self.host.send(wire.request(4, "hello", {"events": True}))
        self.server.poll()
        self.host.received()
        self.rig.call("config.set", config=config())  # raises 8F2A and more
        pending = len(self.rig.hub.outbox)
        self.assertGreater(pending, 0)
        self.host.link.fail = 1
        self.server.poll()  # the first event's frame fails: nothing lost, the loop goes on
        self.assertEqual(len(self.rig.hub.outbox), pending)
        self.rig.clock.advance_ms(RESEND_MS)
        self.server.poll()
        events = [m for m in self.host.received() if m["t"] == "e"]
        self.assertEqual(len(events), min(pending, 4))

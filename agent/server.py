# The agent's side of a link: frames in, requests to the hub, responses out, and upward events
# pushed from the persistent outbox until the host acknowledges them.
#
# Delivery: events go out oldest first, a few in flight, only after the host has said
# {"op": "hello", "a": {"events": true}} on this link (a terminal on the console is not spammed).
# An event not acknowledged within RESEND_MS is sent again with the same seq (the host drops
# seqs it has already seen), so delivery is at least once on the wire and exactly once at a host
# that remembers seqs. Events leave the outbox only on the host's ack.
#
# Out of memory (a small board's heap, fragmented) never ends the loop, and costs one frame at
# most: the frames of a read are served one by one, each released before the next. A frame the
# heap cannot hold, or whose decoding runs out of memory or of stack (nesting), is answered E49
# by its id when one can be found (wire.FrameDecoder.unheld, cbor.request_id), else dropped and
# counted in bad_frames (the host's timeout asks again); a request whose handler runs out is
# answered E49; a response that cannot be framed goes out without its data; an event that cannot
# be framed stays in the outbox for a later pass. The other frames of the read are served all
# the same.
from agent import cbor, wire
from agent.hub import RC_BAD_ARGS
from hal.compat import const, print_exception

RESEND_MS = const(2000)
WINDOW = const(4)
_READ = const(256)
_READS = const(20)  # at most this many reads a pass, so events and ticks still get their turn


class Server:
    def __init__(self, hub, link, on_text=None, handle=None):
        self.hub = hub
        self.handle = handle  # what answers requests on this link, if not the hub's own handle
        self.link = link
        self.clock = hub.clock
        self.decoder = wire.FrameDecoder(on_text=on_text)
        self.subscribed = False
        self.inflight = {}  # seq -> last sent ms
        self.bad_frames = 0

    def send(self, msg):
        self.link.write(wire.pack(msg))

    def poll(self):
        """One pass: read what is there, answer it, deliver events, run periodic work."""
        for _ in range(_READS):
            data = self.link.read(_READ)
            if not data:
                break
            try:
                bodies = self.decoder.feed(data)
            except MemoryError:  # outside what the decoder handles per frame: the partial frame goes
                self.decoder.reset()
                self.bad_frames += 1
                continue
            data = None
            unheld = self.decoder.unheld
            while unheld:  # whole requests the heap could not hold: answered by their ids
                self._starved(unheld.pop(0))
            while bodies:
                body = bodies.pop(0)  # a frame served is garbage before the next is
                try:
                    self._on_body(body)
                except MemoryError:  # not even its answer could be sent: this frame only
                    self.bad_frames += 1
                body = None
        try:
            self.hub.tick()
            if self.subscribed:
                self._deliver()
        except MemoryError:
            pass  # again on the next pass: nothing has left the outbox

    def run(self, idle_ms=20):
        while not self.hub.reboot_requested and not getattr(self.link, "eof", False):
            self.poll()
            self.link.wait(idle_ms)

    def _on_body(self, body):
        try:
            msg = wire.unpack(body)
        except wire.WireError as e:
            rid = getattr(e, "id", None)
            if rid is None:
                self.bad_frames += 1
                return
            self.send(wire.response(rid, RC_BAD_ARGS, err=str(e)))
            return
        except (MemoryError, RuntimeError):  # out of heap, or of stack (RecursionError)
            try:
                rid = cbor.request_id(body)  # builds nothing but the id
            except (MemoryError, RuntimeError):
                rid = None
            self._starved(rid)
            return
        t = msg["t"]
        if t == "q":
            self._on_request(msg)
        elif t == "a":
            seq = msg["seq"]
            self.inflight.pop(seq, None)
            self.hub.outbox.ack(seq)
        # responses and events from the host are not expected: ignored

    def _starved(self, rid):
        # a frame the board had no memory for: E49 to its id, if it has one
        if rid is None:
            self.bad_frames += 1
            return
        try:
            self.send(wire.response(rid, RC_BAD_ARGS, err="out of memory on the board for this frame"))
        except MemoryError:
            self.bad_frames += 1

    def _on_request(self, msg):
        try:
            rc, data, err = (self.handle or self.hub.handle)(msg)
        except MemoryError as e:  # what the handler held is garbage now: the next request has it
            rc, data, err = "E49", None, "internal error: out of memory on the board for this request ({})".format(e)
        except Exception as e:  # the agent keeps serving whatever a handler does
            print_exception(e)
            rc, data, err = "E49", None, "internal error: {}".format(e)
        if msg["op"] == "hello":
            self.subscribed = bool((msg.get("a") or {}).get("events"))
            self.inflight = {}
        try:
            self.send(wire.response(msg["id"], rc, data, err))
        except wire.WireError as e:
            self.send(wire.response(msg["id"], rc, None, "response too large: {}".format(e)))
        except MemoryError:
            data = None
            self.send(wire.response(msg["id"], rc, None, "no memory for the response's data"))

    def _deliver(self):
        now = self.clock.monotonic_ms()
        for seq, kind, data in self.hub.outbox.pending(WINDOW):
            last = self.inflight.get(seq)
            if last is not None and now - last < RESEND_MS:
                continue
            self.inflight[seq] = now
            self.send(wire.event(seq, kind, data))

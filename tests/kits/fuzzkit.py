# Fuzzing the agent's link (agent.server.Server over an in-memory line, on a simulated hub): what
# goes in, and what must come out.
#
# The rule checked after every input: each decodable message that carries a request id (a uint
# below 2**32 under "id") and is not a well-formed response/event/ack from the host gets exactly
# one answer with that id; nothing else is answered; no answer reports an internal error (a
# handler that raised); poll() never raises; and a valid hello sent right after is answered I0.
# expected_id() is this file's own reading of the wire rules (agent/wire.py's header), not the
# agent's code. Decodability is the agent's CBOR codec's (cross-checked with cbor2 elsewhere).
from agent import cbor, wire
from agent.han_ops import OPS as HAN_OPS  # the han.* requests: not in Hub.ops (routed by prefix)
from agent.server import Server

_U32 = 0xFFFFFFFF
LIVENESS_ID = 4000000000  # ids from here on are the checker's own hellos

# Argument names each operation reads, to aim random values at.
OP_ARGS = {
    "hello": ("events",),
    "status": (),
    "config.get": (),
    "config.set": ("config", "region"),
    "channel": (),
    "scan": (),
    "send": ("count", "len", "essential", "device", "request_id", "cra"),
    "clock.advance": ("ms",),
    "reboot": (),
    "fw.begin": ("hash", "size", "sig"),
    "fw.chunk": ("offset", "data"),
    "fw.end": (),
    "fw.activate": ("hash", "execution"),
    "fw.cancel": ("hash",),
    "fw.status": (),
}
# Bounds that keep one request cheap (the agent allows more).
MAX_SEND = 300
MAX_ADVANCE_MS = 7 * 86400000

TEXTS = ("", "a", "hello", "00-DB-12-34-56-78-90-A2", "x:y:z", "\u00b2", "\u0661.5", "1.3", "-0", "\u00e9" * 9)
ITEM_NAMES = (
    "LowerBandSubGHzChannels0To26",
    "LowerBandSubGHzChannels27To34",
    "LowerBandSubGHzChannels35To61",
    "UpperBandSubGHzChannels0To26",
    "NormalLimitedDutyCycleThreshold",
    "LimitedCriticalDutyCycleThreshold",
    "MaximumSubGHzChannelChangesPerWeek",
    "GSMECurfew",
    "ChannelQuieterThreshold",
    "ChannelNoisierThreshold",
    "NonGSMEPoorCommsPercentageThreshold",
    "NonGSMEPoorCommsMeasurementPeriods",
    "LocalCHNoiseMeasurementPeriod",
    "LocalCHFailurePercentage",
    "LocalCHRetryPercentage",
)


def _is_uint(v, top=_U32):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top


def _keys_within(msg, allowed):
    for k in msg:
        if k not in allowed:
            return False
    return True


def expected_id(msg):
    """The id the agent must answer to for this decoded message, or None."""
    if not isinstance(msg, dict):
        return None
    rid = msg.get("id")
    if not _is_uint(rid):
        return None
    t = msg.get("t")
    if isinstance(t, str) and t == "r":
        rc, e = msg.get("rc"), msg.get("e", "")
        if isinstance(rc, str) and rc and isinstance(e, str) and _keys_within(msg, ("t", "id", "rc", "d", "e")):
            return None  # a well-formed response from the host: ignored
    return rid  # requests, and anything malformed that names an id (e/a messages have no id)


class Target:
    """A configured simulated hub behind a Server, and the checks above."""

    def __init__(self, configure=True):
        from tests.kits.hubkit import Rig, config

        self.rig = Rig()
        if configure:
            self.rig.call("config.set", config=config())
        from tests.kits.hubkit import PipeLink

        self.line = PipeLink()
        self.server = Server(self.rig.hub, self.line)
        self.host = wire.FrameDecoder()
        self.inputs = 0
        self.answered = 0
        self.rcs = {}
        self._live = LIVENESS_ID

    def feed(self, data, expect):
        """Send raw bytes; expect: {id: answers owed, or None for "at most one, E49"}; the key
        None: one answer E49 to any id is allowed (a body the decoder refuses, whose id the
        agent may still find). Returns a list of problems (strings)."""
        self.inputs += 1
        self.line.to_agent += data
        problems = []
        for _ in range(1 + len(data) // 4096 * 2 + 4):
            try:
                self.server.poll()
            except Exception as e:  # the agent's loop must survive any input
                return ["poll() raised {}: {}".format(type(e).__name__, e)]
            if not self.line.to_agent:
                break
        got = {}
        refused = []  # ids answered E49
        for m in self._answers():
            rid = m["id"]
            got[rid] = got.get(rid, 0) + 1
            if m["rc"] == "E49":
                refused.append(rid)
            self.answered += 1
            rc = m["rc"]
            self.rcs[rc] = self.rcs.get(rc, 0) + 1
            if not (rc[:1] in ("I", "E") and rc[1:].isdigit()):
                problems.append("id {}: odd response code {!r}".format(rid, rc))
            err = m.get("e")
            if isinstance(err, str) and err.startswith("internal error"):
                problems.append("id {}: {}".format(rid, err))
        if None in expect and len(refused) == 1 and got[refused[0]] == 1 and refused[0] not in expect:
            expect = dict(expect)
            expect[refused[0]] = 1
        for rid, n in expect.items():
            if rid is None:
                continue
            if n is None:
                n = min(got.get(rid, 0), 1)
            if got.get(rid, 0) != n:
                problems.append("id {}: {} answers, expected {}".format(rid, got.get(rid, 0), n))
        for rid, n in got.items():
            if rid not in expect:
                problems.append("id {}: {} unexpected answers".format(rid, n))
        return problems

    def _answers(self):
        data = bytes(self.line.to_host)
        self.line.to_host = bytearray()
        out = []
        for body in self.host.feed(data):
            m = wire.unpack(body)  # the agent must only ever send valid messages
            if m["t"] == "r":
                out.append(m)
        return out

    def send_body(self, body, prefix=b"", suffix=b"", maybe=None):
        """One framed body (with text around it); the answer it is owed follows expected_id().
        A body the agent's decoder refuses may be answered (E49) to `maybe`, the id it holds."""
        expect = {}
        try:
            rid = expected_id(cbor.loads(body))
        except cbor.CBORError:
            rid = None
            expect[None] = None
            if maybe is not None:
                expect[maybe] = None
        if rid is not None:
            expect[rid] = 1
        return self.feed(prefix + wire.encode_frame(body) + suffix, expect)

    def send(self, msg, prefix=b"", suffix=b""):
        return self.send_body(cbor.dumps(msg), prefix, suffix)

    def alive(self):
        """A valid hello, answered I0 (problems otherwise)."""
        self._live += 1
        rid = self._live
        self.line.to_agent += wire.pack(wire.request(rid, "hello"))
        try:
            self.server.poll()
        except Exception as e:
            return ["poll() raised {} on a hello: {}".format(type(e).__name__, e)]
        answers = [(m["id"], m["rc"]) for m in self._answers()]
        if answers != [(rid, "I0")]:
            return ["hello {} answered {!r}".format(rid, answers)]
        return []


# ---------------------------------------------------------------- a seeded generator


class Rng:
    """xorshift32: the same inputs on CPython and MicroPython."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 0x9E3779B9) & _U32 or 1

    def u32(self):
        x = self.x
        x ^= (x << 13) & _U32
        x ^= x >> 17
        x ^= (x << 5) & _U32
        self.x = x
        return x

    def below(self, n):
        return self.u32() % n

    def chance(self, percent):
        return self.below(100) < percent

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def bytes(self, n):
        return bytes(self.below(256) for _ in range(n))

    def int(self):
        kind = self.below(6)
        if kind == 0:
            return self.below(30) - 5
        if kind == 1:
            return self.u32()
        if kind == 2:
            return -1 - self.u32() * self.u32()
        if kind == 3:
            return self.choice((2**32, 2**63, 2**64 - 1, -(2**64), 125, 126, 100000, 100001))
        return self.below(2000)

    def value(self, depth=0):
        kind = self.below(11 if depth < 4 else 7)
        if kind == 0:
            return self.int()
        if kind == 1:
            return self.choice(TEXTS)
        if kind == 2:
            return self.bytes(self.below(40))
        if kind == 3:
            return self.choice((None, True, False))
        if kind == 4:
            return self.choice((0.5, -1.5, 1e300, float("inf"), float("nan"), 1.3, 2.25))
        if kind == 5:
            return self.int()
        if kind == 6:
            return self.choice(TEXTS) + str(self.below(100))
        if kind in (7, 8):
            return [self.value(depth + 1) for _ in range(self.below(6))]
        m = {}
        for _ in range(self.below(5)):
            key = self.choice(TEXTS) if self.chance(70) else self.below(50)
            m[key] = self.value(depth + 1)
        return m

    def config(self):
        # A DBCH04-like mapping with some items dropped, added or given other values.
        from tests.kits.hubkit import config

        m = config()
        for _ in range(self.below(4)):
            name = self.choice(ITEM_NAMES)
            r = self.below(5)
            if r == 0:
                m.pop(name, None)
            elif r == 1:
                m[name] = [self.below(70) - 3 for _ in range(self.below(5))]
            elif r == 2:
                m[name] = self.choice(TEXTS)
            else:
                m[name] = self.value(2)
        if self.chance(10):
            m[self.choice(TEXTS)] = self.value(2)
        return m

    def args(self, op):
        a = {}
        for name in OP_ARGS.get(op, ()):
            if self.chance(30):
                continue
            if name == "config":
                a[name] = self.config() if self.chance(80) else self.value(1)
            elif name == "count":
                a[name] = self.below(MAX_SEND + 1) if self.chance(80) else self.choice((-1, "5", None, 1.0))
            elif name == "ms":
                a[name] = self.below(MAX_ADVANCE_MS) if self.chance(80) else self.choice((-1, "5", None))
            elif name in ("hash", "data", "sig"):
                a[name] = self.bytes(self.choice((0, 8, 31, 32, 33, 70))) if self.chance(80) else self.value(1)
            else:
                a[name] = self.value(1)
        if self.chance(15):
            a[self.choice(TEXTS) or "x"] = self.value(1)
        return a

    def op(self, ops):
        r = self.below(12)
        if r == 0:
            return self.choice(TEXTS) or "nope"
        if r == 1:
            return self.choice(ops) + "."
        if r < 4:
            return "config.set"
        if r < 6:
            return "send"
        return self.choice(ops)

    def message(self, ops, rid):
        """A request, or a message of another shape, or something else."""
        r = self.below(12)
        if r < 7:
            return wire.request(rid, self.op(ops), self.args("") if r == 0 else None)
        if r == 7:  # wrong types in the envelope
            m = wire.request(rid, self.op(ops))
            key = self.choice(("t", "id", "op", "a"))
            m[key] = self.value(1)
            return m
        if r == 8:  # missing or extra keys
            m = wire.request(rid, self.op(ops))
            if self.chance(50):
                m.pop(self.choice(("t", "op", "a")))
            else:
                m[self.choice(("x", "seq", "rc", "d", "k"))] = self.value(1)
            return m
        if r == 9:  # host-side shapes
            return self.choice((wire.ack(self.u32()), wire.response(rid, "I0"), wire.event(rid, "N54", {})))
        if r == 10:
            return {"t": self.choice(("q", "r", "e", "a", "z", "")), "id": self.int()}
        return self.value(0)

    def request(self, ops, rid):
        op = self.op(ops)
        return wire.request(rid, op, self.args(op))


def nested(depth, leaf=0):
    v = leaf
    for _ in range(depth):
        v = [v]
    return v


def run(target, rng, n, ops=None):
    """n random inputs, each followed by a liveness hello; the problems found, as strings."""
    ops = ops or sorted(target.rig.hub.ops + HAN_OPS)
    problems = []
    rid = 0
    for i in range(n):
        rid += 1
        text = rng.bytes(rng.below(12)) if rng.chance(15) else b""
        kind = rng.below(10)
        try:
            if kind == 0:  # raw bytes
                got = target.feed(rng.bytes(rng.below(300)), {})
            elif kind == 1:  # a frame of random bytes
                got = target.feed(wire.encode_frame(rng.bytes(rng.below(200))), {})
            elif kind == 2:  # a request cut short, then text
                frame = wire.pack(rng.request(ops, rid))
                got = target.feed(frame[: rng.below(len(frame) - 1) + 1] + text, {})
            elif kind == 3:  # a well-formed frame of another message, or of any value
                got = target.send(rng.message(ops, rid), text)
            elif kind == 4:  # deep nesting, within and beyond the decoder's depth limit
                got = target.send_body(deep_request(rid, rng.below(cbor.MAX_DEPTH + 2)), text, maybe=rid)
            else:
                got = target.send(rng.request(ops, rid), text, text)
        except cbor.CBORError:
            continue  # the generator made something the encoder refuses: not an input
        problems += ["input {}: {}".format(i, p) for p in got]
        problems += ["after input {}: {}".format(i, p) for p in target.alive()]
    return problems


def deep_request(rid, depth, op="hello"):
    """A request whose argument "x" is `depth` nested one-item arrays: the whole message nests
    depth + 2 containers (the decoder takes up to cbor.MAX_DEPTH). Canonical key order."""
    d = cbor.dumps
    return (
        b"\xa4"
        + d("a")
        + b"\xa1"
        + d("x")
        + b"\x81" * depth
        + b"\x00"
        + d("t")
        + d("q")
        + d("id")
        + d(rid)
        + d("op")
        + d(op)
    )

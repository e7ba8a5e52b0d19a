# Heap footprint of the agent on the MicroPython unix port. bench/bench_footprint.py and
# tests/host/test_footprint.py compile it with the agent to .mpy, lay the files out as a board's
# flash and run, from that directory:
#
#   micropython -X heapsize=128K -m footprint_probe MODE [DATA_DIR [THRESHOLD]]
#
# The hub runs on the virtual board's parts (boards/unix.py without the console): a simulated
# radio medium with no airtime windows, file storage in DATA_DIR (emptied first), a virtual
# clock, and an in-memory link that this script plays the host on.
#
# MODE
#   boot    build the hub and its server, answer one hello; prints "probe ok " + JSON of the
#           idle heap after each of these (no sampling wrappers)
#   config  boot, then apply the DBCH04-like configuration and answer status; as boot
#   work    the ordinary steps of "full" (all but the hostile requests), no wrappers: prints
#           "probe ok" or "probe failed " + JSON of the steps that ran out of memory
#   hostile boot, configuration, then the hostile requests, no wrappers; as work
#   full    every step below with figures; prints one line "probe " + JSON of the figures
# THRESHOLD (bytes, default 2048 in full, 0 otherwise) sets gc.threshold(): the GC then also
# runs after that many bytes have been allocated (0: only when an allocation fails).
#
# Figures (bytes, gc.mem_alloc()):
#   base          the interpreter alone, before any agent import
#   imported      after importing the agent's modules (their bytecode lives on the heap)
#   steps[name]   {"idle": after the step and gc.collect(), "peak": see below}
#   total         the heap size (gc.mem_alloc() + gc.mem_free())
#   wrappers      the sampling wrappers' own heap (in every idle figure of "full")
# A step's peak is the largest gc.mem_alloc() sampled at the entry and the exit of every call to
# the agent's functions (_CLASSES, _MODULES) while the step runs, from a collected heap, with
# gc.threshold(THRESHOLD) so that the GC also runs every THRESHOLD bytes allocated: garbage
# makes up at most about THRESHOLD bytes of a sample. Limits: what a function holds between two
# samples is not seen (a temporary made and dropped inside a leaf); up to THRESHOLD bytes of a
# sample may be garbage; the host's side of the link (framing requests, decoding answers) and
# the wrappers' argument tuples share the heap. So a peak approximates the live heap at its
# highest; the smallest heap a step runs in (bisecting -X heapsize, bench) is the firm figure.
# A step that fails with MemoryError is listed in "errors" and the rest go on.
import gc
import os
import sys

gc.collect()
_BASE = gc.mem_alloc()

from agent import cbor, subghz, wire  # noqa: E402
from agent.agility import Agility  # noqa: E402
from agent.dutycycle import AirtimeLedger, DutyCycle  # noqa: E402
from agent.hub import Hub  # noqa: E402
from agent.outbox import Outbox  # noqa: E402
from agent.server import Server  # noqa: E402
from agent.store import Store  # noqa: E402
from boards import unix as board  # noqa: E402
from hal.contracts import Hal, Link  # noqa: E402
from hal.fs_storage import FileStorage  # noqa: E402
from hal.mcu import StaticIdentity  # noqa: E402
from hal.sim.clock import VirtualClock  # noqa: E402
from hal.sim.radio import Medium, SimRadio  # noqa: E402

gc.collect()
_IMPORTED = gc.mem_alloc()

EUI = "00-DB-12-34-56-78-90-A2"
from agent.examples import DBCH04_CONFIG as CONFIG  # noqa: E402  (after the import figure)

DEVICES = ("00-00-00-00-00-00-00-01", "00-00-00-00-00-00-00-02")
THRESHOLD = 2048
WORK = ("boot", "hello", "config", "status", "burst", "deliver", "unsubscribe", "outbox_full", "reboot")
WORK += ("deliver_full", "after")

_peak = [0]


def _sample():
    a = gc.mem_alloc()
    if a > _peak[0]:
        _peak[0] = a


def _wrap(f):
    def sampled(*a, **k):
        _sample()
        try:
            return f(*a, **k)
        finally:
            _sample()

    return sampled


_FN = type(_sample)
_CLASSES = (Hub, Server, wire.FrameDecoder, Store, Outbox, Agility, DutyCycle, AirtimeLedger, FileStorage)
_CLASSES += (Medium, SimRadio, subghz.SubGhzConfig, subghz.Result)
_MODULES = (
    (cbor, ("_enc", "_dec", "dumps", "loads")),
    (wire, ("encode_frame", "pack", "pack_body", "unpack", "check_message")),
    (subghz, ("validate", "parse_decimal", "_channel_set")),
)


def instrument():
    for cls in _CLASSES:
        d = cls.__dict__
        for name in list(d):
            f = d[name]
            if type(f) is _FN and (name == "__init__" or not name.startswith("__")):
                setattr(cls, name, _wrap(f))
    for mod, names in _MODULES:
        for name in names:
            setattr(mod, name, _wrap(getattr(mod, name)))


class Pipe(Link):
    # Reads hand out the pending input from an offset (no copy of what is left, as a UART
    # driver's ring buffer would), so the host's side costs the heap little.
    def __init__(self):
        self.to_agent = bytearray()
        self.to_host = bytearray()
        self._at = 0

    def read(self, n):
        at = self._at
        data = bytes(memoryview(self.to_agent)[at : at + n])
        self._at = at + len(data)
        if self._at >= len(self.to_agent):
            self.to_agent = bytearray()
            self._at = 0
        return data

    def write(self, data):
        self.to_host += data

    def wait(self, timeout_ms):
        return bool(self.to_agent)


def _empty(path):
    try:
        names = os.listdir(path)
    except OSError:
        os.mkdir(path)
        return
    for n in names:
        os.remove(path + "/" + n)


class Device:
    """The hub on the virtual board's parts, with this script as its host."""

    def __init__(self, data_dir, clock=None, medium=None):
        self.clock = clock or VirtualClock()
        self.medium = medium or Medium(self.clock, seed=1, windows_ms=())
        self.radio = SimRadio(self.medium, self.clock, band="868", tx_power_dbm=14)
        self.link = Pipe()
        hal = Hal(self.radio, self.clock, FileStorage(data_dir), link=self.link, identity=StaticIdentity(EUI))
        self.hub = Hub(hal, board)
        self.server = Server(self.hub, self.link)
        self.host = wire.FrameDecoder()
        self.events = 0
        self._id = 0

    def _received(self):
        out = []
        for body in self.host.feed(bytes(self.link.to_host)):
            out.append(wire.unpack(body))
        self.link.to_host = bytearray()
        return out

    def ask(self, op, args=None):
        """One request; its (rc, data). Events that come with it are acknowledged."""
        self._id += 1
        self.link.to_agent += wire.pack(wire.request(self._id, op, args))
        self.server.poll()
        answer = None
        for m in self._received():
            if m["t"] == "r" and m["id"] == self._id:
                answer = (m["rc"], m.get("d"))
            elif m["t"] == "e":
                self.events += 1
                self.link.to_agent += wire.pack(wire.ack(m["seq"]))
        return answer

    def drain(self):
        """Deliver every pending event and acknowledge it."""
        for _ in range(200):
            self.server.poll()
            got = self._received()
            for m in got:
                if m["t"] == "e":
                    self.events += 1
                    self.link.to_agent += wire.pack(wire.ack(m["seq"]))
            if not got and not self.link.to_agent and not len(self.hub.outbox):
                return
            self.clock.advance_ms(10)


def _check(answer, rc, what):
    if answer is None or answer[0] != rc:
        raise AssertionError("{}: {!r}".format(what, answer))


def _idle():
    gc.collect()
    return gc.mem_alloc()


def boot(data_dir, configure):
    # No sampling wrappers here: the idle figures are the agent's alone (and this script's).
    _empty(data_dir)
    figures = {"base": _BASE, "imported": _IMPORTED}
    dev = Device(data_dir)
    figures["boot"] = _idle()
    _check(dev.ask("hello"), "I0", "hello")
    figures["hello"] = _idle()
    if configure:
        _check(dev.ask("config.set", {"config": CONFIG}), "I0", "config.set")
        figures["config"] = _idle()
        _check(dev.ask("status"), "I0", "status")
        figures["status"] = _idle()
    import json

    print("probe ok " + json.dumps(figures))


# -- the full run ------------------------------------------------------------------------------


def burst(dev):
    # Traffic far above the limits: limited, critical, regulated, refused messages with a
    # RequestID (8F2C), a DCC scan request; then an hour of silence brings the states back down.
    for minute in range(12):
        for d in DEVICES:
            dev.ask("send", {"count": 500, "len": 125, "device": d})
        dev.ask("send", {"count": 300, "len": 125, "essential": True})
        rid = "00-00-00-00-00-00-00-09:{}:{}".format(EUI, minute)
        dev.ask("send", {"count": 1, "len": 125, "request_id": rid})
        dev.ask("clock.advance", {"ms": 60000})
    dev.ask("scan")
    for _ in range(7):
        dev.ask("clock.advance", {"ms": 600000})


def fill_outbox(dev):
    # An unsubscribed host: alerts pile up to the outbox's capacity (DCC scan requests).
    n = 0
    while len(dev.hub.outbox) < dev.hub.outbox.capacity and n < 100:
        dev.ask("scan")
        n += 1
    return len(dev.hub.outbox)


# Requests of up to MAX_BODY bytes whose argument is built to cost the decoder the most heap per
# byte: {"t": "q", "id": 99, "op": "nope", "a": {"x": [item, item, ...]}}. Each must be answered
# (E13, or E49 if refused as too large to decode) and the hub must go on.
_PREFIX = b"\xa4\x61t\x61q\x62id\x18\x63\x62op\x64nope\x61a\xa1\x61x"


def _array(item):
    n = (wire.MAX_BODY - len(_PREFIX) - 3) // len(item)
    return _PREFIX + b"\x99" + bytes((n >> 8, n & 255)) + item * n


HOSTILE = ("ints", "strs", "bytes", "lists", "maps", "floats", "map", "deep")


def hostile_bodies():
    yield "ints", _array(b"\x00")  # [0, 0, ...]
    yield "strs", _array(b"\x61a")  # ["a", "a", ...]
    yield "bytes", _array(b"\x41a")  # [b"a", ...]
    yield "lists", _array(b"\x81\x00")  # [[0], [0], ...]
    yield "maps", _array(b"\xa1\x00\x00")  # [{0: 0}, ...]
    yield "floats", _array(b"\xf9\x3c\x00")  # [1.0, ...]
    n = (wire.MAX_BODY - len(_PREFIX) - 3) // 4
    keys = bytearray(4 * n)  # 0x19 hi lo 0x00: a 2-byte uint key and the value 0
    for i in range(n):
        keys[4 * i] = 0x19
        keys[4 * i + 1] = i >> 8
        keys[4 * i + 2] = i & 255
    yield "map", _PREFIX + b"\xb9" + bytes((n >> 8, n & 255)) + keys  # {0: 0, 1: 0, ...}
    yield "deep", _PREFIX + b"\x81" * 13 + b"\x00"  # as deep as MAX_DEPTH allows


def hostile(dev, step):
    errors = {}
    for name, body in hostile_bodies():
        got = step(name, lambda body=body: _feed(dev, body))
        if got is None:  # not run, or out of memory (then step() has it)
            continue
        if got not in ([(99, "E13")], [(99, "E49")]):  # unknown op, or refused as too large
            errors[name] = "answered {!r}".format(got)
    return errors


def _feed(dev, body):
    dev.link.to_agent += wire.encode_frame(body)
    while dev.link.to_agent:
        dev.server.poll()
    return [(m["id"], m["rc"]) for m in dev._received() if m["t"] == "r"]


def full(data_dir, measure=True, steps_wanted=None):
    total = gc.mem_alloc() + gc.mem_free()
    wrappers = 0
    if measure:
        before = _idle()
        instrument()
        wrappers = _idle() - before
    if THRESHOLD:
        gc.threshold(THRESHOLD)
    steps = {}
    errors = {}

    def step(name, fn):
        if steps_wanted is not None and name not in steps_wanted:
            return None
        if not measure:
            try:
                return fn()
            except MemoryError:
                errors[name] = "MemoryError"
                return None
        gc.collect()
        _peak[0] = gc.mem_alloc()
        try:
            r = fn()
        except MemoryError:
            errors[name] = "MemoryError"
            r = None
        _sample()
        peak = _peak[0]
        gc.collect()
        steps[name] = {"idle": gc.mem_alloc(), "peak": peak}
        return r

    _empty(data_dir)
    dev = step("boot", lambda: Device(data_dir))
    step("hello", lambda: _check(dev.ask("hello", {"events": True}), "I0", "hello"))
    step("config", lambda: _check(dev.ask("config.set", {"config": CONFIG}), "I0", "config.set"))
    step("status", lambda: _check(dev.ask("status"), "I0", "status"))
    if dev is None:
        raise MemoryError("no hub")
    step("burst", lambda: burst(dev))
    step("deliver", lambda: dev.drain())
    events = dev.events
    step("unsubscribe", lambda: _check(dev.ask("hello"), "I0", "hello"))
    queued = step("outbox_full", lambda: fill_outbox(dev))
    clock, medium = dev.clock, dev.medium
    dev.radio.deinit()
    dev = None
    dev = step("reboot", lambda: Device(data_dir, clock, medium)) or Device(data_dir, clock, medium)
    step("deliver_full", lambda: (dev.ask("hello", {"events": True}), dev.drain()))
    fw = [op for op in dev.hub.ops if op.startswith("fw.")]
    for name, why in hostile(dev, step).items():
        errors.setdefault(name, why)
    step("after", lambda: _check(dev.ask("status"), "I0", "status"))
    import json

    if not measure:
        print("probe ok" if not errors else "probe failed " + json.dumps(errors))
        return

    figures = {
        "total": total,
        "base": _BASE,
        "imported": _IMPORTED,
        "wrappers": wrappers,
        "threshold": THRESHOLD,
        "steps": steps,
        "errors": errors,
        "events": events,
        "outbox_full": queued,
        "outbox_left": len(dev.hub.outbox),
        "fw_ops": sorted(fw),
        "modules": sorted(m for m in sys.modules if m != "__main__"),
    }
    print("probe " + json.dumps(figures))


def main(argv):
    mode = argv[1] if len(argv) > 1 else "full"
    data_dir = argv[2] if len(argv) > 2 else "probe_data"
    global THRESHOLD
    if mode != "full":
        THRESHOLD = 0
    if len(argv) > 3:
        THRESHOLD = int(argv[3])  # 0: no extra collections
    if mode == "boot":
        boot(data_dir, False)
    elif mode == "config":
        boot(data_dir, True)
    elif mode == "full":
        full(data_dir)
    elif mode == "work":
        full(data_dir, False, WORK)
    elif mode == "hostile":
        full(data_dir, False, ("boot", "hello", "config") + HOSTILE)
    else:
        raise SystemExit("mode must be boot, config, work, hostile or full")


main(sys.argv)

# Heap footprint of the agent on the MicroPython unix port. bench/bench_footprint.py and
# tests/host/test_footprint.py compile it with the agent to .mpy, lay the files out as a board's
# flash and run, from that directory:
#
#   micropython -X heapsize=128K -m footprint_probe MODE [DATA_DIR [THRESHOLD]]
#
# The hub runs on the virtual board's parts (boards/unix.py without the console): a simulated
# radio medium (as the board makes it), file storage in DATA_DIR (emptied first), a virtual
# clock, and an in-memory link that this script plays the host on.
#
# MODE
#   boot    build the hub and its server, answer one hello; prints "probe ok " + JSON of the
#           idle heap after each of these (no sampling wrappers)
#   config  boot, then apply the DBCH04-like configuration and answer status; as boot
#   work    the ordinary steps of "full" (all but the hostile requests), no wrappers: prints
#           "probe ok" or "probe failed " + JSON of the steps that ran out of memory
#   hostile boot, configuration, then the hostile requests, no wrappers; as work
#   firmware boot, configuration, then the firmware steps (below), no wrappers; as work
#   fwfull  the steps of firmware with figures, as full (a quicker check of those figures)
#   full    every step below with figures; prints one line "probe " + JSON of the figures
#   idle    as full without the sampling wrappers: each step's idle figure as full has it, less
#           the wrappers; a step's "peak" is only the heap as the step ends, before collecting
#           (the 32-bit runs, bench/footprint32.py: that port collects nothing during a step, so
#           its heap in use only grows then, and sampling it costs the more the longer it grows)
# THRESHOLD (bytes, default 2048 in full, fwfull and idle, 0 otherwise) sets gc.threshold(): the GC then also
# runs after that many bytes have been allocated (0: the agent's own, agent.run GC_EVERY, which it
# sets as the agent starts, before the hub's modules load: the probe sets it there too; -1: none,
# the GC runs only when an allocation fails).
#
# Figures (bytes, gc.mem_alloc()):
#   base          the interpreter alone, before any agent import
#   imported      after importing the agent's modules (their bytecode lives on the heap)
#   loaded        as the run starts: the agent's modules and all of this script (the first
#                 collected figure on the WebAssembly port, which collects no garbage while a
#                 module loads: there base and imported include what loading left, see run())
#   steps[name]   {"idle": after the step and gc.collect(), "peak": see below}
#   total         the heap size (gc.mem_alloc() + gc.mem_free())
#   wrappers      the sampling wrappers' own heap (in every idle figure of "full")
# After each step of "full" it also prints "names after STEP" and micropython.qstr_info(): the
# names the interpreter has interned so far (they are never freed; their pools double in size,
# the sixth one, 640 names and about 7 KB in one block, coming with the 621st name).
# A step's peak is the largest gc.mem_alloc() sampled at the entry and the exit of every call to
# the agent's functions (_CLASSES, _MODULES) while the step runs, from a collected heap, with
# gc.threshold(THRESHOLD) so that the GC also runs every THRESHOLD bytes allocated: garbage
# makes up at most about THRESHOLD bytes of a sample. Limits: what a function holds between two
# samples is not seen (a temporary made and dropped inside a leaf); up to THRESHOLD bytes of a
# sample may be garbage; the host's side of the link (framing requests, decoding answers) and
# the wrappers' argument tuples share the heap. So a peak approximates the live heap at its
# highest; the smallest heap a step runs in (bisecting -X heapsize, bench) is the firm figure.
# A step that fails with MemoryError is listed in "errors" and the rest go on.
#
# Firmware (steps "firmware" and "fw_activate", last before "after", so that the agent.fw_staging,
# agent.fw_image and agent.p256 modules they load, which then stay loaded as on a board, are in no
# figure of the other steps): bench/bench_footprint.py puts in the flash directory a trusted key
# (fwkey.bin, as dbch flash --signing-key does), an image of the agent signed with it (as dbch
# firmware build --key makes), what the host knows of that image (footprint_img.cbor: {hash,
# size, sig, version, chunk, frames, id}) and its fw.chunk requests as host_tools.link.client frames
# them (footprint_img.frames: each frame after its 2-byte length; request ids id, id+1, ...).
# "firmware" stages it as dbch firmware send does: fw.begin (which must answer offset 0 and the
# chunk size the frames were made for; with the info's "z", a compressed stream whose window and
# chunk sizes fw.begin must answer as the frames have them), every fw.chunk frame, fw.end (hash and signature
# checked, the image unpacked into the inactive slot). The host's side holds one frame (about
# 4 KB, read from the file) while the agent reads it, as a board's receive buffer would at most.
# "fw_activate": fw.status (the image staged and verified), fw.activate a day ahead (scheduled:
# the immediate one reboots, which this in-process host cannot follow), fw.cancel.
# Each run first removes what an earlier one staged (slots/, fwboot.json).
import gc
import os
import sys

import micropython

gc.collect()
_BASE = gc.mem_alloc()

from agent import cbor, subghz, wire  # noqa: E402
from agent.agility import Agility  # noqa: E402
from agent.dutycycle import AirtimeLedger, DutyCycle  # noqa: E402
from hal.compat import collect_every  # noqa: E402

GC_EVERY = 8192  # the agent's heap policy (agent.run GC_EVERY), set here where the agent sets it
collect_every(GC_EVERY)  # as it starts: before the hub's modules load (agent.run is not measured)

from agent.hub import Hub  # noqa: E402
from agent.outbox import Outbox  # noqa: E402
from agent.server import Server  # noqa: E402
from agent.store import Store  # noqa: E402
from boards import unix as board  # noqa: E402
from hal.compat import hexstr  # noqa: E402
from hal.contracts import Hal, Link  # noqa: E402
from hal.fs_storage import FileStorage  # noqa: E402
from hal.mcu import StaticIdentity  # noqa: E402
from hal.sim.radio import Medium, SimRadio  # noqa: E402
from hal.sim.vclock import VirtualClock  # noqa: E402

gc.collect()
_IMPORTED = gc.mem_alloc()

EUI = "00-DB-12-34-56-78-90-A2"
from agent.examples import DBCH04_CONFIG as CONFIG  # noqa: E402  (after the import figure)

DEVICES = ("00-00-00-00-00-00-00-01", "00-00-00-00-00-00-00-02")
THRESHOLD = 2048
WORK = ("boot", "hello", "config", "status", "burst", "deliver", "unsubscribe", "outbox_full", "reboot")
WORK += ("deliver_full", "after")
IMAGE_INFO = "footprint_img.cbor"
IMAGE_FRAMES = "footprint_img.frames"
FIRMWARE = ("boot", "hello", "config", "status", "firmware", "fw_activate")

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
    _fresh_firmware(path)
    try:
        names = os.listdir(path)
    except OSError:
        os.mkdir(path)
        return
    for n in names:
        os.remove(path + "/" + n)


def _join(root, name):
    return name if not root else root.rstrip("/") + "/" + name


def _rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = path + "/" + n
        if os.stat(p)[0] & 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def _fresh_firmware(data_dir):
    # The firmware root (the directory holding the storage directory) as flashed: no slot staged
    # and no boot state left by an earlier run, so that the image is staged again.
    i = data_dir.rstrip("/").rfind("/")
    root = "" if i < 0 else (data_dir[:i] or "/")
    _rmtree(_join(root, "slots"))
    try:
        os.remove(_join(root, "fwboot.json"))
    except OSError:
        pass


class Device:
    """The hub on the virtual board's parts, with this script as its host."""

    def __init__(self, data_dir, clock=None, medium=None):
        self.clock = clock or VirtualClock()
        self.medium = medium or Medium(self.clock, seed=1, recent_size=8)  # as boards/unix.py
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
        return self.answer(self._id)

    def send_frame(self, frame):
        # A frame the host made: it becomes the link's input as it is (no copy).
        if self.link.to_agent:
            self.link.to_agent += frame
        else:
            self.link.to_agent = frame

    def answer(self, rid):
        self.server.poll()
        while self.link.to_agent:  # a frame longer than one pass reads
            self.server.poll()
        answer = None
        for m in self._received():
            if m["t"] == "r" and m["id"] == rid:
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
    # The heap in use once collected: a generator, each use `yield from _idle()`, so that the
    # runner collects between its resumptions (run(): gc.collect() here; the WebAssembly port
    # collects only when the host calls in again, see run()).
    gc.collect()
    yield
    return gc.mem_alloc()


def boot(data_dir, configure):
    # No sampling wrappers here: the idle figures are the agent's alone (and this script's).
    _empty(data_dir)
    figures = {"base": _BASE, "imported": _IMPORTED, "loaded": (yield from _idle())}
    dev = Device(data_dir)
    figures["boot"] = yield from _idle()
    _check(dev.ask("hello"), "I0", "hello")
    figures["hello"] = yield from _idle()
    if configure:
        _check(dev.ask("config.set", {"config": CONFIG}), "I0", "config.set")
        figures["config"] = yield from _idle()
        _check(dev.ask("status"), "I0", "status")
        figures["status"] = yield from _idle()
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
        got = yield from step(name, lambda body=body: _feed(dev, body))
        if got is None:  # not run, or out of memory (then step() has it)
            continue
        if got not in ([(99, "E13")], [(99, "E49")]):  # unknown op, or refused as too large
            errors[name] = "answered {!r}".format(got)
    return errors


# -- firmware ----------------------------------------------------------------------------------


def image_info():
    # What the host knows of the signed image (bench_footprint writes it), or None.
    try:
        f = open(IMAGE_INFO, "rb")
    except OSError:
        return None
    try:
        return cbor.loads(f.read())
    finally:
        f.close()


def stage(dev, info, out):
    # As dbch firmware send: fw.begin, the CONTENT in the agent's chunk size, fw.end. None when
    # staged, else what went wrong. out gets the chunk size and count.
    size = info["size"]
    args = {"hash": info["hash"], "size": size, "sig": info["sig"]}
    if info.get("z"):
        args["z"] = info["z"]
    got = dev.ask("fw.begin", args)
    if got is None or got[0] != "I0" or got[1].get("ready") or got[1]["offset"] != 0:
        return "fw.begin answered {!r}".format(got)
    if got[1]["chunk"] != info["chunk"]:
        return "the agent takes chunks of {}, the frames have {}".format(got[1]["chunk"], info["chunk"])
    for k in ("z", "zc", "zn"):
        if got[1].get(k) != info.get(k):  # a compressed stream in other sizes than the frames'
            return "the agent answered {} {}, the frames have {}".format(k, got[1].get(k), info.get(k))
    out["window"] = info.get("z")
    out["chunk"] = info["chunk"]
    out["chunks"] = 0
    off = 0
    f = open(IMAGE_FRAMES, "rb")
    try:
        for i in range(info["frames"]):
            n = f.read(2)
            dev.send_frame(f.read((n[0] << 8) | n[1]))
            got = dev.answer(info["id"] + i)
            if got is None or got[0] != "I0":
                return "fw.chunk at {} answered {!r}".format(off, got)
            off = got[1]["offset"]
            out["chunks"] += 1
    finally:
        f.close()
    if off != size:
        return "staged {} of {} bytes".format(off, size)
    got = dev.ask("fw.end", {})
    if got is None or got[0] != "I0" or got[1].get("hash") != info["hash"]:
        return "fw.end answered {!r}".format(got)
    out["slot"] = got[1]["slot"]
    out["version"] = got[1]["version"]
    return None


def activate(dev, info):
    # fw.status shows the image staged and verified; a scheduled activation, then cancelled.
    got = dev.ask("fw.status")
    if got is None or got[0] != "I0":
        return "fw.status answered {!r}".format(got)
    want = hexstr(info["hash"])
    slots = got[1]["slots"]
    if not [s for s in slots if slots[s] and slots[s]["hash"] == want] or got[1]["staging"] is not None:
        return "fw.status: image not staged: {!r}".format(got[1])
    got = dev.ask("fw.activate", {"hash": info["hash"], "execution": dev.clock.utc() + 86400})
    if got is None or got[0] != "I0" or got[1].get("reboot"):
        return "fw.activate answered {!r}".format(got)
    got = dev.ask("fw.cancel", {"hash": info["hash"]})
    if got is None or got[0] != "I0":
        return "fw.cancel answered {!r}".format(got)
    return None


def _feed(dev, body):
    dev.link.to_agent += wire.encode_frame(body)
    while dev.link.to_agent:
        dev.server.poll()
    return [(m["id"], m["rc"]) for m in dev._received() if m["t"] == "r"]


def full(data_dir, measure=True, steps_wanted=None, sample=True):
    loaded = yield from _idle()
    total = gc.mem_alloc() + gc.mem_free()
    wrappers = 0
    if measure and sample:
        before = yield from _idle()
        instrument()
        wrappers = (yield from _idle()) - before
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
            except MemoryError as e:
                errors[name] = "MemoryError"
                sys.print_exception(e, sys.stderr)  # where, for whoever reads a failed run
                return None
        _peak[0] = yield from _idle()
        try:
            r = fn()
        except MemoryError:
            errors[name] = "MemoryError"
            r = None
        _sample()
        peak = _peak[0]
        steps[name] = {"idle": (yield from _idle()), "peak": peak}
        print("names after", name)  # the interned names (qstrs) so far, for bench_footprint
        micropython.qstr_info()
        return r

    _empty(data_dir)
    dev = yield from step("boot", lambda: Device(data_dir))
    yield from step("hello", lambda: _check(dev.ask("hello", {"events": True}), "I0", "hello"))
    yield from step("config", lambda: _check(dev.ask("config.set", {"config": CONFIG}), "I0", "config.set"))
    yield from step("status", lambda: _check(dev.ask("status"), "I0", "status"))
    if dev is None:
        raise MemoryError("no hub")
    yield from step("burst", lambda: burst(dev))
    yield from step("deliver", lambda: dev.drain())
    events = dev.events
    yield from step("unsubscribe", lambda: _check(dev.ask("hello"), "I0", "hello"))
    queued = yield from step("outbox_full", lambda: fill_outbox(dev))
    clock, medium = dev.clock, dev.medium
    dev.radio.deinit()
    dev = None
    dev = (yield from step("reboot", lambda: Device(data_dir, clock, medium))) or Device(data_dir, clock, medium)
    yield from step("deliver_full", lambda: (dev.ask("hello", {"events": True}), dev.drain()))
    fw = [op for op in dev.hub.ops if op.startswith("fw.")]
    if steps_wanted is None or [h for h in HOSTILE if h in steps_wanted]:  # the bodies cost heap
        for name, why in (yield from hostile(dev, step)).items():
            errors.setdefault(name, why)
    info = image_info()
    staged = {}
    if info is None:
        staged["skipped"] = "no signed image in the flash directory ({})".format(IMAGE_INFO)
    elif "fw.begin" not in fw:
        staged["skipped"] = "the hub has no fw.* operations"
    if "skipped" in staged:
        if steps_wanted is not None and "firmware" in steps_wanted:
            errors["firmware"] = staged["skipped"]  # asked for, so not a pass
    else:
        staged["image"] = info["size"]
        for name, fn in (("firmware", lambda: stage(dev, info, staged)), ("fw_activate", lambda: activate(dev, info))):
            why = yield from step(name, fn)
            if why:
                errors.setdefault(name, why)
    yield from step("after", lambda: _check(dev.ask("status"), "I0", "status"))
    import json

    if not measure:
        print("probe ok" if not errors else "probe failed " + json.dumps(errors))
        return

    figures = {
        "total": total,
        "base": _BASE,
        "imported": _IMPORTED,
        "loaded": loaded,
        "wrappers": wrappers,
        "threshold": THRESHOLD,
        "steps": steps,
        "errors": errors,
        "events": events,
        "outbox_full": queued,
        "outbox_left": len(dev.hub.outbox),
        "fw_ops": sorted(fw),
        "fw": staged,
        "modules": sorted(m for m in sys.modules if m != "__main__"),
    }
    print("probe " + json.dumps(figures))


def probe(argv):
    # The run argv asks for, as a generator: it yields where it wants the heap collected (_idle).
    mode = argv[1] if len(argv) > 1 else "full"
    data_dir = argv[2] if len(argv) > 2 else "probe_data"
    global THRESHOLD
    if mode not in ("full", "fwfull", "idle"):
        THRESHOLD = 0
    if len(argv) > 3:
        THRESHOLD = int(argv[3])  # 0: no extra collections
    if mode == "boot":
        yield from boot(data_dir, False)
    elif mode == "config":
        yield from boot(data_dir, True)
    elif mode == "full":
        yield from full(data_dir)
    elif mode == "work":
        yield from full(data_dir, False, WORK)
    elif mode == "hostile":
        yield from full(data_dir, False, ("boot", "hello", "config") + HOSTILE)
    elif mode == "firmware":
        yield from full(data_dir, False, FIRMWARE)
    elif mode == "fwfull":
        yield from full(data_dir, True, FIRMWARE)
    elif mode == "idle":
        yield from full(data_dir, True, None, False)
    else:
        raise SystemExit("mode must be boot, config, work, hostile, firmware, fwfull, full or idle")


# The probe as the runner steps it (bench/wasm32_run.mjs), else None.
RUN = None


def run(argv):
    # Runs the probe. The WebAssembly port (bench/wasm32.py) collects garbage only when the host
    # calls into it, never inside a call (gc.collect() and gc.threshold() there only ask for a
    # collection; the heap grows instead): there the probe is left in RUN for its runner, which
    # resumes it once per call.
    global RUN
    steps = probe(argv)
    if sys.platform == "webassembly":
        RUN = steps
        return
    for _ in steps:
        pass


run(sys.argv)

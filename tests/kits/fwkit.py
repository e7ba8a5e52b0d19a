# Shared by the firmware tests: a test signing key (a portable signer built on agent.p256's
# point arithmetic: test-only, deterministic nonce), images and rollback permissions, and a
# simulated device whose flash outlives reboots and whose boot runs the bootloader's decision
# before the hub starts; and the host's side of compressed staging (Deflater).
import hashlib
import struct
from binascii import crc32

from agent import boot, p256
from agent import fw_image as image
from agent.fw_common import CONFIRM_MS
from agent.fw_install import _SlotWriter
from boards import sim
from hal.sim.flash import SimFlash
from hal.sim.vclock import VirtualClock
from tests.kits.labmedium import LabMedium

ROOT = "/"  # sim storage is /hub: the firmware root is its parent
KEY_D = 0x3C4F6A0E9B1D2C5E7F8091A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E7
OTHER_D = 0x51A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F81


def _affine(X, Y, Z):
    zi = p256._inv(Z, p256.P)
    zz = zi * zi % p256.P
    return X * zz % p256.P, Y * zz * zi % p256.P


def public_key(d=KEY_D):
    x, y = _affine(*p256._mul_add(d, 0, p256.GX, p256.GY))
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _der_int(v):
    b = v.to_bytes(32, "big")
    while len(b) > 1 and b[0] == 0 and not b[1] & 0x80:
        b = b[1:]
    if b[0] & 0x80:
        b = b"\x00" + b
    return bytes([2, len(b)]) + b


def sign(digest, d=KEY_D):
    """DER ECDSA P-256 signature of a 32-byte digest (nonce from the key and digest)."""
    n = p256.N
    e = int.from_bytes(digest, "big")
    k = int.from_bytes(hashlib.sha256(d.to_bytes(32, "big") + digest).digest(), "big") % n or 1
    while True:
        x, _y = _affine(*p256._mul_add(k, 0, p256.GX, p256.GY))
        r = x % n
        s = p256._inv(k, n) * (e + r * d) % n
        if r and s:
            break
        k = k + 1
    body = _der_int(r) + _der_int(s)
    return bytes([0x30, len(body)]) + body


def files(tag="", count=3, size=300):
    out = []
    names = ("agent/__init__.mpy", "agent/hub.mpy", "hal/sim/flash.mpy", "boards/sim.mpy", "agent/x.mpy")
    for i in range(count):
        name = names[i] if i < len(names) else "agent/m{}.mpy".format(i)
        seed = (tag + name).encode()
        data = bytearray()
        while len(data) < size + i * 37:
            seed = hashlib.sha256(seed).digest()
            data += seed
        out.append((name, bytes(data[: size + i * 37])))
    return out


class Deflater:
    """The host's side of compressed staging: content from an offset as one raw deflate stream cut
    into pieces, each with the image bytes it completes, as host_tools.firmware.stage cuts it:
    zlib's stream where the runtime has zlib (CPython), else stored blocks (MicroPython's unix
    port has no compressor), which every inflater takes as well."""

    def __init__(self, wbits):
        self.wbits = wbits
        try:
            import zlib
        except ImportError:
            zlib = None
        self.zlib = zlib

    def _stream(self, data):
        # (compressed bytes, ends): ends[i] is how many bytes of data the first i + 1 bytes give
        if self.zlib is not None:
            c = self.zlib.compressobj(9, self.zlib.DEFLATED, -self.wbits, 9)
            z = c.compress(data) + c.flush()
            d = self.zlib.decompressobj(-self.wbits)
            ends = []
            got = 0
            for i in range(len(z)):
                got += len(d.decompress(z[i : i + 1]))
                ends.append(got)
            return z, ends
        z = bytearray()
        ends = []
        got = 0
        for i in range(0, max(len(data), 1), 65535):
            part = data[i : i + 65535]
            z += bytes([1 if i + 65535 >= len(data) else 0]) + struct.pack("<HH", len(part), len(part) ^ 0xFFFF)
            ends += [got] * 5
            for _ in part:
                got += 1
                ends.append(got)
            z += part
        return bytes(z), ends

    def chunks(self, content, off, step, most=None):
        """fw.chunk's arguments for content from off, a piece of at most step compressed bytes
        (giving at most most bytes) each."""
        z, ends = self._stream(content[off:])
        pos = 0
        done = 0
        while pos < len(z):
            k = min(step, len(z) - pos)
            while most is not None and ends[pos + k - 1] - done > most and k > 1:
                k -= 1
            n = ends[pos + k - 1] - done
            piece = content[off + done : off + done + n]
            yield {"offset": off + done, "z": z[pos : pos + k], "n": n, "c": crc32(piece) & 0xFFFFFFFF}
            pos += k
            done += n


class Image:
    def __init__(self, version="2.0", board="sim", tag=None, count=3, size=300, d=KEY_D, sec=None, payload=None):
        # payload: [(path, bytes)] instead of the made-up files
        self.files = payload if payload is not None else files(tag if tag is not None else version, count, size)
        self.version = version
        self.content = image.build(version, board, self.files, None if sec is None else {"sec": sec})
        self.hash = hashlib.sha256(self.content).digest()
        self.sig = sign(self.hash, d)

    def signed(self):
        return self.content + image.trailer(self.sig)


def permit(eui, digest, d=KEY_D):
    """A rollback permission for hub eui and FirmwareHash digest, signed with key d."""
    signed = image.permit(eui, digest)
    return signed + image.trailer(sign(hashlib.sha256(signed).digest(), d))


def install(fs, slot, img, root=ROOT):
    """Put an image's files and manifest in a slot, as dbch flash does."""
    base = boot.slot_dir(root, slot)
    w = _SlotWriter(fs, base)
    p = image.Parser(sink=w)
    p.feed(img.content)
    m = p.finish()
    import json

    from hal.compat import hexstr

    f = fs.open(base + "/" + boot.MANIFEST, "wb")
    f.write(json.dumps({"version": m["version"], "board": m["board"], "hash": hexstr(img.hash)}).encode())
    f.close()


def slot_files(fs, slot, root=ROOT):
    """{path: bytes} of the image files in a slot (manifest excluded)."""
    base = boot.slot_dir(root, slot) + "/"
    out = {}
    for p, data in fs.files().items():
        if p.startswith(base) and not p.endswith(boot.MANIFEST):
            out[p[len(base) :]] = data
    return out


class Device:
    """A simulated hub with slot A installed and the test key trusted."""

    def __init__(self, first=None, key=True, slots=True):
        self.flash = SimFlash()
        self.clock = VirtualClock()
        self.medium = LabMedium(self.clock, seed=1)
        self.first = first or Image("1.0")
        if slots:  # else: a board with the layout before slots (no slots/ at all)
            install(self.flash, "a", self.first)
        if key:
            f = self.flash.open(boot.join(ROOT, boot.KEY), "wb")
            f.write(public_key())
            f.close()
        self.hub = None
        self.slot = None
        self.trial = None
        self.boot()

    def boot(self, reads_min=True):
        # reads_min=False: a bootloader from before it read the minimum security counter
        from agent.hub import Hub

        if self.flash.off:
            self.flash.power_on()  # a reboot without a power cut keeps a pending cut_at
        if reads_min:
            self.slot, self.trial = boot.choose(self.flash, ROOT)
        else:
            fs = self.flash
            self.slot, self.trial, new = boot.decide(boot.read_state(fs, ROOT), lambda s: boot.bootable(fs, ROOT, s))
            if new is not None:
                boot.write_state(fs, ROOT, new)
        self.hub = Hub(sim.make_hal(flash=self.flash, clock=self.clock, medium=self.medium), sim)
        return self.hub

    def call(self, op, **args):
        return self.hub.handle({"t": "q", "id": 1, "op": op, "a": args})

    def send(self, img, chunk=256, stop_at=None, permit=None, z=None):
        """begin (with a rollback permission if given) + chunks (+ end); (rc, data, err) of the
        last request. z: offer a compressed stream with that window (Deflater), each chunk at most
        chunk compressed bytes, when the hub takes it."""
        args = {"hash": img.hash, "size": len(img.content), "sig": img.sig}
        if permit is not None:
            args["permit"] = permit
        if z is not None:
            args["z"] = z
        r = self.call("fw.begin", **args)
        if r[0] != "I0" or r[1]["ready"]:
            return r
        off = r[1]["offset"]
        data = img.content
        if r[1].get("z"):
            for args in Deflater(r[1]["z"]).chunks(data, off, min(chunk, r[1]["zc"]), r[1]["zn"]):
                if stop_at is not None and args["offset"] >= stop_at:
                    return r
                r = self.hub.handle({"t": "q", "id": 1, "op": "fw.chunk", "a": args})
                if r[0] != "I0":
                    return r
            return self.call("fw.end")
        while off < len(data):
            if stop_at is not None and off >= stop_at:
                return r
            r = self.call("fw.chunk", offset=off, data=data[off : off + chunk])
            if r[0] != "I0":
                return r
            off = r[1]["offset"]
        return self.call("fw.end")

    def run_healthy(self):
        self.clock.advance_ms(CONFIRM_MS)
        self.hub.tick()

    def events(self, kind=None):
        return [(k, d) for _s, k, d in self.hub.outbox.pending() if kind is None or k == kind]

    def state(self):
        return boot.read_state(self.flash, ROOT)

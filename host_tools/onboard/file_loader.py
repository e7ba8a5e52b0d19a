# The board's side of `dbch flash`'s compressed copy (host_tools/firmware/transfer.py has the
# host's side and the protocol in full).
#
# Started through mpremote's raw REPL, once, after the hash listing: the host pastes a few lines
# that decompress and run this file's text (its comment lines left out, one space of indentation a
# level: so it holds no multi-line string) followed by "serve(CHUNK, WBITS, IDLE_MS, True)" and a
# line that deletes this file's names again; on a board without `deflate` they say "DBCHLOAD 0"
# themselves. serve() owns the line until it returns to the raw REPL:
#
# 1. It says "DBCHLOAD 0" and returns at once when the board has no `deflate` module (or
#    USE_DEFLATE is false): the host then copies plainly. Else "DBCHLOAD 1 W": W is the deflate
#    window (log2 bytes, WBITS at most) this heap affords now, which the host compresses for.
# 2. The host sends frames: 7 bytes (kind, payload length uint16 LE, CRC-32 of the payload uint32
#    LE) then the payload. Kind "D" carries up to CHUNK bytes of one raw deflate stream (window W);
#    "E" (no payload) ends it; "X" (no payload) stops it (the host gives up). Each D frame is
#    answered with "." once it is off the line: the host has at most a few frames unanswered, so
#    a board's small receive buffer never overflows.
# 3. Decompressed, the stream is a list of records: path length (1 byte, 0 ends the list), path
#    (UTF-8), size (uint32 LE), then size bytes of content; after the list, the SHA-256 of all
#    that came before it. Each file is written to a temporary file beside its place: "K N" (N
#    files written so far). Missing folders are made. When the SHA-256 matches what was written,
#    every file is renamed into place, in order.
# 4. "Z N" after the end frame: N files in place. Any fault (a damaged or malformed frame, bad
#    compressed data, a SHA-256 that differs, nothing heard for IDLE_MS, no room) is "R reason":
#    every temporary file is removed (the files in place are as they were; only a rename that
#    fails leaves those before it renamed, and says so), what the host still sends is read and
#    dropped until the line is quiet, and serve() returns to the raw REPL.
#
# The interrupt character is off while serve() runs (frames carry any byte, 0x03 included) and
# back on when it returns.

import io

TEMP_SUFFIX = ".dbchnew"


class Refused(Exception):
    pass


def serve(chunk, wbits_max, idle_ms, use_deflate):
    import sys

    out = sys.stdout.buffer
    try:
        import deflate
    except ImportError:
        deflate = None
    if deflate is None or not use_deflate:
        out.write(b"DBCHLOAD 0\n")
        return
    import gc

    import micropython

    # the largest window (up to wbits_max) that leaves room for the rest: buffers, hashing, files
    gc.collect()
    wbits = wbits_max
    while wbits > 9:
        try:
            probe = bytearray((1 << wbits) + 8192)
            del probe
            break
        except MemoryError:
            wbits -= 1
    gc.collect()
    src = None
    # off before the greeting: the host's first frame may follow it at once
    micropython.kbd_intr(-1)
    try:
        out.write(("DBCHLOAD 1 %d\n" % wbits).encode())
        src = Frames(sys.stdin.buffer, out, chunk, idle_ms)
        n = receive_all(deflate.DeflateIO(src, deflate.RAW, wbits), out)
        src.finish()
        out.write(("Z %d\n" % n).encode())
    except Exception as e:  # noqa: BLE001 - whatever it is, the host is told and the line cleared
        why = str(e) if isinstance(e, Refused) else "%s: %s" % (type(e).__name__, e)
        out.write(("R %s\n" % why.replace("\n", " ")).encode())
        if src is not None:
            src.drain()
    finally:
        micropython.kbd_intr(3)


class Frames(io.IOBase):
    # The frames on the line as one byte stream for deflate.DeflateIO, which reads it a byte at a
    # time through readinto().

    def __init__(self, inp, out, chunk, idle_ms):
        import select

        self.inp = inp
        self.out = out
        self.idle_ms = idle_ms
        self.poll = select.poll()
        self.poll.register(inp, select.POLLIN)
        self.head = bytearray(7)
        self.buf = bytearray(chunk)
        self.mv = memoryview(self.buf)
        self.n = 0
        self.pos = 0
        self.frames = 0
        self.ended = False

    def next(self):
        import binascii
        import struct

        if self.ended:
            raise Refused("the data ended inside a record")
        if not self.poll.poll(self.idle_ms):
            raise Refused("nothing came for %d ms: the host stopped sending" % self.idle_ms)
        self.frames += 1
        if self.inp.readinto(self.head) != 7:
            raise Refused("the line ended inside frame %d" % self.frames)
        kind, n, crc = struct.unpack("<BHI", self.head)
        if kind == 0x45 and n == 0:  # "E"
            self.ended = True
            self.n = self.pos = 0
            return
        if kind == 0x58:  # "X"
            raise Refused("the host stopped the copy")
        if kind != 0x44 or not 0 < n <= len(self.buf):  # "D"
            raise Refused("malformed frame %d (kind %d, length %d)" % (self.frames, kind, n))
        if self.inp.readinto(self.mv[:n]) != n:
            raise Refused("the line ended inside frame %d" % self.frames)
        if binascii.crc32(self.mv[:n]) != crc:
            raise Refused("frame %d is damaged (CRC-32 differs)" % self.frames)
        self.out.write(b".")
        self.n = n
        self.pos = 0

    def readinto(self, buf):
        if self.pos >= self.n:
            self.next()
            if self.ended:
                return 0
        k = min(len(buf), self.n - self.pos)
        if k == 1:
            buf[0] = self.buf[self.pos]
        else:
            buf[:k] = self.mv[self.pos : self.pos + k]
        self.pos += k
        return k

    def finish(self):
        # after the end record: only the stream's last bits and the end frame may follow
        while not self.ended:
            self.next()

    def drain(self):
        # after a refusal: drop what the host still sends until the line is quiet
        b = bytearray(1)
        while self.poll.poll(250):
            self.inp.readinto(b)


def read_exact(d, buf, h=None):
    # buf filled from the stream d, and hashed into h
    got = 0
    mv = memoryview(buf)
    while got < len(buf):
        try:
            k = d.readinto(mv[got:])
        except OSError:
            raise Refused("the compressed data is damaged")
        if not k:
            raise Refused("the data ended inside a record")
        got += k
    if h is not None:
        h.update(buf)
    return buf


def receive_all(d, out):
    import hashlib
    import struct

    one = bytearray(1)
    size = bytearray(4)
    buf = bytearray(512)
    h = hashlib.sha256()
    written = []
    try:
        while True:
            k = read_exact(d, one, h)[0]
            if not k:
                break
            try:
                path = bytes(read_exact(d, bytearray(k), h)).decode()
            except UnicodeError:
                raise Refused("a path is not UTF-8")
            read_exact(d, size, h)
            written.append(path)
            receive_file(d, path, struct.unpack("<I", size)[0], buf, h)
            out.write(("K %d\n" % len(written)).encode())
        if h.digest() != bytes(read_exact(d, bytearray(32))):
            raise Refused("the SHA-256 of the files differs from the one sent")
    except BaseException:
        for path in written:
            remove(path + TEMP_SUFFIX)
        raise
    place(written)
    return len(written)


def receive_file(d, path, size, buf, h):
    import os

    # missing folders on the way to it
    parts = path.split("/")
    for i in range(1, len(parts)):
        try:
            os.mkdir("/".join(parts[:i]))
        except OSError:
            pass
    mv = memoryview(buf)
    try:
        f = open(path + TEMP_SUFFIX, "wb")
    except OSError as e:
        raise Refused("%s: cannot write (%s)" % (path, e))
    try:
        left = size
        while left:
            k = min(left, len(buf))
            read_exact(d, mv[:k], h)
            f.write(mv[:k])
            left -= k
    except OSError as e:
        raise Refused("%s: cannot write (%s)" % (path, e))
    finally:
        f.close()


def place(written):
    import os

    for i, path in enumerate(written):
        try:
            os.rename(path + TEMP_SUFFIX, path)
        except OSError as e:
            for rest in written[i:]:
                remove(rest + TEMP_SUFFIX)
            raise Refused("%s: cannot put it in place (%s); the %d before it are" % (path, e, i))


def remove(path):
    import os

    try:
        os.remove(path)
    except OSError:
        pass

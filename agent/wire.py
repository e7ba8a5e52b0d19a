# Wire format between the host and the agent: framed CBOR messages over serial or TCP/TLS.
# Over 400 lines: the format's description (these 45 lines), the frame decoder and the message
# checks are one contract, and the host frames with this same module (host_tools.link.client).
#
# Frame (on the line):
#
#   START  stuff( LEN(2, big-endian) | BODY(LEN bytes of CBOR) | CRC(4, big-endian) )  END
#
#   START = 0x1C, END = 0x1D, ESC = 0x1E (ASCII FS/GS/RS: non-printable, never in log text, and
#   never a CBOR initial byte, since 0x1C-0x1E are reserved additional-info values of major 0).
#   CRC   = binascii.crc32 (IEEE 802.3) over LEN | BODY, unsigned.
#   LEN  <= MAX_BODY (4096); a longer frame is dropped.
#   stuff: each byte in ESCAPED (0x00-0x04, 0x0A, 0x0D, START, END, ESC) becomes ESC, byte ^ 0x20.
#
# So frame bytes never contain 0x00-0x04 (raw-REPL Ctrl-A..Ctrl-D; Ctrl-C stays an interrupt on
# the device) nor CR/LF, and START/END/ESC appear only as delimiters.
#
# The same serial line carries REPL and log text. FrameDecoder passes every byte outside a frame
# to its on_text callback (bytes chunks, in order; dropped if on_text is None) and returns only
# complete, CRC-valid bodies from feed(), as bytes (or, when the heap has no block for the copy,
# as a bytearray: the buffer the frame was unstuffed into, handed over in place). Inside a frame,
# a raw START begins a new frame, and a raw 0x00-0x04/CR/LF (impossible in a good frame: the
# sender crashed mid-frame or bytes were lost) abandons the frame and is itself passed on as
# text; at CR/LF the abandoned frame's bytes (unstuffed, less its START) go out as text first, so
# a line printed over a half-written frame is shown. Text may therefore hold any byte value: show
# it with care.
# Corrupt, truncated, oversize and broken-off frames count in decoder.errors. Memory is bounded:
# frames are unstuffed as they arrive into a buffer of at most max_body + 6 bytes, an oversize
# frame is never copied, and feed() is linear in its input.
# A frame the heap cannot hold (no block as large as it, on a small board's fragmented heap)
# costs that frame only: the decoder follows it to its END without its bytes, keeping its LEN,
# the CRC of what went by and its last _TAIL bytes. If it proves whole (length and CRC) and ends
# as a request does (a canonical request map ends with its "id" and "op" entries), its id is
# put in decoder.unheld, for the caller to answer; otherwise it counts in errors. feed() goes on
# with the rest of its input either way.
#
# Messages are CBOR maps with short keys (ids and seqs are uints < 2**32):
#   request  host -> agent  {"t": "q", "id": uint, "op": str, "a": {str: any}}
#   response agent -> host  {"t": "r", "id": uint, "rc": str, "d": any (optional), "e": str (optional)}
#   event    agent -> host  {"t": "e", "seq": uint, "k": str, "d": map}
#   ack      host -> agent  {"t": "a", "seq": uint}
# Unknown keys are rejected. op, rc and k are non-empty.

import struct  # not its names: this module has its own pack/unpack
from binascii import crc32

from agent import cbor
from hal.compat import const

MAX_BODY = const(4096)
START = const(0x1C)
END = const(0x1D)
ESC = const(0x1E)
_XOR = const(0x20)
_OVERHEAD = const(6)  # LEN + CRC inside the stuffed part
_U32 = const(0xFFFFFFFF)

ESCAPED = b"\x00\x01\x02\x03\x04\x0a\x0d\x1c\x1d\x1e"
_NONE = b""  # no buffer yet: the first bytes a frame takes in make one
_TAIL = const(48)  # a frame's last bytes kept when it cannot be held: CRC, and "id" and "op"
_START_B = b"\x1c"
_END_B = b"\x1d"
_ESC_B = b"\x1e"
# Raw bytes that break a frame (besides END): a new START, or bytes a sender never puts in one.
_BREAK = (b"\x1c", b"\x0a", b"\x0d", b"\x03", b"\x00", b"\x01", b"\x02", b"\x04")
# Stuffing replacements, ESC first so inserted escapes are not escaped again.
_STUFF = tuple((bytes((c,)), bytes((ESC, c ^ _XOR))) for c in b"\x1e\x00\x01\x02\x03\x04\x0a\x0d\x1c\x1d")


class WireError(ValueError):
    # id: the request id the error can be answered to, when one was recognisable (see unpack)
    id = None


# ---------------------------------------------------------------- framing


def encode_frame(body):
    n = len(body)
    if n > MAX_BODY:
        raise WireError("body of {} bytes exceeds MAX_BODY {}".format(n, MAX_BODY))
    if not isinstance(body, bytes):
        body = bytes(body)
    head = struct.pack(">H", n)
    p = b"".join((head, body, struct.pack(">I", crc32(body, crc32(head)) & _U32)))
    for raw, esc in _STUFF:
        if raw in p:
            p = p.replace(raw, esc)
    return _START_B + p + _END_B


class FrameDecoder:
    def __init__(self, on_text=None, max_body=MAX_BODY):
        self.on_text = on_text
        self.max_body = max_body
        self.errors = 0  # frames dropped: bad CRC/length/escape, oversize, broken off
        self.frames = 0  # good frames returned
        self.unheld = []  # ids of whole requests the heap could not hold (the caller empties it)
        self.reset()

    def reset(self):
        # forget any partial frame (allocates nothing)
        self._buf = _NONE  # unstuffed LEN | BODY | CRC so far
        self._in = False  # inside a frame
        self._esc = False  # the last byte taken was an ESC
        self._drop = False  # the frame is bad (counted already): discard up to its END
        self._sk = None  # following a frame the heap cannot hold (_skim)

    def _take(self, data):
        # Unstuff data (part of a frame) into the buffer; False on a bad escape. No list of
        # parts: escape-dense input must not multiply small objects on a small heap.
        buf = self._buf
        if buf is _NONE:
            buf = self._buf = bytearray()
        n = len(data)
        pos = 0
        if self._esc:
            c = data[0] ^ _XOR
            if c not in ESCAPED:
                return False
            buf.append(c)
            pos = 1
            self._esc = False
        x = data.find(_ESC_B, pos)
        if x < 0:
            buf.extend(data if pos == 0 else memoryview(data)[pos:])
            return True
        m = memoryview(data)
        while x >= 0:
            if x > pos:
                buf.extend(m[pos:x])
            if x + 1 == n:
                self._esc = True  # the escaped byte comes in the next part
                return True
            c = data[x + 1] ^ _XOR
            if c not in ESCAPED:  # also ESC ESC
                return False
            buf.append(c)
            pos = x + 2
            x = data.find(_ESC_B, pos)
        if pos < n:
            buf.extend(m[pos:])
        return True

    def _skim(self, part, held=0, esc=False):
        # Follows a frame the heap cannot hold, without its bytes: each part (raw) is unstuffed in
        # a buffer of its own size and passed through a tail of _TAIL bytes, what leaves the tail
        # going into the CRC. _sk: [the first 2 bytes (LEN), the length so far, CRC, tail]. On the
        # first call _take has just run out of memory: undone, the buffer's first `held` bytes
        # (and the escape state `esc` before it) come first. False if it cannot be a good frame.
        sk = self._sk
        b = _NONE
        if sk is None:
            b = memoryview(self._buf)[:held]
            self._esc = esc
            sk = self._sk = [_NONE, 0, 0, _NONE]
        while True:
            if len(sk[0]) < 2:
                sk[0] = bytes(sk[0] + b[: 2 - len(sk[0])])
            n = len(b)
            sk[1] += n
            if n < _TAIL:
                b = sk[3] + b
                n = len(b)
            else:  # (the held bytes are not copied: there is no room for them)
                sk[2] = crc32(sk[3], sk[2])
            if n >= _TAIL:
                sk[2] = crc32(b[: n - _TAIL], sk[2])
                b = bytes(b[n - _TAIL :])
            sk[3] = b
            if part is None:
                return sk[1] <= self.max_body + _OVERHEAD
            self._buf = _NONE
            if not self._take(part):
                return False
            b = self._buf
            self._buf = _NONE
            part = None

    def _fits(self, data, start, end, limit):
        # Would data[start:end] unstuffed still fit? Decided before copying: ESC bytes add no
        # payload.
        return len(self._buf) + (end - start) - data.count(_ESC_B, start, end) <= limit

    def _body(self):
        p = self._buf
        if self._esc or len(p) < _OVERHEAD:
            return None
        n = struct.unpack_from(">H", p, 0)[0]
        if n > self.max_body or len(p) != n + _OVERHEAD:
            return None
        m = memoryview(p)
        if struct.unpack_from(">I", p, n + 2)[0] != crc32(m[: n + 2]) & _U32:
            return None
        try:
            return bytes(m[2 : n + 2])
        except MemoryError:
            pass
        # No block for a copy: the buffer itself, trimmed in place (nothing allocated), is the
        # body; reset() leaves the next frame a buffer of its own.
        m = None  # (a buffer with a view on it cannot be resized)
        p[n + 2 :] = _NONE
        p[:2] = _NONE
        return p

    def feed(self, data):
        if not isinstance(data, bytes):
            data = bytes(data)
        out = []
        n = len(data)
        i = 0
        limit = self.max_body + _OVERHEAD
        end_at = -1
        while i < n:
            if not self._in:
                j = data.find(_START_B, i)
                if j < 0:
                    j = n
                if j > i and self.on_text is not None:
                    self.on_text(data[i:j])
                if j == n:
                    break
                self.reset()
                self._in = True
                i = j + 1
                continue
            # Scans are bounded so the work stays linear in len(data), whatever arrives: the
            # next END is looked up once per pass over it, breakers only up to the nearest one.
            if end_at < i:
                end_at = data.find(_END_B, i)
                if end_at < 0:
                    end_at = n
            j = end_at
            k = j
            for b in _BREAK:
                x = data.find(b, i, k)
                if x >= 0:
                    k = x
            if k < j:
                # Broken off: the breaking byte is handled again outside the frame. At a line
                # end the partial frame goes out as text (it holds the start of that line).
                if not self._drop:
                    self.errors += 1
                c = data[k]
                if (c == 0x0A or c == 0x0D) and self.on_text is not None:
                    part = data[i:k]
                    try:
                        if (
                            not self._drop
                            and self._sk is None
                            and (k == i or self._fits(data, i, k, limit) and self._take(part))
                        ):
                            part = bytes(self._buf)
                    except MemoryError:
                        pass  # the line's own bytes go out, without the frame's start
                    if part:
                        self.on_text(part)
                self.reset()
                i = k
                continue
            if not self._drop and j > i:
                held = len(self._buf)
                esc = self._esc
                try:
                    if self._sk is not None:
                        ok = self._skim(data[i:j])
                    else:
                        ok = self._fits(data, i, j, limit) and self._take(data[i:j])
                except MemoryError:
                    ok = False
                    if self._sk is None:  # no room for this frame: followed without its bytes
                        try:
                            ok = self._skim(data[i:j], held, esc)
                        except MemoryError:
                            pass
                if not ok:
                    self._drop = True
                    self._buf = _NONE
                    self._sk = None
                    self.errors += 1
            if j == n:
                break
            i = j + 1
            if self._drop:
                pass
            elif self._sk is not None:
                # its id, if its length and CRC are right and it ends as a request does
                head, got, crc, tail = self._sk
                rid = None
                try:
                    if (
                        not self._esc
                        and len(tail) > 4
                        and got == (head[0] << 8 | head[1]) + _OVERHEAD
                        and struct.unpack_from(">I", tail, len(tail) - 4)[0] == crc32(tail[:-4], crc) & _U32
                    ):
                        rid = cbor.request_id_at_end(tail[:-4])
                except MemoryError:
                    pass
                if rid is None:
                    self.errors += 1
                else:
                    self.unheld.append(rid)
            else:
                try:
                    body = self._body()
                except MemoryError:
                    body = None
                if body is None:
                    self.errors += 1
                else:
                    self.frames += 1
                    out.append(body)
            self.reset()
        return out


# ---------------------------------------------------------------- messages


def request(id, op, args=None):
    return {"t": "q", "id": id, "op": op, "a": {} if args is None else args}


def response(id, rc, data=None, err=None):
    m = {"t": "r", "id": id, "rc": rc}
    if data is not None:
        m["d"] = data
    if err is not None:
        m["e"] = err
    return m


def event(seq, kind, data):
    return {"t": "e", "seq": seq, "k": kind, "d": data}


def ack(seq):
    return {"t": "a", "seq": seq}


def _is_uint(v):
    return isinstance(v, int) and v is not True and v is not False and 0 <= v <= _U32


# field kinds
_UINT = const(0)
_NAME = const(1)  # non-empty str
_TEXT = const(2)  # str
_MAP = const(3)
_ARGS = const(4)  # map with str keys
_ANY = const(5)

# t -> ((key, kind, required), ...)
_SHAPES = {
    "q": (("id", _UINT, True), ("op", _NAME, True), ("a", _ARGS, True)),
    "r": (("id", _UINT, True), ("rc", _NAME, True), ("d", _ANY, False), ("e", _TEXT, False)),
    "e": (("seq", _UINT, True), ("k", _NAME, True), ("d", _MAP, True)),
    "a": (("seq", _UINT, True),),
}
_KIND_TEXT = ("a uint < 2**32", "a non-empty str", "a str", "a map", "a map with str keys", "")


def _kind_ok(v, kind):
    if kind == _UINT:
        return _is_uint(v)
    if kind == _NAME:
        return isinstance(v, str) and len(v) > 0
    if kind == _TEXT:
        return isinstance(v, str)
    if kind == _MAP:
        return isinstance(v, dict)
    if kind == _ARGS:
        if not isinstance(v, dict):
            return False
        for k in v:
            if not isinstance(k, str):
                return False
        return True
    return True


def check_message(obj):
    if not isinstance(obj, dict):
        raise WireError("message is not a map")
    t = obj.get("t")
    shape = _SHAPES.get(t) if isinstance(t, str) else None
    if shape is None:
        raise WireError("bad message type t={!r}".format(t))
    names = ["t"]
    for key, kind, required in shape:
        names.append(key)
        if key not in obj:
            if required:
                raise WireError("{} message lacks {!r}".format(t, key))
            continue
        if not _kind_ok(obj[key], kind):
            raise WireError("{} message: {!r} must be {}".format(t, key, _KIND_TEXT[kind]))
    for key in obj:
        if key not in names:
            raise WireError("{} message: unknown key {!r}".format(t, key))
    return obj


def request_id_of(obj):
    # The id a malformed message can still be answered to, or None.
    if isinstance(obj, dict):
        v = obj.get("id")
        if _is_uint(v):
            return v
    return None


def pack_body(msg):
    check_message(msg)
    try:
        body = cbor.dumps(msg)
    except cbor.CBORError as e:
        raise WireError("cannot encode message: {}".format(e))
    if len(body) > MAX_BODY:
        raise WireError("message of {} bytes exceeds MAX_BODY {}".format(len(body), MAX_BODY))
    return body


def pack(msg):
    return encode_frame(pack_body(msg))


def unpack(body):
    try:
        obj = cbor.loads(body)
    except cbor.CBORError as e:
        err = WireError("bad CBOR: {}".format(e))
        err.id = cbor.request_id(body)  # still answerable if its id can be found
        raise err
    try:
        return check_message(obj)
    except WireError as e:
        e.id = request_id_of(obj)
        raise

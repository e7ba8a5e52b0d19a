# A small CBOR (RFC 8949) codec for the agent: MicroPython has no cbor2.
#
# Encoding is deterministic and byte-identical to cbor2.dumps(obj, canonical=True) for the
# types the protocol uses:
#   int             -2**64 .. 2**64-1, shortest head (RFC 8949 4.2.1); larger is a CBORError
#   bytes/bytearray byte string          str          text string (UTF-8)
#   list/tuple      array                dict         map, keys str or int (not bool)
#   True/False/None simple values 21/20/22
#   float           shortest of half/single/double that holds the value exactly; NaN is f97e00
# Map keys are sorted length-first, then bytewise, on their encoded form (the RFC 7049
# "canonical" order that cbor2 uses with canonical=True). Dict iteration order never matters.
#
# Decoding accepts the same types (plus non-shortest heads from other encoders) and is strict
# about everything else; any malformed input raises CBORError and nothing else:
#   - truncated input, trailing bytes after the top-level item
#   - tags (major type 6), undefined and other simple values, reserved additional info 28-30
#   - indefinite lengths (additional info 31): NOT supported (canonical CBOR never uses them)
#   - nesting deeper than MAX_DEPTH containers (same limit when encoding)
#   - more than MAX_ITEMS array and map entries in all
#   - a length larger than the input left, checked BEFORE anything is allocated
#     (an array item takes at least 1 byte, a map entry at least 2)
#   - invalid UTF-8 (encoded surrogates included), map keys that are not str/int, duplicate map keys

from struct import pack, unpack, unpack_from

from hal.compat import const

MAX_DEPTH = const(16)
# Array and map entries one loads() may build: a 4 KB body of nested one-item arrays would
# otherwise become thousands of objects, far more heap than its bytes suggest.
MAX_ITEMS = const(512)
_items = [0]  # entries left for the loads() in progress

_UINT64_MAX = const(0xFFFFFFFFFFFFFFFF)


class CBORError(ValueError):
    pass


# ---------------------------------------------------------------- encoding


def _head(out, major, n):
    if n < 24:
        out.append(major | n)
    elif n < 0x100:
        out.append(major | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(major | 25)
        out.extend(pack(">H", n))
    elif n < 0x100000000:
        out.append(major | 26)
        out.extend(pack(">I", n))
    else:
        out.append(major | 27)
        out.extend(pack(">Q", n))


def _half_bits(single):
    # Half-precision bits for a single-precision value (4 bytes), or None if not exact.
    bits = unpack(">I", single)[0]
    sign = (bits >> 16) & 0x8000
    exp = (bits >> 23) & 0xFF
    mant = bits & 0x7FFFFF
    if exp == 0xFF:  # inf (NaN is handled by the caller)
        return sign | 0x7C00
    if exp == 0:
        # zero; single subnormals are far below the half range
        return sign if mant == 0 else None
    e = exp - 127
    if -14 <= e <= 15:
        if mant & 0x1FFF:
            return None
        return sign | ((e + 15) << 10) | (mant >> 13)
    if -24 <= e < -14:  # half subnormal
        full = mant | 0x800000
        shift = 13 - 14 - e
        if full & ((1 << shift) - 1):
            return None
        return sign | (full >> shift)
    return None


def _enc_float(out, v):
    if v != v:
        out.extend(b"\xf9\x7e\x00")
        return
    try:
        fb = pack(">f", v)
        exact = unpack(">f", fb)[0] == v
    except OverflowError:  # CPython refuses to narrow; MicroPython gives inf (not equal)
        exact = False
    if not exact:
        out.append(0xFB)
        out.extend(pack(">d", v))
        return
    h = _half_bits(fb)
    if h is None:
        out.append(0xFA)
        out.extend(fb)
    else:
        out.append(0xF9)
        out.extend(pack(">H", h))


def _enc(out, obj, depth):
    if obj is None:
        out.append(0xF6)
    elif obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif isinstance(obj, str):
        try:
            b = obj.encode("utf-8")
        except UnicodeError:
            raise CBORError("text is not encodable as UTF-8")
        _head(out, 0x60, len(b))
        out.extend(b)
    elif isinstance(obj, int):
        if obj >= 0:
            if obj > _UINT64_MAX:
                raise CBORError("integer out of 64-bit range")
            _head(out, 0x00, obj)
        else:
            n = -1 - obj
            if n > _UINT64_MAX:
                raise CBORError("integer out of 64-bit range")
            _head(out, 0x20, n)
    elif isinstance(obj, (bytes, bytearray)):
        _head(out, 0x40, len(obj))
        out.extend(obj)
    elif isinstance(obj, (list, tuple)):
        depth += 1
        if depth > MAX_DEPTH:
            raise CBORError("nesting deeper than {}".format(MAX_DEPTH))
        _head(out, 0x80, len(obj))
        for x in obj:
            _enc(out, x, depth)
    elif isinstance(obj, dict):
        depth += 1
        if depth > MAX_DEPTH:
            raise CBORError("nesting deeper than {}".format(MAX_DEPTH))
        items = []
        for k, v in obj.items():
            if k is True or k is False or not isinstance(k, (str, int)):
                raise CBORError("map key must be str or int, not {}".format(type(k).__name__))
            kb = bytearray()
            _enc(kb, k, depth)
            # (length, bytes): the canonical order. Two keys never encode alike, so the sort
            # never compares values.
            items.append((len(kb), bytes(kb), v))
        if len(items) > 1:
            items.sort()
        _head(out, 0xA0, len(items))
        for _, kb, v in items:
            out.extend(kb)
            _enc(out, v, depth)
    elif isinstance(obj, float):
        _enc_float(out, obj)
    else:
        raise CBORError("cannot encode {}".format(type(obj).__name__))


def dumps(obj):
    out = bytearray()
    _enc(out, obj, 0)
    return bytes(out)


# ---------------------------------------------------------------- decoding


def _truncated():
    return CBORError("truncated input")


def _half_value(h):
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0:
        v = mant * 5.960464477539063e-08  # 2**-24, exact
    elif exp == 0x1F:
        v = float("inf") if mant == 0 else float("nan")
    else:
        v = (mant + 1024) * (2.0 ** (exp - 25))
    return -v if h & 0x8000 else v


def _has_surrogate(b):
    # MicroPython's UTF-8 check lets encoded surrogates (ED A0..BF xx) through; CPython does not.
    i = b.find(b"\xed")
    while i >= 0:
        if i + 1 < len(b) and 0xA0 <= b[i + 1] <= 0xBF:
            return True
        i = b.find(b"\xed", i + 1)
    return False


def _argument(d, pos, ai, n):
    # The head's argument (RFC 8949 3): the value of additional info ai, and where it ends.
    if ai < 24:
        return ai, pos
    elif ai == 24:
        if pos + 1 > n:
            raise _truncated()
        return d[pos], pos + 1
    elif ai == 25:
        if pos + 2 > n:
            raise _truncated()
        return unpack_from(">H", d, pos)[0], pos + 2
    elif ai == 26:
        if pos + 4 > n:
            raise _truncated()
        return unpack_from(">I", d, pos)[0], pos + 4
    elif ai == 27:
        if pos + 8 > n:
            raise _truncated()
        return unpack_from(">Q", d, pos)[0], pos + 8
    elif ai == 31:
        raise CBORError("indefinite length not supported")
    else:
        raise CBORError("reserved additional info {}".format(ai))


def _skip(d, pos):
    # Where the item at pos ends, without building it (tags and any nesting included).
    n = len(d)
    left = 1
    while left:
        left -= 1
        if pos >= n:
            raise _truncated()
        ib = d[pos]
        major = ib >> 5
        ai = ib & 0x1F
        if major == 7:
            pos += 1 + {24: 1, 25: 2, 26: 4, 27: 8}.get(ai, 0)
            continue
        val, pos = _argument(d, pos + 1, ai, n)
        if major == 2 or major == 3:
            pos += val
        elif major == 4:
            left += val
        elif major == 5:
            left += 2 * val
        elif major == 6:
            left += 1
        if pos > n or left > n:
            raise _truncated()
    return pos


def request_id(data):
    """The uint under "id" in a top-level map, found without decoding the other values: a
    request the decoder refuses can still be answered. None if there is none."""
    try:
        d = data if isinstance(data, (bytes, bytearray)) else bytes(data)  # not copied: see loads
        if not d or d[0] >> 5 != 5:
            return None
        count, pos = _argument(d, 1, d[0] & 0x1F, len(d))
        for _ in range(count):
            end = _skip(d, pos)
            if d[pos:end] == b"\x62id":
                v, _ = _dec(d, end, MAX_DEPTH)
                return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 32 else None
            pos = _skip(d, end)
    except (CBORError, IndexError):
        return None
    return None


def request_id_at_end(tail):
    """The id of a request from the last bytes of its body alone, or None: a request map in
    canonical order ends with its "id" and "op" entries (keys sort length-first: "a", "t", "id",
    "op"), so the tail must end with "id", a uint < 2**32, "op" and a text string, exactly."""
    i = tail.rfind(b"\x62id")
    while i >= 0:
        try:
            rid, pos = _dec(tail, i + 3, MAX_DEPTH)  # MAX_DEPTH: a container is refused
            if tail[pos : pos + 3] == b"\x62op":
                op, end = _dec(tail, pos + 3, MAX_DEPTH)
                if end == len(tail) and isinstance(op, str) and not isinstance(rid, bool):
                    if isinstance(rid, int) and 0 <= rid < 1 << 32:
                        return rid
        except (CBORError, IndexError):
            pass
        i = tail.rfind(b"\x62id", 0, i)
    return None


def _dec(d, pos, depth):
    n = len(d)
    if pos >= n:
        raise _truncated()
    ib = d[pos]
    pos += 1
    major = ib >> 5
    ai = ib & 0x1F
    if major == 7:
        if ai == 20:
            return False, pos
        if ai == 21:
            return True, pos
        if ai == 22:
            return None, pos
        if ai == 25:
            if pos + 2 > n:
                raise _truncated()
            return _half_value(unpack_from(">H", d, pos)[0]), pos + 2
        if ai == 26:
            if pos + 4 > n:
                raise _truncated()
            return unpack_from(">f", d, pos)[0], pos + 4
        if ai == 27:
            if pos + 8 > n:
                raise _truncated()
            return unpack_from(">d", d, pos)[0], pos + 8
        raise CBORError("unsupported simple value {}".format(ai))
    val, pos = _argument(d, pos, ai, n)
    if major == 0:
        return val, pos
    if major == 1:
        return -1 - val, pos
    if major == 2 or major == 3:
        if val > n - pos:
            raise _truncated()
        end = pos + val
        # bytes, whatever the input: from a bytearray through a view, so copied only once
        b = d[pos:end] if isinstance(d, bytes) else bytes(memoryview(d)[pos:end])
        if major == 2:
            return b, end
        try:
            s = str(b, "utf-8")
        except UnicodeError:
            s = None
        if s is None or (0xED in b and _has_surrogate(b)):
            raise CBORError("invalid UTF-8 in text string")
        return s, end
    if major == 6:
        raise CBORError("tags not supported")
    depth += 1
    if depth > MAX_DEPTH:
        raise CBORError("nesting deeper than {}".format(MAX_DEPTH))
    _items[0] -= val
    if _items[0] < 0:
        raise CBORError("more than {} array and map entries".format(MAX_ITEMS))
    if major == 4:
        if val > n - pos:
            raise _truncated()
        lst = []
        for _ in range(val):
            x, pos = _dec(d, pos, depth)
            lst.append(x)
        return lst, pos
    # major == 5: map
    if val * 2 > n - pos:
        raise _truncated()
    m = {}
    for _ in range(val):
        k, pos = _dec(d, pos, depth)
        if k is True or k is False or not isinstance(k, (str, int)):
            raise CBORError("map key must be str or int")
        if k in m:
            raise CBORError("duplicate map key {!r}".format(k))
        m[k], pos = _dec(d, pos, depth)
    return m, pos


def loads(data):
    # bytes or bytearray, decoded where it is (a frame's body is not copied again); byte strings
    # come out as bytes either way
    if isinstance(data, memoryview):
        data = bytes(data)
    elif not isinstance(data, (bytes, bytearray)):
        raise CBORError("expected bytes, not {}".format(type(data).__name__))
    _items[0] = MAX_ITEMS
    obj, pos = _dec(data, 0, 0)
    if pos != len(data):
        raise CBORError("{} trailing bytes".format(len(data) - pos))
    return obj

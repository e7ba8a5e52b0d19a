# ECDSA P-256 (secp256r1) signature verification with SHA-256 digests, for firmware images.
# Portable: MicroPython (arbitrary-precision ints) and CPython; no `cryptography` needed.
#
# Verification only ever handles public data (key, digest, signature), so nothing here tries
# to be constant-time: branches and table look-ups depend freely on the values.
#
# Inputs accepted by verify():
# - public key: SEC1 uncompressed 0x04||X||Y (65 bytes) or compressed 0x02/0x03||X (33 bytes).
#   Hybrid encodings (0x06/0x07), the point at infinity (0x00) and anything else are refused.
# - digest: exactly 32 bytes (SHA-256 of the message; the caller hashes).
# - signature: DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs, what `cryptography` produces),
#   strictly: minimal lengths and integers, no negative integers, no trailing bytes; or raw
#   r||s, 32 bytes each. How they are told apart: a DER signature of a 256-bit curve is 8..72
#   bytes, so any length but 64 is read as DER and 64 bytes are read as raw r||s. A DER
#   signature can be exactly 64 bytes, though (r and s 6 to 8 bytes shorter than usual
#   together, a chance near 2**-48 for an honest signer), so a 64-byte signature that starts
#   with 0x30 and parses as strict DER is tried as DER first and then as raw r||s; it
#   verifies if either reading does.
# ECDSA accepts both s and n - s ("high S"); so does this verifier, like OpenSSL.
# verify() returns False for every malformed input and never raises, except MemoryError.

from hal.compat import const


class P256Error(ValueError):
    pass


# Curve domain parameters: SEC 2 v2 section 2.4.2 = FIPS 186-4 D.1.2.3 (curve P-256), a = -3.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# wNAF window widths: 4 for G and for the key (tables of 1P, 3P, 5P, 7P: 4 affine points each).
# A board loads this module for each check (agent.fw_install), so the table for G is built on
# every verify, not once: wider windows would cost memory at the update's tightest moment and
# save no time. Measured on the unix port (bench/bench_p256.py, first call of a loaded module):
# 4.7 ms with 4/4 as with 6/5; a verify with both tables kept warm is 7% slower than with 6/5.
_W_G = const(4)
_W_Q = const(4)

try:
    _BYTES_TYPES = (bytes, bytearray, memoryview)
except NameError:  # ports built without memoryview
    _BYTES_TYPES = (bytes, bytearray)

_g_table = None


def _as_bytes(data, what, longest):
    # Length checked before copying, so no input can make verify() allocate much.
    if not isinstance(data, _BYTES_TYPES):
        raise P256Error("{}: bytes expected".format(what))
    if len(data) > longest:
        raise P256Error("{}: too long".format(what))
    return bytes(data)


# --- field and scalar helpers -------------------------------------------------------------


def _inv(x, m):
    # Extended Euclid. On both runtimes this is several times faster than pow(x, m - 2, m)
    # (measured on the MicroPython 1.29 unix port: ~60 us against ~350 us), and it needs no
    # three-argument pow, which small ports may be built without.
    a = x % m
    b = m
    u = 1
    v = 0
    while a:
        q = b // a
        a, b = b - q * a, a
        u, v = v - q * u, u
    if b != 1:
        raise P256Error("not invertible")
    return v % m


def _pow_mod(b, e, m):
    try:
        return pow(b, e, m)
    except (TypeError, NotImplementedError):  # no three-argument pow on this port
        pass
    r = 1
    b %= m
    while e:
        if e & 1:
            r = r * b % m
        e >>= 1
        b = b * b % m
    return r


def _wnaf(k, w):
    # Width-w non-adjacent form of 0 <= k < 2**256, least significant digit first: every
    # non-zero digit d is odd with |d| < 2**(w-1) (w <= 8), and any w consecutive digits hold at
    # most one non-zero one. Stored one byte a digit as |d|, with 0x80 set when d < 0: a
    # bytearray of 257 bytes instead of a growing list keeps small heaps unfragmented.
    full = 1 << w
    half = full >> 1
    mask = full - 1
    out = bytearray(257)
    i = 0
    while k:
        if k & 1:
            d = k & mask
            if d >= half:
                k += full - d
                out[i] = 0x80 | (full - d)
            else:
                k -= d
                out[i] = d
        k >>= 1
        i += 1
    return out, i


# --- point arithmetic ---------------------------------------------------------------------
# Jacobian coordinates (X, Y, Z) stand for the affine point (X/Z^2, Y/Z^3); Z == 0 is the
# point at infinity. Every coordinate handed around is reduced to [0, p).


def _dbl(X, Y, Z):
    # dbl-2001-b (a = -3). Doubling the point at infinity gives Z3 = 0 again; P-256 has no
    # point of order 2 (its order n is an odd prime), so Y == 0 never occurs otherwise.
    p = P
    delta = Z * Z % p
    gamma = Y * Y % p
    beta = X * gamma % p
    alpha = 3 * (X - delta) * (X + delta) % p
    X3 = (alpha * alpha - 8 * beta) % p
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % p
    return X3, Y3, 2 * Y * Z % p


def _add_affine(X1, Y1, Z1, x2, y2):
    # Jacobian + affine ("mixed") addition with every special case handled: the Jacobian
    # operand may be infinity (the affine one never is), equal points double, opposite points
    # give infinity.
    p = P
    if not Z1:
        return x2, y2, 1
    zz = Z1 * Z1 % p
    H = x2 * zz % p - X1  # in (-p, p): zero exactly when the x coordinates agree
    R = y2 * zz % p * Z1 % p - Y1
    if not H:
        if not R:
            return _dbl(x2, y2, 1)
        return 1, 1, 0
    HH = H * H % p
    HHH = H * HH % p
    V = X1 * HH % p
    X3 = (R * R - HHH - 2 * V) % p
    Y3 = (R * (V - X3) - Y1 * HHH) % p
    return X3, Y3, Z1 * H % p


def _to_affine(points):
    # Batch conversion (Montgomery's trick): one inversion for all; no point may be infinity.
    p = P
    prefix = []
    acc = 1
    for pt in points:
        acc = acc * pt[2] % p
        prefix.append(acc)
    inv = _inv(acc, p)
    out = [None] * len(points)
    for i in range(len(points) - 1, -1, -1):
        X, Y, Z = points[i]
        zi = inv * prefix[i - 1] % p if i else inv
        inv = inv * Z % p
        zi2 = zi * zi % p
        out[i] = (X * zi2 % p, Y * zi2 % p * zi % p)
    return out


def _odd_multiples(x, y, w):
    # [1P, 3P, 5P, ..., (2**(w-1) - 1)P] in affine coordinates, for a point P of order n.
    count = 1 << (w - 2)
    tx, ty = _to_affine([_dbl(x, y, 1)])[0]
    jac = [(x, y, 1)]
    for _ in range(count - 1):
        X, Y, Z = jac[-1]
        jac.append(_add_affine(X, Y, Z, tx, ty))
    return _to_affine(jac)


def _generator_table():
    global _g_table
    if _g_table is None:
        _g_table = _odd_multiples(GX, GY, _W_G)
    return _g_table


def _mul_add(u1, u2, qx, qy):
    # u1*G + u2*Q in Jacobian coordinates: both scalars in width-w NAF, interleaved so the
    # doublings are shared (Shamir's trick generalised to windows).
    p = P
    tg = _generator_table()
    tq = _odd_multiples(qx, qy, _W_Q)
    d1, n1 = _wnaf(u1, _W_G)
    d2, n2 = _wnaf(u2, _W_Q)
    X = Y = 1
    Z = 0
    for i in range(max(n1, n2) - 1, -1, -1):
        if Z:
            X, Y, Z = _dbl(X, Y, Z)
        d = d1[i]
        if d:
            x, y = tg[(d & 0x7F) >> 1]
            X, Y, Z = _add_affine(X, Y, Z, x, p - y if d & 0x80 else y)
        d = d2[i]
        if d:
            x, y = tq[(d & 0x7F) >> 1]
            X, Y, Z = _add_affine(X, Y, Z, x, p - y if d & 0x80 else y)
    return X, Y, Z


# --- encodings ----------------------------------------------------------------------------


def parse_public_key(public_key):
    """SEC1 point (65-byte uncompressed or 33-byte compressed) -> (x, y); P256Error if bad."""
    data = _as_bytes(public_key, "public key", 65)
    ln = len(data)
    if not ((ln == 65 and data[0] == 4) or (ln == 33 and data[0] in (2, 3))):
        raise P256Error("public key: not a SEC1 P-256 point encoding")
    x = int.from_bytes(data[1:33], "big")
    if x >= P:
        raise P256Error("public key: x >= p")
    rhs = (x * x * x - 3 * x + B) % P
    if ln == 65:
        y = int.from_bytes(data[33:], "big")
        if y >= P:
            raise P256Error("public key: y >= p")
        if y * y % P != rhs:
            raise P256Error("public key: not on the curve")
        return x, y
    y = _pow_mod(rhs, (P + 1) >> 2, P)  # square root, as p = 3 (mod 4)
    if y * y % P != rhs:
        raise P256Error("public key: not on the curve")
    if (y ^ data[0]) & 1:
        y = P - y  # y != 0 here: no point of order 2 on P-256
    return x, y


def _check_rs(r, s):
    if not 0 < r < N:
        raise P256Error("signature: r not in [1, n-1]")
    if not 0 < s < N:
        raise P256Error("signature: s not in [1, n-1]")
    return r, s


def _der_int(buf, i):
    # One DER INTEGER at buf[i:], as (value, index after it).
    if i + 2 > len(buf) or buf[i] != 0x02:
        raise P256Error("signature: INTEGER expected")
    ln = buf[i + 1]
    i += 2
    if ln == 0 or ln > 33 or i + ln > len(buf):  # 33 = a 0x00 sign byte + 32 bytes
        raise P256Error("signature: bad INTEGER length")
    if buf[i] & 0x80:
        raise P256Error("signature: negative INTEGER")
    if buf[i] == 0 and ln > 1 and not buf[i + 1] & 0x80:
        raise P256Error("signature: INTEGER not minimally encoded")
    return int.from_bytes(buf[i : i + ln], "big"), i + ln


def _decode_der(sig):
    ln = len(sig)
    # 8..72 bytes keeps the SEQUENCE length below 0x80, where only the short form is minimal.
    if ln < 8 or ln > 72 or sig[0] != 0x30 or sig[1] != ln - 2:
        raise P256Error("signature: not a DER SEQUENCE of this length")
    r, i = _der_int(sig, 2)
    s, i = _der_int(sig, i)
    if i != ln:
        raise P256Error("signature: bytes after s")
    return _check_rs(r, s)


def _readings(sig):
    # Every well-formed reading of sig as (r, s); see the head of this file for the rule.
    out = []
    err = None
    if len(sig) != 64 or sig[0] == 0x30:
        try:
            out.append(_decode_der(sig))
        except P256Error as e:
            err = e
    if len(sig) == 64:
        try:
            out.append(_check_rs(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")))
        except P256Error as e:
            err = e
    if not out:
        raise err
    return out


def decode_signature(signature):
    """DER or raw r||s signature -> (r, s) with both in [1, n-1]; P256Error if bad."""
    return _readings(_as_bytes(signature, "signature", 72))[0]


# --- verification -------------------------------------------------------------------------


def _verify_rs(qx, qy, e, r, s):
    w = _inv(s, N)
    X, Y, Z = _mul_add(e * w % N, r * w % N, qx, qy)
    if not Z:
        return False
    # Accept when x(R) mod n == r, compared without an inversion: x(R) = X/Z^2 is in [0, p),
    # so it is r or, when r + n < p, r + n.
    zz = Z * Z % P
    if X == r * zz % P:
        return True
    return r + N < P and X == (r + N) * zz % P


def verify(public_key, digest, signature):
    """True iff signature is a valid ECDSA P-256 signature of the 32-byte digest; never raises."""
    try:
        qx, qy = parse_public_key(public_key)
        digest = _as_bytes(digest, "digest", 32)
        if len(digest) != 32:
            return False
        e = int.from_bytes(digest, "big")
        for r, s in _readings(_as_bytes(signature, "signature", 72)):
            if _verify_rs(qx, qy, e, r, s):
                return True
        return False
    except MemoryError:
        # Not an input fault: the heap is too small (a verify needs about 12 KB free on the
        # 64-bit unix port, the first one 5 KB more for the G table). The caller must tell it
        # apart from a bad signature, so it is not turned into False.
        raise
    except Exception:  # anything malformed means "not verified": nothing else escapes
        return False

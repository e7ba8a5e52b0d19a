"""agent.p256.verify against `cryptography` on random valid and invalid vectors, on CPython and
on the MicroPython unix port (subprocess)."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent import p256
from tests.kits import vectorkit

ROOT = Path(__file__).resolve().parents[2]
N = p256.N
P = p256.P
_ALG = ec.ECDSA(utils.Prehashed(hashes.SHA256()))

# CPython: agent.p256 takes about 1.1 ms a verify; 2000 vectors (about a sixth of them valid) run in
# about 1 s.
CPYTHON_COUNT = 2000
# MicroPython 1.29 unix port: about 4 ms a verify (bench/bench_p256.py), and the invalid
# vectors mostly stop before any point arithmetic: 600 vectors take about 1.5 s there.
MICROPYTHON_COUNT = 600


def reference(key: bytes, digest: bytes, sig: bytes) -> bool:
    """cryptography's verdict, with the signature reading rule documented in agent/p256.py:
    64 bytes are raw r||s (and also DER when they start with 0x30), anything else DER."""
    try:
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except ValueError:
        return False
    if len(digest) != 32:
        return False
    readings = []
    if len(sig) != 64 or sig[:1] == b"\x30":
        readings.append(sig)
    if len(sig) == 64:
        readings.append(utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")))
    for der in readings:
        try:
            pub.verify(der, digest, _ALG)
            return True
        except InvalidSignature:
            pass
    return False


def _raw(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _der_unchecked(r: int, s: int) -> bytes:
    # encode_dss_signature refuses nothing in range of a DER INTEGER; values may exceed n.
    return utils.encode_dss_signature(r, s)


def _flip(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) * 8)
    b = bytearray(data)
    b[i // 8] ^= 1 << (i % 8)
    return bytes(b)


def _mutate(kind, rng, key, ckey, digest, sig, r, s, other_key):
    if kind == "valid_der":
        return key, digest, sig
    if kind == "valid_raw":
        return key, digest, _raw(r, s)
    if kind == "compressed_key":
        return ckey, digest, sig
    if kind == "high_s_der":
        return key, digest, _der_unchecked(r, N - s)
    if kind == "high_s_raw":
        return key, digest, _raw(r, N - s)
    if kind == "wrong_key":
        return other_key, digest, sig
    if kind == "digest_bit":
        return key, _flip(digest, rng), sig
    if kind == "der_bit":
        return key, digest, _flip(sig, rng)
    if kind == "raw_bit":
        return key, digest, _flip(_raw(r, s), rng)
    if kind == "key_bit":
        return _flip(key, rng), digest, sig
    if kind == "compressed_key_bit":
        return _flip(ckey, rng), digest, sig
    if kind == "r_zero":
        return key, digest, rng.choice((_der_unchecked(0, s), _raw(0, s)))
    if kind == "s_zero":
        return key, digest, rng.choice((_der_unchecked(r, 0), _raw(r, 0)))
    if kind == "r_n":
        return key, digest, rng.choice((_der_unchecked(N, s), _raw(N, s)))
    if kind == "s_n":
        return key, digest, rng.choice((_der_unchecked(r, N), _raw(r, N)))
    if kind == "r_plus_n":
        return key, digest, _der_unchecked(r + N, s)
    if kind == "s_plus_n":
        return key, digest, _der_unchecked(r, s + N)
    if kind == "r_s_big":
        big = rng.randrange(N, 2**256)
        return key, digest, rng.choice((_raw(big, s), _raw(r, big), _der_unchecked(big, s)))
    if kind == "swap_r_s":
        return key, digest, _der_unchecked(s, r)
    if kind == "off_curve":
        y = int.from_bytes(key[33:], "big")
        return key[:33] + ((y + rng.randrange(1, 1000)) % P).to_bytes(32, "big"), digest, sig
    if kind == "coordinate_ge_p":
        big = rng.randrange(P, 2**256).to_bytes(32, "big")
        return rng.choice((b"\x04" + big + key[33:], key[:33] + big, bytes([ckey[0]]) + big)), digest, sig
    if kind == "der_truncated":
        return key, digest, sig[: rng.randrange(len(sig))]
    if kind == "der_extended":
        return key, digest, sig + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
    if kind == "der_inner_trailing":  # a byte more inside the SEQUENCE (too long when sig is 72)
        return key, digest, sig[:1] + bytes([sig[1] + 1]) + sig[2:] + bytes([rng.randrange(256)])
    if kind == "der_byte_changed":
        b = bytearray(sig)
        b[rng.randrange(len(b))] = rng.randrange(256)
        return key, digest, bytes(b)
    if kind == "der_not_minimal":
        if rng.random() < 0.5:  # long-form SEQUENCE length
            return key, digest, b"\x30\x81" + sig[1:]
        lr = sig[3]  # r with one 0x00 byte more than minimal
        content = b"\x02" + bytes([lr + 1]) + b"\x00" + sig[4 : 4 + lr] + sig[4 + lr :]
        return key, digest, b"\x30" + bytes([len(content)]) + content
    if kind == "garbage_sig":
        return key, digest, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
    if kind == "garbage_key":
        length = rng.choice((0, 1, 33, 64, 65, 66))
        data = bytes(rng.randrange(256) for _ in range(length))
        if length in (33, 65) and rng.random() < 0.7:
            data = bytes([4 if length == 65 else rng.choice((2, 3))]) + data[1:]
        return data, digest, sig
    if kind == "digest_length":
        return key, rng.choice((digest[:31], digest + b"\x00", b"", digest[:20])), sig
    raise AssertionError(kind)


KINDS = (
    "valid_der",
    "valid_raw",
    "compressed_key",
    "high_s_der",
    "high_s_raw",
    "wrong_key",
    "digest_bit",
    "der_bit",
    "raw_bit",
    "key_bit",
    "compressed_key_bit",
    "r_zero",
    "s_zero",
    "r_n",
    "s_n",
    "r_plus_n",
    "s_plus_n",
    "r_s_big",
    "swap_r_s",
    "off_curve",
    "coordinate_ge_p",
    "der_truncated",
    "der_extended",
    "der_inner_trailing",
    "der_byte_changed",
    "der_not_minimal",
    "garbage_sig",
    "garbage_key",
    "digest_length",
)


def _public(priv) -> tuple[bytes, bytes]:
    pub = priv.public_key()
    return (
        pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
        pub.public_bytes(Encoding.X962, PublicFormat.CompressedPoint),
    )


def make_vectors(seed: int, count: int) -> list[tuple[str, bytes, bytes, bytes]]:
    """count vectors (kind, key, digest, signature), the kinds in turn; keys and messages from
    the seeded generator (signatures from cryptography's own random nonces)."""
    rng = random.Random(seed)
    other_key, _ = _public(ec.derive_private_key(rng.randrange(1, N), ec.SECP256R1()))
    out = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        priv = ec.derive_private_key(rng.randrange(1, N), ec.SECP256R1())
        key, ckey = _public(priv)
        digest = hashlib.sha256(rng.randbytes(rng.randrange(0, 200))).digest()
        sig = priv.sign(digest, _ALG)
        r, s = utils.decode_dss_signature(sig)
        out.append((kind, *_mutate(kind, rng, key, ckey, digest, sig, r, s, other_key)))
        other_key = key
    return out


def _describe(vec) -> str:
    kind, key, digest, sig = vec
    return "{} key={} digest={} sig={}".format(kind, key.hex(), digest.hex(), sig.hex())


def _check_mix(vectors, expected):
    accepted = sum(expected)
    # valid_der, valid_raw, compressed_key, high_s_der, high_s_raw: 5 of the 29 kinds
    assert accepted >= 5 * (len(vectors) // len(KINDS))
    assert len(vectors) - accepted > len(vectors) // 2


def test_cpython_agrees_with_cryptography_on_random_vectors():
    vectors = make_vectors(seed=0x9256, count=CPYTHON_COUNT)
    expected = [reference(k, d, s) for _, k, d, s in vectors]
    _check_mix(vectors, expected)
    mismatches = [
        _describe(v) + " cryptography={}".format(e)
        for v, e in zip(vectors, expected)
        if p256.verify(v[1], v[2], v[3]) is not e
    ]
    assert mismatches == [], "{} disagreements, first: {}".format(len(mismatches), mismatches[:3])


def test_every_kind_is_generated_and_the_valid_kinds_verify():
    vectors = make_vectors(seed=7, count=len(KINDS) * 2)
    assert sorted({v[0] for v in vectors}) == sorted(KINDS)
    for kind, key, digest, sig in vectors:
        if kind.startswith(("valid", "high_s", "compressed_key")) and not kind.endswith("bit"):
            assert reference(key, digest, sig), kind
            assert p256.verify(key, digest, sig), kind


def test_the_fixed_vectors_match_cryptography():
    # the data files tests/portable/test_p256.py reads on both runtimes
    for v in vectorkit.load("p256_fixed")["vectors"]:
        key, digest, sig = (bytes.fromhex(v[k]) for k in ("key", "digest", "sig"))
        assert reference(key, digest, sig) is v["valid"], v["name"]
    for v in vectorkit.load("p256_cavp_sigver")["vectors"]:
        digest = hashlib.sha256(bytes.fromhex(v["msg"])).digest()
        key = bytes.fromhex("04" + v["qx"] + v["qy"])
        assert reference(key, digest, bytes.fromhex(v["r"] + v["s"])) is v["valid"], v["qx"]
    rfc6979 = vectorkit.load("p256_rfc6979")
    for v in rfc6979["vectors"]:
        digest = hashlib.sha256(v["msg"].encode()).digest()
        assert reference(bytes.fromhex(rfc6979["key"]), digest, bytes.fromhex(v["r"] + v["s"]))
    for v in vectorkit.load("p256_mul_add")["vectors"]:
        a, b, qx, qy, rx, ry = (int(v[k], 16) for k in ("a", "b", "qx", "qy", "rx", "ry"))
        # a*G + b*Q for Q = d*G: check against a key derived from a + b*d, where d is known
        # only when Q is G or -G (the table's other key comes from its own private key).
        if (qx, qy) == (p256.GX, p256.GY):
            d = 1
        elif (qx, qy) == (p256.GX, P - p256.GY):
            d = N - 1
        else:
            continue
        numbers = ec.derive_private_key((a + b * d) % N, ec.SECP256R1()).public_key().public_numbers()
        assert (numbers.x, numbers.y) == (rx, ry)


_UPY_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from binascii import unhexlify
from agent import p256
out = []
with open(sys.argv[2]) as f:
    for line in f:
        k, d, s = line.strip().split(",")
        out.append("1" if p256.verify(unhexlify(k), unhexlify(d), unhexlify(s)) else "0")
print("".join(out))
"""


def test_micropython_agrees_with_cryptography(tmp_path):
    upy = shutil.which("micropython")
    if upy is None:
        pytest.skip("micropython (unix port) not installed")
    vectors = make_vectors(seed=0x3256, count=MICROPYTHON_COUNT)
    expected = [reference(k, d, s) for _, k, d, s in vectors]
    _check_mix(vectors, expected)
    data = tmp_path / "vectors.csv"
    data.write_text("".join("{},{},{}\n".format(k.hex(), d.hex(), s.hex()) for _, k, d, s in vectors))
    script = tmp_path / "run_p256.py"
    script.write_text(_UPY_SCRIPT)
    proc = subprocess.run(
        [upy, str(script), str(ROOT), str(data)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    got = proc.stdout.strip()
    assert len(got) == len(vectors), proc.stdout[-500:]
    mismatches = [
        _describe(v) + " cryptography={}".format(e) for v, e, g in zip(vectors, expected, got) if (g == "1") is not e
    ]
    assert mismatches == [], "{} disagreements, first: {}".format(len(mismatches), mismatches[:3])

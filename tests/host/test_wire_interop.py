"""Byte-identical interop between agent.cbor / agent.wire and cbor2 (canonical=True), both ways."""

import math
import random
import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import cbor, wire

UINT64 = 2**64 - 1

ints = st.one_of(
    st.integers(min_value=-(2**64), max_value=UINT64),
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, UINT64, -1, -24, -25, -256, -257, -(2**64)]),
)
floats = st.one_of(
    st.floats(allow_nan=False, width=16),
    st.floats(allow_nan=False, width=32),
    st.floats(allow_nan=False, width=64),
)
texts = st.text(max_size=40)
scalars = st.one_of(ints, floats, st.binary(max_size=40), texts, st.booleans(), st.none())
keys = st.one_of(st.text(max_size=8), st.integers(min_value=-(2**64), max_value=UINT64))
# nesting stays well inside MAX_DEPTH
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=30,
)

uints = st.integers(min_value=0, max_value=2**32 - 1)
names = st.text(min_size=1, max_size=16)
args = st.dictionaries(st.text(max_size=8), values, max_size=5)
messages = st.one_of(
    st.builds(wire.request, uints, names, args),
    st.builds(wire.response, uints, names, st.one_of(st.none(), values), st.one_of(st.none(), texts)),
    st.builds(wire.event, uints, names, st.dictionaries(keys, values, max_size=5)),
    st.builds(wire.ack, uints),
)


def canonical(obj):
    return cbor2.dumps(obj, canonical=True)


def assert_interop(obj):
    ours = cbor.dumps(obj)
    theirs = canonical(obj)
    assert ours == theirs
    assert cbor2.loads(ours) == obj
    assert cbor.loads(theirs) == obj


@settings(max_examples=200, deadline=None)
@given(values)
def test_values_byte_identical_both_ways(obj):
    assert_interop(obj)


@settings(max_examples=100, deadline=None)
@given(messages)
def test_messages_byte_identical_both_ways(msg):
    assert_interop(msg)
    body = wire.pack_body(msg)
    assert body == canonical(msg)
    assert wire.unpack(canonical(msg)) == msg
    frames = wire.FrameDecoder().feed(wire.pack(msg))
    assert frames == [body]
    assert cbor2.loads(frames[0]) == msg


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, scalars, min_size=2, max_size=12), st.randoms(use_true_random=False))
def test_insertion_order_never_matters(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    assert cbor.dumps(dict(items)) == cbor.dumps(d) == canonical(d)


@settings(max_examples=100, deadline=None)
@given(values)
def test_agent_decodes_cbor2_default_encoding(obj):
    # cbor2 without canonical: insertion-order maps, double floats
    assert cbor.loads(cbor2.dumps(obj)) == obj


@pytest.mark.parametrize("width,fmt,nbits", [(16, ">e", 16), (32, ">f", 32), (64, ">d", 64)])
def test_float_bit_patterns(width, fmt, nbits):
    rnd = random.Random(width)
    patterns = [0, 1, 2 ** (nbits - 1), 2 ** (nbits - 1) + 1, 2**nbits - 1]
    patterns += [rnd.getrandbits(nbits) for _ in range(3000)]
    ifmt = {16: ">H", 32: ">I", 64: ">Q"}[nbits]
    for bits in patterns:
        v = struct.unpack(fmt, struct.pack(ifmt, bits))[0]
        ours = cbor.dumps(v)
        assert ours == canonical(v), (hex(bits), v)
        back = cbor.loads(canonical(v))
        if math.isnan(v):
            assert math.isnan(back) and math.isnan(cbor2.loads(ours))
        else:
            assert back == v and math.copysign(1, back) == math.copysign(1, v)
            assert cbor2.loads(ours) == v


def test_nan_and_signed_zero():
    for v in (float("nan"), -0.0, 0.0, float("inf"), float("-inf")):
        assert cbor.dumps(v) == canonical(v)
    assert math.copysign(1, cbor.loads(canonical(-0.0))) == -1


@pytest.mark.parametrize("v", [2**64, -(2**64) - 1, 2**100])
def test_bignums_are_an_error_not_a_tag(v):
    # cbor2 would emit a bignum tag; the agent refuses instead of sending something it cannot read
    with pytest.raises(cbor.CBORError):
        cbor.dumps(v)
    with pytest.raises(cbor.CBORError):
        cbor.loads(canonical(v))


def test_tuple_and_bytearray_match_cbor2():
    for obj in [(1, 2, (3,)), bytearray(b"\x00\xff"), {"a": (b"x", bytearray(b"y"))}]:
        assert cbor.dumps(obj) == canonical(obj)


def test_cbor2_rejections_agree_for_protocol_errors():
    # malformed input both decoders must refuse
    for data in (b"", b"\x18", b"\x5a\xff\xff\xff\xff\x00", b"\x62\xc3\x28", b"\x81", b"\xa1\x01", b"\x1c"):
        with pytest.raises(cbor.CBORError):
            cbor.loads(data)
        with pytest.raises(cbor2.CBORDecodeError):
            cbor2.loads(data)

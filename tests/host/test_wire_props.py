"""Property tests: the frame decoder and the CBOR decoder on hostile input."""

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import cbor, wire

SETTINGS = settings(max_examples=200, deadline=None)

bodies = st.lists(st.binary(max_size=60), min_size=1, max_size=6)
garbage = st.binary(max_size=30)
chunk_sizes = st.integers(min_value=1, max_value=64)


def feed_chunked(dec, stream, size):
    out = []
    for i in range(0, len(stream), size):
        out += dec.feed(stream[i : i + size])
        # bounded memory, whatever arrives
        assert len(dec._buf) <= dec.max_body + 6
    return out


def is_subsequence(sub, seq):
    it = iter(seq)
    return all(any(x == y for y in it) for x in sub)


@SETTINGS
@given(st.binary(max_size=600), chunk_sizes)
def test_random_bytes_never_raise_and_yield_nothing(data, size):
    dec = wire.FrameDecoder(on_text=lambda b: None, max_body=64)
    assert feed_chunked(dec, data, size) == []


@SETTINGS
@given(bodies, st.lists(garbage, min_size=7, max_size=7), chunk_sizes)
def test_intact_frames_survive_any_garbage_between_them(bs, junk, size):
    stream = b"".join(junk[i] + wire.encode_frame(b) for i, b in enumerate(bs)) + junk[-1]
    text = []
    dec = wire.FrameDecoder(on_text=text.append)
    assert feed_chunked(dec, stream, size) == bs
    if not any(wire.START in j for j in junk):
        assert b"".join(text) == b"".join(junk[: len(bs)]) + junk[-1]
        assert dec.errors == 0


@st.composite
def damaged_streams(draw):
    bs = draw(bodies)
    parts = []
    intact = []
    for b in bs:
        f = bytearray(wire.encode_frame(b))
        how = draw(st.sampled_from(["intact", "flip", "truncate", "cut_head", "insert"]))
        if how == "flip":
            for _ in range(draw(st.integers(1, 4))):
                i = draw(st.integers(0, len(f) - 1))
                f[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            f = f[: draw(st.integers(0, len(f) - 1))]
        elif how == "cut_head":
            f = f[draw(st.integers(1, len(f) - 1)) :]
        elif how == "insert":
            i = draw(st.integers(1, len(f) - 1))
            f[i:i] = draw(st.binary(min_size=1, max_size=4))
        if bytes(f) == wire.encode_frame(b):
            intact.append(b)
        parts.append(draw(garbage) + bytes(f))
    return bs, intact, b"".join(parts) + draw(garbage)


@SETTINGS
@given(damaged_streams(), chunk_sizes)
def test_damaged_frames_never_yield_a_wrong_body(case, size):
    bs, intact, stream = case
    dec = wire.FrameDecoder(on_text=lambda b: None)
    out = feed_chunked(dec, stream, size)
    # only bodies that were sent, in order, and every untouched frame among them
    assert is_subsequence(out, bs)
    for b in intact:
        assert b in out


@SETTINGS
@given(st.binary(max_size=200))
def test_cbor_loads_random_bytes_raises_only_cbor_error(data):
    try:
        cbor.loads(data)
    except cbor.CBORError:
        pass


values = st.recursive(
    st.one_of(st.integers(-(2**64), 2**64 - 1), st.binary(max_size=20), st.text(max_size=20), st.none(), st.floats()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=15,
)


@SETTINGS
@given(values, st.data())
def test_cbor_loads_mutated_valid_input_raises_only_cbor_error(obj, data):
    enc = bytearray(cbor.dumps(obj))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        i = data.draw(st.integers(0, max(0, len(enc) - 1)))
        if op == "flip" and enc:
            enc[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del enc[i:]
        elif op == "insert":
            enc[i:i] = data.draw(st.binary(min_size=1, max_size=9))
        elif enc:
            enc[i] = data.draw(st.sampled_from([0x1B, 0x3B, 0x5B, 0x7B, 0x9B, 0xBB, 0x1F, 0xFF, 0xC0, 0xF7]))
    try:
        cbor.loads(bytes(enc))
    except cbor.CBORError:
        pass


@SETTINGS
@given(st.binary(max_size=120))
def test_unpack_raises_only_wire_error(data):
    try:
        msg = wire.unpack(data)
    except wire.WireError:
        return
    assert wire.check_message(msg) is msg

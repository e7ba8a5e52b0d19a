"""The agent's frame decoder and dispatcher under a large generated input (hypothesis), on CPython.

Every input goes through agent.server.Server on a configured simulated hub (tests/portable/
fuzzkit.py: the Target and its checks). After each: poll() did not raise, every decodable message
that names a request id was answered exactly once (and nothing else was), no answer reports an
internal error, and a valid hello right after is answered I0.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]

from agent import cbor, wire  # noqa: E402
from host_tools.link import client  # noqa: E402
from tests.kits.fuzzkit import ITEM_NAMES, MAX_ADVANCE_MS, MAX_SEND, OP_ARGS, Target, deep_request  # noqa: E402
from tests.kits.hubkit import config  # noqa: E402

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    database=None,
)

# -- values the agent's CBOR codec can carry ---------------------------------------------------

ints = st.one_of(
    st.integers(-50, 300),
    st.integers(-(2**64), 2**64 - 1),
    st.sampled_from([2**32 - 1, 2**32, 2**63, 2**64 - 1, -(2**64), 125, 126, 100000, 100001]),
)
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "1.3", "\u00b2", "\u0661.5", "00-DB-12-34-56-78-90-A2", "a:b:c", "Command"]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True), texts, st.binary(max_size=40))
values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5),
        st.dictionaries(st.one_of(texts, st.integers(-5, 50)), kids, max_size=5),
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def target():
    return Target()


def fresh_ops(t: Target) -> list[str]:
    from agent.han_ops import OPS as HAN_OPS

    return sorted(t.rig.hub.ops + HAN_OPS)


def check(t: Target, problems: list[str]) -> None:
    problems = problems + t.alive()
    assert problems == []


def encodable(msg) -> bool:
    try:
        cbor.dumps(msg)
        return True
    except cbor.CBORError:
        return False


# -- inputs --------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.binary(max_size=600))
@example(data=b"\x1c\x1d")
@example(data=b"\x1c" + b"\x1e" * 50 + b"\x1d")
@example(data=b"\x1c\x00\x00\x00\x00\x00\x00\x1d")
def test_raw_bytes(target, data):
    check(target, target.feed(data, {}))


@SETTINGS
@given(body=st.binary(max_size=300))
def test_frames_of_random_bytes(target, body):
    check(target, target.send_body(body))


@SETTINGS
@given(value=values)
def test_frames_of_any_value(target, value):
    if encodable(value):
        check(target, target.send(value))


@SETTINGS
@given(
    t=st.one_of(st.sampled_from(["q", "r", "e", "a", ""]), values),
    rid=st.one_of(ints, values),
    op=st.one_of(st.sampled_from(sorted(OP_ARGS) + ["nope", "hello."]), values),
    args=st.one_of(st.dictionaries(texts, values, max_size=4), values),
    drop=st.sets(st.sampled_from(["t", "id", "op", "a"]), max_size=2),
    extra=st.dictionaries(st.sampled_from(["x", "seq", "rc", "d", "k", "e"]), values, max_size=2),
)
def test_envelopes_of_every_shape(target, t, rid, op, args, drop, extra):
    msg = {"t": t, "id": rid, "op": op, "a": args}
    for k in drop:
        msg.pop(k)
    msg.update(extra)
    if encodable(msg):
        check(target, target.send(msg))


def _args_for(op: str):
    names = OP_ARGS.get(op, ())
    aimed = st.fixed_dictionaries({}, optional={n: values for n in names})
    return st.tuples(aimed, st.dictionaries(texts, values, max_size=2)).map(lambda p: {**p[1], **p[0]})


@SETTINGS
@given(data=st.data())
def test_every_operation_with_random_arguments(target, data):
    op = data.draw(st.sampled_from(fresh_ops(target) + ["nope", ""]), label="op")
    args = data.draw(_args_for(op), label="args")
    # keep each request cheap: the agent itself allows 100000 sends and any clock advance
    if isinstance(args.get("count"), int) and not isinstance(args["count"], bool):
        args["count"] = args["count"] % (MAX_SEND + 1)
    if isinstance(args.get("ms"), int) and not isinstance(args["ms"], bool) and args["ms"] > 0:
        args["ms"] = args["ms"] % MAX_ADVANCE_MS
    msg = wire.request(data.draw(st.integers(0, 2**32 - 1), label="id"), op, args)
    if encodable(msg):
        check(target, target.send(msg))


config_items = st.dictionaries(
    st.sampled_from(ITEM_NAMES), st.one_of(values, st.lists(st.integers(-3, 70), max_size=6)), max_size=4
)


@SETTINGS
@given(
    changes=config_items, dropped=st.sets(st.sampled_from(ITEM_NAMES), max_size=2), region=st.one_of(st.none(), texts)
)
@example(changes={"NormalLimitedDutyCycleThreshold": "\u00b2"}, dropped=set(), region=None)
@example(changes={"LocalCHRetryPercentage": "\u0661\u0660.00"}, dropped=set(), region=None)
def test_configuration_mappings(target, changes, dropped, region):
    mapping = config(**changes)
    for k in dropped:
        mapping.pop(k, None)
    args = {"config": mapping}
    if region is not None:
        args["region"] = region
    msg = wire.request(77, "config.set", args)
    if not encodable(msg):
        return
    target.line.to_agent += wire.pack(msg)
    target.server.poll()
    got = target._answers()
    assert [m["id"] for m in got] == [77]
    rc = got[0]["rc"]
    if isinstance(region, str) or region is None:
        assert rc in ("I0", "E062801", "E062802", "E062803"), got[0]
    else:
        assert rc == "E49"
    if rc == "I0":
        assert target.rig.call("config.get")[1] == target.rig.hub.config
    check(target, [])


@SETTINGS
@given(
    msgs=st.lists(st.sampled_from(["hello", "status", "channel", "config.get", "nope"]), min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 40), max_size=30),
    text=st.binary(max_size=20).filter(lambda b: b"\x1c" not in b and b"\x1d" not in b),
)
def test_streams_cut_anywhere_with_text_between(target, msgs, cuts, text):
    # valid requests, text between them, delivered in pieces of any size with a poll after each
    stream = b"".join(text + wire.pack(wire.request(1000 + i, op)) for i, op in enumerate(msgs))
    answers = []
    pos = 0
    for n in cuts + [len(stream)]:
        target.line.to_agent += stream[pos : pos + n]
        pos += n
        target.server.poll()
        answers += [m["id"] for m in target._answers()]
        if pos >= len(stream):
            break
    for _ in range(3):
        target.server.poll()
        answers += [m["id"] for m in target._answers()]
    assert sorted(answers) == [1000 + i for i in range(len(msgs))]


@SETTINGS
@given(msg=st.sampled_from(["hello", "status", "config.get"]), keep=st.floats(0, 1), rid=st.integers(0, 2**32 - 1))
def test_truncated_frames_are_dropped_and_the_next_one_answered(target, msg, keep, rid):
    frame = wire.pack(wire.request(rid, msg))
    part = frame[: max(1, int(len(frame) * keep) - 1)]
    check(target, target.feed(part, {}))


# -- the edges ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["cbor2-decimal", "cbor2-set", "too-deep"])
def test_requests_the_decoder_refuses_are_still_answered_by_their_id(case):
    # canonical order puts "a" before "id": the id must be found past a value the decoder refuses
    t = Target()
    if case == "too-deep":
        frame = wire.encode_frame(deep_request(31, cbor.MAX_DEPTH + 1))
    elif case == "cbor2-set":
        frame = client.encode(wire.request(31, "send", {"count": {1, 2}}))
    else:  # what host_tools.link.client sends for a Decimal argument
        frame = client.encode(wire.request(31, "config.set", {"config": config(GSMECurfew=Decimal("7"))}))
    assert t.feed(frame, {31: 1}) == []
    assert t.rcs == {"E49": 1}
    assert t.alive() == []


def test_cbor2_tags_reach_the_agent_as_undecodable():
    # what the test above is about: cbor2 encodes Decimal (and sets, datetimes, ...) as tags
    assert cbor2.dumps(Decimal("1.5"))[0] >> 5 == 6
    with pytest.raises(cbor.CBORError):
        cbor.loads(cbor2.dumps({"a": {"x": Decimal("1.5")}, "id": 1}, canonical=True))


def test_a_far_clock_advance_is_refused_and_the_agent_goes_on():
    t = Target()
    years = 10 * 365 * 24 * 3600 * 1000
    for ms in (years, 2**64 - 1):
        t.line.to_agent += wire.pack(wire.request(1, "clock.advance", {"ms": ms}))
        t.server.poll()
        assert [(m["id"], m["rc"]) for m in t._answers()] == [(1, "E49")]
    assert t.feed(wire.pack(wire.request(2, "send", {"count": 1})), {2: 1}) == []
    assert len(t.rig.medium.hourly_airtime_us()) <= 2


def test_a_year_of_fast_forward_keeps_the_simulated_medium_small():
    t = Target()
    month = 31 * 24 * 3600 * 1000
    for i in range(12):
        assert t.feed(wire.pack(wire.request(i, "clock.advance", {"ms": month})), {i: 1}) == []
        assert t.feed(wire.pack(wire.request(100 + i, "send", {"count": 1})), {100 + i: 1}) == []
    assert len(t.rig.medium.hourly_airtime_us()) <= 24 * 31

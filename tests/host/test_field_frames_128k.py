"""Every well-framed request is answered, on the real 128 KB heap: the agent as a board runs it
(bench_footprint.PipeTransport: the unix port with -X heapsize=128K running main.py from the
compiled flash), configured with DBCH04, then rounds of one write each holding a 2000-deep nested
request and a valid one. Each round: the deep request is answered E49 by its id (decoded, or
followed without its bytes when the heap has no block for it: tests/portable/test_field_frames.py)
and the valid one I0. When this was written, the agent before the fix left 57 of 600 valid
requests and 100 of 600 deep ones unanswered this way (ten sessions of 60 rounds; a frame that ran
out of memory took the rest of its read with it); with it, none of either.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from agent import wire
from host_tools.link.client import AgentClient

ROOT = Path(__file__).resolve().parents[2]

from tests.kits.footprintkit import bench  # noqa: E402
from tests.kits.fuzzkit import deep_request  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("micropython") is None, reason="needs the MicroPython unix port")

SESSIONS = 3  # the heap's layout differs from session to session (a random EUI and epoch)
ROUNDS = 60
DEPTH = 2000


@pytest.fixture(scope="module")
def flash(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("flash")
    bench.build_flash(d)
    return d


def _answers(t, decoder, want, timeout=5.0):
    got = {}
    deadline = time.monotonic() + timeout
    while set(want) - set(got) and time.monotonic() < deadline:
        for body in decoder.feed(t.read(4096)):
            m = wire.unpack(body)
            if m["t"] == "r":
                got[m["id"]] = m["rc"]
    return got


@pytest.mark.parametrize("session", range(SESSIONS))
def test_a_deep_frame_and_a_request_in_one_read_are_both_answered_in_128k(flash, tmp_path, session):
    from agent.examples import DBCH04_CONFIG

    t = bench.PipeTransport(flash, "128K", tmp_path / "board")
    try:
        c = AgentClient(t, timeout=10.0, on_text=t.text.extend)
        assert c.hello().rc == "I0"
        assert c.request("config.set", {"config": dict(DBCH04_CONFIG)}).rc == "I0"
        decoder = wire.FrameDecoder()
        missing = []
        for i in range(ROUNDS):
            deep, valid = 1000 + 2 * i, 1001 + 2 * i
            t.write(wire.encode_frame(deep_request(deep, DEPTH)) + wire.pack(wire.request(valid, "status")))
            got = _answers(t, decoder, (deep, valid))
            if got != {deep: "E49", valid: "I0"}:
                missing.append((i, got))
        assert missing == [], missing
        assert c.request("status").rc == "I0"
    finally:
        status, err = t.close(wait=10.0)
    assert status == 0 and "Error" not in err, err

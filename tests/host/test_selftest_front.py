"""`dbch selftest` drives the DCC front as a DCC User would (host_tools.selftest.front): with a board
that answers only `hello` behind it - the CPython agent with every other operation taken away -
the front's own decisions still pass (they are the DCC's: E11, E13, E19, and E4 in their place for
a User registered for no device) and the run fails, because the board's part, the Service
Response to a 6.28, is not I0."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("serial")

import agent.hub as hub_module  # noqa: E402
from host_tools.selftest import checks as selftest  # noqa: E402
from host_tools.selftest.front import FRONT_CHECKS  # noqa: E402
from host_tools.selftest.harness import FAIL, PASS  # noqa: E402
from host_tools.servers import simagent  # noqa: E402
from tests.kits.cachekit import private_cache  # noqa: E402

EUI = "00-DB-12-34-56-78-90-B7"


@pytest.fixture
def hello_only(tmp_path_factory, tmp_path, monkeypatch):
    """The pty of a CPython agent that answers `hello` and refuses every other operation (E13)."""
    monkeypatch.setattr(hub_module, "_OPS", {"hello": hub_module.Hub.op_hello})
    monkeypatch.setattr(hub_module, "FW_OPS", ())
    with private_cache(tmp_path_factory):
        board = simagent.SimAgent(tmp_path / "fs", eui=EUI)
        port = board.open()
        thread = threading.Thread(target=board.run, daemon=True)
        thread.start()
        try:
            yield port
        finally:
            board.request_stop()
            thread.join(5)
            board.close()


def test_selftest_fails_against_a_board_that_answers_only_hello(hello_only, duis_schema_dir):
    report = selftest.Selftest(hello_only, schema=str(duis_schema_dir), reboot_timeout=2, timeout=2).run()
    assert report.device["eui"] == EUI
    checks = {c.name: c for c in report.checks}
    assert not report.ok
    first, *decisions = [checks[name] for name, _rc in FRONT_CHECKS]
    # the board's part: acknowledged by the front, then the board's refusal in the Service Response
    assert first.result == FAIL and first.got == "I99 front, E13 hub", first
    assert "hub: the Service Response E13" in first.detail
    # the DCC's part passes whatever the board: decided by the front before any device is asked
    for check in decisions:
        assert check.result == PASS and check.got == check.expected and check.detail.startswith("front: "), check
    assert [c.got for c in decisions] == ["E11 front", "E13 front", "E19 front", "E4 front", "E4 front", "E4 front"]

"""The field path on a 128 KB heap, as a person walks it: a virtual board started with
`--heap 128K`, the agent flashed (the plugin's dbch_vboard: what `dbch flash` does), `dbch config
set` with the DCC's DBCH04 configuration, then the board reset (`dbch vboard --reset`: main.py runs
again, the bootloader, the hub and its restore of the stored configuration) twice, and after each
boot `dbch status` shows the configuration in force and the board serving.

When this was written the agent answered the configuration E49 (out of memory) on this heap, and
once a configuration was stored every boot ended in a MemoryError at the REPL. It failed again
(E49) while the whole bootloader stayed loaded beside the agent; now only its loop does
(agent/boot_main.py).
"""

from __future__ import annotations

import json

import pytest

from agent.examples import DBCH04_CONFIG
from host_tools.pytest_plugin import run_dbch

pytestmark = pytest.mark.dbch_board(heap="128K", eui="00-DB-12-34-56-78-90-B1")

MASKS = ["E0000006", "E8000006", "F0000006", "F8000006"]  # DBCH04's channels, pages 28-31


def _status(board) -> dict:
    r = board.dbch("status", "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_dbch04_is_set_and_restored_at_every_boot_in_128k(dbch_vboard, tmp_path):
    board = dbch_vboard
    assert board.info["flash"]["hello"]["board"] == "unix"
    cfg = tmp_path / "dbch04.json"
    cfg.write_text(json.dumps(DBCH04_CONFIG))

    r = board.dbch("config", "set", "--file", str(cfg), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "I0: configuration applied" in r.stdout
    st = _status(board)
    assert st["configured"] and st["masks"] == MASKS, st
    channel = st["channel"]
    assert channel is not None and channel["page"] in (28, 29, 30), st
    boot = st["boot"]

    for n in (1, 2):
        r = run_dbch("vboard", "--reset", "--name", board.name, timeout=60)
        assert r.returncode == 0, r.stderr
        st = _status(board)
        assert st["boot"] == boot + n, st  # a new boot, not the one before
        assert st["configured"] and st["masks"] == MASKS, st
        assert st["config_restore"] is None, st
        assert st["channel"] == channel, st  # the operating channel it had, kept across the boot
        r = board.dbch("config", "get", "--json", timeout=60)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["LowerBandSubGHzChannels0To26"] == [1, 2]
        assert got["NormalLimitedDutyCycleThreshold"] == "1.3"
        sent = board.request("send", {"count": 3, "len": 50}, timeout=30)
        assert sent.rc == "I0" and sent.data["sent"] == 3, sent

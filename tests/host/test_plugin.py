"""The dbch pytest plugin (host_tools.pytest_plugin) as this suite uses it: each fixture against
the real agent, the board marker, and (with pytester) the options and markers a user sees.
tests/host/test_install.py runs a user's test file on it from the installed wheel."""

from __future__ import annotations

import json

import pytest

from agent.examples import DBCH04_CONFIG
from host_tools.servers import vboard

EUI = "00-DB-00-00-00-00-00-42"
pytestmark = pytest.mark.dbch_board(eui=EUI, heap="256K")


def test_the_hub_in_process_keeps_its_configuration_across_a_power_cut(dbch_hub):
    rc, _data, err = dbch_hub.call("config.set", config=DBCH04_CONFIG)
    assert rc == "I0", err
    assert "8F2A" in [code for code, _ in dbch_hub.alerts()]
    dbch_hub.flash.cut_now()
    dbch_hub.boot()
    rc, cfg, _ = dbch_hub.call("config.get")
    assert rc == "I0" and cfg["LocalCHFailurePercentage"] == DBCH04_CONFIG["LocalCHFailurePercentage"]
    assert dbch_hub.call("hello")[1]["eui"] == EUI


def test_the_cpython_agent_is_reached_by_the_dbch_command(dbch_sim_agent):
    assert dbch_sim_agent.spec.startswith("sim:pytest-")
    r = dbch_sim_agent.dbch("status", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["eui"] == EUI


def test_the_virtual_board_has_the_agent_flashed_on_the_heap_asked_for(dbch_vboard):
    hello = dbch_vboard.request("hello").data
    assert hello["board"] == "unix" and hello["eui"] == EUI
    info = vboard.read_state(dbch_vboard.name)
    assert info is not None and info.heap == "256K"
    assert dbch_vboard.info["flash"]["written"]


def test_the_triage_link_carries_the_dbch_command(dbch_triage_link):
    r = dbch_triage_link.dbch("status", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["eui"] == EUI


def test_options_and_markers_a_user_sees(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_default(dbch_hub):
            assert dbch_hub.call("hello")[1]["eui"] == "00-DB-00-00-00-00-00-99"

        @pytest.mark.dbch_board(eui="00-DB-00-00-00-00-00-01", seed=3)
        def test_marker_wins(dbch_hub):
            assert dbch_hub.call("hello")[1]["eui"] == "00-DB-00-00-00-00-00-01"
        """
    )
    result = pytester.runpytest("--dbch-eui", "00-DB-00-00-00-00-00-99", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest("-p", "no:cacheprovider")  # the default EUI is not ...99
    result.assert_outcomes(passed=1, failed=1)
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["*dbch_board(heap=None, eui=None, seed=1)*"])

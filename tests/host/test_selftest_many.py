"""`dbch selftest` with several ports: every board is checked side by side, each one's result
keyed by its port; a port that cannot be reached fails the command and is named, and the other
boards are still checked."""

from __future__ import annotations

import json
import os

import pytest

from host_tools.pytest_plugin import run_dbch

pytest.importorskip("serial")

EUIS = ("00-DB-12-34-56-78-90-C1", "00-DB-12-34-56-78-90-C2")


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    """Two CPython agents on ptys under a private XDG_CACHE_HOME; (their --port values, env)."""
    from host_tools.servers import simagent

    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    names = [f"stm{i}-{os.getpid()}" for i in range(len(EUIS))]
    try:
        for name, eui in zip(names, EUIS):
            simagent.ensure_running(name, fs=tmp_path_factory.mktemp(name), eui=eui)
        yield [f"sim:{n}" for n in names], dict(os.environ)
    finally:
        for name in names:
            simagent.stop(name)
        mp.undo()


def test_two_boards_pass_side_by_side_and_an_unreachable_one_is_named(agents, duis_schema_dir):
    ports, env = agents
    bad = f"sim:nosuch-{os.getpid()}"
    argv = ["selftest", "--reboot-timeout", "15", "--schema", str(duis_schema_dir), "--json"]
    done = run_dbch(*argv, "--port", f"{ports[0]},{bad}", "--port", ports[1], env=env, timeout=300)
    assert done.returncode == 1
    results = {e["port"]: e for e in map(json.loads, done.stdout.splitlines())}
    assert sorted(results) == sorted([*ports, bad])
    for port, eui in zip(ports, EUIS):
        report = results[port]["report"]
        assert results[port]["ok"] and report["failed"] == 0 and report["device"]["eui"] == eui
        assert {c["name"] for c in report["checks"]} >= {"reboot: acknowledged", "DUIS E19 device doesn't exist"}
    assert not results[bad]["ok"] and "is not running" in results[bad]["error"]
    summary = done.stderr[done.stderr.index("dbch: 1 of 3 boards failed:") :]
    assert f"  {bad}: " in summary and ports[0] not in summary

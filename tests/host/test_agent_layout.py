"""agent/'s shape: the firmware update's parts import one way in the order they load, the bootloader
imports nothing from a slot, the incident recorder needs no TLS, and no module of agent/ looks at
the runtime (hal/compat.py does). The rules of the whole house: test_house.py."""

from __future__ import annotations

import ast

from tests.kits.codeshape import ROOT, cycle, graph, imported, runtime_checks

AGENT = ROOT / "agent"


def _tree(path):
    return ast.parse(path.read_text(), str(path))


def agent_graph() -> dict[str, set[str]]:
    return {m: {t for t in ts if t.startswith("agent")} for m, ts in graph("agent").items()}


def test_the_agent_imports_point_one_way():
    graph = agent_graph()
    assert cycle(graph) is None, " -> ".join(cycle(graph))
    # the firmware update's parts, each loaded only while needed, in their order
    assert graph["agent.fw_common"] <= {"agent.boot"}
    assert graph["agent.boot"] == set()
    for name in ("agent.fw_install", "agent.fw_activate"):
        assert "agent.fw_staging" not in graph[name] and "agent.fw_service" not in graph[name]
    assert "agent.fw_service" not in graph["agent.fw_staging"]
    assert not {"agent.hub", "agent.run", "agent.server"} & set().union(
        *(graph[m] for m in graph if m.startswith("agent.fw_"))
    )


def test_the_bootloader_imports_nothing_from_a_slot():
    # its choice, and its loop, which loads the choice by name (agent.boot_main.SLOTS_MODULE)
    assert imported(_tree(AGENT / "boot.py")) == {"json", "os"}
    assert imported(_tree(AGENT / "boot_main.py")) == {"sys"}


def test_the_incident_recorder_needs_no_tls():
    assert imported(_tree(AGENT / "incidents.py")) == set()
    for name in ("fw_install.py", "fw_staging.py", "fw_service.py", "fw_common.py"):
        names = imported(_tree(AGENT / name))
        assert not {n for n in names if n.startswith(("hal.tls", "agent.triage", "socket", "ssl"))}, name


def test_only_compat_looks_at_the_runtime():
    checks = {p.name: runtime_checks(_tree(p)) for p in sorted(AGENT.glob("*.py"))}
    assert {name: found for name, found in checks.items() if found} == {}
    # the checker sees what it is for: the checks agent/ had before they went to hal/compat.py
    before = """
import sys
import gc
if hasattr(gc, "threshold"):
    gc.threshold(8192)
_UPY = sys.implementation.name == "micropython"
try:
    from os import urandom
except ImportError:
    import random
def rename(src, dst):
    try:
        os.replace(src, dst)
    except AttributeError:
        os.rename(src, dst)
"""
    assert len(runtime_checks(ast.parse(before))) == 5
    assert runtime_checks(_tree(ROOT / "hal" / "compat.py"))

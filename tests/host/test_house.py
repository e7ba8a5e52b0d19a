"""The house rules, read from the code itself (every import, those inside functions included):

- no import cycle among the project's modules;
- imports point down only: host_tools -> boards -> agent -> hal;
- only boards/__init__.py (boards.load) and hal/compat.py look at the runtime;
- host_tools' library code does not import its CLI (host_tools.cli is the only place that prints
  results or exits);
- no module over 400 lines without the reason at its top (a line "Over 400 lines: ...").
"""

from __future__ import annotations

import ast

import pytest

from tests.kits.codeshape import MODULES, PACKAGES, cycle, graph, runtime_checks

LAYER = {name: rank for rank, name in enumerate(reversed(PACKAGES))}  # hal 0 ... host_tools 3
RUNTIME_LOOKERS = {"boards", "hal.compat"}
LONGEST = 400
GRAPH = graph()


def test_the_reader_sees_the_imports_it_must_see():
    # the rules below are only as good as the graph: it holds imports made inside functions
    assert "hal.compat" in GRAPH["agent.hub"]
    assert "agent.fw_staging" in GRAPH["agent.fw_service"]  # a lazy import
    assert any(m.startswith("agent.") for m in GRAPH["boards.sim"])
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    found = cycle(GRAPH)
    assert found is None, " -> ".join(found or [])


def test_imports_point_down():
    upward = sorted(
        f"{m} imports {t}" for m, ts in GRAPH.items() for t in ts if LAYER[t.split(".")[0]] > LAYER[m.split(".")[0]]
    )
    assert upward == []


def test_library_code_does_not_import_the_cli():
    inward = sorted(
        f"{m} imports {t}"
        for m, ts in GRAPH.items()
        for t in ts
        if t.startswith("host_tools.cli") and not m.startswith("host_tools.cli")
    )
    assert inward == []


def _looks(module: str) -> list[str]:
    found = runtime_checks(ast.parse(MODULES[module].read_text()))
    if module.startswith("boards."):  # a board module is of its platform: it uses machine, not asks
        found = [f for f in found if not f.endswith(": import machine")]
    return found


@pytest.mark.parametrize("package", ["agent", "hal", "boards"])
def test_one_platform_switch(package):
    looks = {m: _looks(m) for m in MODULES if m.split(".")[0] == package and m not in RUNTIME_LOOKERS}
    assert {m: found for m, found in looks.items() if found} == {}


def test_the_platform_switch_is_seen_where_it_is():
    assert _looks("hal.compat")
    assert _looks("boards.mcu_board") == [] and "import machine" in MODULES["boards.mcu_board"].read_text()


def test_long_modules_say_why():
    unexplained = []
    for module, path in MODULES.items():
        text = path.read_text().splitlines()
        if len(text) > LONGEST and not any("Over 400 lines:" in line for line in text[:30]):
            unexplained.append(f"{module} ({len(text)} lines)")
    assert unexplained == []

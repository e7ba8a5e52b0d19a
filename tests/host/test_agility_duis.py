"""Frequency agility's alerts as the DCC receives them: the portable scenarios of
tests/portable/test_agility.py are run here with every N54 alert they raise collected; together
they raise 8F28 with every StatusCode and every ScanTrigger the DUIS schema in use enumerates,
8F26, 8F27, 8F2B and 8F29, and each renders to a DUIS alert the schema accepts."""

from __future__ import annotations

import importlib
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent import alerts, codes
from host_tools.duis.alerts import render_alert
from host_tools.duis.schema import load_schema, validate
from tests.kits import hubkit

XS = "{http://www.w3.org/2001/XMLSchema}"
HUB = bytes.fromhex("00DB1234567890A2")
WHEN = "2025-03-01T12:00:00Z"


def _enumeration(schema_dir: Path, where: str) -> set[str]:
    """The enumeration values under the schema element found by `where` (an ElementTree path)."""
    values: set[str] = set()
    for xsd in schema_dir.glob("DUIS Schema V*.xsd"):
        node = ET.parse(xsd).getroot().find(where)
        if node is not None:
            values |= {e.get("value") for e in node.iter(XS + "enumeration")}
    return values


@pytest.fixture(scope="module")
def raised():
    """Every N54 the portable agility scenarios raised: [(code, payload)], and their result."""
    got: list[tuple[str, object]] = []
    original = hubkit.Rig.alerts

    def alerts_seen(rig):
        out = original(rig)
        got.extend(out)
        return out

    hubkit.Rig.alerts = alerts_seen
    try:
        module = importlib.import_module("tests.portable.test_agility")
        result = unittest.TestResult()
        unittest.defaultTestLoader.loadTestsFromModule(module).run(result)
    finally:
        hubkit.Rig.alerts = original
    return got, result


def test_the_scenarios_pass(raised):
    _got, result = raised
    assert result.testsRun > 20
    assert result.wasSuccessful(), [str(t) for t, _ in result.failures + result.errors]


def test_every_status_and_trigger_of_8f28_is_raised(raised, duis_schema_dir):
    got, _ = raised
    outcomes = [p for c, p in got if c == "8F28"]
    statuses = _enumeration(duis_schema_dir, f".//{XS}complexType[@name='SubGHzChannelScanRequestAssessmentOutcome']")
    triggers = _enumeration(duis_schema_dir, f".//{XS}simpleType[@name='ScanTrigger']")
    assert len(statuses) == 8 and len(triggers) == 8, (statuses, triggers)
    assert {p["status"] for p in outcomes} == statuses
    assert {p["trigger"] for p in outcomes} == triggers
    assert {c for c, _ in got} >= {"8F26", "8F27", "8F28", "8F29", "8F2B"}


def test_each_renders_to_a_valid_duis_alert(raised, duis_schema_dir):
    load_schema(duis_schema_dir)
    got, _ = raised
    seen = set()
    for code, payload in got:
        if code not in ("8F26", "8F27", "8F28", "8F29", "8F2B"):
            continue
        key = (code, repr(payload))
        if key in seen:
            continue
        seen.add(key)
        kind, data = alerts.n54(HUB, int(code, 16), payload)
        xml = render_alert(kind, data, when=WHEN)
        assert validate(xml, duis_schema_dir) == [], (code, payload)
        rc = ET.fromstring(xml).find(".//{http://www.dccinterface.co.uk/ServiceUserGateway}ResponseCode").text
        assert rc == codes.gbcs_alert_rc(int(code, 16))
    assert len(seen) > 16

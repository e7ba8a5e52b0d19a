"""`dbch alerts --format duis --schema DIR`, as a technician runs it against a CPython agent on a
pty: each alert as DUIS XML checked against the DCC's schema; an alert that is not valid is still
shown (it has been acknowledged) with its errors on stderr and exit status 1; a schema folder
that is not one is refused before any alert is taken, so nothing is lost."""

from __future__ import annotations

import json

import pytest

from agent.examples import DBCH04_CONFIG
from host_tools.cli import main

pytestmark = pytest.mark.dbch_board(eui="00-DB-12-34-56-78-90-C3")


def dbch(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _raise_alerts(capsys, spec: str, tmp_path) -> None:
    cfg = tmp_path / "dbch04.json"
    cfg.write_text(json.dumps(DBCH04_CONFIG))
    rc, out, err = dbch(capsys, "config", "set", "--port", spec, "--file", str(cfg))
    assert rc == 0, err  # 8F2A (and the channel's 8F26) go up


def test_alerts_are_checked_against_the_schema(dbch_sim_agent, capsys, tmp_path, duis_schema_dir):
    spec = dbch_sim_agent.spec
    _raise_alerts(capsys, spec, tmp_path)
    rc, out, err = dbch(capsys, "alerts", "--port", spec, "--format", "duis", "--schema", str(duis_schema_dir))
    assert rc == 0, err
    assert out.count("<sr:DCCAlertCode>N54</sr:DCCAlertCode>") >= 1 and "8F2A" in out


def test_an_alert_the_schema_refuses_is_shown_with_its_errors(
    dbch_sim_agent, capsys, tmp_path, duis_schema_dir, monkeypatch
):
    from host_tools.duis import alerts

    good = alerts.render_alert

    def broken(kind, data, **kw):  # a renderer with a bug: an element the schema does not have
        return good(kind, data, **kw).replace(b"<sr:DCCAlertCode>", b"<sr:Oops/><sr:DCCAlertCode>")

    monkeypatch.setattr(alerts, "render_alert", broken)
    spec = dbch_sim_agent.spec
    _raise_alerts(capsys, spec, tmp_path)
    rc, out, err = dbch(
        capsys, "alerts", "--port", spec, "--format", "duis", "--schema", str(duis_schema_dir), "--json"
    )
    assert rc == 1
    shown = json.loads(out)
    assert shown and all("Oops" in a["xml"] and a["problems"] for a in shown if a["kind"] == "N54")
    assert "dbch: alert #" in err and "Oops" in err


def test_a_wrong_schema_folder_takes_no_alert(dbch_sim_agent, capsys, tmp_path):
    spec = dbch_sim_agent.spec
    _raise_alerts(capsys, spec, tmp_path)
    rc, out, err = dbch(capsys, "alerts", "--port", spec, "--format", "duis", "--schema", str(tmp_path / "none"))
    assert rc != 0 and "is not a folder" in err
    rc, out, err = dbch(capsys, "alerts", "--port", spec, "--json")
    assert rc == 0 and any(a["data"].get("DeviceAlertCode") == "8F2A" for a in json.loads(out))

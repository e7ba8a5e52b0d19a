"""`dbch duis REQUEST.xml` against a CPython agent on a pty, as a technician runs it: the DCC's
Acknowledgement (I99) then the Service Response made of the board's answer, each an sr:Response
valid against the schema; the DCC's error response alone when a check fails."""

from __future__ import annotations

import json

import pytest

from host_tools.cli import main
from host_tools.duis.compose import request_xml
from host_tools.duis.responses import payload_data
from host_tools.duis.schema import validate

EUI = "00-DB-12-34-56-78-90-C5"
USER = "90-B3-D5-1F-30-01-00-00"
pytestmark = pytest.mark.dbch_board(eui=EUI)


def dbch(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize(
    ("srv", "args"),
    [("6.31", None), ("6.32", {"start": "1970-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}), ("11.2", None)],
)
def test_acknowledgement_then_service_response(srv, args, dbch_sim_agent, capsys, tmp_path, duis_schema_dir):
    req = tmp_path / "req.xml"
    req.write_bytes(request_xml(srv, EUI, USER, 100 + len(srv), args))
    rc, out, err = dbch(
        capsys, "duis", str(req), "--port", dbch_sim_agent.spec, "--schema", str(duis_schema_dir), "--json"
    )
    assert rc == 0, err
    got = json.loads(out)
    assert got["sync"]["rc"] == "I99" and [r["rc"] for r in got["responses"]] == ["I0"]
    for doc in (got["sync"]["xml"], got["responses"][0]["xml"]):
        assert validate(doc, duis_schema_dir) == []
    assert payload_data(got["xml"])["srv"] == srv
    # without --json: both documents, the Acknowledgement first
    rc, out, err = dbch(capsys, "duis", str(req), "--port", dbch_sim_agent.spec, "--schema", str(duis_schema_dir))
    assert rc == 0 and out.count("<?xml") == 2 and out.index(">I99<") < out.index(">I0<")


def test_a_failed_check_is_the_only_answer(dbch_sim_agent, capsys, tmp_path, duis_schema_dir):
    req = tmp_path / "req.xml"
    req.write_bytes(request_xml("6.31", "00-DB-12-34-56-78-90-FF", USER, 1))
    rc, out, err = dbch(capsys, "duis", str(req), "--port", dbch_sim_agent.spec, "--schema", str(duis_schema_dir))
    assert rc == 1 and out.count("<?xml") == 1 and ">E19<" in out and "E19" in err

"""host_tools.duis (schema, requests, checks, compose, responses, alerts) against the DCC's DUIS schema and DCC Boxed templates.

The schema and templates are read where they are ($DBCH_DUIS_SCHEMA_DIR, e.g. a DCC User's DUIS
5.4 folder, else the copies fetched from npm packages: the duis_schema_dir and duis_templates_dir
fixtures); nothing is copied or written there. Templates are modified in memory.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import alerts, subghz
from agent.channels import PLAN
from agent.examples import DBCH04_CONFIG
from host_tools.duis import dcc_tables
from host_tools.duis.alerts import render_alert
from host_tools.duis.assets import HUB_TEMPLATES
from host_tools.duis.checks import check_request
from host_tools.duis.compose import request_xml
from host_tools.duis.config import canonical_config, config_from_xml, render_config_xml
from host_tools.duis.errors import DuisConfigError, DuisError, DuisParseError, DuisRenderError, DuisValidationError
from host_tools.duis.front import InFlight
from host_tools.duis.requests import (
    SIGNATURE_ABSENT,
    SIGNATURE_PLACEHOLDER,
    SIGNATURE_PRESENT,
    parse_request,
    read_request,
)
from host_tools.duis.responses import ACK, PAYLOAD, SCHEDULE_ID, payload_data, render_response, response_code
from host_tools.duis.schema import ENV_SCHEMA_DIR, load_schema, schema_dir, schema_load_time, schema_version, validate
from host_tools.duis.services import HUB_SERVICES
from host_tools.duis.xml import RA_NS, SR_NS

SR = "{%s}" % SR_NS
RA = "{%s}" % RA_NS

HUB = "00-DB-12-34-56-78-90-A2"  # the target of the DCC Boxed DBCH templates
CS06_HUB = "00-DB-12-34-56-78-90-A0"  # the target of the CS06 templates
USER = "90-B3-D5-1F-30-01-00-00"
WHEN = "2025-03-01T12:00:00Z"


def _portable_template() -> dict:
    """The DBCH04 example configuration the portable tests use (their template())."""
    return dict(DBCH04_CONFIG)


@pytest.fixture(scope="module")
def schema_path(duis_schema_dir: Path) -> Path:
    load_schema(duis_schema_dir)  # once per session: cached per folder afterwards
    return duis_schema_dir


@pytest.fixture(scope="module")
def templates_path(duis_templates_dir: Path) -> Path:
    return duis_templates_dir


@pytest.fixture(scope="module")
def templates(templates_path: Path) -> dict[str, bytes]:
    return {
        name.split("_")[0] + "_" + name.split("_")[1]: (templates_path / name).read_bytes() for name in HUB_TEMPLATES
    }


def valid(xml: bytes, schema_path: Path) -> list[str]:
    return validate(xml, schema_path)


def text_of(xml: bytes, path: str) -> str | None:
    el = ET.fromstring(xml).find(path)
    return None if el is None else el.text


# -- schema folder -----------------------------------------------------------------------------


def test_missing_schema_folder_says_how_to_configure(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_SCHEMA_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing fetched there
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # and no npm to fetch it with
    with pytest.raises(DuisConfigError) as e:
        schema_dir(None)
    assert "npm is not on PATH" in str(e.value) and "install Node.js's npm" in str(e.value)
    assert "--schema DIR" in str(e.value) and ENV_SCHEMA_DIR in str(e.value)
    with pytest.raises(DuisConfigError, match="no DUIS schema configured or fetched"):
        schema_dir(None, fetch=False)
    with pytest.raises(DuisConfigError, match="no DUIS schema: cannot fetch"):
        validate(b"<x/>")
    with pytest.raises(DuisConfigError, match="is not a folder"):
        schema_dir(tmp_path / "nowhere")
    with pytest.raises(DuisConfigError, match="has no 'DUIS Schema V5.4.xsd' or 'DUIS Schema V5.1.xsd'"):
        schema_dir(tmp_path)
    monkeypatch.setenv(ENV_SCHEMA_DIR, str(tmp_path))
    with pytest.raises(DuisConfigError, match=re.escape("$" + ENV_SCHEMA_DIR)):
        load_schema()


def test_schema_folder_from_env_and_cache(monkeypatch, schema_path):
    monkeypatch.setenv(ENV_SCHEMA_DIR, str(schema_path))
    assert schema_dir(None) == schema_path.resolve()
    assert load_schema() is load_schema(schema_path)  # loaded once, then cached
    seconds = schema_load_time(schema_path)
    assert seconds is not None and seconds > 0
    print("DUIS schema load: {:.2f} s".format(seconds))


# -- templates ---------------------------------------------------------------------------------

EXPECTED = {
    "DBCH01_6.31": ("6.31", "ReadCHFSubGHzChannel", 1, HUB),
    "DBCH03_6.30": ("6.30", "ReadCHFSubGHzConfiguration", 1, HUB),
    "DBCH04_6.28": ("6.28", "SetCHFSubGHzConfiguration", 1, HUB),
    "DBCH05_6.29": ("6.29", "RequestCHFSubGHzChannelScan", 1, HUB),
    "CS06_11.3": ("11.3", "ActivateFirmware", 4, CS06_HUB),
}


def test_every_template_is_found(templates, templates_path):
    assert sorted(templates) == sorted(EXPECTED)  # the two CS06 templates share a key
    assert {p.name for p in templates_path.glob("*.XML")} >= set(HUB_TEMPLATES)


@pytest.mark.parametrize("name", HUB_TEMPLATES)
def test_template_validates_parses_and_is_accepted(name, schema_path, templates_path):
    xml = (templates_path / name).read_bytes()
    assert valid(xml, schema_path) == []
    req = parse_request(xml)
    key = name.split("_")[0] + "_" + name.split("_")[1]
    srv, body, cv, target = EXPECTED[key]
    assert (req.service_reference, req.service_reference_variant, req.body, req.command_variant) == (srv, srv, body, cv)
    assert (req.originator, req.target) == (USER, target)
    assert req.request_id == "{}:{}:{}".format(USER, target, req.counter) and req.counter in (1000, 1001)
    assert req.schema_version == "5.4"
    assert req.signature == SIGNATURE_PLACEHOLDER
    assert any("placeholder" in w for w in req.warnings)
    assert check_request(req, target_eui=target)[0] is None


def test_dbch04_gives_the_template_mapping(templates):
    req = parse_request(templates["DBCH04_6.28"])
    assert req.args == _portable_template()
    assert req.args["NormalLimitedDutyCycleThreshold"] == "1.3" and req.args["GSMECurfew"] == 7
    result = subghz.validate(req.args)
    assert result.ok and result.code == "I0"


def test_cs06_hash_and_execution(templates_path):
    immediate = parse_request((templates_path / "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    future = parse_request((templates_path / "CS06_11.3_FUTURE_DATED_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    digest = bytes.fromhex("AA758690730934FF0685AA758690730934FF0685657788990011223344556677")
    assert immediate.args == {"hash": digest, "execution": None, "cancel": False}
    assert future.args == {"hash": digest, "execution": "2030-01-15T09:00:00Z", "cancel": False}
    # the DCC Boxed cancellation template's date: 3000-12-31T00:00:00.00Z cancels
    cancel = future_xml = (templates_path / "CS06_11.3_FUTURE_DATED_SUCCESS_REQUEST_DUIS.XML").read_bytes()
    cancel = re.sub(rb"<sr:ExecutionDateTime>[^<]*<", b"<sr:ExecutionDateTime>3000-12-31T00:00:00.00Z<", future_xml)
    assert parse_request(cancel).args == {"hash": digest, "execution": "3000-12-31T00:00:00Z", "cancel": True}


# -- building requests -------------------------------------------------------------------------

BUILD_CASES = [
    ("6.28", None),
    ("6.29", None),
    ("6.30", None),
    ("6.31", None),
    ("11.3", {"hash": bytes(range(32)), "execution": None}),
    ("11.3", {"hash": bytes(range(32)).hex(), "execution": "2031-06-01T10:30:00+01:00"}),
    ("11.3", {"hash": bytes(range(32)), "cancel": True}),
    ("6.32", {"start": "2030-01-01T00:00:00Z", "end": "2030-01-08T00:00:00Z"}),
    ("11.2", None),
]


@pytest.mark.parametrize(("srv", "args"), BUILD_CASES)
def test_request_xml_round_trips_and_validates(srv, args, schema_path):
    if srv == "6.28":
        args = _portable_template()
    xml = request_xml(srv, HUB, USER, 2**64 - 1, args)
    assert valid(xml, schema_path) == []
    req = parse_request(xml)
    svc = HUB_SERVICES[srv]
    assert (req.service_reference_variant, req.body, req.command_variant) == (
        srv,
        svc.body,
        (4 if srv == "11.3" else 1),
    )
    assert (req.originator, req.target, req.counter) == (USER, HUB, 2**64 - 1)
    assert req.signature == SIGNATURE_ABSENT and req.warnings[0].startswith("unsigned request")
    if srv == "6.28":
        assert req.args == _portable_template()
    elif srv == "11.3" and args.get("cancel"):
        assert req.args["cancel"] and req.args["execution"] == "3000-12-31T00:00:00Z"
    elif srv == "11.3":
        assert req.args["hash"] == bytes(range(32)) and not req.args["cancel"]
        assert req.args["execution"] == (None if args["execution"] is None else "2031-06-01T09:30:00Z")
    elif srv == "6.32":
        assert req.args == args
    else:
        assert req.args == {}
    assert check_request(req, target_eui=HUB)[0] is None


def test_request_xml_names_and_bad_arguments():
    by_use_case = request_xml("DBCH03", HUB, USER, 1)
    assert by_use_case == request_xml("ReadCHFSubGHzConfiguration", HUB, USER, 1)
    assert parse_request(by_use_case).service_reference_variant == "6.30"
    with pytest.raises(DuisError, match="unknown service '8.2'"):
        request_xml("8.2", HUB, USER, 1)
    with pytest.raises(DuisRenderError, match="ReadLogPeriod"):
        request_xml("6.32", HUB, USER, 1)
    with pytest.raises(DuisRenderError, match="32-byte firmware hash"):
        request_xml("11.3", HUB, USER, 1, {"hash": b"short"})
    with pytest.raises(DuisRenderError, match="counter"):
        request_xml("6.29", HUB, USER, -1)
    with pytest.raises(DuisRenderError, match="target"):
        request_xml("6.29", "00-DB", USER, 1)
    with pytest.raises(DuisRenderError, match="lacks GSMECurfew"):
        request_xml("6.28", HUB, USER, 1, {k: v for k, v in _portable_template().items() if k != "GSMECurfew"})
    with pytest.raises(DuisRenderError, match="no Channel27 element"):
        request_xml("6.28", HUB, USER, 1, dict(_portable_template(), LowerBandSubGHzChannels0To26=[1, 27]))
    with pytest.raises(DuisRenderError, match="takes no arguments"):
        request_xml("6.29", HUB, USER, 1, {"x": 1})


def test_out_of_range_configuration_builds_but_fails_schema_and_agent(schema_path):
    bad = dict(_portable_template(), NormalLimitedDutyCycleThreshold="3.0")
    xml = request_xml("6.28", HUB, USER, 7, bad)
    errors = valid(xml, schema_path)
    assert errors and any("NormalLimitedDutyCycleThreshold" in e for e in errors)
    with pytest.raises(DuisValidationError) as e:
        read_request(xml, schema_path)
    version = schema_version(schema_path)
    assert e.value.errors == errors and "not valid against the DUIS {} schema".format(version) in str(e.value)
    req = parse_request(xml)  # still readable: the hub answers it with a service code
    assert subghz.validate(req.args).code == "E062803"


# -- configuration <-> XML ---------------------------------------------------------------------


def test_config_round_trip_and_canonical_form():
    m = _portable_template()
    assert canonical_config(m) == m
    el = render_config_xml(m)
    assert el.tag == SR + "SubGHzConfigurationChanged"
    assert [c.tag[len(SR) :] for c in el] == list(subghz.ITEM_NAMES)
    assert config_from_xml(el) == m
    loose = dict(m, LowerBandSubGHzChannels0To26=(2, 1, 2), NormalLimitedDutyCycleThreshold=1.3)
    loose.update(LocalCHRetryPercentage=30, GSMECurfew="7", UpperBandSubGHzChannels0To26=None)
    assert config_from_xml(render_config_xml(loose)) == dict(m, UpperBandSubGHzChannels0To26=[])


def test_config_from_xml_keeps_bad_text_for_the_agent():
    el = render_config_xml(_portable_template())
    el.find(SR + "GSMECurfew").text = "seven"
    m = config_from_xml(el)
    assert m["GSMECurfew"] == "seven"
    assert subghz.validate(m).code == "E062803"
    ET.SubElement(el.find(SR + "LowerBandSubGHzChannels0To26"), SR + "Chan9")
    with pytest.raises(DuisParseError, match="unexpected element Chan9"):
        config_from_xml(el)


def _page_channels(page):
    first, last = PLAN[page][0], PLAN[page][1]
    return st.lists(st.integers(first, last), max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    st.fixed_dictionaries(
        {name: _page_channels(page) for name, page in subghz.CHANNEL_ITEMS}
        | {
            name: (st.integers(0, 10**places * 100).map(lambda v, p=places: subghz.format_decimal(v, p)))
            for name, places, *_ in subghz.PARAMETER_ITEMS
        }
    )
)
def test_config_round_trip_property(mapping):
    expected = canonical_config(mapping)
    assert config_from_xml(render_config_xml(mapping)) == expected
    for name, _page in subghz.CHANNEL_ITEMS:
        assert expected[name] == sorted(set(mapping[name]))


# -- check_request -----------------------------------------------------------------------------


def _edit(xml: bytes, *pairs: tuple[str, str]) -> bytes:
    text = xml.decode()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


def _check(xml: bytes, in_process: set[str] | None = None, hub: str = HUB):
    return check_request(parse_request(xml), target_eui=hub, in_process=set() if in_process is None else in_process)


def test_e11_service_not_for_a_chf(templates, schema_path):
    # 7.4 Read Supply Status (an ESME service, CV 1-3) sent to the hub: schema-valid, wrong device type
    xml = _edit(
        templates["DBCH01_6.31"],
        ("<sr:ServiceReference>6.31<", "<sr:ServiceReference>7.4<"),
        ("<sr:ServiceReferenceVariant>6.31<", "<sr:ServiceReferenceVariant>7.4<"),
        ("<sr:ReadCHFSubGHzChannel/>", "<sr:ReadSupplyStatus/>"),
    )
    assert valid(xml, schema_path) == []
    code, message = _check(xml)
    assert code == "E11" and "7.4" in message and dcc_tables.response_name("E11") in message


def test_e12_command_variant(templates, schema_path):
    for cv in ("2", "3", "4", "8"):
        xml = _edit(templates["DBCH03_6.30"], ("<sr:CommandVariant>1<", "<sr:CommandVariant>{}<".format(cv)))
        assert valid(xml, schema_path) == []
        code, message = _check(xml)
        assert code == "E12" and "Command Variant {}".format(cv) in message
    for cv in ("1", "5"):
        xml = _edit(templates["CS06_11.3"], ("<sr:CommandVariant>4<", "<sr:CommandVariant>{}<".format(cv)))
        assert _check(xml, hub=CS06_HUB)[0] == "E12"


def test_e13_request_type_not_for_this_endpoint(templates, schema_path):
    # 8.2 Read Inventory is a non-device (DCC Only, CV 8) request
    xml = _edit(
        templates["DBCH01_6.31"],
        ("<sr:CommandVariant>1<", "<sr:CommandVariant>8<"),
        ("<sr:ServiceReference>6.31<", "<sr:ServiceReference>8.2<"),
        ("<sr:ServiceReferenceVariant>6.31<", "<sr:ServiceReferenceVariant>8.2<"),
        (
            "<sr:ReadCHFSubGHzChannel/>",
            "<sr:ReadInventory><sr:DeviceID>{}</sr:DeviceID></sr:ReadInventory>".format(HUB),
        ),
    )
    assert valid(xml, schema_path) == []
    code, message = _check(xml)
    assert code == "E13" and "non-device" in message
    foreign = _edit(templates["DBCH01_6.31"], ("<sr:ReadCHFSubGHzChannel/>", '<x:Other xmlns:x="urn:x"/>'))
    assert _check(foreign)[0] == "E13"
    empty = _edit(templates["DBCH01_6.31"], ("<sr:ReadCHFSubGHzChannel/>", ""))
    code, message = _check(empty)
    assert code == "E13" and "no body" in message


def test_e19_target_device_does_not_exist(templates):
    xml = _edit(templates["DBCH05_6.29"], (":00-DB-12-34-56-78-90-A2:", ":00-DB-12-34-56-78-90-FF:"))
    code, message = _check(xml)
    assert code == "E19" and "00-DB-12-34-56-78-90-FF" in message
    # the hub's EUI may be given in any case, or as bytes
    assert _check(templates["DBCH05_6.29"], hub=HUB.lower())[0] is None
    assert _check(templates["DBCH05_6.29"], hub=bytes.fromhex(HUB.replace("-", "")))[0] is None


def test_e48_reference_and_variant_mismatch(templates, schema_path):
    xml = _edit(templates["DBCH04_6.28"], ("<sr:ServiceReferenceVariant>6.28<", "<sr:ServiceReferenceVariant>6.30<"))
    assert valid(xml, schema_path) == []  # the schema cannot see it
    code, message = _check(xml)
    assert code == "E48" and "6.30" in message and "6.28" in message


def test_e49_body_does_not_match_the_variant(templates, schema_path):
    xml = _edit(templates["DBCH03_6.30"], ("<sr:ReadCHFSubGHzConfiguration/>", "<sr:ReadCHFSubGHzChannel/>"))
    assert valid(xml, schema_path) == []
    code, message = _check(xml)
    assert code == "E49" and "ReadCHFSubGHzConfiguration" in message
    # a hub body under another service's variant
    other = _edit(
        templates["DBCH01_6.31"],
        ("<sr:ServiceReference>6.31<", "<sr:ServiceReference>7.4<"),
        ("<sr:ServiceReferenceVariant>6.31<", "<sr:ServiceReferenceVariant>7.4<"),
    )
    assert _check(other)[0] == "E49"


def test_e55_duplicate_of_a_request_still_being_processed(templates):
    # seed Table 1: E55 is "the duplicate of another Request being processed by the DCC Systems"
    in_process = InFlight()
    req = parse_request(templates["DBCH05_6.29"])
    assert _check(templates["DBCH05_6.29"], in_process)[0] is None
    assert in_process.begin(req.request_id)  # accepted: being processed
    code, message = _check(templates["DBCH05_6.29"], in_process)
    assert code == "E55" and "1000" in message and "being processed" in message
    assert not in_process.begin(req.request_id)
    # the same ID in lower case is the same request
    lower = _edit(templates["DBCH05_6.29"], ("90-B3-D5-1F-30-01-00-00:00-DB", "90-b3-d5-1f-30-01-00-00:00-db"))
    assert _check(lower, in_process)[0] == "E55"
    # once answered, the RequestID is free again: a RequestID is not remembered forever
    in_process.end(req.request_id)
    assert _check(templates["DBCH05_6.29"], in_process)[0] is None


def test_precedence(templates):
    # E48 before E13: a non-device variant under another reference
    xml = _edit(templates["DBCH01_6.31"], ("<sr:ServiceReferenceVariant>6.31<", "<sr:ServiceReferenceVariant>8.2<"))
    assert _check(xml)[0] == "E48"
    # E12 before E19: a wrong command variant for another device
    xml = _edit(
        templates["DBCH01_6.31"],
        ("<sr:CommandVariant>1<", "<sr:CommandVariant>2<"),
        (":00-DB-12-34-56-78-90-A2:", ":00-DB-12-34-56-78-90-FF:"),
    )
    assert _check(xml)[0] == "E12"
    # E55 before E19, E19 before E11
    in_process = {parse_request(templates["DBCH01_6.31"]).request_id}
    xml = _edit(
        templates["DBCH01_6.31"],
        ("<sr:ServiceReference>6.31<", "<sr:ServiceReference>7.4<"),
        ("<sr:ServiceReferenceVariant>6.31<", "<sr:ServiceReferenceVariant>7.4<"),
        ("<sr:ReadCHFSubGHzChannel/>", "<sr:ReadSupplyStatus/>"),
    )
    assert _check(xml, in_process)[0] == "E55"
    assert _check(xml, hub="00-DB-12-34-56-78-90-FF")[0] == "E19"
    assert _check(xml)[0] == "E11"


# -- malformed and invalid requests --------------------------------------------------------------


def test_malformed_xml_is_a_clear_error(templates, schema_path):
    broken = templates["DBCH01_6.31"].replace(b"</sr:Header>", b"")
    with pytest.raises(DuisParseError, match="not well-formed XML"):
        parse_request(broken)
    with pytest.raises(DuisParseError, match="not well-formed XML"):
        read_request(broken, schema_path)
    errors = valid(broken, schema_path)
    assert len(errors) == 1 and errors[0].startswith("not well-formed XML")
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;</r>'
    with pytest.raises(DuisParseError, match="DOCTYPE"):
        parse_request(bomb)


def test_schema_invalid_request_is_a_clear_error(templates, schema_path):
    xml = _edit(templates["DBCH04_6.28"], ("<sr:GSMECurfew>7<", "<sr:GSMECurfew>x<"))
    errors = valid(xml, schema_path)
    assert len(errors) == 1 and "sr:GSMECurfew" in errors[0]
    missing = _edit(templates["DBCH04_6.28"], ("<sr:CommandVariant>1</sr:CommandVariant>", ""))
    errors = valid(missing, schema_path)
    assert errors and any("CommandVariant" in e for e in errors)
    with pytest.raises(DuisParseError, match="no sr:CommandVariant"):
        parse_request(missing)
    with pytest.raises(DuisValidationError):
        read_request(missing, schema_path)


def test_parse_errors_name_the_problem(templates):
    with pytest.raises(DuisParseError, match="is not originatorEUI:targetEUI:counter"):
        parse_request(_edit(templates["DBCH01_6.31"], (":1000<", ":x<")))
    with pytest.raises(DuisParseError, match="is not originatorEUI:targetEUI:counter"):
        parse_request(_edit(templates["DBCH01_6.31"], (":1000<", ":18446744073709551616<")))
    with pytest.raises(DuisParseError, match="expected sr:Request"):
        parse_request(b'<sr:Response xmlns:sr="%s"/>' % SR_NS.encode())
    with pytest.raises(DuisParseError, match="FirmwareHash"):
        parse_request(_edit(templates["CS06_11.3"], ("6677<", "66<")))


def test_signature_states(templates):
    unsigned = re.sub(rb"<ds:Signature.*</ds:Signature>", b"", templates["DBCH01_6.31"], flags=re.S)
    req = parse_request(unsigned)
    assert req.signature == SIGNATURE_ABSENT and "unsigned" in req.warnings[0]
    real = templates["DBCH01_6.31"].replace(b"<ds:SignatureValue>ZGVmYXVsdA==", b"<ds:SignatureValue>MEUCIQ==")
    req = parse_request(real)
    assert req.signature == SIGNATURE_PRESENT and "not verified" in req.warnings[0]


# -- responses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(EXPECTED))
@pytest.mark.parametrize("rc", ["I0", "I99", "E11", "E12", "E13", "E19", "E48", "E49", "E55", "E062801"])
def test_ack_responses_validate(key, rc, templates, schema_path):
    req = parse_request(templates[key])
    xml = render_response(req, rc, ACK, when=WHEN)
    assert valid(xml, schema_path) == []
    assert text_of(xml, "{0}Header/{0}ResponseCode".format(SR)) == rc
    assert text_of(xml, "{0}Header/{0}RequestID".format(SR)) == req.request_id
    assert text_of(xml, "{0}Header/{0}ResponseDateTime".format(SR)) == WHEN
    assert (
        text_of(xml, "{0}Body/{0}ResponseMessage/{0}ServiceReferenceVariant".format(SR))
        == req.service_reference_variant
    )
    assert len(ET.fromstring(xml).find("{0}Body/{0}ResponseMessage".format(SR))) == 2  # no payload


def test_data_responses_are_sr_responses_with_the_devices_answer(templates, schema_path):
    # 6.30 and 6.31 answer as DUIS answers every request: sr:Response, the device's answer in its
    # GBCSPayload (CBOR here: see host_tools.duis.responses), never the MMC ra:GBCSResponse
    m = _portable_template()
    req = parse_request(templates["DBCH03_6.30"])
    xml = render_response(req, "I0", None, {"SubGHzConfiguration": canonical_config(m)}, when=WHEN)
    assert valid(xml, schema_path) == []
    root = ET.fromstring(xml)
    assert root.tag == SR + "Response" and root.find(".//" + RA + "GBCSResponse") is None
    assert text_of(xml, "{0}Header/{0}RequestID".format(SR)) == req.request_id
    assert payload_data(xml) == {"srv": "6.30", "SubGHzConfiguration": canonical_config(m)}
    assert config_from_xml(render_config_xml(payload_data(xml)["SubGHzConfiguration"])) == m
    ch = parse_request(templates["DBCH01_6.31"])
    xml = render_response(ch, "I0", PAYLOAD, {"OperatingSubGHzChannel": {"page": 31, "channel": 26}}, when=WHEN)
    assert valid(xml, schema_path) == [] and response_code(xml) == "I0"
    assert payload_data(xml)["OperatingSubGHzChannel"] == {"page": 31, "channel": 26}
    # an error or an acknowledgement carries no data
    assert payload_data(render_response(req, "E19", None, m)) is None
    with pytest.raises(DuisRenderError, match="only a success carries data"):
        render_response(req, "E19", PAYLOAD, m)
    with pytest.raises(DuisRenderError, match="needs the device's answer"):
        render_response(req, "I0", PAYLOAD, None)


def test_response_edge_cases(templates, schema_path):
    req = parse_request(templates["DBCH01_6.31"])
    with pytest.raises(DuisRenderError, match="body_kind"):
        render_response(req, "I0", "xml")
    with pytest.raises(DuisRenderError, match="unknown response code"):
        render_response(req, "E999")
    with pytest.raises(DuisRenderError, match="DSPScheduleID"):
        render_response(req, "I0", SCHEDULE_ID, -1)
    with pytest.raises(DuisRenderError, match="ResponseID"):
        render_response(req, "I0", response_id="nope")
    xml = render_response(req, "I99", response_id="{}:{}:7".format(HUB, USER), when=WHEN)
    assert text_of(xml, "{0}Header/{0}ResponseID".format(SR)) == "{}:{}:7".format(HUB, USER)


def test_a_response_the_schema_refuses_is_not_returned(templates, schema_path, monkeypatch):
    # every renderer checks what it wrote: a response code the schema's enumeration lacks is an
    # error, never a document
    from host_tools.duis import responses

    monkeypatch.setitem(responses.RESPONSE_CODES, "E777", ("not in the schema", "E"))
    with pytest.raises(DuisRenderError, match="would not be valid against the DUIS"):
        render_response(parse_request(templates["DBCH01_6.31"]), "E777", schema=schema_path)


# -- alerts ------------------------------------------------------------------------------------

HUB_BYTES = bytes.fromhex(HUB.replace("-", ""))
METER = "00-DB-12-34-56-78-90-B1"
PAYLOADS = {
    0x8F20: {"eui": bytes.fromhex(METER.replace("-", ""))},  # the duty-cycle manager's form
    0x8F26: {"page": 30, "channel": 36, "trigger": "CHDetectedMessageRetryProblems"},
    0x8F28: {"status": "ScanRequestAccepted", "trigger": "RemotePartyCommand"},
    0x8F2A: "config",
    0x8F2C: {"request_id": "{}:{}:42".format(USER, HUB), "cra": "Command"},
    0x8F2D: {"DeviceID": METER, "DeviceType": "GSME"},
}
PAYLOAD_ELEMENT = {
    0x8F20: "LimitedDutyCycleActionTaken",
    0x8F26: "SubGHzChannelChanged",
    0x8F28: "SubGHzChannelScanRequestAssessmentOutcome",
    0x8F2A: "SubGHzConfigurationChanged",
    0x8F2C: "MessageDiscardedDueToDutyCycleManagement",
    0x8F2D: "NoMoreSubGHzDeviceCapacity",
}


@pytest.mark.parametrize("code", sorted(dcc_tables.GBCS_ALERTS))
def test_n54_alerts_validate(code, schema_path):
    payload = PAYLOADS.get(code)
    if payload == "config":
        payload = _portable_template()
    kind, data = alerts.n54(HUB_BYTES, code, payload)
    xml = render_alert(kind, data, when=WHEN)
    assert valid(xml, schema_path) == []
    root = ET.fromstring(xml)
    expected_rc = dcc_tables.GBCS_ALERTS[code][1]
    assert expected_rc == ("I0" if code in (0x8F21, 0x8F23, 0x8F25, 0x8F26, 0x8F27, 0x8F28, 0x8F2A) else "E59")
    assert root.find("{0}Header/{0}ResponseCode".format(SR)).text == expected_rc
    assert root.find("{0}Header/{0}ResponseID".format(SR)) is None
    message = root.find("{0}Body/{0}DCCAlertMessage".format(SR))
    assert message.find(SR + "DCCAlertCode").text == "N54"
    alert = message.find("{0}DCCAlert/{0}DualBandCHAlert".format(SR))
    assert alert.find(SR + "CHFDeviceID").text == HUB
    assert alert.find(SR + "DeviceAlertCode").text == "{:04X}".format(code)
    extra = [c.tag[len(SR) :] for c in alert][2:]
    assert extra == ([PAYLOAD_ELEMENT[code]] if code in PAYLOAD_ELEMENT else [])


def test_n54_payload_contents(schema_path):
    def alert_of(code, payload):
        kind, data = alerts.n54(HUB_BYTES, code, payload)
        xml = render_alert(kind, data, when=WHEN)
        assert valid(xml, schema_path) == []
        return ET.fromstring(xml).find("{0}Body/{0}DCCAlertMessage/{0}DCCAlert/{0}DualBandCHAlert".format(SR))

    # 8F20 from the duty-cycle manager: {"eui": bytes}, or None when no device is to blame
    a = alert_of(0x8F20, {"eui": bytes.fromhex(METER.replace("-", ""))})
    assert a.find("{0}LimitedDutyCycleActionTaken/{0}DeviceIDToSuspend".format(SR)).text == METER
    assert alert_of(0x8F20, {"eui": None}).find(SR + "LimitedDutyCycleActionTaken") is None
    # ... and written by hand, in either spelling
    for payload in ({"DeviceIDToSuspend": METER.lower()}, {"eui": METER}):
        data = dict(alerts.n54(HUB_BYTES, 0x8F21)[1], DeviceAlertCode="8F20", rc="E59", payload=payload)
        xml = render_alert("N54", data, when=WHEN)
        assert valid(xml, schema_path) == []
        assert ET.fromstring(xml).find(".//{}DeviceIDToSuspend".format(SR)).text == METER
    a = alert_of(0x8F26, {"page": 31, "channel": 3, "trigger": "SMHANFormation"})
    assert a.find(".//{0}OperatingUpperBandSubGHzChannel/{0}Channel3".format(SR)) is not None
    assert a.find("{0}SubGHzChannelChanged/{0}ScanTrigger".format(SR)).text == "SMHANFormation"
    a = alert_of(0x8F28, {"status": "DutyCycleUsageIsTooHigh", "trigger": "RemotePartyCommand"})
    assert a.find(".//{}StatusCode".format(SR)).text == "DutyCycleUsageIsTooHigh"
    a = alert_of(0x8F2A, _portable_template())
    assert config_from_xml(a.find(SR + "SubGHzConfigurationChanged")) == _portable_template()
    rid = "{}:{}:42".format(USER, HUB)
    a = alert_of(0x8F2C, {"request_id": rid, "cra": False})  # the agent's bool form
    assert a.find(".//{}RequestID".format(SR)).text == rid and a.find(".//{}CRAFlag".format(SR)).text == "Command"
    a = alert_of(0x8F2D, {"DeviceID": METER})
    assert a.find(".//{}DeviceType".format(SR)) is None


def test_n64_alert(schema_path):
    kind, data = alerts.n64(HUB_BYTES, "2.1.0")
    xml = render_alert(kind, data, response_id="{}:{}:7".format(HUB, USER), when="2025-03-01T13:00:00+01:00")
    assert valid(xml, schema_path) == []
    root = ET.fromstring(xml)
    assert root.find("{0}Header/{0}ResponseCode".format(SR)).text == "I0"
    assert root.find("{0}Header/{0}ResponseID".format(SR)).text == "{}:{}:7".format(HUB, USER)
    assert root.find("{0}Header/{0}ResponseDateTime".format(SR)).text == WHEN
    assert root.find("{0}Body/{0}DCCAlertMessage/{0}DCCAlertCode".format(SR)).text == "N64"
    act = root.find("{0}Body/{0}DCCAlertMessage/{0}DCCAlert/{0}CommsHubFirmwareActivation".format(SR))
    assert [c.text for c in act] == [HUB, "2.1.0"]


def test_an_alert_is_dated_when_the_device_raised_it(schema_path):
    kind, data = alerts.n54(HUB_BYTES, 0x8F21)
    xml = render_alert(kind, dict(data, utc=1767226800), response_id="{}:{}:8".format(HUB, USER))
    assert valid(xml, schema_path) == []
    stamp = ET.fromstring(xml).find("{0}Header/{0}ResponseDateTime".format(SR)).text
    assert stamp == "2026-01-01T00:20:00Z"
    # a time given by the caller wins; a time that is not UTC seconds is refused, not guessed
    assert b"<sr:ResponseDateTime>2025-03-01T12:00:00Z<" in render_alert(kind, dict(data, utc=5), when=WHEN)
    for bad in ("2026-01-01", -1, True, 10**12):
        with pytest.raises(DuisRenderError, match="UTC seconds"):
            render_alert(kind, dict(data, utc=bad))


def test_alert_errors():
    good = alerts.n54(HUB_BYTES, 0x8F21)[1]
    with pytest.raises(DuisRenderError, match="carries I0 .Table 42., not E59"):
        render_alert("N54", dict(good, rc="E59"))
    with pytest.raises(DuisRenderError, match="not a Dual Band CH alert"):
        render_alert("N54", dict(good, DeviceAlertCode="8F30"))
    with pytest.raises(DuisRenderError, match="N54 and N64"):
        render_alert("incident", {})
    with pytest.raises(DuisRenderError, match="carries no payload"):
        render_alert("N54", dict(good, payload={"x": 1}))
    with pytest.raises(DuisRenderError, match="originatorEUI:targetEUI:counter"):
        render_alert(*alerts.n54(HUB_BYTES, 0x8F2C, {"request_id": "r1", "cra": False}))
    with pytest.raises(DuisRenderError, match="CRAFlag"):
        render_alert(*alerts.n54(HUB_BYTES, 0x8F2C, {"request_id": "{}:{}:1".format(USER, HUB), "cra": "x"}))
    with pytest.raises(DuisRenderError, match="not on page 28"):
        render_alert(*alerts.n54(HUB_BYTES, 0x8F26, {"page": 28, "channel": 27, "trigger": "GSMERequest"}))
    with pytest.raises(DuisRenderError, match="needs a payload"):
        render_alert(*alerts.n54(HUB_BYTES, 0x8F26))
    with pytest.raises(DuisRenderError, match="FirmwareVersion"):
        render_alert("N64", {"DeviceID": HUB, "FirmwareVersion": "123456789"})
    with pytest.raises(DuisRenderError, match="not an xs:dateTime"):
        render_alert("N54", good, when="yesterday")


@pytest.mark.parametrize(
    ("code", "payload", "bad"),
    [
        (0x8F2D, {"DeviceID": METER, "DeviceType": "Meter"}, "DeviceType"),
        (0x8F26, {"page": 30, "channel": 36, "trigger": "Foo"}, "ScanTrigger"),
        (0x8F28, {"status": "Maybe", "trigger": "RemotePartyCommand"}, "StatusCode"),
    ],
)
def test_render_alert_raises_on_values_outside_the_schema(code, payload, bad, schema_path):
    # what the docstring promises: an error, never schema-invalid XML
    with pytest.raises(DuisRenderError, match=bad):
        render_alert(*alerts.n54(HUB_BYTES, code, payload), schema=schema_path)

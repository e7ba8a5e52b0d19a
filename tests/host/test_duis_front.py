"""The DCC front (host_tools.duis.front) over an in-process hub on simulated hardware: every CHF
sub-GHz and firmware service answered as DUIS (the Acknowledgement I99, then the Service
Response made of the board's answer), E55 as a duplicate of a request still being processed,
CreateSchedule on the non-device path, and every document dbch writes read by the DCC's own DUIS
reader (@smartdcc/duis-parser, tests/kits/duisreader.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from agent import alerts
from agent.examples import DBCH04_CONFIG
from host_tools.duis import dcc_tables
from host_tools.duis.alerts import render_alert
from host_tools.duis.compose import request_xml
from host_tools.duis.config import canonical_config
from host_tools.duis.dsp import ScheduleStore, schedule_of
from host_tools.duis.front import InFlight, serve_device, serve_non_device
from host_tools.duis.responses import payload_data, response_code
from host_tools.duis.schema import load_schema, validate
from host_tools.duis.xml import SR_NS
from host_tools.firmware import cpl
from host_tools.link.client import Response
from tests.kits import duisreader, fwkit

USER = "90-B3-D5-1F-30-01-00-00"
DCC = "90-B3-D5-1F-30-00-00-02"  # the DCC, target of non-device requests (DCC Boxed templates)
FAR = "2030-01-15T09:00:00Z"
WIDE = {"start": "1970-01-01T00:00:00Z", "end": "2099-12-31T00:00:00Z"}

DOCUMENTS: list[tuple[str, bytes]] = []  # every document the tests below had dbch write


class Client:
    """The front's view of a board: request(op, args) -> Response, here straight into a Hub."""

    resumed = True

    def __init__(self, device, before=None):
        self.device = device
        self.before = before  # called with (op, args) before each request: a test's hook
        self.ops: list[str] = []

    def request(self, op, args=None, timeout=None):
        self.ops.append(op)
        if self.before:
            self.before(op, args)
        return Response(1, *self.device.call(op, **(args or {})))


@pytest.fixture(scope="module")
def schema(duis_schema_dir: Path) -> Path:
    load_schema(duis_schema_dir)
    return duis_schema_dir


@pytest.fixture
def device():
    return fwkit.Device()


def eui_of(device) -> str:
    return device.call("hello")[1]["eui"]


def serve(client, xml: bytes, schema: Path, name: str, **kw):
    ex = serve_device(client, xml, schema=schema, **kw)
    DOCUMENTS.append((name + " sync", ex.sync))
    DOCUMENTS.extend((name + " response", r) for r in ex.responses)
    for doc in [ex.sync, *ex.responses]:
        assert validate(doc, schema) == []
    return ex


def test_chf_sub_ghz_services_answer_ack_then_the_boards_answer(device, schema):
    hub = eui_of(device)
    client = Client(device)
    ex = serve(client, request_xml("6.28", hub, USER, 1, DBCH04_CONFIG), schema, "6.28")
    assert (ex.code, ex.response_codes) == ("I99", ["I0"]) and payload_data(ex.responses[0]) is None
    assert client.ops[-1] == "config.set"

    ex = serve(client, request_xml("6.29", hub, USER, 2), schema, "6.29")
    assert (ex.code, ex.response_codes, client.ops[-1]) == ("I99", ["I0"], "scan")

    ex = serve(client, request_xml("6.30", hub, USER, 3), schema, "6.30")
    assert payload_data(ex.responses[0])["SubGHzConfiguration"] == canonical_config(device.call("config.get")[1])
    assert payload_data(ex.responses[0])["SubGHzConfiguration"] == canonical_config(DBCH04_CONFIG)

    ex = serve(client, request_xml("6.31", hub, USER, 4), schema, "6.31")
    board = device.call("channel")[1]
    assert payload_data(ex.responses[0])["OperatingSubGHzChannel"] == {
        "page": board["page"],
        "channel": board["channel"],
    }

    # 6.32 (DBCH02): the board's channel log, cut to the ReadLogPeriod
    ex = serve(client, request_xml("6.32", hub, USER, 5, WIDE), schema, "6.32")
    log = device.call("channel", log=True)[1]
    data = payload_data(ex.responses[0])
    assert ex.response_codes == ["I0"] and client.ops[-1] == "channel"
    assert data["OperatingSubGHzChannel"] == {"page": board["page"], "channel": board["channel"]}
    stamp = [dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for t in log["changes"]]
    assert data["SubGHzChannelChanges"] == stamp and data["ReadLogPeriod"]["EndDateTime"] == WIDE["end"]
    early = {"start": "1970-01-01T00:00:00Z", "end": "1970-01-01T00:00:01Z"}
    ex = serve(client, request_xml("6.32", hub, USER, 6, early), schema, "6.32 empty period")
    assert payload_data(ex.responses[0])["SubGHzChannelChanges"] == []

    # a refusal by the board is the Service Response's code (the DCC acknowledged it first)
    bad = dict(DBCH04_CONFIG, LowerBandSubGHzChannels0To26=[1])
    ex = serve(client, request_xml("6.28", hub, USER, 7, bad), schema, "6.28 refused")
    assert (ex.code, ex.response_codes) == ("I99", ["E062802"])


def test_a_channel_log_with_changes(device, schema):
    hub = eui_of(device)
    client = Client(device)
    device.call("config.set", config=dict(DBCH04_CONFIG))
    utc = device.clock.utc()
    device.hub.agility.changes = [utc - 3600, utc - 60]  # two moves the board logged
    period = {"start": dt.datetime.fromtimestamp(utc - 600, dt.timezone.utc), "end": WIDE["end"]}
    ex = serve(client, request_xml("6.32", hub, USER, 1, period), schema, "6.32 with changes")
    expect = dt.datetime.fromtimestamp(utc - 60, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert payload_data(ex.responses[0])["SubGHzChannelChanges"] == [expect]


def test_firmware_services(device, schema):
    hub = eui_of(device)
    client = Client(device)
    ex = serve(client, request_xml("11.2", hub, USER, 1), schema, "11.2")
    status = device.call("fw.status")[1]
    assert ex.response_codes == ["I0"] and client.ops[-1] == "fw.status"
    assert payload_data(ex.responses[0]) == {"srv": "11.2", "FirmwareVersion": "1.0", "FirmwareHash": status["hash"]}

    # 11.3 for an image the hub does not hold: GBCS's outcome in an I0 Service Response, not E5
    other = fwkit.Image("3.0")
    ex = serve(client, request_xml("11.3", hub, USER, 2, {"hash": other.hash}), schema, "11.3 no image")
    assert ex.response_codes == ["I0"]
    assert payload_data(ex.responses[0])["activateImageResponseCode"] == "noImageHeld"
    img = fwkit.Image("2.0")
    assert device.send(img)[0] == "I0"
    ex = serve(client, request_xml("11.3", hub, USER, 3, {"hash": other.hash}), schema, "11.3 other image")
    assert payload_data(ex.responses[0])["activateImageResponseCode"] == "hashMismatch"

    # future dated, then cancelled (the cancellation template's date), then cancelled again: E52
    ex = serve(client, request_xml("11.3", hub, USER, 4, {"hash": img.hash, "execution": FAR}), schema, "11.3 future")
    assert (ex.code, ex.response_codes) == ("I99", ["I0"])
    assert device.call("fw.status")[1]["activation"]["state"] == "scheduled"
    ex = serve(client, request_xml("11.3", hub, USER, 5, {"hash": img.hash, "cancel": True}), schema, "11.3 cancel")
    assert ex.response_codes == ["I0"] and client.ops[-1] == "fw.cancel"
    assert device.call("fw.status")[1]["activation"] is None
    ex = serve(
        client, request_xml("11.3", hub, USER, 6, {"hash": img.hash, "cancel": True}), schema, "11.3 cancel again"
    )
    assert ex.response_codes == ["E52"]

    # immediate: the board reboots into the image and raises N64
    ex = serve(client, request_xml("11.3", hub, USER, 7, {"hash": img.hash}), schema, "11.3 immediate")
    assert ex.response_codes == ["I0"] and device.hub.reboot_requested
    device.boot()
    device.run_healthy()
    n64 = [d for k, d in device.events("N64")]
    assert n64 and n64[-1]["FirmwareVersion"] == "2.0"
    DOCUMENTS.append(("N64", render_alert("N64", n64[-1], schema=schema)))
    ex = serve(Client(device), request_xml("11.2", hub, USER, 8), schema, "11.2 after")
    assert payload_data(ex.responses[0])["FirmwareVersion"] == "2.0"


def test_dcc_checks_answer_alone_and_the_board_is_not_asked(device, schema):
    hub = eui_of(device)
    client = Client(device)
    other = hub[:-2] + ("00" if not hub.endswith("00") else "01")
    ex = serve(client, request_xml("6.31", other, USER, 1), schema, "E19")
    assert (ex.code, ex.responses) == ("E19", []) and client.ops == ["hello"]
    ex = serve(client, request_xml("6.31", hub, USER, 2, command_variant=2), schema, "E12")
    assert (ex.code, ex.responses) == ("E12", []) and client.ops == ["hello", "hello"]


def test_e55_only_while_the_first_request_is_being_processed(device, schema):
    hub = eui_of(device)
    xml = request_xml("6.31", hub, USER, 42)
    in_process = InFlight()
    inner = []

    def again(op, args):  # the same request arrives while the board is being asked
        if op == "channel" and not inner:
            inner.append(serve(Client(device), xml, schema, "E55", in_process=in_process))

    ex = serve(Client(device, before=again), xml, schema, "6.31 first", in_process=in_process)
    assert ex.response_codes == ["I0"]
    assert inner[0].code == "E55" and inner[0].responses == [] and "being processed" in inner[0].warnings[-1]
    # answered: the same RequestID later is a new request, not a duplicate
    assert serve(Client(device), xml, schema, "6.31 again", in_process=in_process).response_codes == ["I0"]
    assert req_free(in_process, xml)


def test_a_future_dated_activation_is_in_process_until_it_runs_or_is_cancelled(device, schema):
    hub = eui_of(device)
    img = fwkit.Image("2.0")
    assert device.send(img)[0] == "I0"
    now = [dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc).timestamp()]
    in_process = InFlight(clock=lambda: now[0])
    future = request_xml("11.3", hub, USER, 50, {"hash": img.hash, "execution": FAR})
    assert serve(Client(device), future, schema, "11.3 held", in_process=in_process).response_codes == ["I0"]
    assert serve(Client(device), future, schema, "E55 held", in_process=in_process).code == "E55"
    # once its ExecutionDateTime has passed, it is no longer being processed
    now[0] = dt.datetime(2030, 1, 15, 9, 0, 1, tzinfo=dt.timezone.utc).timestamp()
    assert req_free(in_process, future)
    # held again, then cancelled: the cancellation releases it
    now[0] = dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    again = request_xml("11.3", hub, USER, 51, {"hash": img.hash, "execution": FAR})
    assert serve(Client(device), again, schema, "11.3 held again", in_process=in_process).response_codes == ["I0"]
    assert not req_free(in_process, again)
    cancel = request_xml("11.3", hub, USER, 52, {"hash": img.hash, "cancel": True})
    assert serve(Client(device), cancel, schema, "11.3 cancel", in_process=in_process).response_codes == ["I0"]
    assert req_free(in_process, again) and req_free(in_process, cancel)


def req_free(in_process: InFlight, xml: bytes) -> bool:
    from host_tools.duis.requests import parse_request

    return parse_request(xml).request_id not in in_process


# -- CreateSchedule (non-device) ---------------------------------------------------------------


def schedule_xml(counter: int, frequency="Monthly", start="2031-01-31", end=None, time=None, cv=8) -> bytes:
    items = [
        f"<sr:ScheduleFrequency>{frequency}</sr:ScheduleFrequency>",
        f"<sr:ScheduleStartDate>{start}</sr:ScheduleStartDate>",
    ]
    if end:
        items.append(f"<sr:ScheduleEndDate>{end}</sr:ScheduleEndDate>")
    if time:
        items.append(f"<sr:ScheduleExecutionStartTime>{time}</sr:ScheduleExecutionStartTime>")
    items += [
        "<sr:DSPScheduledServiceReference>4.6</sr:DSPScheduledServiceReference>",
        "<sr:DSPScheduledServiceReferenceVariant>4.6.1</sr:DSPScheduledServiceReferenceVariant>",
        "<sr:DeviceID>00-DB-12-34-56-78-90-A0</sr:DeviceID>",
        "<sr:DSPRetrieveImportDailyReadLog><sr:StartDateOffset>-1</sr:StartDateOffset><sr:StartTime>00:00:00Z</sr:StartTime>"
        "<sr:EndDateOffset>0</sr:EndDateOffset><sr:EndTime>00:00:00Z</sr:EndTime></sr:DSPRetrieveImportDailyReadLog>",
    ]
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><sr:Request xmlns:sr="{SR_NS}" schemaVersion="5.4"><sr:Header>'
        f"<sr:RequestID>{USER}:{DCC}:{counter}</sr:RequestID><sr:CommandVariant>{cv}</sr:CommandVariant>"
        "<sr:ServiceReference>5.1</sr:ServiceReference><sr:ServiceReferenceVariant>5.1</sr:ServiceReferenceVariant>"
        f"</sr:Header><sr:Body><sr:CreateSchedule>{''.join(items)}</sr:CreateSchedule></sr:Body></sr:Request>"
    ).encode()


NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_create_schedule_is_validated_stored_and_listed(tmp_path, schema):
    store = ScheduleStore(tmp_path / "schedules.json")

    def create(xml, name):
        ex = serve_non_device(xml, store, schema=schema, now=NOW)
        DOCUMENTS.append((name, ex.sync))
        assert validate(ex.sync, schema) == [] and ex.responses == []
        return ex

    ex = create(schedule_xml(1), "5.1 created")
    assert ex.code == "I0"
    sid = int(ex.sync.split(b"<sr:DSPScheduleID>")[1].split(b"<")[0])
    (entry,) = store.schedules()
    assert entry["id"] == sid == 1 and entry["execution_time"] == "00:01:00"  # the seed's default
    assert schedule_of(entry).runs(3) == ["2031-01-31T00:01:00Z", "2031-02-28T00:01:00Z", "2031-03-31T00:01:00Z"]
    # the seed's rules, each answered with its code and nothing stored
    assert create(schedule_xml(2, start="2030-06-01"), "5.1 start today").code == "E050101"
    assert create(schedule_xml(3, start="2030-07-01", end="2030-06-30"), "5.1 end before start").code == "E050102"
    assert create(schedule_xml(4, time="24:00:00"), "5.1 bad time").code == "E050103"  # xs:time takes it
    assert len(store.schedules()) == 1
    ex = create(
        schedule_xml(5, frequency="Half-Yearly", start="2030-08-31", end="2031-08-31", time="06:30:00"), "5.1 b"
    )
    assert ex.code == "I0" and [s["id"] for s in store.schedules()] == [1, 2]
    assert schedule_of(store.schedules()[1]).runs(5) == [
        "2030-08-31T06:30:00Z",
        "2031-02-28T06:30:00Z",
        "2031-08-31T06:30:00Z",
    ]
    # the path's checks: CV 8 only; a device request here is E13
    assert create(schedule_xml(6, cv=1), "5.1 CV 1").code == "E12"
    assert create(request_xml("6.31", "00-DB-12-34-56-78-90-A2", USER, 7), "6.31 on the non-device path").code == "E13"


def test_dcc_schedules_command_lists_run_dates(tmp_path, schema, capsys):
    from host_tools.cli import main

    store = tmp_path / "s.json"
    req = tmp_path / "req.xml"
    req.write_bytes(schedule_xml(9, frequency="Weekly", start="2099-01-01", end="2099-01-20"))
    rc = main(["dcc", "schedules", "--store", str(store), "--add", str(req), "--schema", str(schema), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["added"]["rc"] == "I0"
    assert out["schedules"][0]["runs"] == ["2099-01-01T00:01:00Z", "2099-01-08T00:01:00Z", "2099-01-15T00:01:00Z"]
    rc = main(["dcc", "schedules", "--store", str(store), "--runs", "1", "--after", "2099-01-09T00:00:00Z"])
    assert rc == 0 and "2099-01-15T00:01:00Z" in capsys.readouterr().out
    req.write_bytes(schedule_xml(10, start="2000-01-01"))
    rc = main(["dcc", "schedules", "--store", str(store), "--add", str(req), "--schema", str(schema)])
    assert rc == 1 and "E050101" in capsys.readouterr().out


# -- the DCC's DUIS reader over everything written ---------------------------------------------


def alert_documents(schema) -> list[tuple[str, bytes]]:
    hub = bytes.fromhex("00DB1234567890A2")
    meter = "00-DB-12-34-56-78-90-B1"
    payloads = {
        0x8F20: {"eui": bytes.fromhex(meter.replace("-", ""))},
        0x8F26: {"page": 30, "channel": 36, "trigger": "CHDetectedMessageRetryProblems"},
        0x8F28: {"status": "ScanRequestAccepted", "trigger": "RemotePartyCommand"},
        0x8F2A: dict(DBCH04_CONFIG),
        0x8F2C: {"request_id": f"{USER}:00-DB-12-34-56-78-90-A2:42", "cra": "Command"},
        0x8F2D: {"DeviceID": meter, "DeviceType": "GSME"},
    }
    docs = []
    for code in sorted(dcc_tables.GBCS_ALERTS):
        docs.append((f"N54 {code:04X}", render_alert(*alerts.n54(hub, code, payloads.get(code)), schema=schema)))
    for alert in ("N49", "N50", "N51", "N52"):
        finding = cpl.Finding(
            eui="00-DB-12-34-56-78-90-A2",
            model="dbch",
            device_type="CHF",
            smi_version="1.0",
            reported="2.0",
            source="read",
            cpl_status=None,
            alert=alert,
            reason="test",
        )
        docs.append((alert, cpl.render_xml(finding, schema=schema)))
    return docs


def test_the_dccs_reader_reads_every_document_dbch_writes(tmp_path, schema):
    if not DOCUMENTS:  # run alone: write the documents the tests above write
        test_chf_sub_ghz_services_answer_ack_then_the_boards_answer(fwkit.Device(), schema)
        test_firmware_services(fwkit.Device(), schema)
        test_dcc_checks_answer_alone_and_the_board_is_not_asked(fwkit.Device(), schema)
        test_create_schedule_is_validated_stored_and_listed(tmp_path, schema)
    requests = [
        (f"request {srv}", request_xml(srv, "00-DB-12-34-56-78-90-A2", USER, n, args))
        for n, (srv, args) in enumerate(
            [
                ("6.28", DBCH04_CONFIG),
                ("6.29", None),
                ("6.30", None),
                ("6.31", None),
                ("6.32", WIDE),
                ("11.2", None),
                ("11.3", {"hash": bytes(32), "execution": FAR}),
                ("11.3", {"hash": bytes(32), "cancel": True}),
            ]
        )
    ]
    docs = DOCUMENTS + alert_documents(schema) + requests
    assert len(docs) > 40
    readings = duisreader.read_all(docs, tmp_path / "docs")
    refused = [(r.name, r.error) for r in readings if not r.ok]
    assert refused == []
    kinds = Counter(r.kind for r in readings)
    print("the DCC's DUIS reader accepted:", dict(sorted(kinds.items())))
    assert (
        kinds["ResponseMessage:NoBody"]
        and kinds["ResponseMessage:GBCSPayload"]
        and kinds["ResponseMessage:DSPScheduleID"]
    )
    assert kinds["DCCAlertMessage:N54"] == len(dcc_tables.GBCS_ALERTS) and kinds["DCCAlertMessage:N64"]
    assert kinds["request"] == len(requests)
    # each response is read with its RequestID and code as written
    assert {r.name for r in readings if r.kind == "ResponseMessage:GBCSPayload"} >= {
        "6.30 response",
        "6.31 response",
        "6.32 response",
        "11.2 response",
    }


def test_the_reader_refuses_the_mmc_form_dbch_used_to_write(tmp_path):
    # the reader can fail: the MMC ra:GBCSResponse that 6.30/6.31 used to be answered with
    mmc = (
        b'<?xml version="1.0"?><ra:GBCSResponse xmlns:ra="http://www.dccinterface.co.uk/ResponseAndAlert" '
        b'schemaVersion="5.4"><ra:Header><ra:ServiceReference>6.31</ra:ServiceReference></ra:Header>'
        b"<ra:Body/></ra:GBCSResponse>"
    )
    (reading,) = duisreader.read_all([("mmc", mmc)], tmp_path)
    assert not reading.ok and "bad format duis" in reading.error


def test_response_code_reads_back(device, schema):
    ex = serve(Client(device), request_xml("6.30", eui_of(device), USER, 1), schema, "6.30 empty")
    assert response_code(ex.responses[0]) == "I0" and payload_data(ex.responses[0])["SubGHzConfiguration"] is None

"""host_tools/duis/users.py and userlist.py: the User list, authentication (E100), authorisation
(E1-E5) and the DCC's order of the validation codes after it, with E4's precedence over E11, E13
and E19 as SEC Appendix R 8.1.26 states (seed)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from host_tools.duis import checks, users
from host_tools.duis.requests import parse_request
from host_tools.duis.signing import DuisSignatureError, sign
from host_tools.duis.userlist import ELIGIBLE, DuisUsersError, load_users, users_from_json
from host_tools.security.pki import Pki

HUB = "00-DB-12-34-56-78-90-A2"
HUB2 = "00-DB-12-34-56-78-90-A0"
ESME = "00-DB-12-34-56-78-90-B1"  # a meter: registered for the MDR, not a hub behind this front
SUPPLIER = "90-B3-D5-1F-30-01-00-00"  # IS, GS: registered for HUB
DISTRIBUTOR = "90-B3-D5-1F-30-02-00-00"  # ED: registered for HUB
STRANGER = "90-B3-D5-1F-30-03-00-00"  # IS: registered for no device (the E4 User)
MDR = "90-B3-D5-1F-30-04-00-00"  # MDR: registered for the ESME only
SUSPENDED = "90-B3-D5-1F-30-05-00-00"
NOT_A_PARTY = "90-B3-D5-1F-30-06-00-00"
NO_ROLE = "90-B3-D5-1F-30-07-00-00"
LEAVING = "90-B3-D5-1F-30-08-00-00"  # IS, registered for HUB until 2030
UNKNOWN = "90-B3-D5-1F-30-09-00-00"
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    store = Pki(tmp_path_factory.mktemp("pki"))
    store.init_ca()
    for eui in (SUPPLIER, DISTRIBUTOR, STRANGER):
        store.issue_user(eui)
    return store


def _list_json() -> dict:
    def user(eui, roles, devices, **more):
        return dict(eui=eui, roles=roles, devices=devices, **more)

    return {
        "users": [
            user(SUPPLIER, ["IS", "GS"], [HUB, HUB2], certificate="users/{}/cert.pem".format(SUPPLIER)),
            user(DISTRIBUTOR, ["ED"], {HUB: {"from": "2020-01-01T00:00:00Z"}}),
            user(STRANGER, ["IS"], [], certificate="users/{}/cert.pem".format(STRANGER)),
            user(MDR, ["MDR"], [ESME]),
            user(SUSPENDED, ["IS"], [HUB], status="suspended"),
            user(NOT_A_PARTY, ["IS"], [HUB], sec_party=False),
            user(NO_ROLE, [], [HUB]),
            user(LEAVING, ["IS"], {HUB: {"until": "2030-01-01T00:00:00Z"}}, receive_url="https://127.0.0.1:9/r"),
        ],
        "inventory": {HUB: "Commissioned", HUB2: "Decommissioned"},
    }


@pytest.fixture(scope="module")
def user_list(pki):
    return users_from_json(_list_json(), pki.dir)


def _xml(srv="6.30", cv=1, originator=SUPPLIER, target=HUB, body=None, counter=1000, sr=None) -> bytes:
    body = (
        body
        if body is not None
        else {
            "6.29": "<sr:RequestCHFSubGHzChannelScan/>",
            "6.30": "<sr:ReadCHFSubGHzConfiguration/>",
            "6.31": "<sr:ReadCHFSubGHzChannel/>",
            "4.1.1": "<sr:ReadInstantaneousImportRegisters/>",
            "8.2": "<sr:ReadInventory><sr:DeviceID>{}</sr:DeviceID></sr:ReadInventory>".format(target),
        }[srv]
    )
    sr = sr or (srv if srv.count(".") == 1 else srv.rsplit(".", 1)[0])
    return (
        '<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" schemaVersion="5.4">'
        "<sr:Header><sr:RequestID>{}:{}:{}</sr:RequestID><sr:CommandVariant>{}</sr:CommandVariant>"
        "<sr:ServiceReference>{}</sr:ServiceReference><sr:ServiceReferenceVariant>{}</sr:ServiceReferenceVariant>"
        "</sr:Header><sr:Body>{}</sr:Body></sr:Request>".format(originator, target, counter, cv, sr, srv, body)
    ).encode()


def _activate(originator=SUPPLIER, execution="2031-01-01T00:00:00Z") -> bytes:
    when = "<sr:ExecutionDateTime>{}</sr:ExecutionDateTime>".format(execution) if execution else ""
    body = "<sr:ActivateFirmware><sr:FirmwareHash>{}</sr:FirmwareHash>{}</sr:ActivateFirmware>".format("AB" * 32, when)
    return _xml("11.3", cv=4, originator=originator, body=body)


def _decide(user_list, xml: bytes, *, endpoint=None, seen=None, hubs=(HUB, HUB2), **kw):
    seen = set() if seen is None else seen
    return users.decide(
        parse_request(xml), user_list, target_eui=list(hubs), in_process=seen, endpoint=endpoint, at=NOW, **kw
    )


# --- E1-E5 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml, code, words",
    [
        (_xml(originator=UNKNOWN), "E1", "not a DCC User"),
        (_xml(originator=NOT_A_PARTY), "E1", "not a valid SEC Party"),
        (_xml(originator=NO_ROLE), "E1", "no User Role"),
        (_xml("6.29", originator=DISTRIBUTOR), "E2", "Eligible Users are GS, IS"),
        (_xml("4.1.1", originator=DISTRIBUTOR, sr="4.1"), "E11", "not for a Communications Hub"),  # ED may read 4.1.1
        (_xml(originator=SUSPENDED), "E3", "suspended"),
        (_xml(originator=STRANGER), "E4", "not registered for device " + HUB),
        (_activate(LEAVING), "E4", "at the execution time"),  # registered now, not in 2031
        (_xml(target=HUB2), "E5", "Decommissioned"),
        (_xml(originator=DISTRIBUTOR), None, "authorised"),  # ED may read the configuration
        (_activate(LEAVING, execution="2029-01-01T00:00:00Z"), None, "authorised"),
    ],
)
def test_each_access_code_is_reachable(user_list, xml, code, words):
    decision = _decide(user_list, xml)
    assert decision.code == code and words in decision.message, decision.message
    if code:
        assert decision.message.startswith(code + " ")


def test_registration_windows_and_the_time_of_the_request(user_list):
    req = parse_request(_xml(originator=LEAVING))
    assert users.authorise(req, user_list, at=NOW).ok
    late = users.authorise(req, user_list, at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    assert late.code == "E4" and "now" in late.message
    early = users.authorise(parse_request(_xml(originator=DISTRIBUTOR)), user_list, at=dt.datetime(2019, 12, 31))
    assert early.code == "E4"
    # the SMI status given by the caller wins over the list's inventory
    assert users.authorise(req, user_list, at=NOW, smi_status="Suspended").code == "E5"
    assert users.authorise(parse_request(_xml(target=HUB2)), user_list, at=NOW, smi_status="Commissioned").ok


# --- E4 before the validation codes (SEC Appendix R 8.1.26) -----------------------------------


VALIDATION_CASES = [
    # (what, request from the registered supplier, endpoint, hubs, the validation code)
    ("E11: an ESME service to the hub", dict(srv="4.1.1", sr="4.1"), None, (HUB,), "E11"),
    ("E13: a non-critical request to the transform URL", dict(), "transform", (HUB,), "E13"),
    ("E19: a device that is not here", dict(), None, (HUB2,), "E19"),
    ("E48: variant of another reference", dict(sr="6.31"), None, (HUB,), "E48"),
    ("E12: a command variant the service does not take", dict(cv=2), None, (HUB,), "E12"),
    ("E49: the body of another service", dict(body="<sr:ReadCHFSubGHzChannel/>"), None, (HUB,), "E49"),
]


@pytest.mark.parametrize("what, fields, endpoint, hubs, code", VALIDATION_CASES)
def test_e4_takes_precedence_over_each_validation_code(user_list, what, fields, endpoint, hubs, code):
    mine = _decide(user_list, _xml(**fields), endpoint=endpoint, hubs=hubs)
    assert mine.code == code, (what, mine.message)  # the code is reachable by a registered User
    theirs = _decide(user_list, _xml(originator=STRANGER, **fields), endpoint=endpoint, hubs=hubs)
    assert theirs.code == "E4", (what, theirs.message)  # and E4 comes first for one who is not


def test_e55_is_a_request_still_in_process_and_e4_precedes_it(user_list):
    in_process: set[str] = set()
    first = _decide(user_list, _xml(), seen=in_process)
    assert first.ok and first.user.eui == SUPPLIER and not in_process  # the caller marks it
    in_process.add(parse_request(_xml()).request_id)
    again = _decide(user_list, _xml(), seen=in_process)
    assert again.code == "E55"
    in_process.clear()  # processed: the same Request ID is no longer a duplicate
    assert _decide(user_list, _xml(), seen=in_process).ok
    stranger = _xml(originator=STRANGER)
    assert _decide(user_list, stranger, seen={parse_request(stranger).request_id}).code == "E4"


def test_the_mdr_role_gets_e4_never_e11_from_a_hub(user_list):
    """8.1.26: E11 cannot be generated for the MDR role, which only communicates with an ESME."""
    to_hub = _decide(user_list, _xml("4.1.1", sr="4.1", originator=MDR))
    assert to_hub.code == "E4"
    to_meter = _decide(user_list, _xml("4.1.1", sr="4.1", originator=MDR, target=ESME))
    assert to_meter.code == "E19"  # authorised for the meter; it is not behind this front


# --- the DCC's order of the validation codes ------------------------------------------------


@pytest.mark.parametrize(
    "fields, endpoint, hubs, seen, code",
    [
        (dict(sr="6.31", cv=2), "transform", (HUB2,), True, "E48"),  # also E12, E13, E19, E55
        (dict(cv=5), "send", (HUB2,), True, "E13"),  # also E12, E19, E55
        (dict(cv=2, body="<sr:ReadCHFSubGHzChannel/>"), None, (HUB2,), True, "E12"),  # also E49, E19, E55
        (dict(body="<sr:ReadCHFSubGHzChannel/>"), None, (HUB2,), True, "E49"),  # also E19, E55
        (dict(), None, (HUB2,), True, "E55"),  # also E19
        (dict(srv="4.1.1", sr="4.1"), None, (HUB2,), False, "E19"),  # also E11
    ],
)
def test_the_first_failing_validation_code_wins(user_list, fields, endpoint, hubs, seen, code):
    xml = _xml(**fields)
    in_process = {parse_request(xml).request_id} if seen else set()
    assert _decide(user_list, xml, endpoint=endpoint, hubs=hubs, seen=in_process).code == code


def test_request_types_and_their_urls(user_list):
    read = parse_request(_xml())
    activate = parse_request(_activate())
    inventory = parse_request(_xml("8.2", cv=8))
    assert [checks.request_type(r) for r in (read, activate, inventory)] == ["send", "transform", "non-device"]
    for req in (read, activate, inventory):
        for endpoint in checks.ENDPOINTS:
            code, message = checks.check_request(req, target_eui=HUB, endpoint=endpoint)
            if endpoint == checks.request_type(req):
                assert code is None, message
            else:
                assert code == "E13" and "sent to the {} URL".format(endpoint) in message
    # a duplicate non-device request is E55 too; the one endpoint of `dbch duis` refuses it (E13)
    seen = {inventory.request_id}
    assert checks.check_request(inventory, target_eui=HUB, in_process=seen, endpoint="non-device")[0] == "E55"
    assert checks.check_request(inventory, target_eui=HUB, in_process=set())[0] == "E13"
    with pytest.raises(ValueError, match="endpoint must be one of"):
        checks.check_request(read, target_eui=HUB, in_process=set(), endpoint="serviceX")


# --- authentication (E100) ------------------------------------------------------------------


def test_authenticate_takes_the_originators_own_signature(pki, user_list):
    mine = sign(_xml(), pki.user_key(SUPPLIER), pki.user(SUPPLIER).cert)
    assert users.authenticate(mine, user_list).eui == SUPPLIER
    # signed by another known User, but the RequestID names the supplier: E100
    theirs = sign(_xml(), pki.user_key(STRANGER), pki.user(STRANGER).cert)
    with pytest.raises(DuisSignatureError, match="not a trusted one"):
        users.authenticate(theirs, user_list)
    with pytest.raises(DuisSignatureError, match="no signing certificate for User ID " + DISTRIBUTOR):
        users.authenticate(
            sign(_xml(originator=DISTRIBUTOR), pki.user_key(DISTRIBUTOR), pki.user(DISTRIBUTOR).cert), user_list
        )
    with pytest.raises(DuisSignatureError, match="not signed"):
        users.authenticate(_xml(), user_list)
    with pytest.raises(DuisSignatureError) as info:
        users.authenticate(_xml(originator=UNKNOWN), user_list)
    assert info.value.response_code == "E100"


# --- the list file and the eligible users ---------------------------------------------------


def test_the_chf_services_have_eligible_users():
    for srv in ("6.28", "6.29", "6.30", "6.31", "6.32", "11.2", "11.3", "5.1"):
        assert ELIGIBLE[srv] and ELIGIBLE[srv] <= set(users.ROLES), srv
    assert "MDR" not in ELIGIBLE["6.28"] | ELIGIBLE["11.3"]


def test_the_list_file_is_read_relative_to_its_folder(pki, tmp_path):
    data = _list_json()
    data["eligible"] = {"6.29": ["ED"]}  # a corrected row: now the distributor may ask for a scan
    path = pki.dir / "users.json"
    path.write_text(json.dumps(data))
    loaded = load_users(path)
    assert loaded.path == path and loaded.get(SUPPLIER.lower()).certificate == pki.user(SUPPLIER).cert
    assert loaded.get(LEAVING).receive_url == "https://127.0.0.1:9/r"
    assert _decide(loaded, _xml("6.29", originator=DISTRIBUTOR)).ok
    assert _decide(loaded, _xml("6.29")).code == "E2"  # the IS is no longer eligible for it
    assert len(loaded.certificates()) == 2


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d["users"][0].update(roles=["IS", "XX"]), "unknown User Role XX"),
        (lambda d: d["users"][0].update(eui="not-an-eui"), "users[0] eui"),
        (lambda d: d["users"].append(dict(d["users"][0])), "listed twice"),
        (lambda d: d["users"][0].update(status="gone"), "status 'gone'"),
        (lambda d: d["users"][0].update(certificate="missing.pem"), "cannot read the certificate"),
        (
            lambda d: d["users"][0].update(
                devices={HUB: {"from": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}}
            ),
            "later than from",
        ),
        (lambda d: d["users"][0].update(receive_url="ftp://x"), "not an http(s) URL"),
        (lambda d: d["users"][0].update(colour="blue"), "unknown item colour"),
        (lambda d: d.update(inventory={HUB: "Lost"}), "SMI status 'Lost'"),
        (lambda d: d.pop("users"), '"users" list'),
    ],
)
def test_a_bad_list_says_what_is_wrong(pki, change, words):
    data = _list_json()
    change(data)
    with pytest.raises(DuisUsersError, match=re.escape(words)):
        users_from_json(data, pki.dir)


def test_an_unreadable_list_file(tmp_path):
    with pytest.raises(DuisUsersError, match="cannot read the User list"):
        load_users(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DuisUsersError, match="is not JSON"):
        load_users(tmp_path / "bad.json")


def test_create_schedule_is_judged_by_the_service_it_schedules(user_list):
    schedule = _xml("8.2", cv=8)  # any non-device request shape; the SRV is what is judged
    req = parse_request(schedule)
    req.service_reference, req.service_reference_variant = "5.1", "5.1"
    assert users.authorise(req, user_list, at=NOW).ok  # IS may create schedules
    assert users.authorise(req, user_list, at=NOW, scheduled="4.2").code == "E2"  # 4.2: ES, ED, MDR only

"""A hub in the field comes up on the triage link by itself: once enrolled (the triage.set
request: the Triage Tool's address and the hub's certificates, kept in its Store), the flashed
agent dials its Triage Tool beside its console, on the virtual board (MicroPython, mbedTLS) and
under CPython, and dials again after a reboot; triage.clear hangs up for good."""

from __future__ import annotations

import time

import pytest

from host_tools.pytest_plugin import DEFAULT_EUI, Target, _Proc, _unique
from host_tools.security.pki import Pki

TOOL = "triage.enrol.test"


@pytest.fixture(scope="module")
def facility(tmp_path_factory):
    base = tmp_path_factory.mktemp("enrol")
    pki = Pki(base / "pki")
    pki.init_ca()
    pki.issue_tool(TOOL)
    devices = {DEFAULT_EUI: pki.issue_device(DEFAULT_EUI)}  # the fixtures' hubs
    name = _unique("enrol")
    argv = ["triage", "serve", "--pki", str(pki.dir), "--tool", TOOL, "--listen", "127.0.0.1:0", "--name", name]
    serve = _Proc([*argv, "--json"], base / "serve.log")
    try:
        listen = serve.first_line(20.0)["listen"]
        host, port = listen.rsplit(":", 1)
        yield {"pki": pki, "name": name, "host": host, "port": int(port), "log": base / "serve.log", "devices": devices}
    finally:
        serve.stop()


def _enrolment(facility, eui: str) -> dict:
    pki = facility["pki"]
    dev = facility["devices"][eui]
    return {
        "host": facility["host"],
        "port": facility["port"],
        "cert": dev.cert_der.read_bytes(),
        "key": dev.key_der.read_bytes(),
        "ca": pki.ca().cert_der.read_bytes(),
        "peer": TOOL,
        "timeout": 10,
    }


def _on_the_link(facility, eui: str, after_boot: int, wait: float = 60.0) -> dict:
    """The hello of the hub on the Triage Tool's link once it comes from a boot after `after_boot`."""
    target = Target("triage", f"triage:{facility['name']}", "", eui, facility["name"])
    deadline = time.monotonic() + wait
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            r = target.request("hello", timeout=3.0)
            if r.ok and r.data["eui"] == eui and r.data["boot"] > after_boot:
                return r.data
        except Exception as e:  # not connected yet: the tool has no link for it
            last = e
        time.sleep(0.5)
    raise AssertionError(f"the hub never came up on the triage link: {last}\n{facility['log'].read_text()[-1500:]}")


@pytest.fixture(params=["vboard", "sim"])
def hub(request):
    return request.getfixturevalue("dbch_vboard" if request.param == "vboard" else "dbch_sim_agent")


def test_an_enrolled_hub_dials_its_triage_tool_by_itself_and_again_after_a_reboot(hub, facility):
    boot = hub.request("hello").data["boot"]
    assert hub.request("triage.status").data == {"enrolled": False, "up": False}
    r = hub.request("triage.set", _enrolment(facility, hub.eui), timeout=30.0)
    assert r.ok, (r.rc, r.err)
    hello = _on_the_link(facility, hub.eui, boot - 1)
    assert hello["boot"] == boot
    status = hub.request("triage.status").data  # the console still serves while the link is up
    assert status["enrolled"] and status["up"], status
    assert status["tool"] == f"{facility['host']}:{facility['port']}"
    # the configuration is kept: after a reboot the hub dials again without being asked
    hub.request("reboot")
    hello = _on_the_link(facility, hub.eui, boot)
    assert hello["boot"] > boot
    # cleared: the link goes and stays gone
    r = hub.request("triage.clear", timeout=15.0)
    assert r.ok and r.data == {"enrolled": False}
    assert hub.request("triage.status").data == {"enrolled": False, "up": False}


def test_a_configuration_the_policy_refuses_is_not_stored(dbch_sim_agent, facility):
    bad = _enrolment(facility, dbch_sim_agent.eui)
    del bad["key"]
    r = dbch_sim_agent.request("triage.set", bad)
    assert r.rc == "E49" and "key" in r.err
    r = dbch_sim_agent.request("triage.set", dict(_enrolment(facility, dbch_sim_agent.eui), port=0))
    assert r.rc == "E49" and "port" in r.err
    r = dbch_sim_agent.request("triage.set", dict(_enrolment(facility, dbch_sim_agent.eui), ca=b"not a certificate"))
    assert r.rc == "E49" and "CA certificate" in r.err
    assert dbch_sim_agent.request("triage.status").data == {"enrolled": False, "up": False}

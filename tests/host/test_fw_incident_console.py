"""Recording a security incident must never stop a refusal from being answered: when the hub's
recorder cannot take the event, the refusal still goes out with its code, and the board's console
says why the incident was not recorded (a line only the console shows, so CPython captures it)."""

from __future__ import annotations

from agent.incidents import Incidents
from tests.kits.fwkit import Device, Image


def test_a_recorder_that_cannot_take_the_event_leaves_the_refusal_answered_and_says_why(capsys):
    dev = Device()
    # a recorder whose thresholds cannot be read or written (damaged): recording the tampered
    # image fails inside agent.fw_install.security
    inc = Incidents(notify=lambda report: True)
    inc.thresholds = ()
    dev.hub.incidents = inc
    img = Image("2.0")
    twin = Image("2.0", tag="twin")  # the same length, other bytes
    assert dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig)[0] == "I0"
    assert dev.call("fw.chunk", offset=0, data=twin.content)[0] == "I0"
    rc, _data, err = dev.call("fw.end")
    assert (rc, err) == ("E100", "tampered image: its content does not hash to the signed FirmwareHash")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("firmware:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("firmware: incident not recorded: ")
    assert "item assignment" in lines[0]  # and the error itself

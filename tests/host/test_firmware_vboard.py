"""Firmware update end to end on a virtual board: flash with a signing key, `dbch firmware send`
(the Python API; resumed as a deflate stream against the image the board runs), DUIS 11.3 ActivateFirmware through the DUIS front, the reboot into the new
version (hello reports it), N64 upward as schema-valid DUIS XML; then a broken image (its agent
raises at import) that the bootloader reverts, so the board comes back on the old version.

The board lives under a private XDG_CACHE_HOME, is called "fwtest", and is stopped at the end.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("serial")
pytest.importorskip("mpremote")

from agent import fw_image as image  # noqa: E402
from agent.eui import parse_eui  # noqa: E402
from host_tools.duis.alerts import render_alert  # noqa: E402
from host_tools.duis.compose import request_xml  # noqa: E402
from host_tools.duis.front import answer  # noqa: E402
from host_tools.duis.responses import payload_data  # noqa: E402
from host_tools.duis.schema import ENV_SCHEMA_DIR, validate  # noqa: E402
from host_tools.firmware import flash, image_build, sign, stage  # noqa: E402
from host_tools.firmware.build import mpy_cross_binary  # noqa: E402
from host_tools.link.client import AgentClient, LinkError  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.security.pki import Pki  # noqa: E402
from host_tools.servers import vboard  # noqa: E402

NAME = "fwtest"
EUI = "00-DB-12-34-56-78-90-B7"
ORIGINATOR = "90-B3-D5-1F-30-01-00-00"


@pytest.fixture(scope="module")
def board(tmp_path_factory, duis_schema_dir):
    root = tmp_path_factory.mktemp("fwcache")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(root))
    mp.setenv(ENV_SCHEMA_DIR, str(duis_schema_dir))
    pki = Pki(root / "pki")
    pki.make_signing_key()
    key = pki.signing_key()
    try:
        info = vboard.ensure_running(NAME)
        res = flash.flash(info.port, "unix", eui=parse_eui(EUI), signing_key=sign.public_point(key), version="1.0.0")
        assert res.hello["version"] == "1.0.0" and res.signing_key
        transport = SerialTransport(info.port)
        client = AgentClient(transport, timeout=5.0, port=info.port)
        yield info, client, key
        transport.close()
    finally:
        vboard.stop(NAME)
        mp.undo()


def wait_version(client: AgentClient, version: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = client.request("hello", timeout=1.0)
            last = r.data
            if r.ok and r.data["version"] == version:
                return r.data
        except LinkError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the board did not come up with version {version} (last hello {last})")


def signed(content: bytes, key) -> bytes:
    return content + image.trailer(sign.sign_content(content, key))


def broken_content(version: str, tmp: Path) -> bytes:
    """An image whose agent raises at import (agent/run.mpy replaced)."""
    src = tmp / "run.py"
    src.write_text("raise ImportError('this image is broken on purpose')\n")
    out = tmp / "run.mpy"
    subprocess.run([mpy_cross_binary(), "-o", str(out), "-s", "agent.run", str(src)], check=True)
    files = [(c.target, c.data) for c in image_build.build_image("unix")]
    files = [(p, out.read_bytes() if p == "agent/run.mpy" else d) for p, d in files]
    return image.build(version, "unix", files)


def test_update_by_duis_then_a_broken_image_is_reverted(board, tmp_path, duis_schema_dir):
    info, client, key = board
    new = signed(image_build.build_content("unix", "1.1.0"), key)
    digest = hashlib.sha256(image.split(new)[0]).digest()

    # staging, in pieces and with a resume: stop half way, send again
    content, sig = image.split(new)
    r = client.request("fw.begin", {"hash": digest, "size": len(content), "sig": sig})
    assert r.ok and r.data["offset"] == 0
    step = r.data["chunk"]  # what this board takes in one fw.chunk
    assert client.request("fw.chunk", {"offset": 0, "data": content[:step]}).ok
    assert client.request("fw.chunk", {"offset": step, "data": content[step : 2 * step + 1]}).rc == "E49"
    assert client.request("fw.chunk", {"offset": 10, "data": content[10:100]}).rc == "E49"
    # the rest as a deflate stream against the image the board runs (what dbch flash put in slot
    # A): the board puts each module of its own copy in the window first
    running = image.build("1.0.0", "unix", [(c.target, c.data) for c in image_build.build_image("unix")])
    sent = stage.send(client, new, base=running)
    assert sent["version"] == "1.1.0" and sent["slot"] == "b" and sent["hash"] == digest
    assert sent["sent"] == len(content) - step  # resumed at the persisted offset
    assert sent["wbits"] and sent["against"] and not sent.get("fallback"), sent
    assert sent["stream"] < sent["sent"] // 10  # the same modules: little but references
    st = client.request("fw.status").data
    assert st["slots"]["b"] == {"version": "1.1.0", "hash": digest.hex()} and st["version"] == "1.0.0"

    # a hash that matches no staged image: through DUIS, GBCS's outcome (the image held is another)
    # in an I0 Service Response; nothing changes
    xml = request_xml("11.3", target_eui=EUI, originator_eui=ORIGINATOR, counter=7001, args={"hash": b"\x42" * 32})
    rc, out, warnings = answer(client, xml, str(duis_schema_dir))
    assert rc == "I0" and any("no staged and verified image" in w for w in warnings)
    assert payload_data(out)["activateImageResponseCode"] == "hashMismatch"
    assert validate(out, duis_schema_dir) == []

    # DUIS 11.3 ActivateFirmware, immediate: I0, the board reboots into 1.1.0 on trial
    xml = request_xml("11.3", target_eui=EUI, originator_eui=ORIGINATOR, counter=7002, args={"hash": digest})
    rc, out, _w = answer(client, xml, str(duis_schema_dir))
    assert rc == "I0"
    assert validate(out, duis_schema_dir) == []
    hello = wait_version(client, "1.1.0")
    assert hello["eui"] == EUI

    # N64 once the trial is confirmed, rendered as a schema-valid DUIS alert
    assert client.hello(events=True).ok
    n64 = None
    for ev in client.poll_events(15.0):
        client.ack(ev.seq)
        if ev.kind == "N64":
            n64 = ev
            break
    assert n64 is not None, "no N64 arrived"
    assert n64.data["FirmwareVersion"] == "1.1.0" and n64.data["DeviceID"] == EUI
    xml = render_alert("N64", n64.data)
    assert validate(xml, duis_schema_dir) == []
    assert b"<sr:DCCAlertCode>N64</sr:DCCAlertCode>" in xml
    st = client.request("fw.status").data
    assert (st["slot"], st["trial"], st["last"]["result"]) == ("b", False, "activated")

    # a broken image: it goes into slot a, boots on trial, crashes at import three times and
    # the bootloader goes back to 1.1.0, which reports the outcome
    bad = signed(broken_content("1.2.0", tmp_path), key)
    sent = stage.send(client, bad)
    assert sent["slot"] == "a"
    r = client.request("fw.activate", {"hash": sent["hash"], "execution": None})
    assert r.ok and r.data["reboot"]
    time.sleep(1.0)
    hello = wait_version(client, "1.1.0")
    st = client.request("fw.status").data
    assert (st["slot"], st["trial"]) == ("b", False)
    assert st["last"]["result"] == "reverted" and st["last"]["version"] == "1.2.0"
    assert st["boot"]["reverted"]["slot"] == "a"
    assert client.hello(events=True).ok
    kinds = []
    for ev in client.poll_events(3.0):
        client.ack(ev.seq)
        kinds.append((ev.kind, ev.data))
        if ev.kind == "firmware":
            break
    assert ("firmware", "reverted") in [(k, d.get("result")) for k, d in kinds]
    assert "N64" not in [k for k, _d in kinds]

"""Anti-rollback end to end on a virtual board, through the `dbch firmware` commands: a board
flashed with 0.1.0 takes a signed 0.2.0 (send, activate, trial, confirmed); then a properly
signed 0.0.1 is refused with E5 as soon as its header is in, the 0.1.0 still in the other slot is
refused at activation with E5, and the refusals come up as a security incident; with a rollback
permission for this hub and that image (`dbch firmware permit-rollback`) the board goes back to
0.1.0 on purpose, and its minimum stays where 0.2.0 put it.

The board lives under a private XDG_CACHE_HOME, is called "fwdown", and is stopped at the end.
"""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("serial")
pytest.importorskip("mpremote")

from agent.eui import parse_eui  # noqa: E402
from host_tools.cli import main  # noqa: E402
from host_tools.firmware import flash, sign  # noqa: E402
from host_tools.link.client import AgentClient, LinkError  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.security.pki import Pki  # noqa: E402
from host_tools.servers import vboard  # noqa: E402

NAME = "fwdown"
EUI = "00-DB-12-34-56-78-90-B9"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("fwdown")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(root))
    pki = Pki(root / "pki")
    pki.make_signing_key()
    key = pki.signing_key()
    key_file = pki.signing_dir / "key.pem"
    assert key_file.exists()
    try:
        info = vboard.ensure_running(NAME)
        res = flash.flash(info.port, "unix", eui=parse_eui(EUI), signing_key=sign.public_point(key), version="0.1.0")
        assert res.hello["version"] == "0.1.0" and res.signing_key
        yield info.port, key_file, root
    finally:
        vboard.stop(NAME)
        mp.undo()


def dbch(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def status(port: str, capsys) -> dict:
    rc, out, err = dbch(capsys, "firmware", "status", "--port", port, "--json")
    assert rc == 0, err
    return json.loads(out)


def confirmed(port: str, version: str, capsys, timeout: float = 40.0) -> dict:
    # the board back on version, its trial confirmed
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = status(port, capsys)
            if last["version"] == version and not last["trial"]:
                return last
        except (AssertionError, LinkError, ValueError):
            pass  # rebooting
        time.sleep(0.3)
    raise AssertionError(f"the board did not confirm {version} (last status {last})")


def test_a_signed_older_image_is_refused_and_a_permitted_rollback_is_not(board, capsys):
    port, key, tmp = board
    new, old = tmp / "new.img", tmp / "old.img"
    assert dbch(capsys, "firmware", "build", "--version", "0.2.0", "--key", str(key), "--out", str(new))[0] == 0
    assert dbch(capsys, "firmware", "build", "--version", "0.0.1", "--key", str(key), "--out", str(old))[0] == 0

    st = status(port, capsys)
    assert (st["version"], st["sec"], st["min"]) == ("0.1.0", 1000, 1000)
    first_hash = st["slots"]["a"]["hash"]

    # 0.2.0: staged, activated, confirmed; the minimum goes up to it
    rc, out, err = dbch(capsys, "firmware", "send", str(new), "--port", port, "--quiet", "--json")
    assert rc == 0, err
    assert json.loads(out)["slot"] == "b"
    rc, _out, err = dbch(capsys, "firmware", "activate", str(new), "--port", port)
    assert rc == 0, err
    st = confirmed(port, "0.2.0", capsys)
    assert (st["slot"], st["sec"], st["min"]) == ("b", 2000, 2000)

    # a properly signed 0.0.1: refused once its header is in, nothing staged
    rc, _out, err = dbch(capsys, "firmware", "send", str(old), "--port", port, "--quiet")
    assert rc == 1
    assert "fw.chunk refused: E5" in err and "security counter 1, below this hub's minimum 2000" in err, err
    st = status(port, capsys)
    assert st["staging"] is None and st["slots"]["a"]["hash"] == first_hash

    # the 0.1.0 still in slot a: refused at activation
    rc, _out, err = dbch(capsys, "firmware", "activate", first_hash, "--port", port)
    assert rc == 1 and "fw.activate refused: E5" in err and "minimum 2000" in err, err
    assert status(port, capsys)["version"] == "0.2.0"

    # the refusals are a security incident, notified upward
    transport = SerialTransport(port)
    try:
        client = AgentClient(transport, timeout=5.0, port=port)
        assert client.hello(events=True).ok
        incidents = []
        for ev in client.poll_events(3.0):
            client.ack(ev.seq)
            if ev.kind == "incident":
                incidents.append(ev.data)
        assert [d["trigger"] for d in incidents] == ["image_rollback"], incidents
    finally:
        transport.close()

    # on purpose: a permission for this hub and that image, signed with the firmware key
    permit = tmp / "back.permit"
    rc, _out, err = dbch(
        capsys, "firmware", "permit-rollback", first_hash, "--eui", EUI, "--key", str(key), "--out", str(permit)
    )
    assert rc == 0, err
    tampered = tmp / "tampered.permit"
    raw = bytearray(permit.read_bytes())
    raw[-2] ^= 1
    tampered.write_bytes(bytes(raw))
    rc, _out, err = dbch(capsys, "firmware", "activate", first_hash, "--port", port, "--permit", str(tampered))
    assert rc == 1 and "E100" in err, err
    rc, _out, err = dbch(capsys, "firmware", "activate", first_hash, "--port", port, "--permit", str(permit))
    assert rc == 0, err
    st = confirmed(port, "0.1.0", capsys)
    assert (st["slot"], st["sec"], st["min"]) == ("a", 1000, 2000)  # the minimum does not go down
    rc, _out, err = dbch(capsys, "firmware", "send", str(old), "--port", port, "--quiet")
    assert rc == 1 and "E5" in err

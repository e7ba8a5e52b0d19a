"""IPsec for the Triage System Interface (host_tools/security/ipsec/) with real strongSwan: two network
namespaces joined by a veth pair, one charon in each (kernel-libipsec, UDP encapsulation), IKEv2
with certificates both ways and AES-GCM, checked through vici; then TCP through the tunnel.

Needs root, `ip netns`, /dev/net/tun, strongSwan (scripts/setup-system) and the vici package."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.triage import PolicyError
from host_tools.security.ipsec import IpsecError
from host_tools.security.ipsec.charon import strongswan_conf
from host_tools.security.ipsec.connection import IpsecConnection
from host_tools.security.pki import Pki
from tests.kits import ipseckit
from tests.kits.ipseckit import EUI, INNER_A, INNER_B, OUTER_A, OUTER_B, TOOL

_REASON = ipseckit.unavailable()
needs_ipsec = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("ipsec-pki")
    good = Pki(base / "good")
    good.init_ca()
    rogue = Pki(base / "rogue")
    rogue.init_ca("rogue CA")
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "ca": str(good.ca().cert_pem),
        "hub": good.issue_device(EUI),
        "tool": good.issue_tool(TOOL),
        "tool_other": good.issue_tool("triage-2"),
        "tool_rogue": rogue.issue_tool(TOOL),
        "tool_expired": good.issue_tool(
            TOOL, label="expired", not_before=now - dt.timedelta(days=9), not_after=now - dt.timedelta(days=1)
        ),
    }


@pytest.fixture
def netpair():
    """Two namespaces joined by a veth pair; deleted afterwards, whatever happened."""
    with ipseckit.netpair() as pair:
        yield pair


@pytest.fixture
def charons(netpair, tmp_path):
    """One private charon per namespace; both stopped afterwards, whatever happened."""
    with ipseckit.charons(netpair, tmp_path) as started:
        yield started


def hub_conn(pki, **cfg_changes):
    cfg = {
        "mode": "ipsec",
        "cert": str(pki["hub"].cert_pem),
        "key": str(pki["hub"].key_pem),
        "ca": pki["ca"],
        "remote_id": TOOL,
    }
    cfg.update(cfg_changes)
    return IpsecConnection(cfg, [OUTER_A], [OUTER_B], [f"{INNER_A}/32"], [f"{INNER_B}/32"])


def tool_conn(pki, who="tool", local_id=None):
    cfg = {
        "mode": "ipsec",
        "cert": str(pki[who].cert_pem),
        "key": str(pki[who].key_pem),
        "ca": pki["ca"],
        "remote_id": EUI,
    }
    return IpsecConnection(cfg, [OUTER_B], [OUTER_A], [f"{INNER_B}/32"], [f"{INNER_A}/32"], local_id=local_id)


ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000))
s.listen(1)
s.settimeout(20)
print("READY", flush=True)
c, peer = s.accept()
c.settimeout(10)
data = c.recv(1024)
c.sendall(b"echo:" + data + b" from " + peer[0].encode())
c.close()
"""

ECHO_CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 7000), timeout=5)
except OSError as e:
    print("CONNECT-FAILED", e)
    sys.exit(0)
c.sendall(b"triage bytes")
print(c.recv(1024).decode())
"""


def tcp_exchange(ns_server: str, ns_client: str, server_addr: str) -> str:
    srv = subprocess.Popen(
        ["ip", "netns", "exec", ns_server, sys.executable, "-c", ECHO_SERVER, server_addr],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert srv.stdout.readline().strip() == "READY", srv.stderr.read()
        r = subprocess.run(
            ["ip", "netns", "exec", ns_client, sys.executable, "-c", ECHO_CLIENT, server_addr],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return r.stdout.strip() + r.stderr.strip()
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.communicate(timeout=10)


@needs_ipsec
def test_tunnel_up_with_aead_and_tcp_flows_through_it(pki, netpair, charons):
    ns_a, ns_b = netpair
    charon_a, charon_b = charons
    # B (the triage tool) loads its side the way an operator would: swanctl --load-all from the
    # SWANCTL_DIR this module writes. A (the hub gateway) loads and initiates over vici.
    tool_conn(pki).write_swanctl_dir(charon_b.swanctl_dir)
    r = charon_b.swanctl("--load-all", "--noprompt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "loaded connection 'triage'" in r.stdout
    # before the tunnel: the inner address is unreachable
    assert "CONNECT-FAILED" in tcp_exchange(ns_b, ns_a, INNER_B)

    hub = hub_conn(pki)
    sa = charon_a.session()
    st = hub.up(sa, timeout=20)
    assert st.installed and st.aead
    assert (st.protocol, st.encr_alg, st.encr_keysize) == ("ESP", "AES_GCM_16", "256")
    assert st.encap is True
    assert st.local_ts == [f"{INNER_A}/32"] and st.remote_ts == [f"{INNER_B}/32"]
    assert st.remote_id == TOOL
    ike = st.raw
    assert ike["version"] == b"2"
    assert ike["encr-alg"] == b"AES_GCM_16" and ike["prf-alg"] == b"PRF_HMAC_SHA2_384"
    assert ike["dh-group"] == b"ECP_256"

    sb = charon_b.session()
    other = tool_conn(pki).status(sb)
    assert other is not None and other.installed and other.remote_id == EUI

    reply = tcp_exchange(ns_b, ns_a, INNER_B)
    assert reply == f"echo:triage bytes from {INNER_A}", reply
    after = hub.status(sa)
    assert after.bytes_out > 0 and after.bytes_in > 0, after

    hub.down(sa)
    assert hub.status(sa) is None
    assert other is not None and tool_conn(pki).status(sb) is None  # the peer saw the delete
    assert "CONNECT-FAILED" in tcp_exchange(ns_b, ns_a, INNER_B)
    assert b"triage" not in b" ".join(sa.get_conns()["conns"])


@needs_ipsec
@pytest.mark.parametrize(
    "who,local_id,hub_log",
    [
        ("tool_rogue", None, "no trusted ECDSA public key found for 'triage-1'"),
        ("tool_expired", None, "subject certificate invalid"),
        # a valid triage-2 certificate whose owner claims to be triage-1
        ("tool_other", TOOL, "no trusted ECDSA public key found for 'triage-1'"),
        # triage-2 answering as itself: the hub asked for triage-1, the responder has no such config
        ("tool_other", None, "received AUTHENTICATION_FAILED notify error"),
    ],
    ids=["other-ca", "expired", "impostor-identity", "other-identity"],
)
def test_bad_peer_gets_no_sa(pki, netpair, charons, who, local_id, hub_log):
    ns_a, ns_b = netpair
    charon_a, charon_b = charons
    sb = charon_b.session()
    bad = tool_conn(pki, who, local_id)
    bad.load(sb)
    hub = hub_conn(pki)
    sa = charon_a.session()
    hub.load(sa)
    with pytest.raises(IpsecError, match="initiating triage failed"):
        hub.initiate(sa, timeout=10)
    assert hub.status(sa) is None
    # A responder that authenticated the hub installs its child SA before the hub's verdict on the
    # responder's own certificate reaches it (the AUTHENTICATION_FAILED notify or the delete): on a
    # loaded machine it may still be listed for a moment. It must be gone, and soon.
    deadline = time.monotonic() + 10
    while bad.status(sb) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bad.status(sb) is None
    assert hub_log in charon_a.log.read_text()
    assert "CONNECT-FAILED" in tcp_exchange(ns_b, ns_a, INNER_B)


@needs_ipsec
def test_the_responder_refuses_a_hub_from_another_ca(pki, netpair, charons, tmp_path):
    charon_a, charon_b = charons
    rogue = Pki(tmp_path / "rogue-hub")
    rogue.init_ca("rogue hub CA")
    fake = rogue.issue_device(EUI)
    tool = tool_conn(pki)
    tool.load(charon_b.session())
    hub = hub_conn(pki, cert=str(fake.cert_pem), key=str(fake.key_pem))
    sa = charon_a.session()
    hub.load(sa)
    with pytest.raises(IpsecError):
        hub.initiate(sa, timeout=10)
    assert tool.status(charon_b.session()) is None
    assert "authentication of '00-1B-C5-0C-00-00-12-34'" in charon_b.log.read_text() or "no trusted" in (
        charon_b.log.read_text()
    )


# --- configuration (no root needed) ----------------------------------------------------------


def test_config_text_and_message(pki, tmp_path):
    c = hub_conn(pki)
    assert c.local_id == EUI  # from the certificate's dNSName
    text = c.swanctl_conf()
    for line in (
        "version = 2",
        "encap = yes",
        "proposals = aes256gcm16-prfsha384-ecp256",
        "esp_proposals = aes256gcm16-ecp256",
        "auth = pubkey",
        f"id = {TOOL}",
        f"remote_addrs = {OUTER_B}",
        f"remote_ts = {INNER_B}/32",
    ):
        assert line in text, line
    msg = c.conn_message()["triage"]
    assert msg["version"] == "2" and msg["encap"] == "yes"
    assert msg["local"]["auth"] == "pubkey" and msg["remote"]["auth"] == "pubkey"
    assert msg["remote"]["cacerts"] == [Path(pki["ca"]).read_bytes()]
    assert msg["children"]["triage"]["esp_proposals"] == ["aes256gcm16-ecp256"]
    d = c.write_swanctl_dir(tmp_path / "swanctl")
    assert (d / "swanctl.conf").read_text() == text
    assert (d / "private" / "triage.key.pem").stat().st_mode & 0o077 == 0
    assert (d / "x509ca" / "triage-ca.crt.pem").read_bytes() == Path(pki["ca"]).read_bytes()


def test_from_pki_store(tmp_path):
    store = Pki(tmp_path / "store")
    store.init_ca()
    store.issue_device(EUI)
    store.issue_tool(TOOL)
    hub = IpsecConnection.from_pki(
        store, "001bc50c00001234", TOOL, [OUTER_A], [OUTER_B], ["10.99.1.1/32"], ["10.99.2.1/32"], name="t1"
    )
    assert hub.local_id == EUI and hub.remote_id == TOOL and hub.name == "t1"
    assert hub.cfg["cert"].endswith(f"devices/{EUI}/cert.pem")
    tool = IpsecConnection.from_pki(
        store, TOOL, EUI, [OUTER_B], [OUTER_A], ["10.99.2.1/32"], ["10.99.1.1/32"], esp_proposals=["aes128gcm16"]
    )
    assert tool.local_id == TOOL and tool.cfg["esp_proposals"] == ["aes128gcm16"]
    with pytest.raises(PolicyError):
        IpsecConnection.from_pki(store, TOOL, EUI, [], [], [], [], esp_proposals=["aes128-sha1"])


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"ike_version": 1}, "ike_version"),
        ({"local_auth": "psk"}, "local_auth"),
        ({"esp_proposals": ["aes256-sha256"]}, "esp_proposals"),
        ({"ike_proposals": ["aes256-sha256-modp2048"]}, "ike_proposals"),
        ({"mode": "plain"}, "mode"),
        ({"remote_id": ""}, "remote_id"),
    ],
)
def test_policy_refuses_before_anything_is_written(pki, changes, field):
    with pytest.raises(PolicyError) as ei:
        hub_conn(pki, **changes)
    assert ei.value.field == field


def test_missing_files_are_clear(pki, tmp_path):
    with pytest.raises(IpsecError, match="does not exist"):
        hub_conn(pki, key=str(tmp_path / "nope.pem"))


def test_strongswan_conf_loads_libipsec_before_netlink(tmp_path):
    text = strongswan_conf(tmp_path / "s.vici", tmp_path / "log")
    load = next(line for line in text.splitlines() if line.strip().startswith("load = random"))
    assert load.index("kernel-libipsec") < load.index("kernel-netlink")
    assert f"socket = unix://{tmp_path / 's.vici'}" in text

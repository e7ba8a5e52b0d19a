"""host_tools/security/pki.py and `dbch pki`: the development CA, hub and triage tool certificates, the
firmware signing key; checked with `cryptography` and, where present, `openssl verify`."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from host_tools import cli
from host_tools.security import pki
from host_tools.security.pki import Pki, PkiError

EUI = "00-1B-C5-0C-00-00-12-34"
OPENSSL = shutil.which("openssl")


@pytest.fixture
def store(tmp_path):
    p = Pki(tmp_path / "pki")
    p.init_ca()
    return p


def load_cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert) -> list[str]:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    "text", ["00-1B-C5-0C-00-00-12-34", "001BC50C00001234", "00:1b:c5:0c:00:00:12:34", "001b.c50c.0000.1234"]
)
def test_eui_spellings(text):
    assert pki.normalize_eui(text) == EUI


@pytest.mark.parametrize("text", ["", "00-1B-C5-0C-00-00-12", "00-1B-C5-0C-00-00-12-34-56", "ZZ1BC50C00001234", None])
def test_bad_eui(text):
    with pytest.raises(PkiError, match="EUI-64"):
        pki.normalize_eui(text)


@pytest.mark.parametrize("name", ["", "-tool", "tool-", "a b", "tool/../x", "x" * 65, "a..b", "tööl"])
def test_bad_tool_names(name):
    with pytest.raises(PkiError, match="tool name"):
        pki.check_tool_name(name)


def test_ca(store):
    ca = store.ca()
    cert = ca.cert
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)
    assert x509.load_der_x509_certificate(ca.cert_der.read_bytes()) == cert
    assert (ca.key_pem.stat().st_mode & 0o777) == 0o600
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= dt.timedelta(days=pki.DEFAULT_CA_DAYS)


def test_init_twice_needs_force(store):
    first = store.ca().summary()["sha256"]
    with pytest.raises(PkiError, match="already exists"):
        store.init_ca()
    store.init_ca(force=True)
    assert store.ca().summary()["sha256"] != first


def test_device_certificate(store):
    dev = store.issue_device("001bc50c00001234")
    cert = load_cert(dev.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == EUI
    assert sans(cert) == [EUI]
    assert dev.directory.name == EUI
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    cert.verify_directly_issued_by(store.ca().cert)
    # DER and PEM are the same certificate and key; the key belongs to the certificate
    assert x509.load_der_x509_certificate(dev.cert_der.read_bytes()) == cert
    key_der = serialization.load_der_private_key(dev.key_der.read_bytes(), None)
    key_pem = serialization.load_pem_private_key(dev.key_pem.read_bytes(), None)
    assert key_der.private_numbers() == key_pem.private_numbers()
    assert key_der.public_key().public_numbers() == cert.public_key().public_numbers()
    assert (dev.key_der.stat().st_mode & 0o777) == 0o600
    assert dev.key_der.read_bytes()[:3] == b"\x30\x81\x87"  # PKCS#8, as mbedTLS and OpenSSL take it


def test_tool_certificate(store):
    tool = store.issue_tool("triage-1")
    cert = load_cert(tool.cert_pem)
    assert sans(cert) == ["triage-1"]
    assert store.tool("triage-1").cert == cert
    with pytest.raises(PkiError, match="exists"):
        store.issue_tool("triage-1")
    again = store.issue_tool("triage-1", force=True)
    assert again.cert != cert


def test_validity_options(store):
    now = dt.datetime.now(dt.timezone.utc)
    short = store.issue_device(EUI, days=3).cert
    assert short.not_valid_after_utc - short.not_valid_before_utc == dt.timedelta(days=3)
    assert short.not_valid_before_utc <= now
    expired = store.issue_device(EUI, label="old", not_after=now - dt.timedelta(days=1)).cert
    assert expired.not_valid_after_utc < now
    future = store.issue_device(EUI, label="new", not_before=now + dt.timedelta(days=2), days=5).cert
    assert future.not_valid_before_utc > now
    assert future.not_valid_after_utc - future.not_valid_before_utc == dt.timedelta(days=5)
    naive = store.issue_tool("t", not_before="2030-01-01", not_after="2031-01-01T12:00").cert
    assert naive.not_valid_before_utc == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert naive.not_valid_after_utc == dt.datetime(2031, 1, 1, 12, tzinfo=dt.timezone.utc)
    summary = {i["label"]: i["status"] for i in store.show()["devices"]}
    assert summary == {EUI: "valid", "old": "expired", "new": "not yet valid"}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"not_before": "2030-01-02", "not_after": "2030-01-01"}, "later than"),
        ({"not_before": "yesterday"}, "ISO 8601"),
        ({"days": 0}, "at least 1"),
    ],
)
def test_bad_validity(store, kwargs, match):
    with pytest.raises(PkiError, match=match):
        store.issue_device(EUI, **kwargs)


def test_certificates_from_another_ca(store, tmp_path):
    other = Pki(tmp_path / "other")
    other.init_ca("other CA")
    foreign = other.issue_device(EUI).cert
    assert foreign.issuer != store.ca().cert.subject
    with pytest.raises(ValueError):
        foreign.verify_directly_issued_by(store.ca().cert)
    # a copy of the foreign certificate in this store is flagged by show()
    store.issue_device(EUI)
    shutil.copy(other.device(EUI).cert_pem, store.device(EUI).cert_pem)
    assert store.show()["devices"][0]["issued_by_ca"] is False


def test_no_ca_says_what_to_do(tmp_path):
    empty = Pki(tmp_path / "empty")
    with pytest.raises(PkiError, match="dbch pki init"):
        empty.issue_device(EUI)
    with pytest.raises(PkiError, match="dbch pki signing-key"):
        empty.signing_key()
    assert empty.show()["ca"] is None


def test_signing_key(store):
    info = store.make_signing_key()
    point = (store.signing_dir / "pub.bin").read_bytes()
    assert len(point) == 65 and point[0] == 0x04
    assert info["public_point"] == point.hex()
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    pem_pub = serialization.load_pem_public_key((store.signing_dir / "pub.pem").read_bytes())
    assert pem_pub.public_numbers() == pub.public_numbers()
    assert serialization.load_der_public_key((store.signing_dir / "pub.der").read_bytes()) == pem_pub
    key = serialization.load_der_private_key((store.signing_dir / "key.der").read_bytes(), None)
    sig = key.sign(b"firmware image", ec.ECDSA(hashes.SHA256()))
    pub.verify(sig, b"firmware image", ec.ECDSA(hashes.SHA256()))
    assert ((store.signing_dir / "key.pem").stat().st_mode & 0o777) == 0o600
    with pytest.raises(PkiError, match="already exists"):
        store.make_signing_key()
    assert store.make_signing_key(force=True)["public_point"] != info["public_point"]


def test_default_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DBCH_PKI_DIR", str(tmp_path / "env"))
    assert pki.default_dir() == tmp_path / "env"
    monkeypatch.delenv("DBCH_PKI_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert pki.default_dir() == tmp_path / "xdg" / "dbch" / "pki"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pki.default_dir() == tmp_path / "home" / ".local" / "share" / "dbch" / "pki"


@pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")
def test_openssl_accepts_the_chain_for_both_purposes(store):
    ca = str(store.ca().cert_pem)
    for issued in (store.issue_device(EUI), store.issue_tool("triage-1")):
        for purpose in ("sslclient", "sslserver"):
            r = subprocess.run(
                [OPENSSL, "verify", "-CAfile", ca, "-purpose", purpose, str(issued.cert_pem)],
                capture_output=True,
                text=True,
            )
            assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def dbch(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("host_tools.cli.pki",))

    def run(*argv):
        rc = cli.main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_cli_flow(dbch, tmp_path):
    d = str(tmp_path / "cli")
    rc, out, err = dbch("pki", "device", EUI, "--dir", d)
    assert rc == 1 and "run `dbch pki init`" in err
    rc, out, _ = dbch("pki", "init", "--dir", d, "--json")
    assert rc == 0 and json.loads(out)["kind"] == "ca"
    rc, out, _ = dbch("pki", "device", "001bc50c00001234", "--dir", d, "--json", "--days", "30")
    dev = json.loads(out)
    assert rc == 0 and dev["subject_cn"] == EUI and dev["san_dns"] == [EUI] and dev["issued_by_ca"] is True
    assert dev["files"]["cert_der"].endswith(f"devices/{EUI}/cert.der")
    rc, out, _ = dbch("pki", "tool", "triage-1", "--dir", d)
    assert rc == 0 and "triage-1" in out
    rc, out, _ = dbch("pki", "tool", "triage-1", "--dir", d, "--not-after", "2000-01-01")
    assert rc == 1  # exists, no --force
    rc, out, _ = dbch("pki", "tool", "triage-1", "--dir", d, "--force", "--not-after", "2000-01-01", "--json")
    assert rc == 0 and json.loads(out)["status"] == "expired"
    rc, out, _ = dbch("pki", "signing-key", "--dir", d, "--json")
    assert rc == 0 and len(bytes.fromhex(json.loads(out)["public_point"])) == 65
    rc, out, _ = dbch("pki", "show", "--dir", d, "--json")
    shown = json.loads(out)
    assert [x["subject_cn"] for x in shown["devices"]] == [EUI]
    assert [x["status"] for x in shown["tools"]] == ["expired"]
    assert shown["signing_key"]["curve"] == "secp256r1"
    rc, out, _ = dbch("pki", "show", "--dir", d)
    assert rc == 0 and "PKI in" in out and EUI in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (("pki", "device", "not-an-eui"), "not an EUI-64"),
        (("pki", "tool", "bad name"), "bad triage tool name"),
        (("pki", "device", EUI, "--not-before", "soon"), "ISO 8601"),
    ],
)
def test_cli_errors(dbch, tmp_path, argv, message):
    d = str(tmp_path / "cli")
    assert dbch("pki", "init", "--dir", d)[0] == 0
    rc, out, err = dbch(*argv, "--dir", d)
    assert rc == 1 and message in err and err.startswith("dbch: ")


def test_cli_default_dir_from_environment(dbch, tmp_path, monkeypatch):
    monkeypatch.setenv("DBCH_PKI_DIR", str(tmp_path / "envdir"))
    assert dbch("pki", "init")[0] == 0
    assert (tmp_path / "envdir" / "ca" / "ca.crt.der").exists()
    rc, out, _ = dbch("pki", "show", "--json")
    assert json.loads(out)["dir"] == str(tmp_path / "envdir")


def test_cli_show_without_ca(dbch, tmp_path):
    rc, out, _ = dbch("pki", "show", "--dir", str(tmp_path / "none"))
    assert rc == 0 and "no CA yet: run `dbch pki init`" in out


def test_cli_bare_pki_prints_help(dbch):
    rc, out, _ = dbch("pki")
    assert rc == 2 and "signing-key" in out

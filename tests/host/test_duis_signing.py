"""host_tools/duis/signing.py: DUIS message signatures as DCC Boxed makes them (enveloped, exclusive
c14n, ECDSA-SHA256, KeyInfo by X509IssuerSerial), with keys from `dbch pki user`; what fails
authentication is E100. The DCC Boxed signing tool itself: tests/host/test_duis_signtool.py."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from lxml import etree

from host_tools import cli
from host_tools.duis import signing
from host_tools.duis.errors import DuisError, DuisParseError
from host_tools.duis.schema import validate
from host_tools.security.pki import Pki

USER = "90-B3-D5-1F-30-01-00-00"  # the DCC Boxed templates' originator
OTHER = "90-B3-D5-1F-30-02-00-00"
DCC = "90-B3-D5-1F-30-00-00-02"
NS = {"ds": signing.DS_NS, "sr": "http://www.dccinterface.co.uk/ServiceUserGateway"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    store = Pki(tmp_path_factory.mktemp("pki"))
    store.init_ca()
    for eui in (USER, OTHER, DCC):
        store.issue_user(eui)
    return store


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Pki:
    """A second CA that has issued a certificate for the same User ID."""
    store = Pki(tmp_path_factory.mktemp("pki2"))
    store.init_ca(common_name="another CA")
    store.issue_user(USER)
    return store


@pytest.fixture(scope="module")
def request_xml(duis_templates_dir: Path) -> bytes:
    """The DCC Boxed 6.28 template, signature placeholder and all."""
    return (duis_templates_dir / "DBCH04_6.28_SUCCESS_REQUEST_DUIS.XML").read_bytes()


def _signed(pki: Pki, xml: bytes, eui: str = USER) -> bytes:
    return signing.sign(xml, pki.user_key(eui), pki.user(eui).cert)


def _e100(xml: bytes, trusted, match: str, **kw) -> None:
    with pytest.raises(signing.DuisSignatureError, match=match) as info:
        signing.verify(xml, trusted, **kw)
    assert info.value.response_code == "E100" and str(info.value).startswith("E100 Failed Authentication")


def test_a_signed_request_verifies_and_names_its_signer(pki, request_xml, duis_schema_dir):
    signed = _signed(pki, request_xml)
    user, other = pki.user(USER).cert, pki.user(OTHER).cert
    assert signing.verify(signed, [other, user]) == user
    root = etree.fromstring(signed)
    sig = root[-1]
    assert sig.tag == "{%s}Signature" % signing.DS_NS and len(root.findall("ds:Signature", NS)) == 1
    algorithms = {el.get("Algorithm") for el in sig.iter() if el.get("Algorithm")}
    assert {signing.EXC_C14N, signing.ECDSA_SHA256, signing.SHA256} <= algorithms
    assert "http://www.w3.org/2000/09/xmldsig#enveloped-signature" in algorithms
    assert sig.find("ds:SignedInfo/ds:Reference", NS).get("URI") == ""
    # KeyInfo names the certificate; it does not carry it
    assert sig.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS) is None
    issuer = sig.findtext("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509IssuerName", namespaces=NS)
    serial = sig.findtext("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509SerialNumber", namespaces=NS)
    assert (issuer, int(serial)) == signing.issuer_serial(user) == ("CN=dbch development triage CA", user.serial_number)
    # the template's placeholder is gone, and the signed request is still valid DUIS
    assert signing.PLACEHOLDER.encode() not in signed
    assert validate(signed, duis_schema_dir) == []


def test_each_signature_is_made_anew_and_each_verifies(pki, request_xml):
    first, second = _signed(pki, request_xml), _signed(pki, request_xml)
    assert first != second  # ECDSA: a fresh nonce each time
    for signed in (first, second, _signed(pki, first)):  # signing again replaces the signature
        assert signing.verify(signed, [pki.user(USER).cert]) == pki.user(USER).cert


@pytest.mark.parametrize(
    "old, new",
    [
        (b"<sr:GSMECurfew>7</sr:GSMECurfew>", b"<sr:GSMECurfew>8</sr:GSMECurfew>"),  # a value
        (b":1000</sr:RequestID>", b":1001</sr:RequestID>"),  # the header
        (b'schemaVersion="5.4"', b'schemaVersion="5.3"'),  # an attribute of the root
        (b"<sr:Channel2/>", b"<sr:Channel2/><sr:Channel3/>"),  # an element added
        (b"<sr:GSMECurfew>7</sr:GSMECurfew>", b"<sr:GSMECurfew> 7</sr:GSMECurfew>"),  # space in a value
    ],
)
def test_a_tampered_request_is_e100(pki, request_xml, old, new):
    signed = _signed(pki, request_xml)
    assert old in signed
    _e100(signed.replace(old, new, 1), [pki.user(USER).cert], "does not verify")


def test_indentation_between_elements_is_not_signed(pki, request_xml):
    """As the DCC Boxed tool reads a message (element-content whitespace ignored), a signed message
    indented afterwards still verifies; the signed form itself has none."""
    signed = _signed(pki, request_xml)
    assert b">\n" not in signed.split(b"?>", 1)[1]
    root = etree.fromstring(signed)
    etree.indent(root)
    indented = etree.tostring(root)
    assert indented.count(b"\n") > 20
    assert signing.verify(indented, [pki.user(USER).cert]) == pki.user(USER).cert


def test_an_unsigned_or_placeholder_request_is_e100(pki, request_xml):
    user = [pki.user(USER).cert]
    _e100(request_xml, user, "placeholder")
    unsigned = re.sub(rb"<ds:Signature.*</ds:Signature>", b"", request_xml, flags=re.S)
    _e100(unsigned, user, "not signed")


def test_an_untrusted_signer_is_e100(pki, other_ca, request_xml):
    signed = _signed(pki, request_xml)
    _e100(signed, [], "not a trusted one")
    _e100(signed, [pki.user(OTHER).cert, pki.user(DCC).cert], "not a trusted one")
    # the same User ID, certified by another CA: another issuer, another serial
    _e100(signed, [other_ca.user(USER).cert], "not a trusted one")
    # signed under the other CA's certificate: the first CA's trust does not extend to it
    foreign = signing.sign(request_xml, other_ca.user_key(USER), other_ca.user(USER).cert)
    _e100(foreign, [pki.user(USER).cert], "not a trusted one")
    assert signing.verify(foreign, [other_ca.user(USER).cert]) == other_ca.user(USER).cert


def test_a_signature_that_claims_another_signer_is_e100(pki, request_xml):
    """Signed with OTHER's key, KeyInfo rewritten to name USER's certificate."""
    signed = _signed(pki, request_xml, OTHER)
    theirs, mine = pki.user(OTHER).cert.serial_number, pki.user(USER).cert.serial_number
    forged = signed.replace(str(theirs).encode(), str(mine).encode())
    _e100(forged, [pki.user(USER).cert, pki.user(OTHER).cert], "does not verify")


def test_other_algorithms_and_shapes_are_e100(pki, request_xml):
    signed = _signed(pki, request_xml)
    trusted = [pki.user(USER).cert]
    rsa = signed.replace(signing.ECDSA_SHA256.encode(), b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    _e100(rsa, trusted, "signature method")
    inclusive = signed.replace(
        b'<ds:CanonicalizationMethod Algorithm="' + signing.EXC_C14N.encode(),
        b'<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315',
    )
    _e100(inclusive, trusted, "canonicalisation")
    _e100(signed.replace(b'URI=""', b'URI="#body"'), trusted, "one Reference")
    # the signature moved inside the body, or a second one added
    root = etree.fromstring(signed)
    sig = root[-1]
    root.find("sr:Body", NS).append(sig)
    _e100(etree.tostring(root), trusted, "not signed")
    root = etree.fromstring(signed)
    root.find("sr:Header", NS).append(etree.fromstring(etree.tostring(root[-1])))
    _e100(etree.tostring(root), trusted, "more than one")


def test_an_expired_certificate_is_e100_unless_checked_at_a_time_it_was_valid(pki, request_xml):
    old = pki.issue_user("90-B3-D5-1F-30-03-00-00", not_before="2020-01-01T00:00:00", not_after="2021-01-01T00:00:00")
    signed = signing.sign(request_xml, pki.user_key("90-B3-D5-1F-30-03-00-00"), old.cert)
    _e100(signed, [old.cert], "valid")
    then = dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)
    assert signing.verify(signed, [old.cert], at=then) == old.cert


def test_sign_refuses_a_key_that_is_not_the_certificates_or_not_p256(pki, request_xml):
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(DuisError, match="does not belong to the certificate"):
        signing.sign(request_xml, pki.user_key(OTHER), pki.user(USER).cert)
    with pytest.raises(DuisError, match="P-256"):
        signing.sign(request_xml, ec.generate_private_key(ec.SECP384R1()), pki.user(USER).cert)
    # PEM bytes work as well as objects
    pem_key = (pki.user(USER).directory / "key.pem").read_bytes()
    signed = signing.sign(request_xml, pem_key, pki.user(USER).cert_pem.read_bytes())
    assert signing.verify(signed, [pki.user(USER).cert_der.read_bytes()]) == pki.user(USER).cert


def test_not_xml_is_a_parse_error_not_e100(pki):
    for bad in (b"<sr:Request", b"", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'):
        with pytest.raises((DuisParseError, signing.DuisSignatureError)):
            signing.verify(bad, [pki.user(USER).cert])


# --- `dbch pki user` ----------------------------------------------------------------------------


def test_pki_issues_user_signing_certificates(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("host_tools.cli.pki",))

    def dbch(*argv):
        rc = cli.main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    d = str(tmp_path / "pki")
    assert dbch("pki", "init", "--dir", d)[0] == 0
    rc, out, _ = dbch("pki", "user", "90b3d51f30010000", "--dir", d, "--json")
    item = json.loads(out)
    assert rc == 0 and item["kind"] == "user" and item["subject_cn"] == USER and item["issued_by_ca"] is True
    assert item["files"]["key_pem"].endswith("users/{}/key.pem".format(USER))
    rc, _, err = dbch("pki", "user", "not-an-eui", "--dir", d)
    assert rc == 1 and "not an EUI-64" in err
    rc, out, _ = dbch("pki", "show", "--dir", d, "--json")
    assert [u["subject_cn"] for u in json.loads(out)["users"]] == [USER]
    cert = Pki(d).user(USER).cert
    from cryptography import x509

    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert "OU=xmlSign" in cert.subject.rfc4514_string()

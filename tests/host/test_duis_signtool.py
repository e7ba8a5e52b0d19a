"""Interoperability with the DCC Boxed signing tool (the jar of the DCC's npm package
@smartdcc/duis-sign-wrap, on a Java runtime): what it signs with a User's `dbch pki user` key, or
with its own DCC Boxed test key, host_tools.duis.signing.verify accepts; what signing.sign makes,
the tool validates; a tampered message fails both (E100)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from host_tools.duis import signing, signtool
from host_tools.security.pki import Pki

USER = "90-B3-D5-1F-30-01-00-00"  # the templates' originator; the tool also has a test key for it
OTHER = "90-B3-D5-1F-30-02-00-00"
TEMPLATES = ("DBCH04_6.28_SUCCESS_REQUEST_DUIS.XML", "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML")
TOOL_CERT = "xml-sign-90B3D51F30010000-ds.pem"  # the tool's own certificate for USER (in the jar)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    store = Pki(tmp_path_factory.mktemp("pki"))
    store.init_ca()
    store.issue_user(USER)
    store.issue_user(OTHER)
    return store


@pytest.fixture(scope="module")
def templates(duis_templates_dir: Path) -> dict[str, bytes]:
    return {name: (duis_templates_dir / name).read_bytes() for name in TEMPLATES}


def _tampered(xml: bytes) -> bytes:
    """A value in the body changed, still valid DUIS (so that only the signature can fail)."""
    for old, new in ((b"<sr:GSMECurfew>7<", b"<sr:GSMECurfew>8<"), (b"<sr:FirmwareHash>AA", b"<sr:FirmwareHash>AB")):
        if old in xml:
            return xml.replace(old, new, 1)
    raise AssertionError("no value to change in this message")


@pytest.mark.parametrize("name", TEMPLATES)
def test_what_the_tool_signs_with_a_users_key_verifies(duis_sign_tool, pki, templates, name):
    user = pki.user(USER)
    signed = signtool.tool_sign(templates[name], user.cert_pem, user.directory / "key.pem")
    assert signing.PLACEHOLDER.encode() not in signed and b"X509IssuerSerial" in signed
    assert signing.verify(signed, [pki.user(OTHER).cert, user.cert]) == user.cert
    with pytest.raises(signing.DuisSignatureError, match="not a trusted one"):
        signing.verify(signed, [pki.user(OTHER).cert])
    with pytest.raises(signing.DuisSignatureError, match="does not verify") as info:
        signing.verify(_tampered(signed), [user.cert])
    assert info.value.response_code == "E100"
    # the tool agrees with itself: its own message validates, the tampered one does not
    signtool.tool_validate(signed, user.cert_pem)
    with pytest.raises(signing.DuisSignatureError):
        signtool.tool_validate(_tampered(signed), user.cert_pem)


def test_what_the_tool_signs_with_its_own_test_key_verifies_with_its_certificate(duis_sign_tool, templates):
    """No key given: the tool signs with the DCC Boxed test key of the originator (USER), key
    material this project never made; trusting the tool's certificate for it is what verifies."""
    with zipfile.ZipFile(duis_sign_tool) as jar:
        theirs = x509.load_pem_x509_certificate(jar.read(TOOL_CERT))
    signed = signtool.tool_sign(templates[TEMPLATES[0]])
    assert signing.verify(signed, [theirs]) == theirs
    with pytest.raises(signing.DuisSignatureError):
        signing.verify(_tampered(signed), [theirs])


@pytest.mark.parametrize("name", TEMPLATES)
def test_what_sign_makes_the_tool_validates(duis_sign_tool, pki, templates, name):
    user = pki.user(USER)
    signed = signing.sign(templates[name], pki.user_key(USER), user.cert)
    unsigned = signtool.tool_validate(signed, user.cert_pem)
    assert b"RequestID" in unsigned and b"Signature>" not in unsigned
    with pytest.raises(signing.DuisSignatureError, match="failed signature check"):
        signtool.tool_validate(_tampered(signed), user.cert_pem)
    with pytest.raises(signing.DuisSignatureError, match="does not verify"):
        signing.verify(_tampered(signed), [user.cert])
    # another User's certificate does not validate it either
    with pytest.raises(signing.DuisSignatureError, match="failed signature check"):
        signtool.tool_validate(signed, pki.user(OTHER).cert_pem)


def test_the_tool_refuses_an_unsigned_request(duis_sign_tool, pki, templates):
    unsigned = re.sub(rb"<ds:Signature.*</ds:Signature>", b"", templates[TEMPLATES[0]], flags=re.S)
    with pytest.raises(signing.DuisSignatureError, match="signature missing"):
        signtool.tool_validate(unsigned, pki.user(USER).cert_pem)
    with pytest.raises(signtool.DuisToolError, match="both the certificate and the key"):
        signtool.tool_sign(unsigned, pki.user(USER).cert_pem)

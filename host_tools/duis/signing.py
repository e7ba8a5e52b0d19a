"""DUIS message authentication as the DCC and DCC Boxed do it: an enveloped XML signature over the
whole sr:Request or sr:Response (Reference URI "", the enveloped-signature transform), exclusive
canonicalisation (http://www.w3.org/2001/10/xml-exc-c14n#), ECDSA with SHA-256 on a P-256 key, a
SHA-256 digest, and KeyInfo naming the signer's certificate by X509IssuerSerial only (the
certificate itself is not carried: the receiver holds it). ds:Signature is the last child of the
root, where the DUIS schema puts it.

Whitespace between elements is not signed. The DCC Boxed signing tool reads a message against the
DUIS schema ignoring element-content whitespace (a DOM parser with
setIgnoringElementContentWhitespace), so it digests the message without the line breaks and
indentation between elements, and writes what it signs that way. sign() does the same (the
signed document has no whitespace between elements) and verify() drops such whitespace before it
checks the digest, so that a signed message that was indented afterwards verifies here as it
does there. Whitespace inside a simple value is kept.

    sign(document, key, certificate) -> the signed document (bytes)
    verify(document, trusted) -> the signer's certificate, among `trusted`

A request that is not signed, whose signature is a placeholder (the DCC Boxed templates'
"ZGVmYXVsdA=="), does not verify, uses other algorithms, or names a certificate that is not
trusted fails with DuisSignatureError, whose response_code is E100 ("Failed Authentication:
Request failed Authentication (as per checks in clause 3.2.3 Message Authentication)", seed
Table 1). The keys and certificates come from `dbch pki user EUI` (host_tools.security.pki).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, XMLSigner, XMLVerifier
from signxml.exceptions import InvalidInput, SignXMLException
from signxml.verifier import SignatureConfiguration

from host_tools.duis.errors import DuisError, DuisParseError

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
PLACEHOLDER = "ZGVmYXVsdA=="  # base64 "default": the DCC Boxed templates' DigestValue and SignatureValue
E100 = "E100"


class DuisSignatureError(DuisError):
    """A missing, bad or untrusted signature: the DCC answers E100 (Failed Authentication)."""

    response_code = E100


def _ds(name: str) -> str:
    return "{%s}%s" % (DS_NS, name)


def _parse(document: bytes | str) -> etree._Element:
    if isinstance(document, str):
        document = document.encode("utf-8")
    # no DTDs, entities or network: a request is data from outside
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as e:
        raise DuisParseError("not well-formed XML: {}".format(e)) from e
    if root is None:
        raise DuisParseError("not well-formed XML: empty document")
    return root


def _drop_element_whitespace(root: etree._Element) -> None:
    """Remove the whitespace-only text between elements (element-only content, as DUIS is)."""
    for el in root.iter():
        if not isinstance(el.tag, str) or len(el) == 0:
            continue
        if el.text is not None and not el.text.strip():
            el.text = None
        for child in el:
            if child.tail is not None and not child.tail.strip():
                child.tail = None


def _certificate(certificate) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    data = bytes(certificate)
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise DuisError("not an X.509 certificate (PEM or DER): {}".format(e)) from e


def _private_key(key) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        data = bytes(key)
        try:
            if data.lstrip().startswith(b"-----"):
                key = serialization.load_pem_private_key(data, password=None)
            else:
                key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise DuisError("not an unencrypted private key (PEM or DER): {}".format(e)) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DuisError("DUIS messages are signed with an EC P-256 key: make one with `dbch pki user EUI`")
    return key


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issuer_serial(certificate: x509.Certificate) -> tuple[str, int]:
    """(X509IssuerName, X509SerialNumber) as a signature names `certificate`: the issuer as an RFC
    4514 string (what Java's X500Principal.getName() gives), the serial as an integer."""
    return certificate.issuer.rfc4514_string(), certificate.serial_number


def _key_info(certificate: x509.Certificate) -> etree._Element:
    issuer, serial = issuer_serial(certificate)
    key_info = etree.Element(_ds("KeyInfo"), nsmap={"ds": DS_NS})
    pair = etree.SubElement(etree.SubElement(key_info, _ds("X509Data")), _ds("X509IssuerSerial"))
    etree.SubElement(pair, _ds("X509IssuerName")).text = issuer
    etree.SubElement(pair, _ds("X509SerialNumber")).text = str(serial)
    return key_info


def sign(document: bytes | str, key, certificate) -> bytes:
    """The DUIS document signed with `key` (an EC P-256 private key, or its PEM/DER bytes) and
    named by `certificate` (x509.Certificate, or PEM/DER bytes) in KeyInfo. A signature the
    document already has (a template's placeholder) is replaced. DuisError if the key is not
    P-256 or does not belong to the certificate; DuisParseError if the document is not XML."""
    root = _parse(document)
    private = _private_key(key)
    cert = _certificate(certificate)
    if _spki(cert.public_key()) != _spki(private.public_key()):
        raise DuisError(
            "the signing key does not belong to the certificate {} (serial {})".format(
                cert.subject.rfc4514_string(), cert.serial_number
            )
        )
    for old in root.findall(_ds("Signature")):
        root.remove(old)
    _drop_element_whitespace(root)
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signer.namespaces = {"ds": DS_NS}
    try:
        signed = signer.sign(root, key=private, key_info=_key_info(cert))
    except SignXMLException as e:
        raise DuisError("cannot sign the document: {}".format(e)) from e
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


# -- verifying -----------------------------------------------------------------------------------


def _fail(why: str) -> DuisSignatureError:
    return DuisSignatureError("E100 Failed Authentication: {}".format(why))


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _algorithm(signature: etree._Element, path: str) -> str:
    el = signature.find(path, namespaces={"ds": DS_NS})
    return el.get("Algorithm", "") if el is not None else ""


def _same_issuer(named: str, issuer: x509.Name) -> bool:
    try:
        return x509.Name.from_rfc4514_string(named) == issuer
    except ValueError:
        return " ".join(named.replace(", ", ",").split()) == issuer.rfc4514_string()


def _signature(root: etree._Element) -> etree._Element:
    """The one ds:Signature, the last element child of the root; E100 otherwise."""
    signatures = root.findall(_ds("Signature"))
    if not signatures:
        raise _fail("the message is not signed (no ds:Signature in {})".format(etree.QName(root).localname))
    if len(signatures) > 1:
        raise _fail("the message has {} ds:Signature elements; one is expected".format(len(signatures)))
    last = [child for child in root if isinstance(child.tag, str)][-1]
    if last is not signatures[0]:
        raise _fail("ds:Signature is not the last element of {}".format(etree.QName(root).localname))
    if len(list(root.iter(_ds("Signature")))) > 1:
        raise _fail("the message carries more than one ds:Signature")
    return signatures[0]


def _check_form(signature: etree._Element) -> None:
    ns = {"ds": DS_NS}
    values = [_text(signature.find(p, ns)) for p in ("ds:SignedInfo/ds:Reference/ds:DigestValue", "ds:SignatureValue")]
    if PLACEHOLDER in values:
        raise _fail("the signature is the DCC Boxed templates' placeholder 'ZGVmYXVsdA==', not a signature")
    wanted = (
        ("ds:SignedInfo/ds:CanonicalizationMethod", EXC_C14N, "canonicalisation"),
        ("ds:SignedInfo/ds:SignatureMethod", ECDSA_SHA256, "signature method"),
        ("ds:SignedInfo/ds:Reference/ds:DigestMethod", SHA256, "digest method"),
    )
    for path, algorithm, what in wanted:
        got = _algorithm(signature, path)
        if got != algorithm:
            raise _fail("the {} is {!r}, not {}".format(what, got or "missing", algorithm))
    references = signature.findall("ds:SignedInfo/ds:Reference", ns)
    if len(references) != 1 or references[0].get("URI") != "":
        raise _fail('the signature must have one Reference, to the whole message (URI="")')


def _signer(signature: etree._Element, trusted: Iterable[x509.Certificate]) -> x509.Certificate:
    ns = {"ds": DS_NS}
    pair = signature.find("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial", ns)
    if pair is None:
        raise _fail("KeyInfo does not name the signer's certificate by X509IssuerSerial")
    issuer, serial_text = _text(pair.find("ds:X509IssuerName", ns)), _text(pair.find("ds:X509SerialNumber", ns))
    try:
        serial = int(serial_text)
    except ValueError:
        raise _fail("X509SerialNumber {!r} is not a number".format(serial_text))
    for cert in trusted:
        cert = _certificate(cert)
        if cert.serial_number == serial and _same_issuer(issuer, cert.issuer):
            return cert
    raise _fail("the signer's certificate (issuer {!r}, serial {}) is not a trusted one".format(issuer, serial))


def verify(
    document: bytes | str, trusted: Iterable[x509.Certificate], *, at: dt.datetime | None = None
) -> x509.Certificate:
    """The certificate, among `trusted`, whose key signed `document` as DUIS signs (see the
    module notes); the certificate must be valid at `at` (default now). DuisSignatureError (E100)
    for a missing, placeholder, malformed, wrongly made, untrusted or failing signature;
    DuisParseError if the document is not well-formed XML."""
    root = _parse(document)
    _drop_element_whitespace(root)
    signature = _signature(root)
    _check_form(signature)
    cert = _signer(signature, list(trusted))
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
        raise _fail("the signer's certificate does not hold an EC P-256 key")
    config = SignatureConfiguration(
        location="./",
        signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
        verification_time=at,
    )
    try:
        XMLVerifier().verify(root, x509_cert=cert, expect_config=config)
    except (SignXMLException, InvalidInput) as e:
        raise _fail("the signature does not verify with the certificate (serial {}): {}".format(cert.serial_number, e))
    return cert

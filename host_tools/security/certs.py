"""X.509 certificates and EC P-256 keys for the development PKI: how long they are valid, how they
are built, what a certificate names, and how they are read from files and made into their bytes
(PEM and DER; private keys PKCS#8, which the PKI writes with mode 0600: host_tools.files)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from host_tools.errors import DbchError


class PkiError(DbchError):
    """A PKI operation that cannot be done; the message says what to do."""


# --- validity ----------------------------------------------------------------------------------


def _utc(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise PkiError(f"bad date/time {value!r}: use ISO 8601, e.g. 2030-01-31 or 2030-01-31T12:00")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def validity(days: int, not_before, not_after) -> tuple[dt.datetime, dt.datetime]:
    """(not before, not after) in UTC: either end may be given (a datetime or ISO 8601 text), the
    other follows from `days`; with neither, valid from five minutes ago for `days`."""
    nb = _utc(not_before)
    na = _utc(not_after)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if nb is None:
        nb = now - dt.timedelta(minutes=5) if na is None or na > now else na - dt.timedelta(days=days)
    if na is None:
        if days < 1:
            raise PkiError(f"--days must be at least 1, not {days}")
        na = nb + dt.timedelta(days=days)
    if na <= nb:
        raise PkiError(f"not-after ({na.isoformat()}) must be later than not-before ({nb.isoformat()})")
    return nb, na


# --- building ----------------------------------------------------------------------------------


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def key_usage(ca: bool, key_encipherment: bool = False) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); a leaf signs handshakes (ECDHE-ECDSA, IKEv2 signatures,
    a TLS client's CertificateVerify) and, with key_encipherment, takes an RSA key exchange's
    premaster secret (host_tools.security.dccki)."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=key_encipherment and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: x509.Name, issuer: x509.Name, key, valid: tuple[dt.datetime, dt.datetime]):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
    )


def ca_certificate(common_name: str, key: ec.EllipticCurvePrivateKey, valid) -> x509.Certificate:
    """A self-signed CA certificate that may issue leaves only (path length 0)."""
    name = _name(common_name)
    return (
        _builder(name, name, key, valid)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def leaf_certificate(
    ident: str, key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, valid
) -> x509.Certificate:
    """A certificate for `ident` (its CN and its one dNSName), for client and server alike."""
    return (
        _builder(_name(ident), ca_cert.subject, key, valid)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ident)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def org_certificate(
    eui: str, key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, valid
) -> x509.Certificate:
    """A message-signing certificate for the DUIS User or DCC whose User ID is `eui`, shaped like an
    SMKI Organisation Certificate for XML signing: CN the EUI-64, OU "xmlSign" (the Remote Party
    Role that signs DUIS messages), keyUsage digitalSignature only, no extendedKeyUsage."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, eui), x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "xmlSign")]
    )
    return (
        _builder(subject, ca_cert.subject, key, valid)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


# --- what a certificate says -------------------------------------------------------------------


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def dns_names(cert: x509.Certificate) -> list[str]:
    """The subjectAltName dNSNames, in order."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in ext.value.get_values_for_type(x509.DNSName)]


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


# --- files -------------------------------------------------------------------------------------


def key_bytes(key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """The private key as PKCS#8 (PEM, DER), unencrypted."""
    fmt = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    return (
        key.private_bytes(serialization.Encoding.PEM, fmt, none),
        key.private_bytes(serialization.Encoding.DER, fmt, none),
    )


def cert_bytes(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """The certificate as (PEM, DER)."""
    return cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


def read_certificate(path: Path | str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def read_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} is not an EC key")
    return key

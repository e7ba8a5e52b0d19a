"""DCCKI-like infrastructure certificates for the DCC User Interface's TLS (SEC Appendix AD 2.2 as
amended by MP260: TLS 1.2, TLS_RSA_WITH_AES_128_GCM_SHA256, certificates both ways): RSA keys,
since that suite's key exchange is RSA key transport, under an RSA CA of their own beside the
development PKI's EC one (`dbch pki infra NAME`).

- The DCCKI CA: RSA 3072, self-signed, path length 0; made on the first `dbch pki infra`.
- An infrastructure certificate: RSA 2048 (the DCCKI's size), CN = its name and the same name as
  a dNSName, plus any --host names (a DNS name, or an IP address as an iPAddress entry: a front on
  127.0.0.1 is checked by its address); keyUsage digitalSignature (the client's CertificateVerify)
  and keyEncipherment (the RSA key exchange); extendedKeyUsage serverAuth and clientAuth: the DCC
  front and a User's receiving endpoint each serve and each dial.

Files, in the PKI directory (host_tools.security.pki):
    dccki/ca.crt.pem  dccki/ca.key.pem
    infra/<NAME>/cert.pem  infra/<NAME>/key.pem   (private keys PKCS#8, mode 0600)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from host_tools.files import write_file
from host_tools.security.certs import PkiError, fingerprint, key_usage, read_certificate, validity
from host_tools.security.pki import check_tool_name

CA_NAME = "dbch development DCCKI CA"
CA_BITS = 3072
LEAF_BITS = 2048
DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 825


@dataclass
class Infra:
    """One infrastructure certificate on disk."""

    name: str
    directory: Path
    cert: x509.Certificate
    ca_pem: Path

    @property
    def cert_pem(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key_pem(self) -> Path:
        return self.directory / "key.pem"

    def summary(self) -> dict:
        try:
            ext = self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
            names += [str(a) for a in ext.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            names = []
        return {
            "kind": "infra",
            "name": self.name,
            "key": "RSA {}".format(self.cert.public_key().key_size),
            "hosts": names,
            "serial": format(self.cert.serial_number, "x"),
            "not_after": self.cert.not_valid_after_utc.isoformat(),
            "sha256": fingerprint(self.cert),
            "files": {"cert_pem": str(self.cert_pem), "key_pem": str(self.key_pem), "ca_pem": str(self.ca_pem)},
        }


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class Dccki:
    """The DCCKI-like CA and infrastructure certificates in one PKI directory."""

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)

    @property
    def ca_pem(self) -> Path:
        return self.dir / "dccki" / "ca.crt.pem"

    def _ca_key_path(self) -> Path:
        return self.dir / "dccki" / "ca.key.pem"

    def ensure_ca(self, days: int = DEFAULT_CA_DAYS) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """The DCCKI CA, made now if there is none."""
        if self.ca_pem.exists() and self._ca_key_path().exists():
            key = serialization.load_pem_private_key(self._ca_key_path().read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise PkiError(f"{self._ca_key_path()} is not an RSA key")
            return read_certificate(self.ca_pem), key
        key = rsa.generate_private_key(public_exponent=65537, key_size=CA_BITS)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        nb, na = validity(days, None, None)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_file(self._ca_key_path(), _key_pem(key), secret=True)
        write_file(self.ca_pem, _cert_pem(cert))
        return cert, key

    def infra_dir(self, name: str) -> Path:
        return self.dir / "infra" / check_tool_name(name)

    def issue(
        self,
        name: str,
        hosts: list[str] | tuple[str, ...] = (),
        days: int = DEFAULT_LEAF_DAYS,
        not_before: dt.datetime | str | None = None,
        not_after: dt.datetime | str | None = None,
        force: bool = False,
    ) -> Infra:
        """A new RSA key and infrastructure certificate for `name` (and `hosts`)."""
        directory = self.infra_dir(name)
        if (directory / "cert.pem").exists() and not force:
            raise PkiError(f"{directory / 'cert.pem'} exists (use --force to issue a new key and certificate)")
        ca_cert, ca_key = self.ensure_ca()
        nb, na = validity(days, not_before, not_after)
        key = rsa.generate_private_key(public_exponent=65537, key_size=LEAF_BITS)
        names = [x509.DNSName(name)] + [_san(h) for h in hosts if h != name]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False, key_encipherment=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_file(directory / "key.pem", _key_pem(key), secret=True)
        write_file(directory / "cert.pem", _cert_pem(cert))
        return Infra(name, directory, cert, self.ca_pem)

    def infra(self, name: str) -> Infra:
        """The infrastructure certificate issued for `name`; PkiError saying how to issue it."""
        directory = self.infra_dir(name)
        if not (directory / "cert.pem").exists() or not self.ca_pem.exists():
            raise PkiError(
                f"no infrastructure certificate {name!r} in {self.dir}: issue one with `dbch pki infra {name}`"
            )
        return Infra(name, directory, read_certificate(directory / "cert.pem"), self.ca_pem)

    def names(self) -> list[str]:
        base = self.dir / "infra"
        return sorted(d.name for d in base.iterdir() if (d / "cert.pem").exists()) if base.is_dir() else []

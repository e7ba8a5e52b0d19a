"""Development PKI for the Triage System Interface: a CA, hub and triage tool certificates, and
the firmware signing key (EC P-256 throughout).

Identities
- Hub (device) certificate: subject CN = the hub's EUI-64 as "XX-XX-XX-XX-XX-XX-XX-XX"
  (upper-case hex), and one subjectAltName dNSName with exactly the same string. A DNS name is
  what every TLS stack matches a peer name against (CPython/OpenSSL hostname checks, mbedTLS
  `server_hostname`) and what strongSwan uses for an FQDN identity, so one string serves TLS
  and IKEv2 alike; "00-1B-C5-..." is a valid DNS label (hex digits and hyphens).
- Triage tool certificate: CN = the tool's name and the same name as a dNSName SAN; names are
  DNS-like (letters, digits, '-', '.').
- Both carry extendedKeyUsage clientAuth + serverAuth (either end may accept the connection) and
  keyUsage digitalSignature (needed by ECDHE-ECDSA suites and IKEv2 signature auth).

Files (the directory is `--dir`, else $DBCH_PKI_DIR, else $XDG_DATA_HOME/dbch/pki, else
~/.local/share/dbch/pki):
    ca/ca.crt.pem  ca/ca.crt.der  ca/ca.key.pem
    devices/<EUI>/cert.pem cert.der key.pem key.der
    tools/<NAME>/cert.pem cert.der key.pem key.der
    signing/key.pem key.der pub.pem pub.der pub.bin   (pub.bin: 65-byte uncompressed point)
DER is what MicroPython's mbedTLS loads (its `ssl` rejects PEM); PEM is for OpenSSL and
strongSwan. Private keys are PKCS#8 and written with mode 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from host_tools.errors import DbchError
from host_tools.paths import pki_dir

DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 825
DEFAULT_CA_NAME = "dbch development triage CA"
ENV_DIR = "DBCH_PKI_DIR"

_EUI_RE = re.compile(r"^[0-9A-Fa-f]{16}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")


class PkiError(DbchError):
    """A PKI operation that cannot be done; the message says what to do."""


def default_dir() -> Path:
    """Where the PKI lives unless told: $DBCH_PKI_DIR, else the XDG data dir + dbch/pki."""
    return pki_dir()


def normalize_eui(text: str) -> str:
    """An EUI-64 in any common spelling -> "XX-XX-XX-XX-XX-XX-XX-XX" (upper case)."""
    digits = re.sub(r"[-:.\s]", "", str(text))
    if not _EUI_RE.match(digits):
        raise PkiError(f"not an EUI-64: {text!r} (want 16 hex digits, e.g. 00-1B-C5-0C-00-00-12-34)")
    digits = digits.upper()
    return "-".join(digits[i : i + 2] for i in range(0, 16, 2))


def check_tool_name(name: str) -> str:
    if not _NAME_RE.match(name or "") or ".." in name:
        raise PkiError(f"bad triage tool name {name!r}: use 1-64 letters, digits, '-' or '.'")
    return name


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


def _validity(days: int, not_before, not_after) -> tuple[dt.datetime, dt.datetime]:
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


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    fmt = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    return (
        key.private_bytes(serialization.Encoding.PEM, fmt, none),
        key.private_bytes(serialization.Encoding.DER, fmt, none),
    )


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in ext.value.get_values_for_type(x509.DNSName)]


@dataclass
class Issued:
    """One certificate (or key) on disk, with the facts `show` and the tests need."""

    kind: str  # "ca", "device", "tool"
    name: str
    directory: Path
    cert: x509.Certificate

    @property
    def cert_pem(self) -> Path:
        return self.directory / ("ca.crt.pem" if self.kind == "ca" else "cert.pem")

    @property
    def cert_der(self) -> Path:
        return self.directory / ("ca.crt.der" if self.kind == "ca" else "cert.der")

    @property
    def key_pem(self) -> Path:
        return self.directory / ("ca.key.pem" if self.kind == "ca" else "key.pem")

    @property
    def key_der(self) -> Path | None:
        return None if self.kind == "ca" else self.directory / "key.der"

    def summary(self, ca: x509.Certificate | None = None) -> dict:
        now = dt.datetime.now(dt.timezone.utc)
        nb, na = self.cert.not_valid_before_utc, self.cert.not_valid_after_utc
        status = "valid" if nb <= now <= na else ("expired" if now > na else "not yet valid")
        out = {
            "kind": self.kind,
            "name": self.name,
            "subject_cn": _cn(self.cert),
            "san_dns": _sans(self.cert),
            "serial": format(self.cert.serial_number, "x"),
            "not_before": nb.isoformat(),
            "not_after": na.isoformat(),
            "status": status,
            "sha256": _fingerprint(self.cert),
            "files": {
                "cert_pem": str(self.cert_pem),
                "cert_der": str(self.cert_der),
                "key_pem": str(self.key_pem),
            },
        }
        if self.key_der is not None:
            out["files"]["key_der"] = str(self.key_der)
        if ca is not None and self.kind != "ca":
            out["issued_by_ca"] = _signed_by(self.cert, ca)
        return out


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


class Pki:
    """The PKI in one directory (see the module docstring for the layout)."""

    def __init__(self, directory: Path | str | None = None):
        self.dir = Path(directory) if directory is not None else default_dir()

    # --- CA ----------------------------------------------------------------------------------
    @property
    def ca_dir(self) -> Path:
        return self.dir / "ca"

    def has_ca(self) -> bool:
        return (self.ca_dir / "ca.crt.pem").exists() and (self.ca_dir / "ca.key.pem").exists()

    def init_ca(
        self,
        common_name: str = DEFAULT_CA_NAME,
        days: int = DEFAULT_CA_DAYS,
        not_before=None,
        not_after=None,
        force: bool = False,
    ) -> Issued:
        if self.has_ca() and not force:
            raise PkiError(f"a CA already exists in {self.ca_dir} (use --force to replace it and everything it issued)")
        nb, na = _validity(days, not_before, not_after)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        d = self.ca_dir
        _write(d / "ca.key.pem", _key_bytes(key)[0], secret=True)
        _write(d / "ca.crt.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write(d / "ca.crt.der", cert.public_bytes(serialization.Encoding.DER))
        return Issued("ca", common_name, d, cert)

    def load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.has_ca():
            raise PkiError(f"no CA in {self.dir}: run `dbch pki init` first (or pass --dir)")
        cert = x509.load_pem_x509_certificate((self.ca_dir / "ca.crt.pem").read_bytes())
        key = serialization.load_pem_private_key((self.ca_dir / "ca.key.pem").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.ca_dir / 'ca.key.pem'} is not an EC key")
        return cert, key

    def ca(self) -> Issued:
        cert, _ = self.load_ca()
        return Issued("ca", _cn(cert), self.ca_dir, cert)

    # --- leaves ------------------------------------------------------------------------------
    def _issue(self, kind: str, ident: str, directory: Path, days, not_before, not_after, force) -> Issued:
        ca_cert, ca_key = self.load_ca()
        if (directory / "cert.pem").exists() and not force:
            raise PkiError(f"{directory / 'cert.pem'} exists (use --force to issue a new key and certificate)")
        nb, na = _validity(days, not_before, not_after)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(ident)]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key_pem, key_der = _key_bytes(key)
        _write(directory / "key.pem", key_pem, secret=True)
        _write(directory / "key.der", key_der, secret=True)
        _write(directory / "cert.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write(directory / "cert.der", cert.public_bytes(serialization.Encoding.DER))
        return Issued(kind, ident, directory, cert)

    def device_dir(self, eui: str, label: str | None = None) -> Path:
        return self.dir / "devices" / (label or normalize_eui(eui))

    def tool_dir(self, name: str, label: str | None = None) -> Path:
        return self.dir / "tools" / (label or check_tool_name(name))

    def issue_device(
        self,
        eui: str,
        days: int = DEFAULT_LEAF_DAYS,
        not_before=None,
        not_after=None,
        force: bool = False,
        label: str | None = None,
    ) -> Issued:
        """A hub certificate for `eui`; `label` stores it under another directory name (tests
        keep an expired or mismatched certificate beside the good one)."""
        ident = normalize_eui(eui)
        return self._issue("device", ident, self.device_dir(ident, label), days, not_before, not_after, force)

    def issue_tool(
        self,
        name: str,
        days: int = DEFAULT_LEAF_DAYS,
        not_before=None,
        not_after=None,
        force: bool = False,
        label: str | None = None,
    ) -> Issued:
        ident = check_tool_name(name)
        return self._issue("tool", ident, self.tool_dir(ident, label), days, not_before, not_after, force)

    def _load_leaf(self, kind: str, directory: Path) -> Issued:
        path = directory / "cert.pem"
        if not path.exists():
            raise PkiError(f"no {kind} certificate in {directory}: run `dbch pki {kind} ...` first")
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        return Issued(kind, _cn(cert), directory, cert)

    def device(self, eui: str, label: str | None = None) -> Issued:
        return self._load_leaf("device", self.device_dir(eui, label))

    def tool(self, name: str, label: str | None = None) -> Issued:
        return self._load_leaf("tool", self.tool_dir(name, label))

    # --- firmware signing key ----------------------------------------------------------------
    @property
    def signing_dir(self) -> Path:
        return self.dir / "signing"

    def make_signing_key(self, force: bool = False) -> dict:
        d = self.signing_dir
        if (d / "key.pem").exists() and not force:
            raise PkiError(f"a signing key already exists in {d} (use --force to replace it)")
        key = ec.generate_private_key(ec.SECP256R1())
        pub = key.public_key()
        key_pem, key_der = _key_bytes(key)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        _write(d / "key.pem", key_pem, secret=True)
        _write(d / "key.der", key_der, secret=True)
        _write(d / "pub.pem", pub.public_bytes(serialization.Encoding.PEM, spki))
        _write(d / "pub.der", pub.public_bytes(serialization.Encoding.DER, spki))
        _write(d / "pub.bin", self._point(pub))
        return self.signing_summary()

    @staticmethod
    def _point(pub: ec.EllipticCurvePublicKey) -> bytes:
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        path = self.signing_dir / "key.pem"
        if not path.exists():
            raise PkiError(f"no signing key in {self.signing_dir}: run `dbch pki signing-key` first")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{path} is not an EC key")
        return key

    def signing_summary(self) -> dict:
        pub = self.signing_key().public_key()
        point = self._point(pub)
        d = self.signing_dir
        return {
            "kind": "signing-key",
            "curve": "secp256r1",
            "public_point": point.hex(),
            "public_sha256": _sha256(point),
            "files": {n: str(d / n) for n in ("key.pem", "key.der", "pub.pem", "pub.der", "pub.bin")},
        }

    # --- overview ----------------------------------------------------------------------------
    def show(self) -> dict:
        out: dict = {"dir": str(self.dir), "ca": None, "devices": [], "tools": [], "signing_key": None}
        ca_cert = None
        if self.has_ca():
            ca = self.ca()
            ca_cert = ca.cert
            out["ca"] = ca.summary()
        for kind, sub in (("device", "devices"), ("tool", "tools")):
            base = self.dir / sub
            if base.is_dir():
                for d in sorted(p for p in base.iterdir() if (p / "cert.pem").exists()):
                    item = self._load_leaf(kind, d).summary(ca_cert)
                    item["label"] = d.name
                    out[sub].append(item)
        if (self.signing_dir / "key.pem").exists():
            out["signing_key"] = self.signing_summary()
        return out


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --- CLI ---------------------------------------------------------------------------------------


def _text_item(item: dict) -> str:
    extra = "" if item.get("issued_by_ca", True) else "  NOT ISSUED BY THIS CA"
    return (
        f"{item['kind']:7} {item['subject_cn']:32} {item['status']:13} until {item['not_after'][:10]}"
        f"  sha256 {item['sha256'][:16]}{extra}\n        {item['files']['cert_der']}"
    )


def _validity_args(p: argparse.ArgumentParser, days: int) -> None:
    p.add_argument("--days", type=int, default=days, help=f"validity in days (default {days})")
    p.add_argument("--not-before", metavar="ISO", help="start of validity (ISO 8601, UTC unless given)")
    p.add_argument("--not-after", metavar="ISO", help="end of validity (overrides --days)")


def register(subparsers) -> None:
    from host_tools.cli import add_json_flag

    top = subparsers.add_parser(
        "pki",
        help="development PKI: CA, hub and triage tool certificates, firmware signing key",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="pki_command", metavar="ACTION")
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", type=Path, help=f"PKI directory (default ${ENV_DIR} or {default_dir()})")
        add_json_flag(p)

    p = sub.add_parser("init", help="create the development CA")
    common(p)
    p.add_argument("--name", default=DEFAULT_CA_NAME, help="the CA's common name")
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    _validity_args(p, DEFAULT_CA_DAYS)
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("device", help="issue a hub certificate whose identity is its EUI-64")
    common(p)
    p.add_argument("eui", help="the hub's EUI-64, e.g. 00-1B-C5-0C-00-00-12-34 or 001BC50C00001234")
    p.add_argument("--force", action="store_true", help="replace an existing key and certificate")
    _validity_args(p, DEFAULT_LEAF_DAYS)
    p.set_defaults(func=_cmd_device)

    p = sub.add_parser("tool", help="issue a triage tool certificate")
    common(p)
    p.add_argument("name", help="the triage tool's name (letters, digits, '-', '.')")
    p.add_argument("--force", action="store_true", help="replace an existing key and certificate")
    _validity_args(p, DEFAULT_LEAF_DAYS)
    p.set_defaults(func=_cmd_tool)

    p = sub.add_parser("signing-key", help="create the firmware signing key (ECDSA P-256)")
    common(p)
    p.add_argument("--force", action="store_true", help="replace an existing signing key")
    p.set_defaults(func=_cmd_signing_key)

    p = sub.add_parser("show", help="list the CA, certificates and signing key")
    common(p)
    p.set_defaults(func=_cmd_show)


def _run(fn):
    from host_tools.cli import CommandError

    try:
        return fn()
    except PkiError as e:
        raise CommandError(str(e))


def _cmd_init(args) -> int:
    from host_tools.cli import emit

    pki = Pki(args.dir)
    ca = _run(lambda: pki.init_ca(args.name, args.days, args.not_before, args.not_after, args.force))
    item = ca.summary()
    emit(args, item, f"CA created in {pki.ca_dir}\n" + _text_item(item))
    return 0


def _cmd_leaf(args, issue, ident: str) -> int:
    """Issue a leaf certificate with issue(pki, ident, days, not_before, not_after, force) and show it."""
    from host_tools.cli import emit

    pki = Pki(args.dir)
    issued = _run(lambda: issue(pki, ident, args.days, args.not_before, args.not_after, args.force))
    item = issued.summary(pki.ca().cert)
    emit(args, item, _text_item(item))
    return 0


def _cmd_device(args) -> int:
    return _cmd_leaf(args, Pki.issue_device, args.eui)


def _cmd_tool(args) -> int:
    return _cmd_leaf(args, Pki.issue_tool, args.name)


def _cmd_signing_key(args) -> int:
    from host_tools.cli import emit

    pki = Pki(args.dir)
    info = _run(lambda: pki.make_signing_key(args.force))
    emit(args, info, f"signing key in {pki.signing_dir}\npublic point {info['public_point']}")
    return 0


def _cmd_show(args) -> int:
    from host_tools.cli import emit

    pki = Pki(args.dir)
    info = _run(pki.show)
    lines = [f"PKI in {info['dir']}"]
    if info["ca"] is None:
        lines.append("no CA yet: run `dbch pki init`")
    else:
        lines.append(_text_item(info["ca"]))
    lines += [_text_item(i) for i in info["devices"] + info["tools"]]
    if info["signing_key"]:
        lines.append(f"signing key: public point sha256 {info['signing_key']['public_sha256'][:16]}")
    emit(args, info, "\n".join(lines))
    return 0

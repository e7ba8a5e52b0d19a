"""Development PKI for the Triage System Interface and the DUIS front: a CA, hub and triage tool
certificates, DUIS message-signing certificates of Users and the DCC, and the firmware signing key
(EC P-256 throughout). Beside it, in the same directory, the DCCKI-like RSA infrastructure
certificates of the DCC front's TLS (`dbch pki infra`: host_tools.security.dccki).

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
- User (DUIS message-signing) certificate: CN = the User ID (an EUI-64, as for a hub), OU xmlSign,
  keyUsage digitalSignature only: like an SMKI Organisation Certificate, it signs DUIS requests
  (a User's) or responses and alerts (the DCC's, under the DCC's own EUI-64): host_tools.duis.signing.

Files (the directory is `--dir`, else $DBCH_PKI_DIR, else $XDG_DATA_HOME/dbch/pki, else
~/.local/share/dbch/pki):
    ca/ca.crt.pem  ca/ca.crt.der  ca/ca.key.pem
    devices/<EUI>/cert.pem cert.der key.pem key.der
    tools/<NAME>/cert.pem cert.der key.pem key.der
    users/<EUI>/cert.pem cert.der key.pem key.der
    signing/key.pem key.der pub.pem pub.der pub.bin   (pub.bin: 65-byte uncompressed point)
DER is what MicroPython's mbedTLS loads (its `ssl` rejects PEM); PEM is for OpenSSL and
strongSwan. Private keys are PKCS#8 and written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host_tools.files import write_file
from host_tools.paths import pki_dir
from host_tools.security.certs import (
    PkiError,
    ca_certificate,
    cert_bytes,
    common_name,
    dns_names,
    fingerprint,
    key_bytes,
    leaf_certificate,
    new_key,
    org_certificate,
    read_certificate,
    read_ec_key,
    signed_by,
    validity,
)

DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 825
DEFAULT_CA_NAME = "dbch development triage CA"
ENV_DIR = "DBCH_PKI_DIR"

_EUI_RE = re.compile(r"^[0-9A-Fa-f]{16}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")


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


@dataclass
class Issued:
    """One certificate (or key) on disk, with the facts `show` and the tests need."""

    kind: str  # "ca", "device", "tool", "user"
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
            "subject_cn": common_name(self.cert),
            "san_dns": dns_names(self.cert),
            "serial": format(self.cert.serial_number, "x"),
            "not_before": nb.isoformat(),
            "not_after": na.isoformat(),
            "status": status,
            "sha256": fingerprint(self.cert),
            "files": {
                "cert_pem": str(self.cert_pem),
                "cert_der": str(self.cert_der),
                "key_pem": str(self.key_pem),
            },
        }
        if self.key_der is not None:
            out["files"]["key_der"] = str(self.key_der)
        if ca is not None and self.kind != "ca":
            out["issued_by_ca"] = signed_by(self.cert, ca)
        return out

    def write(self, key: ec.EllipticCurvePrivateKey) -> Issued:
        """Store the certificate and its key in this one's files."""
        pem, der = key_bytes(key)
        write_file(self.key_pem, pem, secret=True)
        if self.key_der is not None:
            write_file(self.key_der, der, secret=True)
        pem, der = cert_bytes(self.cert)
        write_file(self.cert_pem, pem)
        write_file(self.cert_der, der)
        return self


# the kinds of leaf certificate: their directory, and what makes a name their identity
_LEAVES = {"device": ("devices", normalize_eui), "tool": ("tools", check_tool_name), "user": ("users", normalize_eui)}


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
        valid = validity(days, not_before, not_after)
        key = new_key()
        return Issued("ca", common_name, self.ca_dir, ca_certificate(common_name, key, valid)).write(key)

    def load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.has_ca():
            raise PkiError(f"no CA in {self.dir}: run `dbch pki init` first (or pass --dir)")
        return read_certificate(self.ca_dir / "ca.crt.pem"), read_ec_key(self.ca_dir / "ca.key.pem")

    def ca(self) -> Issued:
        cert, _ = self.load_ca()
        return Issued("ca", common_name(cert), self.ca_dir, cert)

    # --- leaves ------------------------------------------------------------------------------
    def leaf_dir(self, kind: str, name: str, label: str | None = None) -> Path:
        """Where the certificate of a "device" (`name` its EUI-64) or "tool" is kept; under
        `label` instead of its name if given."""
        sub, ident = _LEAVES[kind]
        return self.dir / sub / (label or ident(name))

    def device_dir(self, eui: str, label: str | None = None) -> Path:
        return self.leaf_dir("device", eui, label)

    def tool_dir(self, name: str, label: str | None = None) -> Path:
        return self.leaf_dir("tool", name, label)

    def issue(
        self,
        kind: str,
        name: str,
        days: int = DEFAULT_LEAF_DAYS,
        not_before=None,
        not_after=None,
        force: bool = False,
        label: str | None = None,
    ) -> Issued:
        """A new key and certificate for a "device" (a hub, `name` its EUI-64), a "tool" (a
        triage tool) or a "user" (a DUIS User's or the DCC's message signing, `name` its User ID);
        `label` stores it under another directory name (tests keep an expired or
        mismatched certificate beside the good one)."""
        ident = _LEAVES[kind][1](name)
        directory = self.leaf_dir(kind, ident, label)
        ca_cert, ca_key = self.load_ca()
        if (directory / "cert.pem").exists() and not force:
            raise PkiError(f"{directory / 'cert.pem'} exists (use --force to issue a new key and certificate)")
        valid = validity(days, not_before, not_after)
        key = new_key()
        build = org_certificate if kind == "user" else leaf_certificate
        return Issued(kind, ident, directory, build(ident, key, ca_cert, ca_key, valid)).write(key)

    def issue_device(self, eui: str, **options) -> Issued:
        """A hub certificate for `eui` (options: those of issue())."""
        return self.issue("device", eui, **options)

    def issue_tool(self, name: str, **options) -> Issued:
        """A triage tool certificate for `name` (options: those of issue())."""
        return self.issue("tool", name, **options)

    def _load_leaf(self, kind: str, directory: Path) -> Issued:
        path = directory / "cert.pem"
        if not path.exists():
            raise PkiError(f"no {kind} certificate in {directory}: run `dbch pki {kind} ...` first")
        cert = read_certificate(path)
        return Issued(kind, common_name(cert), directory, cert)

    def issue_user(self, eui: str, **options) -> Issued:
        """A DUIS message-signing certificate for the User (or DCC) whose User ID is `eui`."""
        return self.issue("user", eui, **options)

    def user(self, eui: str, label: str | None = None) -> Issued:
        return self._load_leaf("user", self.leaf_dir("user", eui, label))

    def user_key(self, eui: str, label: str | None = None) -> ec.EllipticCurvePrivateKey:
        """The private key of a User's (or the DCC's) signing certificate."""
        path = self.leaf_dir("user", eui, label) / "key.pem"
        if not path.exists():
            raise PkiError(f"no signing key for User {eui} in {path.parent}: run `dbch pki user {eui}` first")
        return read_ec_key(path)

    def device(self, eui: str, label: str | None = None) -> Issued:
        return self._load_leaf("device", self.device_dir(eui, label))

    def tool(self, name: str, label: str | None = None) -> Issued:
        return self._load_leaf("tool", self.tool_dir(name, label))

    def labels(self, sub: str) -> list[str]:
        """The names of the directories under `sub` ("devices" or "tools") that hold a
        certificate, sorted: an EUI or tool name, or the label it was issued under."""
        base = self.dir / sub
        if not base.is_dir():
            return []
        return sorted(d.name for d in base.iterdir() if (d / "cert.pem").exists())

    def only(self, sub: str, what: str, option: str, issue: str) -> str:
        """The label of the only certificate under `sub` ("devices" or "tools"); PkiError if
        there is none (the message says "issue one with " `issue`) or several (choose with
        `option`). `what` is what the messages call one ("hub", "tool")."""
        names, where = self.labels(sub), self.dir / sub
        if len(names) == 1:
            return names[0]
        if not names:
            raise PkiError(f"no {what} certificate in {where}: issue one with {issue}")
        raise PkiError(f"several {what} certificates in {where} ({', '.join(names)}): choose with {option}")

    # --- firmware signing key ----------------------------------------------------------------
    @property
    def signing_dir(self) -> Path:
        return self.dir / "signing"

    def make_signing_key(self, force: bool = False) -> dict:
        d = self.signing_dir
        if (d / "key.pem").exists() and not force:
            raise PkiError(f"a signing key already exists in {d} (use --force to replace it)")
        key = new_key()
        pub = key.public_key()
        key_pem, key_der = key_bytes(key)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        write_file(d / "key.pem", key_pem, secret=True)
        write_file(d / "key.der", key_der, secret=True)
        write_file(d / "pub.pem", pub.public_bytes(serialization.Encoding.PEM, spki))
        write_file(d / "pub.der", pub.public_bytes(serialization.Encoding.DER, spki))
        write_file(d / "pub.bin", self._point(pub))
        return self.signing_summary()

    @staticmethod
    def _point(pub: ec.EllipticCurvePublicKey) -> bytes:
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        path = self.signing_dir / "key.pem"
        if not path.exists():
            raise PkiError(f"no signing key in {self.signing_dir}: run `dbch pki signing-key` first")
        return read_ec_key(path)

    def signing_summary(self) -> dict:
        pub = self.signing_key().public_key()
        point = self._point(pub)
        d = self.signing_dir
        return {
            "kind": "signing-key",
            "curve": "secp256r1",
            "public_point": point.hex(),
            "public_sha256": hashlib.sha256(point).hexdigest(),
            "files": {n: str(d / n) for n in ("key.pem", "key.der", "pub.pem", "pub.der", "pub.bin")},
        }

    # --- overview ----------------------------------------------------------------------------
    def show(self) -> dict:
        out: dict = {"dir": str(self.dir), "ca": None, "devices": [], "tools": [], "users": [], "signing_key": None}
        ca_cert = None
        if self.has_ca():
            ca = self.ca()
            ca_cert = ca.cert
            out["ca"] = ca.summary()
        for kind, (sub, _ident) in _LEAVES.items():
            for label in self.labels(sub):
                item = self._load_leaf(kind, self.dir / sub / label).summary(ca_cert)
                item["label"] = label
                out[sub].append(item)
        if (self.signing_dir / "key.pem").exists():
            out["signing_key"] = self.signing_summary()
        return out

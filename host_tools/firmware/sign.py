"""Firmware signatures on the host: the manufacturer's signing key (private, to sign images and
rollback permissions) and the public key a hub trusts (provisioned by `dbch flash`).

The signature is ECDSA P-256 / SHA-256 over an image's CONTENT (agent/image.py), made with the
manufacturer's key: a PEM or DER PKCS#8 private key, by default the development PKI's signing key
(`dbch pki signing-key`). It is checked here as the device checks it (agent.fw_image, agent.p256).
"""

from __future__ import annotations

from pathlib import Path

from agent import fw_image as image
from host_tools.firmware.images import FirmwareInputError, firmware_hash, split


# -- keys ----------------------------------------------------------------------------------------
def load_private_key(path: str | None):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if path is None:
        from host_tools.security.pki import Pki, PkiError

        try:
            return Pki().signing_key()
        except PkiError as e:
            raise FirmwareInputError(f"{e} (or give --key KEY)") from e
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise FirmwareInputError(f"cannot read key {path}: {e}") from e
    try:
        if raw.lstrip().startswith(b"-----"):
            key = serialization.load_pem_private_key(raw, password=None)
        else:
            key = serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError) as e:
        raise FirmwareInputError(f"{path} is not an unencrypted PEM or DER private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise FirmwareInputError(f"{path} is not an EC P-256 private key")
    return key


def public_point(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def load_signing_public(spec: str | None) -> bytes | None:
    """The 65-byte P-256 point to trust: from spec (a file or hex), else the development PKI's
    signing key if there is one, else None."""
    from agent import p256

    if spec is None:
        # host_tools.security.pki's Pki().signing_dir, found without loading the PKI's code (and
        # cryptography's X.509 with it): `dbch flash` asks this at every start
        from host_tools.paths import pki_dir

        path = pki_dir() / "signing" / "pub.bin"
        if not path.exists():
            return None
        spec = str(path)
    p = Path(spec)
    if p.exists():
        raw = p.read_bytes()
        if len(raw) != 65:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec

            try:
                if raw.lstrip().startswith(b"-----"):
                    key = serialization.load_pem_public_key(raw)
                else:
                    key = serialization.load_der_public_key(raw)
            except ValueError as e:
                raise FirmwareInputError(f"--signing-key {spec}: not a public key ({e})") from e
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise FirmwareInputError(f"--signing-key {spec}: not a P-256 public key")
            raw = public_point(key)
    else:
        try:
            raw = bytes.fromhex(spec)
        except ValueError:
            raise FirmwareInputError(f"--signing-key {spec}: no such file, and not hex") from None
    try:
        p256.parse_public_key(raw)
    except ValueError as e:
        raise FirmwareInputError(f"--signing-key {spec}: {e}") from e
    if len(raw) != 65:
        raise FirmwareInputError(f"--signing-key {spec}: give the uncompressed point (65 bytes)")
    return raw


# -- signing and checking -----------------------------------------------------------------------
def sign_content(content: bytes, key) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return key.sign(content, ec.ECDSA(hashes.SHA256()))


def sign_image(data: bytes, key) -> bytes:
    """The image with its signature trailer made (or replaced) with key."""
    content, _old = split(data)
    return content + image.trailer(sign_content(content, key))


def verify_image(data: bytes, pub: bytes, board: str | None = None) -> dict:
    """Check an image as the device does (agent.fw_image parser, agent.p256), on the host."""
    from agent import p256

    content, sig = split(data)
    p = image.Parser(board=board, total=len(content))
    p.feed(content)
    m = p.finish()
    digest = firmware_hash(content)
    return {
        "manifest": m,
        "hash": digest,
        "signed": sig is not None,
        "valid": sig is not None and p256.verify(pub, digest, sig),
    }


def make_permit(eui: bytes, digest: bytes, key) -> bytes:
    """A rollback permission (agent/image.py) for the hub eui and the image digest, signed with
    key (the firmware signing key the hub trusts)."""
    signed = image.permit(eui, digest)
    return signed + image.trailer(sign_content(signed, key))

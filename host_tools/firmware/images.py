"""Firmware image files on the host: read them (host_tools.files writes them), split off their
signature trailer, name them by their FirmwareHash and describe them; read rollback permissions.

Image format: agent/image.py. An image is its CONTENT (header with the CBOR manifest, then the
.mpy files) followed by a signature trailer. The FirmwareHash of DUIS 11.3 is SHA-256(CONTENT).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent import fw_image as image
from host_tools.errors import DbchError


class FirmwareInputError(DbchError):
    """An image, permission, key, version or hash given to the firmware tools that cannot be used;
    the message says which and why."""


def firmware_hash(content: bytes) -> bytes:
    """The DUIS 11.3 FirmwareHash: SHA-256 of the image CONTENT (everything before the trailer)."""
    return hashlib.sha256(content).digest()


def split(data: bytes) -> tuple[bytes, bytes | None]:
    try:
        return image.split(data)
    except image.ImageError as e:
        raise FirmwareInputError(f"not a valid firmware image: {e}") from e


def describe(data: bytes) -> dict:
    from agent.boot import counter

    content, sig = split(data)
    m, _n = image.parse_head(content)
    return {
        "version": m["version"],
        "board": m["board"],
        "files": m["files"],
        "size": len(content),
        "hash": firmware_hash(content).hex(),
        "signed": sig is not None,
        "sec": counter(m),
    }


def parse_hash(text: str) -> bytes:
    """A FirmwareHash from 64 hex digits, or from an image file's content."""
    t = text.strip().replace(":", "").replace(" ", "")
    if len(t) == 64:
        try:
            return bytes.fromhex(t)
        except ValueError:
            pass
    p = Path(text)
    if p.is_file():
        content, _sig = split(p.read_bytes())
        return firmware_hash(content)
    raise FirmwareInputError(f"{text!r} is neither a FirmwareHash (64 hex digits) nor an image file")


def read_image(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise FirmwareInputError(f"cannot read {path}: {e}") from e


def read_permit(path: str) -> bytes:
    """A rollback permission file (agent/image.py), checked for its form (not its signature)."""
    data = read_image(path)
    try:
        image.parse_permit(data)
    except image.ImageError as e:
        raise FirmwareInputError(f"{path}: {e}") from e
    return data


# -- the images this host staged, kept by FirmwareHash ----------------------------------------------
# A hub's running image is the base an update's compressed stream refers to (stage.send base); the
# host has it when it staged that image itself: `dbch firmware send` keeps each image it staged in
# <cache>/dbch/images/HASH.img and looks the hub's running FirmwareHash up there.


def kept_image(digest: bytes) -> bytes | None:
    """The image with this FirmwareHash that this host kept (keep_image), or None."""
    from host_tools.paths import cache_dir

    try:
        data = cache_dir("images", digest.hex() + ".img").read_bytes()
        return data if firmware_hash(split(data)[0]) == digest else None
    except (OSError, FirmwareInputError):
        return None


def keep_image(data: bytes) -> None:
    """Keep an image (its CONTENT) under its FirmwareHash; a cache that cannot be written is passed over."""
    from host_tools.files import write_file
    from host_tools.paths import cache_dir

    content = split(data)[0]
    try:
        write_file(cache_dir("images", firmware_hash(content).hex() + ".img"), content)
    except OSError:
        pass

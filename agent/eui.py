# EUI-64 identities as DUIS writes them (sr:EUI: "XX-XX-XX-XX-XX-XX-XX-XX", hex pairs).
from binascii import hexlify, unhexlify


def format_eui(eui):
    """8 bytes -> '00-DB-12-34-56-78-90-A2'."""
    if not isinstance(eui, (bytes, bytearray)) or len(eui) != 8:
        raise ValueError("an EUI-64 is 8 bytes, got {!r}".format(eui))
    h = hexlify(eui).decode().upper()
    return "-".join(h[i : i + 2] for i in range(0, 16, 2))


def parse_eui(text):
    """'00-DB-12-34-56-78-90-A2' (or without separators) -> 8 bytes; ValueError if not one."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) == 8:
            return bytes(text)
        raise ValueError("an EUI-64 is 8 bytes")
    if not isinstance(text, str):
        raise ValueError("{!r} is not an EUI-64".format(text))
    compact = text.strip().replace("-", "").replace(":", "")
    if len(compact) != 16:
        raise ValueError("{!r} is not an EUI-64 (8 hex pairs)".format(text))
    try:
        return unhexlify(compact)
    except ValueError:
        raise ValueError("{!r} is not an EUI-64 (8 hex pairs)".format(text))

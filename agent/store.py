# Typed, checked records on a hal Storage.
#
# A record's body is the CBOR encoding of its value (agent.cbor) followed by the CRC-32 of that
# encoding (binascii.crc32, 4 bytes big-endian). A record that is too short, fails its CRC or
# does not decode is treated as missing: get() returns the default and counts it (corrupt,
# corrupt_names); it never raises for a bad record. Atomicity (old or new after a power cut)
# comes from Storage.write.
from binascii import crc32
from struct import pack, unpack

from agent import cbor
from hal.compat import const

_CRC_BYTES = const(4)
_KEEP_NAMES = const(8)


def encode(obj):
    """The record body for obj (CBORError if obj cannot be encoded)."""
    data = cbor.dumps(obj)
    return data + pack(">I", crc32(data) & 0xFFFFFFFF)


_BAD = object()  # what get() passes to decode() as the default: no record value is this


def decode(body, default=None):
    """The value in a record body, or default if the body is damaged."""
    n = len(body) - _CRC_BYTES
    if n < 1:
        return default
    data = bytes(body[:n])
    if crc32(data) & 0xFFFFFFFF != unpack(">I", bytes(body[n:]))[0]:
        return default
    try:
        return cbor.loads(data)
    except ValueError:  # CBORError is a ValueError
        return default


class Store:
    def __init__(self, storage):
        self.storage = storage
        self.corrupt = 0  # damaged records met by get()
        self.corrupt_names = []  # the last few of their names, each once

    def _bad(self, name):
        self.corrupt += 1
        names = self.corrupt_names
        if name in names:
            names.remove(name)
        names.append(name)
        if len(names) > _KEEP_NAMES:
            names.pop(0)

    def get(self, name, default=None):
        try:
            body = self.storage.read(name)
        except OSError:  # an unreadable record is a damaged one
            self._bad(name)
            return default
        if body is None:
            return default
        obj = decode(body, _BAD)
        if obj is _BAD:
            self._bad(name)
            return default
        return obj

    def put(self, name, obj):
        self.storage.write(name, encode(obj))

    def delete(self, name):
        return self.storage.remove(name)

    def names(self, prefix=""):
        return [n for n in self.storage.names() if n.startswith(prefix)]

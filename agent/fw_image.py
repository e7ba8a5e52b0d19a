# The firmware image ("bundle") format, and a streaming parser that never holds more than one
# small field in RAM (file data passes through in whatever pieces it arrives).
#
# An image file is CONTENT followed by a SIGNATURE TRAILER:
#   CONTENT = HEADER PAYLOAD
#   HEADER  = "DBFW"  FORMAT (1 byte, = 1)  FLAGS (1 byte, = 0)  MLEN (2 bytes, big-endian)
#             MANIFEST (MLEN bytes, canonical CBOR map, MLEN <= 1024):
#               "version": str, 1-8 printable ASCII characters (sr:FirmwareVersion)
#               "board":   str, the board module the image is built for (boards.BOARDS)
#               "size":    int, length in bytes of PAYLOAD
#               "sha256":  bytes(32), SHA-256 of PAYLOAD
#               "files":   int, number of file records
#               "sec":     int, 0-999999999, optional: the security counter (anti-rollback, see
#                          agent/fw_service.py); without it the counter is derived from "version"
#               other keys are ignored (room for later fields)
#   PAYLOAD = RECORD* END
#   RECORD  = PLEN (1 byte, 1-64) PATH (PLEN bytes) DLEN (4 bytes, big-endian) DATA (DLEN bytes)
#   END     = one 0x00 byte (a record with PLEN 0); nothing may follow it
#   PATH    = a relative path of the slot, "/"-separated, [A-Za-z0-9_.-] components, no "." or
#             "..", ending in ".mpy" (the image is compiled modules only); records come in
#             strictly increasing path order (bytewise), so each path is there once and the
#             parser needs no list of the paths seen
#   TRAILER = "DBSG" SLEN (2 bytes, big-endian) SIG (SLEN bytes: DER ECDSA-Sig-Value)
# The CONTENT's length is known from its first bytes: 8 + MLEN + manifest "size".
#
# FirmwareHash (DUIS 11.3 / GBCS CS06) = SHA-256 of CONTENT: the whole header and payload, every
# byte before the trailer. The signature is ECDSA P-256 with SHA-256 over CONTENT, i.e. over the
# FirmwareHash digest (agent.p256.verify(key, firmware_hash, sig)). An unsigned image is
# CONTENT alone.
#
# A ROLLBACK PERMISSION lets one hub take one image whose security counter is below its minimum:
#   PERMIT  = "DBRB" PLEN (2 bytes, big-endian) MAP (PLEN bytes, CBOR map, PLEN <= 128) TRAILER
#   MAP     = {"eui": bytes(8), the hub's EUI-64; "hash": bytes(32), the image's FirmwareHash}
# signed like an image (same trailer, same key): ECDSA P-256 / SHA-256 over every byte before
# the trailer. Its magic differs from an image's, so neither signature stands for the other.
import hashlib
from struct import pack, unpack

from agent import cbor
from hal.compat import const

MAGIC = b"DBFW"
SIG_MAGIC = b"DBSG"
PERMIT_MAGIC = b"DBRB"
MAX_PERMIT = const(128)
FORMAT = const(1)
HEAD = const(8)
MAX_MANIFEST = const(1024)
MAX_PATH = const(64)
MAX_FILES = const(512)
MAX_SIG = const(72)

# Response codes of refusals (agent.codes): see agent/fw_staging.py for the whole table.
RC_FORMAT = "E49"
RC_BOARD = "E11"
RC_AUTH = "E100"  # integrity: the payload does not hash to what its manifest says

_SAFE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

# parser states
_S_HEAD = const(0)
_S_MAN = const(1)
_S_PLEN = const(2)
_S_PATH = const(3)
_S_DLEN = const(4)
_S_DATA = const(5)
_S_DONE = const(6)


class ImageError(ValueError):
    """A refused image: code is the response code, the message says why."""

    def __init__(self, msg, code=RC_FORMAT):
        super().__init__(msg)
        self.code = code


def check_path(path):
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH:
        raise ImageError("bad file path {!r}: 1-{} characters".format(path, MAX_PATH))
    if not path.endswith(".mpy"):
        raise ImageError("bad file path {!r}: an image holds .mpy files only".format(path))
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ImageError("bad file path {!r}: empty, '.' or '..' component".format(path))
        for c in part.encode():  # bytes: MicroPython interns each character a str yields
            if c not in _SAFE:
                raise ImageError("bad file path {!r}: only A-Z a-z 0-9 _ . - and /".format(path))


def check_version(v):
    if not isinstance(v, str) or not 1 <= len(v) <= 8:
        raise ImageError("bad version {!r}: 1 to 8 characters (sr:FirmwareVersion)".format(v))
    for c in v.encode():
        if not 0x21 <= c <= 0x7E:
            raise ImageError("bad version {!r}: printable ASCII without spaces".format(v))


def check_manifest(m, board=None):
    """The manifest dict if it is well-formed (and for board, when given), else ImageError."""
    if not isinstance(m, dict):
        raise ImageError("manifest is not a map")
    check_version(m.get("version"))
    b = m.get("board")
    if not isinstance(b, str) or not b:
        raise ImageError("manifest has no board")
    for k in ("size", "files"):
        v = m.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ImageError("manifest {!r} must be a positive int, not {!r}".format(k, v))
    if m["files"] > MAX_FILES:
        raise ImageError("manifest lists {} files, at most {}".format(m["files"], MAX_FILES))
    h = m.get("sha256")
    if not isinstance(h, bytes) or len(h) != 32:
        raise ImageError("manifest sha256 must be 32 bytes")
    s = m.get("sec")
    if s is not None and (not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= 999999999):
        raise ImageError("manifest sec (security counter) must be an int from 0 to 999999999, not {!r}".format(s))
    if board is not None and b != board:
        raise ImageError("image is for board {!r}, this is {!r}".format(b, board), RC_BOARD)
    return m


# ---------------------------------------------------------------- writing (host and tests)


def record(path, data):
    check_path(path)
    p = path.encode()
    return bytes([len(p)]) + p + pack(">I", len(data)) + bytes(data)


def build(version, board, files, extra=None):
    """CONTENT for files [(path, bytes)] (written in path order)."""
    payload = bytearray()
    files = sorted(files, key=lambda f: f[0].encode() if isinstance(f[0], str) else f[0])
    for i in range(1, len(files)):
        if files[i][0] == files[i - 1][0]:
            raise ImageError("file {} appears twice".format(files[i][0]))
    for path, data in files:
        payload += record(path, data)
    payload.append(0)
    m = {"version": version, "board": board, "size": len(payload), "files": len(files)}
    m["sha256"] = hashlib.sha256(payload).digest()
    if extra:
        for k in extra:
            m[k] = extra[k]
    check_manifest(m)
    man = cbor.dumps(m)
    if len(man) > MAX_MANIFEST:
        raise ImageError("manifest too large")
    return MAGIC + bytes([FORMAT, 0]) + pack(">H", len(man)) + man + bytes(payload)


def trailer(sig):
    if not 8 <= len(sig) <= MAX_SIG:
        raise ImageError("a signature is 8 to {} bytes".format(MAX_SIG))
    return SIG_MAGIC + pack(">H", len(sig)) + bytes(sig)


def permit(eui, digest):
    """The signed part of a rollback permission for hub eui (8 bytes) and FirmwareHash digest."""
    if len(eui) != 8 or len(digest) != 32:
        raise ImageError("a rollback permission names an 8-byte EUI-64 and a 32-byte FirmwareHash")
    body = cbor.dumps({"eui": bytes(eui), "hash": bytes(digest)})
    return PERMIT_MAGIC + pack(">H", len(body)) + body


def parse_permit(data):
    """(signed part, eui, hash, signature) of a rollback permission; ImageError if malformed."""
    data = bytes(data)
    if len(data) < 6 or data[:4] != PERMIT_MAGIC:
        raise ImageError("not a rollback permission (no DBRB magic)")
    n = 6 + unpack(">H", data[4:6])[0]
    if n - 6 > MAX_PERMIT or len(data) < n + 6 or data[n : n + 4] != SIG_MAGIC:
        raise ImageError("malformed rollback permission")
    slen = unpack(">H", data[n + 4 : n + 6])[0]
    if len(data) != n + 6 + slen or not 8 <= slen <= MAX_SIG:
        raise ImageError("bad signature trailer on the rollback permission")
    try:
        m = cbor.loads(data[6:n])
    except ValueError as e:
        raise ImageError("rollback permission is not CBOR: {}".format(e))
    eui = m.get("eui") if isinstance(m, dict) else None
    digest = m.get("hash") if isinstance(m, dict) else None
    if not isinstance(eui, bytes) or len(eui) != 8 or not isinstance(digest, bytes) or len(digest) != 32:
        raise ImageError("a rollback permission names an 8-byte EUI-64 and a 32-byte FirmwareHash")
    return data[:n], eui, digest, data[n + 6 :]


def parse_head(head):
    """(manifest, content length) from the first bytes of an image (at least 8 + MLEN)."""
    if len(head) < HEAD or head[:4] != MAGIC:
        raise ImageError("not a firmware image (no DBFW magic)")
    if head[4] != FORMAT:
        raise ImageError("image format {} not supported (this agent reads {})".format(head[4], FORMAT))
    mlen = unpack(">H", head[6:8])[0]
    if not 0 < mlen <= MAX_MANIFEST:
        raise ImageError("bad manifest length {}".format(mlen))
    if len(head) < HEAD + mlen:
        raise ImageError("truncated header")
    try:
        m = cbor.loads(bytes(head[HEAD : HEAD + mlen]))
    except ValueError as e:
        raise ImageError("manifest is not CBOR: {}".format(e))
    check_manifest(m)
    return m, HEAD + mlen + m["size"]


def split(image):
    """(content, signature or None) of a whole image file in memory (host side)."""
    m, n = parse_head(image)
    if len(image) < n:
        raise ImageError("truncated image: {} of {} content bytes".format(len(image), n))
    rest = image[n:]
    if not rest:
        return image[:n], None
    if len(rest) < 6 or rest[:4] != SIG_MAGIC:
        raise ImageError("bytes after the content are not a signature trailer")
    slen = unpack(">H", rest[4:6])[0]
    if len(rest) != 6 + slen or not 8 <= slen <= MAX_SIG:
        raise ImageError("bad signature trailer")
    return image[:n], bytes(rest[6:])


# ---------------------------------------------------------------- streaming parser


class Parser:
    """Checks CONTENT as it streams in: feed(piece) any number of times, then finish().
    With a sink, file records are delivered as sink.begin(path, length), sink.data(mv) (any
    number of times), sink.end(). board: refuse an image built for another board. total: the
    CONTENT length announced beforehand (it must agree with the manifest)."""

    def __init__(self, board=None, total=None, sink=None):
        self.board = board
        self.total = total
        self.sink = sink
        self.manifest = None
        self.pos = 0  # CONTENT bytes consumed
        self.files = 0
        self._last = b""  # the previous record's path
        self._state = _S_HEAD
        self._buf = bytearray()
        self._need = HEAD
        self._left = 0  # DATA bytes left in the current record
        self._payload = 0  # PAYLOAD bytes consumed
        self._sha = hashlib.sha256()
        self._path = None

    @property
    def done(self):
        return self._state == _S_DONE

    def feed(self, data):
        mv = memoryview(data)
        i = 0
        n = len(mv)
        while i < n:
            st = self._state
            if st == _S_DONE:
                raise ImageError("data after the end of the image")
            if st == _S_DATA:
                k = min(self._left, n - i)
                piece = mv[i : i + k]
                self._sha.update(piece)
                if self.sink is not None:
                    self.sink.data(piece)
                self._left -= k
                self._payload += k
                i += k
                if not self._left:
                    self._end_file()
                continue
            k = min(self._need - len(self._buf), n - i)
            piece = mv[i : i + k]
            self._buf += piece
            if st != _S_HEAD and st != _S_MAN:
                self._sha.update(piece)
                self._payload += k
            i += k
            if len(self._buf) == self._need:
                self._field()
        self.pos += n

    def _set(self, state, need):
        self._state = state
        self._need = need
        self._buf = bytearray()

    def _field(self):
        st = self._state
        b = self._buf
        if st == _S_HEAD:
            if b[:4] != MAGIC:
                raise ImageError("not a firmware image (no DBFW magic)")
            if b[4] != FORMAT:
                raise ImageError("image format {} not supported (this agent reads {})".format(b[4], FORMAT))
            mlen = unpack(">H", b[6:8])[0]
            if not 0 < mlen <= MAX_MANIFEST:
                raise ImageError("bad manifest length {}".format(mlen))
            self._set(_S_MAN, mlen)
        elif st == _S_MAN:
            try:
                m = cbor.loads(bytes(b))
            except ValueError as e:
                raise ImageError("manifest is not CBOR: {}".format(e))
            check_manifest(m, self.board)
            if self.total is not None and HEAD + len(b) + m["size"] != self.total:
                raise ImageError(
                    "image is {} bytes by its manifest, {} were announced".format(HEAD + len(b) + m["size"], self.total)
                )
            self.manifest = m
            self._set(_S_PLEN, 1)
        elif st == _S_PLEN:
            plen = b[0]
            if plen == 0:
                self._finish_payload()
            elif plen > MAX_PATH:
                raise ImageError("bad file path length {}".format(plen))
            else:
                self._set(_S_PATH, plen)
        elif st == _S_PATH:
            raw = bytes(b)
            try:
                path = raw.decode()
            except UnicodeError:
                raise ImageError("file path is not text")
            check_path(path)
            if raw <= self._last:
                raise ImageError("file {} is out of order (paths must increase: each once)".format(path))
            self.files += 1
            if self.files > self.manifest["files"]:
                raise ImageError("more files than the manifest lists")
            self._last = raw
            self._path = path
            self._set(_S_DLEN, 4)
        elif st == _S_DLEN:
            dlen = unpack(">I", b)[0]
            # the data, then at least the END byte, must fit in the declared payload
            if self._payload + dlen + 1 > self.manifest["size"]:
                raise ImageError("file {} runs past the end of the payload".format(self._path))
            if self.sink is not None:
                self.sink.begin(self._path, dlen)
            self._left = dlen
            self._set(_S_DATA, 0)
            if not dlen:
                self._end_file()

    def _end_file(self):
        if self.sink is not None:
            self.sink.end()
        self._path = None
        self._set(_S_PLEN, 1)

    def _finish_payload(self):
        m = self.manifest
        if self._payload != m["size"]:
            raise ImageError("payload is {} bytes, the manifest says {}".format(self._payload, m["size"]))
        if self.files != m["files"]:
            raise ImageError("{} files, the manifest says {}".format(self.files, m["files"]))
        if self._sha.digest() != m["sha256"]:
            raise ImageError("payload does not match the manifest's sha256", RC_AUTH)
        self._set(_S_DONE, 0)

    def finish(self):
        """ImageError unless a whole, consistent image was fed."""
        if self._state != _S_DONE:
            raise ImageError("truncated image: {} bytes, it ends early".format(self.pos))
        return self.manifest

# Compressed staging for agent.fw_staging: the image as one raw deflate stream across its fw.chunk
# requests, decompressed into the staged file as the chunks arrive. Loaded when fw.begin asks for
# it ("z") and let go when the staging ends or a begin asks for plain chunks.
#
# The host compresses the image's CONTENT from the offset fw.begin answered, with a window of at
# most 2**z bytes (the one this board takes: fw.begin's answer "z"), as one stream, and cuts it
# into chunks of at most "zc" compressed bytes (host_tools.firmware.stage.stream_chunks). Each
# chunk says how many image bytes "n" the stream gives once its bytes are in (every symbol whose
# bits have arrived; at most "zn") and their CRC-32 "c". The decompressor reads its source a byte
# at a time and only as far as the bytes asked of it need, so asked for exactly n it stops within
# the chunk; the bits of a symbol cut by the chunk's end stay unread until the next chunk. The n
# bytes are decompressed into a buffer and checked before any of them is written: a damaged
# chunk is refused with nothing of it staged, and the stream is then closed until a fw.begin
# starts a new one at the staged offset (as after a reboot or a cut link: it lives in RAM only).
import io
from binascii import crc32

from agent.fw_common import RC_BAD, FwError, arg_bytes, arg_int
from hal.compat import const, raw_inflater

_SPARE = const(8192)  # heap left beside the window and the buffer when the window is chosen


class _Feed(io.IOBase):
    # The chunks' compressed bytes as one stream for the decompressor, which reads it a byte at a
    # time: what the last chunk left unread (tail), then the new chunk, not copied.
    def __init__(self):
        self.tail = b""
        self.cur = b""
        self.pos = 0  # in cur; below 0: in tail, counted from its end

    def feed(self, data):
        p = self.pos
        self.tail = self.tail[p:] + self.cur if p < 0 else self.cur[p:]
        self.cur = data
        self.pos = -len(self.tail)

    def readinto(self, buf):
        p = self.pos
        if p < 0:
            buf[0] = self.tail[p]
        elif p < len(self.cur):
            buf[0] = self.cur[p]
        else:
            raise ValueError("the chunk's data ends before its bytes do")
        self.pos = p + 1
        return 1


class Inflater:
    def __init__(self, wbits, most, chunk):
        self.wbits = wbits
        self.chunk = chunk
        self.src = _Feed()
        self.d = raw_inflater(self.src, wbits)
        self.out = bytearray(most)

    def take(self, args, offset):
        # The bytes of a compressed fw.chunk (args: z, n, c), decompressed and checked: a
        # memoryview of this inflater's buffer. FwError if they are not what the chunk says.
        z = arg_bytes(args, "z", 1, self.chunk)
        n = arg_int(args, "n")
        crc = arg_int(args, "c")
        if n > len(self.out):
            raise FwError(RC_BAD, "n must be 0 to {} bytes".format(len(self.out)))
        self.src.feed(z)
        mv = memoryview(self.out)[:n]
        got = 0
        try:
            while got < n:
                k = self.d.readinto(mv[got:])
                if not k:
                    break
                got += k
        except (OSError, ValueError, EOFError):
            got = -1
        if got != n or crc32(mv) & 0xFFFFFFFF != crc:
            raise FwError(
                RC_BAD,
                "the compressed chunk at offset {} does not give the {} bytes it announces: nothing of it "
                "is staged; send again (fw.begin) to go on from there".format(offset, n),
            )
        return mv


def start(wbits, sizes):
    # An Inflater for a window of at most 2**wbits bytes, the largest this heap affords beside the
    # first of sizes ((compressed bytes a chunk, bytes it may give), largest first) that fits with
    # it; None if there is no decompressor or no room.
    if not isinstance(wbits, int) or isinstance(wbits, bool):
        return None
    wbits = min(wbits, 15)
    while wbits >= 9:
        for chunk, most in sizes:
            try:
                probe = bytearray((1 << wbits) + most + 2 * chunk + _SPARE)  # the frame, and its bytes
                del probe
                inf = Inflater(wbits, most, chunk)
            except MemoryError:
                continue
            except (ValueError, TypeError, OSError):  # a decompressor that takes no such window
                return None
            return inf if inf.d is not None else None
        wbits -= 1
    return None

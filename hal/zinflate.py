# MicroPython's deflate.DeflateIO for reading a raw deflate stream, on a runtime that has zlib
# instead (CPython: the agent on simulated hardware): hal.compat.raw_inflater hands out one or the
# other. As DeflateIO does, it reads its source a byte at a time and only when the bytes asked of
# it need more, so a reader asked for exactly the bytes a piece of the stream completes never
# reads past that piece. Bad data is an OSError, as it is from DeflateIO; a source that ends
# early, an EOFError. A zlib without streaming decompression (MicroPython's before deflate) fails
# the imports below, so hal.compat hands out no decompressor there and the host sends plain
# chunks.
from zlib import decompressobj
from zlib import error as ZlibError

RAW = -1


class DeflateIO:
    def __init__(self, src, fmt, wbits):
        self.src = src
        self.d = decompressobj(-wbits)
        self.one = bytearray(1)
        self.pending = b""

    def readinto(self, buf):
        d = self.d
        while True:
            try:
                out = d.decompress(self.pending, len(buf))
            except ZlibError as e:
                raise OSError(22, "bad deflate data: {}".format(e))
            self.pending = d.unconsumed_tail
            if out or d.eof:
                break
            if not self.pending:
                if not self.src.readinto(self.one):
                    raise EOFError
                self.pending = bytes(self.one)
        buf[: len(out)] = out
        return len(out)

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
#
# An update against the running image. fw.begin answers "zd", the running image's FirmwareHash,
# when the running slot has one. A host that holds that image may start a chunk with "p": a path of
# the image; before the chunk's bytes, the board puts the last 2**z bytes of that file of its
# running slot (or all of it, if shorter) into the decompressor's window, as a stored block it
# makes itself and whose output it drops: the stream's next bytes may then refer to them, as a
# module that changed little refers to its old self. The host ends each piece of the stream
# before such a chunk at a byte (zlib's Z_SYNC_FLUSH) and starts the next with the same bytes as
# its dictionary. Nothing about the image or its checks changes: a file that differs from the
# host's copy gives bytes whose CRC differs, refused as any damaged chunk.
import io
from binascii import crc32

from agent.fw_common import MAX_CHUNK, RC_BAD, FwError, arg_bytes, arg_int, boot_code
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

    def prime(self, fs, base, path):
        # the last 2**wbits bytes of the running slot's file path (under base) into the window,
        # as a stored block of the stream; FwError if there is no such file
        if not isinstance(path, str) or not path or path[0] == "/" or ".." in path:
            raise FwError(RC_BAD, "p must be a path of the image")
        try:
            f = fs.open(base + "/" + path, "rb")
        except OSError:
            raise FwError(RC_BAD, "the running image has no {}".format(path))
        try:
            n = fs.size(base + "/" + path)
            k = min(n, 1 << self.wbits, 65535)
            f.seek(n - k)
            self.src.feed(bytes((0, k & 255, k >> 8, ~k & 255, (~k >> 8) & 255)))  # a stored block of k bytes
            buf = self.out
            while k:
                got = f.readinto(memoryview(buf)[: min(k, len(buf))])
                if not got:
                    raise OSError(5, "short read")
                self.src.feed(bytes(buf[:got]))
                self._read(got)
                k -= got
        except (OSError, ValueError, EOFError) as e:
            raise FwError(RC_BAD, "{} could not be put in the window: {}".format(path, e))
        finally:
            f.close()

    def _read(self, n):
        # n bytes out of the decompressor into the buffer (their count, less if it fails)
        mv = memoryview(self.out)[:n]
        got = 0
        while got < n:
            k = self.d.readinto(mv[got:])
            if not k:
                break
            got += k
        return got

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
        try:
            got = self._read(n)
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


def open_stream(u, sess, wbits, out):
    # fw.begin's z for agent.fw_staging's Updater u: a new stream for the staging sess, and what
    # the answer out says of it (nothing when this board takes plain chunks only)
    c = u.svc.max_chunk
    inf = sess.inflate = start(wbits, ((MAX_CHUNK, 2 * MAX_CHUNK), (c, 2 * c)))
    if inf is not None:
        out["z"] = inf.wbits
        out["zc"] = inf.chunk
        out["zn"] = len(inf.out)
        # chunks the host may send before the one before is answered: what the board's console
        # buffers beyond the frame being read (FW_CHUNKS_AHEAD: 2 on the virtual board's pty)
        out["zw"] = getattr(u.svc.hub.board, "FW_CHUNKS_AHEAD", 1)
        running = u.svc.running_hash()
        if running is not None:  # its modules may prime the window ("p")
            out["zd"] = running


def chunk_bytes(u, inf, args, offset):
    # the image bytes of a compressed fw.chunk in the stream inf (None: no stream is open)
    if inf is None:
        raise FwError(RC_BAD, "no compressed stream is open: send fw.begin with z first", {"offset": offset})
    if args.get("p") is not None:
        inf.prime(u.fs, boot_code().module_dir(u.fs, u.root, u.svc.slot), args["p"])
    return inf.take(args, offset)

# A Link over a pair of byte streams: the serial console (sys.stdin/sys.stdout on a board or the
# unix port) or a pty on CPython. Reads never block: select.poll says whether a byte is there.
import select

from hal.contracts import Link


class StreamLink(Link):
    def __init__(self, inp, out):
        self._in = inp
        # CPython's buffered stdin may hold bytes poll() cannot see: read the raw file under it.
        # MicroPython's streams have no .raw and read(n) blocks for all n: read byte by byte.
        self._raw = getattr(inp, "raw", None)
        self._out = out
        self._poll = select.poll()
        self._poll.register(inp, select.POLLIN)
        self.eof = False

    def wait(self, timeout_ms):
        return bool(self._poll.poll(timeout_ms))

    def read(self, n):
        if self.eof or not self._poll.poll(0):
            return b""
        if self._raw is not None:
            data = self._raw.read(n)
            if not data:
                self.eof = data is not None
                return b""
            return data
        out = bytearray()
        while len(out) < n:
            b = self._in.read(1)
            if not b:
                self.eof = True
                break
            out += b
            if not self._poll.poll(0):
                break
        return bytes(out)

    def write(self, data):
        self._out.write(data)
        if hasattr(self._out, "flush"):
            self._out.flush()

    def close(self):
        try:
            self._poll.unregister(self._in)
        except (OSError, ValueError, KeyError):
            pass

# A Link over a pair of byte streams: the serial console (sys.stdin/sys.stdout on a board or the
# unix port) or a pty on CPython. Reads never block: select.poll says whether a byte is there.
#
# The console (sys.stdin on MicroPython, or console=True): while the agent owns it, any byte is data. On a real board the
# USB/UART REPL driver compares each received byte with the interrupt character (Ctrl-C, 0x03,
# by default): a match is not delivered to sys.stdin but raises KeyboardInterrupt in the running
# code, which would end the agent (line noise or a terminal's keystroke would stop the hub until
# a reset). So the link turns the interrupt character off (micropython.kbd_intr(-1)) for as long
# as it is open: 0x03 then arrives as an ordinary byte, and the frame decoder drops it as noise
# (frames never contain 0x00-0x04, agent/wire.py). Ctrl-A..Ctrl-D mean something only to the
# REPL's line reader, never to running code. The virtual board's launcher does the same (it
# passes the byte as data once kbd_intr(-1) is set). The line goes back to the REPL only on
# purpose: the "repl" request (agent/run.py) calls hand_over(), the loop ends, close() turns
# Ctrl-C back on (kbd_intr(3)), and the board is at its REPL for mpremote.
import select

from hal.compat import console_input, kbd_intr
from hal.contracts import Link


class StreamLink(Link):
    def __init__(self, inp, out, console=None):
        self._in = inp
        # CPython's buffered stdin may hold bytes poll() cannot see: read the raw file under it.
        # MicroPython's streams have no .raw and read(n) blocks for all n: read byte by byte.
        self._raw = getattr(inp, "raw", None)
        self._out = out
        self._poll = select.poll()
        self._poll.register(inp, select.POLLIN)
        self.eof = False
        if console is None:  # the REPL's console (MicroPython's stdin); a pty on CPython is not
            console = inp is console_input()
        self.console = console
        self.handed_over = False
        if console:
            kbd_intr(-1)

    def hand_over(self):
        """Give the line back to the REPL: reads end, and the server's loop with them."""
        self.handed_over = True
        self.eof = True

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
        if self.console:
            kbd_intr(3)  # the REPL's Ctrl-C again

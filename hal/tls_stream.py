# The agent's Link (hal.contracts.Link) over an established triage TLS link (hal.tls): the
# wire protocol runs on it unchanged, non-blocking, in the agent's one loop.

from hal.contracts import Link as _Link
from hal.tls import TriageLinkError, describe, is_timeout, ssl_module

_ssl = ssl_module()

_EAGAIN = (11, 35, 115)  # EAGAIN (Linux), EAGAIN (BSD), EINPROGRESS
_GONE = (32, 54, 104)  # EPIPE, ECONNRESET (BSD), ECONNRESET (Linux): the peer went away


def _would_block(exc):
    # CPython: ssl.SSLWantReadError / SSLWantWriteError / BlockingIOError;
    # MicroPython: OSError(EAGAIN) (its non-blocking read/write mostly return None instead)
    if _ssl is not None:
        for name in ("SSLWantReadError", "SSLWantWriteError"):
            t = getattr(_ssl, name, None)
            if t is not None and isinstance(exc, t):
                return True
    args = getattr(exc, "args", ())
    return isinstance(exc, OSError) and len(args) > 0 and args[0] in _EAGAIN


def _peer_gone(exc):
    # An unclean close (no close_notify, a reset) ends the link without being an attack.
    if _ssl is not None:
        for name in ("SSLEOFError", "SSLZeroReturnError"):
            t = getattr(_ssl, name, None)
            if t is not None and isinstance(exc, t):
                return True
    args = getattr(exc, "args", ())
    return isinstance(exc, OSError) and len(args) > 0 and args[0] in _GONE


class TlsStreamLink(_Link):
    """hal.contracts.Link over an established TlsLink: the agent's wire protocol runs on it.

    The socket is made non-blocking: read(n) returns what has arrived (b"" if nothing),
    wait(ms) polls the socket (and, on CPython, the bytes OpenSSL has already decrypted, which
    poll cannot see). When the peer closes, or a record fails, .eof becomes True; a failure
    is kept in .error (a TriageLinkError: "record" for tampered/garbage data, "timeout" when a
    write could not go out within write_timeout_ms) for the caller to record as an incident.
    Writes never raise: on a dead link they are dropped (the server loop ends on .eof)."""

    def __init__(self, tls_link, write_timeout_ms=10000):
        import select

        self.tls = tls_link
        self.peer = tls_link.peer
        self.version = tls_link.version
        self.suite = tls_link.suite
        self.sock = tls_link.sock
        self.write_timeout_ms = write_timeout_ms
        self.eof = False
        self.error = None
        self.sock.setblocking(False)
        self._pending = getattr(self.sock, "pending", None)  # CPython: decrypted, not yet read
        self._poll = select.poll()
        self._poll.register(self.sock, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(self.sock, select.POLLOUT)

    def fileno(self):
        return self.sock.fileno()

    def _fail(self, exc):
        if not _peer_gone(exc) and self.error is None:
            kind = "timeout" if is_timeout(exc) else "record"
            self.error = exc if isinstance(exc, TriageLinkError) else TriageLinkError(kind, describe(exc))
        self.close()

    def read(self, n):
        if self.eof:
            return b""
        try:
            if hasattr(self.sock, "recv"):
                data = self.sock.recv(n)
            else:
                data = self.sock.read(n)
        except Exception as e:
            if _would_block(e):
                return b""
            self._fail(e)
            return b""
        if data is None:  # MicroPython, non-blocking: nothing yet
            return b""
        if not data:
            self.close()
            return b""
        return data

    def wait(self, timeout_ms):
        if self.eof:
            return True
        if self._pending is not None and self._pending():
            return True
        return bool(self._poll.poll(timeout_ms))

    def write(self, data):
        if self.eof:
            return
        from hal.compat import ticks_diff, ticks_ms

        view = memoryview(bytes(data))
        start = ticks_ms()
        while view:
            try:
                if hasattr(self.sock, "send"):
                    sent = self.sock.send(view)
                else:
                    sent = self.sock.write(view)
            except Exception as e:
                if not _would_block(e):
                    self._fail(e)
                    return
                sent = None
            if sent:
                view = view[sent:]
                continue
            left = self.write_timeout_ms - ticks_diff(ticks_ms(), start)
            if left <= 0:
                self._fail(TriageLinkError("timeout", "write stalled for {} ms".format(self.write_timeout_ms)))
                return
            self._wpoll.poll(min(left, 100))

    def close(self):
        self.eof = True
        if self.tls.sock is not None:
            for p in (self._poll, self._wpoll):
                try:
                    p.unregister(self.sock)
                except Exception:
                    pass
            self.tls.close()

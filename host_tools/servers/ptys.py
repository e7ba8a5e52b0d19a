"""The pty a server puts in front of a board, a hub or an agent: the `/dev/pts/N` path that
mpremote, pyserial and terminal programs open exactly like a board's serial port.

open_pty() makes one (the device side raw, the server's side non-blocking); read_some() reads
what the server's side has; PtyWriter writes to it, waiting a little for room and then dropping
what does not fit, like a UART nobody listens to; WakePipe wakes a poll loop from a signal handler
or another thread. PtyServer is the shape ServiceRegistry.serve runs.

Linux only (ptys).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import termios
import time
import tty

READ_CHUNK = 4096


def open_pty() -> tuple[int, int, str]:
    """(master, slave, path) of a new pty: the device side (slave) raw, the master non-blocking.
    A server that closes the slave sees HUP on the master until a client opens the path."""
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def read_some(fd: int, n: int = READ_CHUNK) -> bytes | None:
    """What `fd` has now, at most n bytes: None if nothing yet, b"" at its end (on a pty master,
    EIO: nobody holds the device side)."""
    try:
        return os.read(fd, n)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as e:
        if e.errno == errno.EIO:
            return b""
        raise


def close_fds(*fds: int) -> None:
    """Close the fds that are open (>= 0), whatever state they are in."""
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyWriter:
    """Output to a pty master (non-blocking): waits up to wait_s for room, then drops the rest
    (counted in .dropped)."""

    def __init__(self, fd: int, wait_s: float = 1.0):
        self.fd = fd
        self.wait_s = wait_s
        self.dropped = 0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)

    def write(self, data) -> int:
        view = memoryview(bytes(data))
        deadline = time.monotonic() + self.wait_s
        while view:
            try:
                view = view[os.write(self.fd, view) :]
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
            left = deadline - time.monotonic()
            if left <= 0:
                self.dropped += len(view)
                break
            self._poll.poll(max(1, int(left * 1000)))
        return len(data)

    def flush(self) -> None:
        pass


class WakePipe:
    """A pipe a poll loop watches (.fd) so that wake() - safe in a signal handler or another
    thread - ends its wait; drain() empties it."""

    def __init__(self):
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._w, b"!")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self.fd, 512)

    def close(self) -> None:
        close_fds(self.fd, self._w)
        self.fd = self._w = -1


class PtyServer:
    """What ServiceRegistry.serve runs: open() makes the pty and returns its path (.port), run()
    serves until request_stop() (callable from a signal handler), close() releases everything.
    Also a context manager (open on entry, close on exit)."""

    port: str | None = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> str:
        raise NotImplementedError

    def run(self):
        raise NotImplementedError

    def request_stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

# HAL contracts: plain base classes (no abc on MicroPython). The agent receives instances of
# their implementations from a board's make_hal(); it never builds hardware itself.


class HalError(Exception):
    pass


class RadioError(HalError):
    pass


class PowerCut(HalError):
    """Raised by simulated storage when the scripted power cut happens: the device is 'off'."""


class Radio:
    """A sub-GHz transceiver tuned by (page, channel) of the GB channel plan."""

    band = None  # "868" or "915": which module variant the board carries

    def can_tune(self, page, channel):
        """True if this module can tune to (page, channel)."""
        raise NotImplementedError

    def tune(self, page, channel):
        """Tune to (page, channel); RadioError if the module cannot."""
        raise NotImplementedError

    def transmit(self, frame):
        """Send one MAC payload (1 to 125 bytes; the radio adds the FCS); returns its airtime in microseconds."""
        raise NotImplementedError

    def receive(self, timeout_ms=0):
        """One received payload, or None."""
        raise NotImplementedError

    def energy(self, page, channel):
        """Channel energy measurement in dBm (an int) on (page, channel)."""
        raise NotImplementedError

    def deinit(self):
        pass


class Clock:
    """Monotonic milliseconds that never wrap, and UTC seconds since 1970-01-01."""

    def monotonic_ms(self):
        raise NotImplementedError

    def utc(self):
        raise NotImplementedError

    def sleep_ms(self, ms):
        raise NotImplementedError


class Storage:
    """Atomic named records (write a temporary, then rename) and streamed blobs."""

    def read(self, name):
        """The record's bytes, or None if there is none."""
        raise NotImplementedError

    def write(self, name, data):
        """Replace the record atomically: after a power cut it holds the old or the new bytes."""
        raise NotImplementedError

    def remove(self, name):
        raise NotImplementedError

    def names(self):
        raise NotImplementedError

    def open_blob(self, name, mode):
        """A file-like object for streamed data ("rb", "wb", "ab", "r+b")."""
        raise NotImplementedError


class Link:
    """A byte stream to the host (serial console, TCP or TLS)."""

    def read(self, n):
        """Up to n bytes that are available now (b"" if none); never blocks."""
        raise NotImplementedError

    def write(self, data):
        raise NotImplementedError

    def wait(self, timeout_ms):
        """Block up to timeout_ms for input; True if some is ready."""
        raise NotImplementedError

    def close(self):
        pass


class Identity:
    def eui64(self):
        """The device's EUI-64 as 8 bytes."""
        raise NotImplementedError


class Hal:
    """What a board hands the agent."""

    def __init__(self, radio, clock, storage, link=None, identity=None, tls=None, board=None, reset=None):
        self.reset = reset  # callable that restarts the board, or None
        self.radio = radio
        self.clock = clock
        self.storage = storage
        self.link = link
        self.identity = identity
        self.tls = tls
        self.board = board

    def deinit(self):
        if self.radio is not None:
            self.radio.deinit()
        if self.link is not None:
            self.link.close()

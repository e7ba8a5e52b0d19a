# HAL contracts: plain base classes (no abc on MicroPython). The agent receives instances of
# their implementations from a board's make_hal(); it never builds hardware itself.
# The methods an implementation must provide are listed as comments: a stub raising
# NotImplementedError would cost a function object on the heap of every board.


class HalError(Exception):
    pass


class RadioError(HalError):
    pass


class PowerCut(HalError):
    """Raised by simulated storage when the scripted power cut happens: the device is 'off'."""


class Radio:
    """A sub-GHz transceiver tuned by (page, channel) of the GB channel plan."""

    band = None  # "868" or "915": which module variant the board carries

    # can_tune(page, channel)   True if this module can tune to (page, channel)
    # tune(page, channel)       tune to (page, channel); RadioError if the module cannot
    # transmit(frame)           send one MAC payload (1 to 125 bytes; the radio adds the FCS);
    #                           returns its airtime in microseconds
    # receive(timeout_ms=0)     one received payload, or None
    # energy(page, channel)     channel energy measurement in dBm (an int) on (page, channel)

    def deinit(self):
        pass


class Clock:
    """Monotonic milliseconds that never wrap, and UTC seconds since 1970-01-01."""

    # monotonic_ms()   milliseconds, never wrapping
    # utc()            seconds since 1970-01-01T00:00:00Z
    # sleep_ms(ms)


class Storage:
    """Atomic named records (write a temporary, then rename) and streamed blobs."""

    # read(name)             the record's bytes, or None if there is none
    # write(name, data)      replace the record atomically: after a power cut it holds the old
    #                        or the new bytes
    # remove(name)
    # names()
    # open_blob(name, mode)  a file-like object for streamed data ("rb", "wb", "ab", "r+b")


class Link:
    """A byte stream to the host (serial console, TCP or TLS)."""

    # read(n)             up to n bytes that are available now (b"" if none); never blocks
    # write(data)
    # wait(timeout_ms)    block up to timeout_ms for input; True if some is ready

    def close(self):
        pass


class Identity:
    # eui64()   the device's EUI-64 as 8 bytes
    pass


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

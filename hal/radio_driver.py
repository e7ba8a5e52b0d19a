# RadioDriver: the band / channel / power / frame / timeout rules and the SPI transactions that
# the register-level radio drivers (hal.sx126x, hal.rfm69, hal.stm32wl) share. Nothing here
# touches hardware at import.
from hal import phy
from hal.contracts import Radio, RadioError
from hal.mcu import ConfigError, McuClock

MAX_PAYLOAD = phy.MAX_PSDU - phy.FCS_BYTES  # 125: the radio appends the 2-byte FCS (its CRC)
_FRAME_TYPES = (bytes, bytearray, memoryview)  # built once: a tuple in the check would be built per frame


class RadioDriver(Radio):
    """What every register-level driver shares: band, channel checks, power cap, frame size,
    timeouts on an injected clock, SPI transactions. Subclasses provide MIN_DBM/MAX_DBM, the
    bus (_spi: machine.SPI-like, _cs: NSS as a callable) and the chip hooks init(),
    _set_frequency(hz), _apply_power(dbm)."""

    MIN_DBM = 0
    MAX_DBM = 0

    def __init__(self, band, tx_power_cap_dbm, clock=None):
        if band not in ("868", "915"):
            raise ConfigError("band must be '868' or '915', not {!r}".format(band))
        if not isinstance(tx_power_cap_dbm, int) or tx_power_cap_dbm < self.MIN_DBM:
            raise ConfigError(
                "tx_power_cap_dbm must be an int >= {} dBm, not {!r}".format(self.MIN_DBM, tx_power_cap_dbm)
            )
        self.band = band
        self.tx_power_cap_dbm = tx_power_cap_dbm
        self.tx_power_dbm = self._clamp_power(tx_power_cap_dbm)
        self.clock = clock if clock is not None else McuClock()
        self.page = None
        self.channel = None
        self.frequency_hz = None
        self.ready = False
        self._open = False  # NSS low: a transaction under way

    # -- channel plan

    def can_tune(self, page, channel):
        try:
            phy.check(page, channel)
        except (phy.ChannelError, TypeError):
            return False
        return phy.band_of(page) == self.band

    def _frequency(self, page, channel):
        # ChannelError for an impossible (page, channel); RadioError for the other band.
        hz = phy.frequency_hz(page, channel)
        if phy.band_of(page) != self.band:
            raise RadioError(
                "page {} is in the {} MHz band; this module is the {} MHz variant".format(
                    page, phy.band_of(page), self.band
                )
            )
        return hz

    def tune(self, page, channel):
        hz = self._frequency(page, channel)
        self._ensure_ready()
        self._set_frequency(hz)
        self.page = page
        self.channel = channel
        self.frequency_hz = hz

    def _tuned(self):
        if self.frequency_hz is None:
            raise RadioError("radio is not tuned")

    # -- power

    def _clamp_power(self, dbm):
        top = self.MAX_DBM if self.MAX_DBM < self.tx_power_cap_dbm else self.tx_power_cap_dbm
        if dbm > top:
            return top
        if dbm < self.MIN_DBM:
            return self.MIN_DBM
        return dbm

    def set_tx_power(self, dbm):
        """Set the TX power, clamped to the chip's range and the board's cap; returns it."""
        if not isinstance(dbm, int):
            raise ConfigError("tx power must be an int dBm, not {!r}".format(dbm))
        self.tx_power_dbm = self._clamp_power(dbm)
        if self.ready:
            self._apply_power(self.tx_power_dbm)
        return self.tx_power_dbm

    # -- frames and time

    def _check_frame(self, frame):
        if not isinstance(frame, _FRAME_TYPES):
            raise RadioError("a frame is bytes, not {}".format(type(frame).__name__))
        n = len(frame)
        if not 0 < n <= MAX_PAYLOAD:
            raise RadioError("frame of {} bytes: 1-{} bytes fit".format(n, MAX_PAYLOAD))
        return n

    def _deadline(self, ms):
        return self.clock.monotonic_ms() + ms

    def _expired(self, deadline):
        return self.clock.monotonic_ms() >= deadline

    def _ensure_ready(self):
        if not self.ready:
            self.init()

    # -- SPI transactions: one method per kind, none with a try block. On MicroPython a call
    # whose frame needs more than 11 words (arguments, locals, value stack, 3 for a try block
    # and 3 more for its handler) takes the frame from the heap, and these run many times a
    # frame. A transaction that an exception broke off (NSS left low) is ended by the next one.

    def _select(self):
        # NSS low (a chip with a BUSY line waits for it first: overridden)
        if self._open:
            self._cs(1)
        self._cs(0)
        self._open = True

    def _deselect(self):
        self._cs(1)
        self._open = False

    def _send(self, data):
        """One transaction: data (an opcode or address byte first)."""
        self._select()
        self._spi.write(data)
        self._deselect()

    def _send_data(self, head, data):
        """One transaction: head (an opcode or address byte first), then data."""
        self._select()
        self._spi.write(head)
        self._spi.write(data)
        self._deselect()

    # -- chip hooks

    def init(self):
        raise NotImplementedError

    def _set_frequency(self, hz):
        raise NotImplementedError

    def _apply_power(self, dbm):
        raise NotImplementedError

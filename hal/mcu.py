# Building blocks for real MicroPython boards: the clock and identity of the MCU (the radio
# drivers' shared rules are in hal/radio_driver.py). Nothing here touches hardware: the board
# hands in its unique ID (machine.unique_id), and the port's clock comes from hal.compat.
# Runs on CPython too (tests drive it with fake tick sources and fake buses).
import time

from hal.compat import const, ticks_add, ticks_ms
from hal.compat import epoch_year as _port_epoch_year
from hal.compat import sleep_ms as _port_sleep_ms
from hal.contracts import Clock, Identity

_SECONDS_PER_DAY = const(86400)


class ConfigError(ValueError):
    """A bad board or driver setting; the message names the field."""


class McuClock(Clock):
    """Monotonic ms that never wrap, built on ticks_ms(); UTC from time.time().

    ticks_ms() wraps at the port's period (2**30 ms, about 12.4 days, on 32-bit ports): every
    reading below the previous one counts one wrap. monotonic_ms() must therefore be called at
    least once per period, which any agent loop does. The result counts from the port's ticks
    origin (boot), plus whole periods.
    """

    def __init__(self, ticks=None, period=None, time_fn=None, epoch_year=None, sleep_ms=None):
        # ticks/period: a tick source and its wrap period (tests inject small ones); by default
        # the port's ticks_ms and its period found by feature: ticks_add(0, -1) is the largest
        # tick value.
        self._ticks = ticks if ticks is not None else ticks_ms
        if period is None:
            if ticks is not None:
                raise ConfigError("period: an injected tick source needs its wrap period")
            period = ticks_add(0, -1) + 1
        if not isinstance(period, int) or period < 2:
            raise ConfigError("period must be an int >= 2, not {!r}".format(period))
        self.period = period
        self._time = time_fn if time_fn is not None else time.time
        if epoch_year is None:
            # Some ports count time.time() from 2000-01-01, others from 1970: ask the port.
            epoch_year = _port_epoch_year()
        self.epoch_year = epoch_year
        # seconds from 1970-01-01 to the port's epoch (Gregorian leap rule; epochs >= 1970)
        days = 0
        for y in range(1970, epoch_year):
            days += 366 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 365
        self._epoch_offset = days * _SECONDS_PER_DAY
        self._sleep = sleep_ms if sleep_ms is not None else _port_sleep_ms
        self._wraps = 0
        self._last = self._ticks()

    def monotonic_ms(self):
        now = self._ticks()
        if now < self._last:
            self._wraps += 1
        self._last = now
        return self._wraps * self.period + now

    def utc(self):
        """Seconds since 1970-01-01T00:00:00Z (only as right as the board's RTC)."""
        return int(self._time()) + self._epoch_offset

    def sleep_ms(self, ms):
        if ms > 0:
            self._sleep(ms)


# EUI-64 derivation (McuIdentity):
# - a 6-byte machine.unique_id() (ESP32 family: the factory MAC, an IEEE-assigned EUI-48) is
#   encapsulated as OUI + FF FE + extension, the IEEE mapping of an EUI-48 into an EUI-64: the
#   result is globally unique and keeps the manufacturer's OUI.
# - any other length (RP2040: 8-byte flash unique ID; STM32: 12-byte UID) is not an IEEE
#   identifier, so it is not used as one: the EUI-64 is the first 8 bytes of
#   SHA-256(b"dbch-eui64" + unique_id) with the U/L bit set (locally administered) and the I/G
#   bit cleared (individual) in the first octet. Same board, same EUI-64, on every boot.


def eui64_from_unique_id(unique_id):
    """The EUI-64 (8 bytes) this project derives from an MCU unique ID (see above)."""
    uid = bytes(unique_id)
    if not uid:
        raise ConfigError("unique_id is empty")
    if len(uid) == 6:
        return uid[:3] + b"\xff\xfe" + uid[3:]
    import hashlib

    h = bytearray(hashlib.sha256(b"dbch-eui64" + uid).digest()[:8])
    h[0] = (h[0] & 0xFC) | 0x02
    return bytes(h)


class McuIdentity(Identity):
    def __init__(self, unique_id):
        # unique_id: bytes, or a callable returning them (the board passes machine.unique_id)
        self._source = unique_id
        self._eui = None

    def unique_id(self):
        src = self._source
        return bytes(src() if callable(src) else src)

    def eui64(self):
        if self._eui is None:
            self._eui = eui64_from_unique_id(self.unique_id())
        return self._eui


class StaticIdentity(Identity):
    """A fixed EUI-64: 8 bytes, or 16 hex digits (separators '-' or ':' allowed)."""

    def __init__(self, eui):
        if isinstance(eui, str):
            from binascii import unhexlify

            compact = eui.replace("-", "").replace(":", "")
            try:
                eui = unhexlify(compact) if len(compact) == 16 else b""
            except ValueError:
                eui = b""
        if not isinstance(eui, (bytes, bytearray)) or len(eui) != 8:
            raise ConfigError("eui: an EUI-64 is 8 bytes or 16 hex digits, not {!r}".format(eui))
        self._eui = bytes(eui)

    def eui64(self):
        return self._eui

# The wires between a radio driver and a simulated chip: pins and an SPI bus.
#   SimPin     a machine.Pin stand-in: a level the driver sets (on_change tells the chip) or
#              reads (reader asks the chip), callable like machine.Pin.
#   SimSpiBus  a machine.SPI stand-in whose NSS is a SimPin (cs_pin()) or select(level) (the
#              STM32WL's stm.subghz_cs); it asks the chip for each MISO byte as it is clocked
#              and hands it each transaction (the MOSI bytes from NSS low to NSS high). With
#              record=True it keeps them all in .transactions (driver tests).
# A chip on the bus provides begin() (NSS low), transfer(mosi, i, n, miso) (bytes i..i+n-1 of
# the transaction, mosi[0] its first, have been clocked in: it puts the n bytes clocked out into
# miso, unless miso is None) and end(mosi, n) (NSS high after n bytes). The bus keeps one buffer
# for every transaction: a simulated transfer allocates nothing (on MicroPython every allocation
# counts towards the next collection of the whole heap).
from hal.compat import const

_BUF = const(264)  # the longest transaction of the drivers (SX126x WriteBuffer: 2 + 255 bytes)


class BusError(AssertionError):
    """The driver broke the bus protocol (NSS low twice, a transfer while NSS is high)."""


class SimPin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, name="pin", value=0, on_change=None, reader=None):
        self.name = name
        self._value = value
        self._on_change = on_change
        self._reader = reader
        self.writes = 0  # levels set by the driver
        self.last = None  # the last level it set
        self.reads = 0
        self.handler = None
        self.init_args = None

    def value(self, v=None):
        if v is None:
            self.reads += 1
            if self._reader is not None:
                return 1 if self._reader() else 0
            return self._value
        v = 1 if v else 0
        self.writes += 1
        self.last = v
        old = self._value
        self._value = v
        if self._on_change is not None and v != old:
            self._on_change(v)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def init(self, *args, **kwargs):
        self.init_args = (args, kwargs)

    def irq(self, handler=None, trigger=None):
        self.handler = handler


class SimSpiBus:
    def __init__(self, chip, record=True):
        self.chip = chip
        chip.bus = self
        self.transactions = [] if record else None
        self.count = 0  # transactions so far
        self._buf = bytearray(_BUF)  # MOSI bytes of the transaction
        self._n = -1  # how many; -1: NSS is high
        self.init_args = None

    def select(self, level):
        """NSS: a falsy level selects the chip, a truthy one ends the transaction."""
        if not level:
            if self._n >= 0:
                raise BusError("NSS pulled low twice")
            self._n = 0
            self.chip.begin()
        elif self._n >= 0:
            n = self._n
            self._n = -1
            self.count += 1
            if self.transactions is not None:
                self.transactions.append(bytes(self._buf[:n]))
            self.chip.end(self._buf, n)

    def cs_pin(self):
        return SimPin("cs", 1, on_change=self.select)

    def _start(self, n):
        # where the next n MOSI bytes go in the transaction's buffer (grown if need be)
        i = self._n
        if i < 0:
            raise BusError("SPI transfer while NSS is high")
        if i + n > len(self._buf):
            self._buf += bytearray(i + n - len(self._buf))
        self._n = i + n
        return i

    def _fill(self, i, n, byte):
        buf = self._buf
        for k in range(i, i + n):
            buf[k] = byte

    # machine.SPI API (each method's frame within MicroPython's 11 words, so that it is not
    # taken from the heap at each call)
    def init(self, *args, **kwargs):
        self.init_args = (args, kwargs)

    def deinit(self):
        pass

    def write(self, buf):
        i = self._start(len(buf))
        self._buf[i : i + len(buf)] = buf
        self.chip.transfer(self._buf, i, len(buf), None)

    def read(self, n, write=0):
        miso = bytearray(n)
        self.readinto(miso, write)
        return bytes(miso)

    def readinto(self, buf, write=0):
        i = self._start(len(buf))
        self._fill(i, len(buf), write)
        self.chip.transfer(self._buf, i, len(buf), buf)

    def write_readinto(self, wbuf, rbuf):
        i = self._start(len(wbuf))
        self._buf[i : i + len(wbuf)] = wbuf
        self.chip.transfer(self._buf, i, len(wbuf), rbuf)

    def opcodes(self):
        return [t[0] for t in self.transactions if t]

# The wires between a radio driver and a simulated chip: pins and an SPI bus.
#   SimPin     a machine.Pin stand-in: a level the driver sets (on_change tells the chip) or
#              reads (reader asks the chip), callable like machine.Pin.
#   SimSpiBus  a machine.SPI stand-in whose NSS is a SimPin (cs_pin()) or select(level) (the
#              STM32WL's stm.subghz_cs); it asks the chip for each MISO byte as it is clocked
#              and hands it each transaction (the MOSI bytes from NSS low to NSS high). With
#              record=True it keeps them all in .transactions (driver tests).
# A chip on the bus provides begin() (NSS low), exchange(cur) -> the MISO byte for the last
# byte of cur (the transaction so far) and end(data) (NSS high).


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
        self._cur = None
        self.init_args = None

    def select(self, level):
        """NSS: a falsy level selects the chip, a truthy one ends the transaction."""
        if not level:
            if self._cur is not None:
                raise BusError("NSS pulled low twice")
            self._cur = bytearray()
            self.chip.begin()
        elif self._cur is not None:
            data = bytes(self._cur)
            self._cur = None
            self.count += 1
            if self.transactions is not None:
                self.transactions.append(data)
            self.chip.end(data)

    def cs_pin(self):
        return SimPin("cs", 1, on_change=self.select)

    def _xfer(self, out):
        cur = self._cur
        if cur is None:
            raise BusError("SPI transfer while NSS is high")
        n = len(out)
        res = bytearray(n)
        exchange = self.chip.exchange
        for i in range(n):
            cur.append(out[i])
            res[i] = exchange(cur) & 0xFF
        return res

    # machine.SPI API
    def init(self, *args, **kwargs):
        self.init_args = (args, kwargs)

    def deinit(self):
        pass

    def write(self, buf):
        self._xfer(buf)

    def read(self, n, write=0):
        return bytes(self._xfer(bytes((write,)) * n))

    def readinto(self, buf, write=0):
        r = self._xfer(bytes((write,)) * len(buf))
        for i in range(len(r)):
            buf[i] = r[i]

    def write_readinto(self, wbuf, rbuf):
        r = self._xfer(wbuf)
        for i in range(len(r)):
            rbuf[i] = r[i]

    def opcodes(self):
        return [t[0] for t in self.transactions if t]

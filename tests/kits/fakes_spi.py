# Bus-level simulations of the radio chips the hal drivers talk to, for portable tests (CPython
# and the MicroPython unix port, no hardware):
#   FakeSpiBus  a machine.SPI stand-in whose NSS is a FakePin (or select(level), the STM32WL's
#               stm.subghz_cs); it records every transaction (the MOSI bytes from NSS low to
#               NSS high) and asks the chip model for each MISO byte as it is clocked.
#   FakeSx126x  the SX1262 / STM32WL sub-GHz command interface: BUSY that rises after every
#               command and falls after busy_polls reads, chip modes, IRQ flags gated by the IRQ
#               mask, the 256-byte data buffer, registers, TX that completes after tx_polls
#               transactions (or times out / hangs, as scripted), RX of scripted frames on the
#               tuned frequency, RSSI. Protocol misuse (a command while BUSY is high, a wrong
#               parameter count, a mode rule broken) is recorded in .violations.
#   FakeRfm69   the SX1231H register map: 0x80 registers, a 66-byte FIFO that TX drains and RX
#               fills tx_rate / rx_rate bytes per SPI transaction, IRQ flags computed from that
#               state, DIO0 mapping, RSSI, reset pin.
#   FakeStm     the `stm` module's subghz_cs / subghz_is_busy / subghz_irq for a FakeSx126x.
#   FakeMachine a `machine` module stand-in (Pin, SPI, unique_id) wired to the fakes above.
#   FakeClock   a Clock whose time moves by auto_ms on every reading and by sleep_ms.
from hal.contracts import Clock


class FakeBusError(AssertionError):
    pass


class FakeClock(Clock):
    def __init__(self, auto_ms=1, utc_start=1767225600):
        self.now = 0
        self.auto_ms = auto_ms
        self.utc_start = utc_start
        self.slept = 0

    def monotonic_ms(self):
        self.now += self.auto_ms
        return self.now

    def utc(self):
        return self.utc_start + self.now // 1000

    def sleep_ms(self, ms):
        self.now += ms
        self.slept += ms


class FakePin:
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
        self.writes = []
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
        self.writes.append(v)
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


class FakeSpiBus:
    def __init__(self, chip):
        self.chip = chip
        chip.bus = self
        self.transactions = []
        self._cur = None
        self.init_args = None

    def select(self, level):
        """NSS: a falsy level selects the chip, a truthy one ends the transaction."""
        if not level:
            if self._cur is not None:
                raise FakeBusError("NSS pulled low twice")
            self._cur = bytearray()
            self.chip.begin()
        elif self._cur is not None:
            data = bytes(self._cur)
            self._cur = None
            self.transactions.append(data)
            self.chip.end(data)

    def cs_pin(self):
        return FakePin("cs", 1, on_change=self.select)

    def _xfer(self, out):
        if self._cur is None:
            raise FakeBusError("SPI transfer while NSS is high")
        res = bytearray(len(out))
        for i in range(len(out)):
            self._cur.append(out[i])
            res[i] = self.chip.exchange(self._cur) & 0xFF
        return res

    # machine.SPI API
    def init(self, *args, **kwargs):
        self.init_args = (args, kwargs)

    def deinit(self):
        pass

    def write(self, buf):
        self._xfer(bytes(buf))

    def read(self, n, write=0):
        return bytes(self._xfer(bytes((write,)) * n))

    def readinto(self, buf, write=0):
        r = self._xfer(bytes((write,)) * len(buf))
        for i in range(len(r)):
            buf[i] = r[i]

    def write_readinto(self, wbuf, rbuf):
        r = self._xfer(bytes(wbuf))
        for i in range(len(r)):
            rbuf[i] = r[i]

    def opcodes(self):
        return [t[0] for t in self.transactions if t]


# ---------------------------------------------------------------------------------------------
# SX126x

SLEEP = 0
STBY_RC = 2
STBY_XOSC = 3
FS = 4
RX = 5
TX = 6

IRQ_TX_DONE = 0x0001
IRQ_RX_DONE = 0x0002
IRQ_CRC_ERR = 0x0040
IRQ_TIMEOUT = 0x0200

# opcode -> parameter bytes of the write-only commands (GFSK forms)
_SX_PARAMS = {
    0x80: 1,  # SetStandby
    0x84: 1,  # SetSleep
    0xC1: 0,  # SetFs
    0x83: 3,  # SetTx
    0x82: 3,  # SetRx
    0x96: 1,  # SetRegulatorMode
    0x89: 1,  # Calibrate
    0x98: 2,  # CalibrateImage
    0x95: 4,  # SetPaConfig
    0x93: 1,  # SetRxTxFallbackMode
    0x08: 8,  # SetDioIrqParams
    0x02: 2,  # ClearIrqStatus
    0x9D: 1,  # SetDIO2AsRfSwitchCtrl
    0x97: 4,  # SetDIO3AsTcxoCtrl
    0x86: 4,  # SetRfFrequency
    0x8A: 1,  # SetPacketType
    0x8E: 2,  # SetTxParams
    0x8B: 8,  # SetModulationParams (GFSK)
    0x8C: 9,  # SetPacketParams (GFSK)
    0x8F: 2,  # SetBufferBaseAddress
}
_SX_READS = (0xC0, 0x12, 0x13, 0x14, 0x15, 0x17, 0x11, 0x1D, 0x1E)
_SX_STANDBY_ONLY = (0x8A, 0x84, 0x96, 0x89, 0x98)


class FakeSx126x:
    def __init__(self, variant="sx1262", busy_polls=1):
        if variant not in ("sx1262", "stm32wl"):
            raise ValueError(variant)
        self.variant = variant
        self.bus = None
        self.present = True  # False: nothing on the bus (MISO reads 0)
        self.busy_polls = busy_polls
        self.calibrate_polls = 5
        self.stuck_busy = False
        self.tx_outcome = "done"  # "done", "timeout" (the chip's Timeout IRQ) or "hang"
        self.tx_polls = 2
        self.sent = []  # (freq_reg, payload, tx_params, pa_config)
        self.incoming = []  # [payload, crc_ok, freq_reg or None]
        self.dropped = 0
        self.rssi_raw = 200
        self.rssi_by_freq = {}
        self.packet_rssi_raw = 160
        self.violations = []
        self.commands = []  # (opcode, params) of every executed command
        self.resets = 0
        self.clear_errors_params = 2 if variant == "sx1262" else 1
        self._power_on()

    def _power_on(self):
        self.mode = STBY_RC
        self.cmd_status = 0
        self.regs = bytearray(0x1000)
        self.regs[0x06B8] = 0xA0  # bits 7:1 hold something the driver must preserve
        self.regs[0x06B9] = 0x00
        self.regs[0x08D8] = 0xC8
        self.buffer = bytearray(256)
        self.irq = 0
        self.irq_mask = 0
        self.dio1_mask = 0
        self.errors = 0
        self.packet_type = None
        self.mod_params = None
        self.packet_params = None
        self.freq_reg = None
        self.pa_config = None
        self.tx_params = None
        self.tx_base = 0
        self.rx_base = 0
        self.tcxo = None
        self.dio2_rf_switch = False
        self.regulator = 0
        self.calibrations = []
        self.image_cal = None
        self._busy_left = 0
        self._tx_left = None
        self._rx_timeout = None
        self.tx_timeout = None
        self.rx_len = 0
        self.rx_start = 0
        self._waking = False

    # pins
    def busy_pin(self):
        return FakePin("busy", reader=self.read_busy)

    def dio1_pin(self):
        return FakePin("dio1", reader=self.read_dio1)

    def reset_pin(self):
        return FakePin("reset", 1, on_change=self._reset_edge)

    def _busy_now(self):
        return self.stuck_busy or self.mode == SLEEP or self._busy_left > 0

    def read_busy(self):
        if self.stuck_busy or self.mode == SLEEP:
            return 1
        if self._busy_left > 0:
            self._busy_left -= 1
            return 1
        return 0

    def read_dio1(self):
        self._advance()
        return 1 if self.irq & self.dio1_mask else 0

    def _reset_edge(self, level):
        if level:  # NRESET released: a fresh chip, busy while it boots
            self._power_on()
            self.resets += 1
            self._busy_left = 3

    # simulated activity between transactions
    def _raise(self, bits):
        self.irq |= bits & self.irq_mask

    def _advance(self):
        if self.mode == TX and self._tx_left is not None:
            if self.tx_outcome == "hang":
                return
            self._tx_left -= 1
            if self._tx_left > 0:
                return
            self._tx_left = None
            self.mode = STBY_RC
            if self.tx_outcome == "done":
                self._raise(IRQ_TX_DONE)
            else:
                self._raise(IRQ_TIMEOUT)
        elif self.mode == RX and not self.irq & IRQ_RX_DONE:
            for k in range(len(self.incoming)):
                payload, crc_ok, freq = self.incoming[k]
                if freq is None or freq == self.freq_reg:
                    del self.incoming[k]
                    self._deliver(payload, crc_ok)
                    return
            if self._rx_timeout not in (None, 0, 0xFFFFFF):
                self.mode = STBY_RC
                self._raise(IRQ_TIMEOUT)

    def _deliver(self, payload, crc_ok):
        pp = self.packet_params
        if pp is None or pp[5] != 0x01 or len(payload) > pp[6]:
            self.dropped += 1  # not variable length, or longer than accepted
            return
        for i in range(len(payload)):
            self.buffer[(self.rx_base + i) & 0xFF] = payload[i]
        self.rx_len = len(payload)
        self.rx_start = self.rx_base
        self._raise(IRQ_RX_DONE | (0 if crc_ok else IRQ_CRC_ERR))
        if self._rx_timeout != 0xFFFFFF:
            self.mode = STBY_RC

    # bus
    def status_byte(self):
        return ((self.mode & 7) << 4) | ((self.cmd_status & 7) << 1)

    def begin(self):
        if self.mode == SLEEP:
            self._waking = True
            return
        if self._busy_now():
            self.violations.append("NSS low while BUSY high")
        self._advance()

    def _get_data(self, op):
        if op == 0x12:
            return (self.irq >> 8, self.irq & 0xFF)
        if op == 0x13:
            return (self.rx_len, self.rx_start)
        if op == 0x14:
            return (0, self.packet_rssi_raw, self.packet_rssi_raw)
        if op == 0x15:
            if self.mode != RX:
                self.violations.append("GetRssiInst outside RX")
            return (self.rssi_by_freq.get(self.freq_reg, self.rssi_raw),)
        if op == 0x17:
            return (self.errors >> 8, self.errors & 0xFF)
        if op == 0x11:
            return (self.packet_type or 0,)
        return ()

    def exchange(self, cur):
        i = len(cur) - 1
        st = self.status_byte()
        if self._waking or not self.present:
            return 0
        op = cur[0]
        if i == 0:
            return st
        if op == 0x1D:
            if i <= 3:
                return st
            return self.regs[(((cur[1] << 8) | cur[2]) + i - 4) & 0xFFF]
        if op == 0x1E:
            if i <= 2:
                return st
            return self.buffer[(cur[1] + i - 3) & 0xFF]
        if op in _SX_READS:
            if i == 1:
                return st
            data = self._get_data(op)
            k = i - 2
            return data[k] if k < len(data) else 0
        return st

    def end(self, data):
        if self._waking:
            self._waking = False
            if data:
                self.violations.append("command 0x{:02x} sent to a sleeping chip".format(data[0]))
            self.mode = STBY_RC
            self._busy_left = self.busy_polls
            return
        if not data:
            return
        op = data[0]
        p = data[1:]
        self.commands.append((op, bytes(p)))
        self.cmd_status = 0
        self._busy_left = self.busy_polls
        if op in _SX_READS:
            return
        if op == 0x0D:
            addr = (p[0] << 8) | p[1]
            for k in range(2, len(p)):
                self.regs[(addr + k - 2) & 0xFFF] = p[k]
            return
        if op == 0x0E:
            for k in range(1, len(p)):
                self.buffer[(p[0] + k - 1) & 0xFF] = p[k]
            return
        want = self.clear_errors_params if op == 0x07 else _SX_PARAMS.get(op)
        if want is None:
            self.violations.append("unknown opcode 0x{:02x}".format(op))
            self.cmd_status = 5
            return
        if len(p) != want:
            self.violations.append("opcode 0x{:02x} with {} parameter bytes, not {}".format(op, len(p), want))
            self.cmd_status = 4
            return
        if op in _SX_STANDBY_ONLY and self.mode not in (STBY_RC, STBY_XOSC):
            self.violations.append("opcode 0x{:02x} outside standby (mode {})".format(op, self.mode))
        self._execute(op, p)

    def _execute(self, op, p):
        u24 = (p[0] << 16) | (p[1] << 8) | p[2] if len(p) >= 3 else None
        if op == 0x80:
            self.mode = STBY_XOSC if p[0] else STBY_RC
            self._tx_left = None
            self._rx_timeout = None
        elif op == 0x84:
            self.mode = SLEEP
        elif op == 0xC1:
            self.mode = FS
        elif op == 0x83:
            if self.packet_type is None or self.freq_reg is None:
                self.violations.append("SetTx before packet type and frequency")
            n = self.packet_params[6] if self.packet_params else 0
            payload = bytes(self.buffer[(self.tx_base + i) & 0xFF] for i in range(n))
            self.mode = TX
            self._tx_left = self.tx_polls
            self.tx_timeout = u24
            if self.tx_outcome == "done":
                self.sent.append((self.freq_reg, payload, self.tx_params, self.pa_config))
        elif op == 0x82:
            self.mode = RX
            self._rx_timeout = u24
        elif op == 0x96:
            self.regulator = p[0]
        elif op == 0x89:
            self.calibrations.append(p[0])
            self._busy_left = self.calibrate_polls
        elif op == 0x98:
            self.image_cal = (p[0], p[1])
            self._busy_left = self.calibrate_polls
        elif op == 0x95:
            self.pa_config = tuple(p)
            if self.variant == "sx1262" and p[2] != 0x00:
                self.violations.append("SX1262 SetPaConfig deviceSel must be 0")
        elif op == 0x08:
            self.irq_mask = (p[0] << 8) | p[1]
            self.dio1_mask = (p[2] << 8) | p[3]
        elif op == 0x02:
            self.irq &= ~((p[0] << 8) | p[1])
        elif op == 0x07:
            self.errors = 0
        elif op == 0x9D:
            self.dio2_rf_switch = bool(p[0])
        elif op == 0x97:
            self.tcxo = (p[0], (p[1] << 16) | (p[2] << 8) | p[3])
            self.errors |= 0x0020  # XOSC_START_ERR, as the datasheet warns
        elif op == 0x86:
            self.freq_reg = (p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
        elif op == 0x8A:
            self.packet_type = p[0]
        elif op == 0x8E:
            self.tx_params = (p[0] - 256 if p[0] > 127 else p[0], p[1])
        elif op == 0x8B:
            self.mod_params = bytes(p)
        elif op == 0x8C:
            self.packet_params = bytes(p)
        elif op == 0x8F:
            self.tx_base = p[0]
            self.rx_base = p[1]

    # helpers for tests
    def last(self, op):
        for o, p in reversed(self.commands):
            if o == op:
                return p
        return None

    def count(self, op):
        return len([1 for o, _ in self.commands if o == op])


class FakeStm:
    """The stm32 port's `stm` module, as far as the sub-GHz radio goes."""

    def __init__(self, bus):
        self.bus = bus
        self.irq_handlers = []

    def subghz_cs(self, level):
        self.bus.select(level)

    def subghz_is_busy(self):
        return bool(self.bus.chip.read_busy())

    def subghz_irq(self, handler):
        self.irq_handlers.append(handler)


# ---------------------------------------------------------------------------------------------
# RFM69 (SX1231H)

_RF_DEFAULTS = {
    0x01: 0x04,
    0x02: 0x00,
    0x03: 0x1A,
    0x04: 0x0B,
    0x05: 0x00,
    0x06: 0x52,
    0x07: 0xE4,
    0x08: 0xC0,
    0x09: 0x00,
    0x0A: 0x41,
    0x0B: 0x40,
    0x10: 0x24,
    0x11: 0x9F,
    0x12: 0x09,
    0x13: 0x1A,
    0x18: 0x88,
    0x19: 0x55,
    0x1A: 0x8B,
    0x25: 0x00,
    0x29: 0xE4,
    0x2C: 0x00,
    0x2D: 0x03,
    0x2E: 0x98,
    0x37: 0x10,
    0x38: 0x40,
    0x3C: 0x8F,
    0x3D: 0x02,
    0x5A: 0x55,
    0x5C: 0x70,
    0x6F: 0x30,
}
RF_SLEEP = 0
RF_STANDBY = 1
RF_FS = 2
RF_TX = 3
RF_RX = 4
FIFO_SIZE = 66


class FakeRfm69:
    def __init__(self, tx_rate=4, rx_rate=4):
        self.bus = None
        self.tx_rate = tx_rate
        self.rx_rate = rx_rate
        self.present = True
        self.tx_outcome = "done"  # or "hang": nothing leaves the FIFO
        self.sent = []  # (frf, payload, pa_level, test_pa1, test_pa2, ocp)
        self.incoming = []  # [payload, crc_ok, frf or None]
        self.rssi_raw = 200
        self.rssi_by_frf = {}
        self.violations = []
        self.resets = 0
        self.overruns = 0
        self.filtered = 0
        self.mode_log = []
        self._power_on()

    def _power_on(self):
        self.regs = bytearray(0x80)
        for k, v in _RF_DEFAULTS.items():
            self.regs[k] = v
        self.fifo = []
        self.packet_sent = False
        self.payload_ready = False
        self.crc_ok = False
        self.overrun = False
        self.rssi_done = False
        self._air = bytearray()  # TX: bytes gone on air for the current packet
        self._rx = None  # RX: bytes of the frame being received
        self._rx_pos = 0
        self._rx_crc_ok = True

    @property
    def mode(self):
        return (self.regs[0x01] >> 2) & 0x07

    def frf(self):
        return (self.regs[0x07] << 16) | (self.regs[0x08] << 8) | self.regs[0x09]

    # pins
    def reset_pin(self):
        return FakePin("reset", 0, on_change=self._reset_edge)

    def _reset_edge(self, level):
        if not level:  # RESET released after a high pulse
            self._power_on()
            self.resets += 1

    def dio0_pin(self):
        return FakePin("dio0", reader=self.read_dio0)

    def read_dio0(self):
        self._advance()
        mapping = self.regs[0x25] >> 6
        if self.mode == RF_TX and mapping == 0:
            return self.packet_sent
        if self.mode == RF_RX:
            if mapping == 0:
                return self.crc_ok
            if mapping == 1:
                return self.payload_ready
        return 0

    # activity
    def _advance(self):
        if self.mode == RF_TX and self.tx_outcome == "done" and not self.packet_sent:
            thresh = self.regs[0x3C] & 0x7F
            if not self._air and not self.regs[0x3C] & 0x80 and len(self.fifo) <= thresh:
                return  # TxStartCondition FifoLevel: waits for more than the threshold
            for _ in range(self.tx_rate):
                if not self.fifo:
                    if self._air:
                        self.violations.append("FIFO underrun during TX")
                    return
                self._air.append(self.fifo.pop(0))
                if len(self._air) == 1 + self._air[0]:
                    self.sent.append(
                        (
                            self.frf(),
                            bytes(self._air[1:]),
                            self.regs[0x11],
                            self.regs[0x5A],
                            self.regs[0x5C],
                            self.regs[0x13],
                        )
                    )
                    self._air = bytearray()
                    self.packet_sent = True
                    return
        elif self.mode == RF_RX and not self.payload_ready:
            if self._rx is None:
                for k in range(len(self.incoming)):
                    payload, crc_ok, frf = self.incoming[k]
                    if frf is None or frf == self.frf():
                        del self.incoming[k]
                        if self.regs[0x37] & 0x80 and len(payload) > self.regs[0x38]:
                            self.filtered += 1  # longer than RegPayloadLength: dropped
                            return
                        self._rx = bytes((len(payload),)) + bytes(payload)
                        self._rx_pos = 0
                        self._rx_crc_ok = crc_ok
                        break
                if self._rx is None:
                    return
            for _ in range(self.rx_rate):
                if self._rx_pos >= len(self._rx):
                    break
                if len(self.fifo) >= FIFO_SIZE:
                    self.overrun = True
                    self.overruns += 1
                    self._rx = None
                    return
                self.fifo.append(self._rx[self._rx_pos])
                self._rx_pos += 1
            if self._rx_pos >= len(self._rx):
                self._rx = None
                if self._rx_crc_ok:
                    self.crc_ok = True
                    self.payload_ready = True
                elif self.regs[0x37] & 0x08:  # CrcAutoClearOff: hand the bad frame over
                    self.payload_ready = True
                else:
                    self.fifo = []

    def flags1(self):
        m = self.mode
        v = 0x80  # ModeReady: mode switches are immediate here
        if m == RF_RX:
            v |= 0x40
        if m == RF_TX:
            v |= 0x20
        if m in (RF_FS, RF_TX, RF_RX):
            v |= 0x10
        if self._rx is not None:
            v |= 0x01
        return v

    def flags2(self):
        n = len(self.fifo)
        v = 0
        if n >= FIFO_SIZE:
            v |= 0x80
        if n:
            v |= 0x40
        if n > (self.regs[0x3C] & 0x7F):
            v |= 0x20
        if self.overrun:
            v |= 0x10
        if self.packet_sent:
            v |= 0x08
        if self.payload_ready:
            v |= 0x04
        if self.crc_ok:
            v |= 0x02
        return v

    def _read(self, reg):
        if reg == 0x00:
            if not self.fifo:
                self.violations.append("FIFO read while empty")
                return 0
            b = self.fifo.pop(0)
            if not self.fifo and self.payload_ready:
                self.payload_ready = False
                self.crc_ok = False
            return b
        if reg == 0x27:
            return self.flags1()
        if reg == 0x28:
            return self.flags2()
        if reg == 0x23:
            return 0x02 if self.rssi_done else 0x00
        return self.regs[reg & 0x7F]

    def _write(self, reg, v):
        if reg == 0x00:
            if len(self.fifo) >= FIFO_SIZE:
                self.violations.append("FIFO write while full")
                self.overrun = True
                return
            self.fifo.append(v)
            return
        if reg == 0x10:
            self.violations.append("write to read-only RegVersion")
            return
        if reg == 0x27:
            return
        if reg == 0x28:
            if v & 0x10:  # FifoOverrun: clears the FIFO
                self.fifo = []
                self.overrun = False
                self.payload_ready = False
                self.crc_ok = False
            return
        if reg == 0x23:
            if v & 0x01:
                if self.mode != RF_RX:
                    self.violations.append("RssiStart outside RX")
                self.regs[0x24] = self.rssi_by_frf.get(self.frf(), self.rssi_raw)
                self.rssi_done = True
            return
        old_mode = self.mode
        self.regs[reg & 0x7F] = v
        if reg == 0x01 and self.mode != old_mode:
            self.mode_log.append(self.mode)
            if old_mode == RF_TX:
                self.packet_sent = False
                if self._air:
                    self.violations.append("left TX in the middle of a packet")
                self._air = bytearray()
            if old_mode == RF_RX:
                self.rssi_done = False
                self._rx = None
            if self.mode == RF_TX and self.regs[0x5A] == 0x5D and self.regs[0x13] != 0x0F:
                self.violations.append("+20 dBm settings with OCP on")
            if self.mode == RF_RX and (self.regs[0x5A] != 0x55 or self.regs[0x5C] != 0x70):
                self.violations.append("high-power test registers left on in RX")

    def begin(self):
        self._advance()

    def exchange(self, cur):
        if not self.present:
            return 0
        i = len(cur) - 1
        if i == 0:
            return 0
        addr = cur[0] & 0x7F
        reg = addr if addr == 0 else addr + i - 1
        if cur[0] & 0x80:
            self._write(reg, cur[i])
            return 0
        return self._read(reg)

    def end(self, data):
        pass


# ---------------------------------------------------------------------------------------------
# machine


class _PinFactory:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, machine):
        self._machine = machine

    def __call__(self, pid, mode=-1, pull=-1, value=None, **kwargs):
        m = self._machine
        pin = m.pins.get(pid)
        if pin is None:
            pin = m.pins[pid] = FakePin("pin {}".format(pid), 0)
        m.made_pins[pid] = (mode, pull, value)
        if value is not None:
            pin.value(value)
        return pin


class _SpiFactory:
    def __init__(self, machine):
        self._machine = machine

    def __call__(self, *args, **kwargs):
        self._machine.spi_args.append((args, kwargs))
        return self._machine.bus


class FakeMachine:
    """A `machine` module: Pin(id, ...) hands out the FakePin wired for that id (a new one for
    any other id), SPI(...) the fake bus, unique_id() the given bytes."""

    def __init__(self, bus=None, pins=None, uid=b"\x01\x02\x03\x04\x05\x06\x07\x08"):
        self.bus = bus
        self.pins = pins if pins is not None else {}
        self.uid = uid
        self.spi_args = []
        self.made_pins = {}
        self.resets = 0
        self.Pin = _PinFactory(self)
        self.SPI = _SpiFactory(self)

    def unique_id(self):
        return self.uid

    def reset(self):
        self.resets += 1

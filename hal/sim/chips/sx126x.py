# Over 400 lines: one chip's model, command by command, in methods small enough that a transfer needs no heap.
# A Semtech SX126x at its SPI bus, as the SX1262 and the STM32WL's sub-GHz core present it to
# hal.sx126x / hal.stm32wl: BUSY rising after every command (falling after busy_polls reads),
# chip modes, IRQ flags under the IRQ mask, the 256-byte buffer, registers, GFSK packet
# parameters, RSSI. Misuse (a command while BUSY, a wrong parameter count, a mode rule broken)
# is recorded in .violations. On a medium (attach(medium)): SetTx puts the buffer's frame on the
# channel SetRfFrequency chose, with its airtime, and TxDone rises once that has passed (a
# driver polling for it waits that long: a virtual clock moves on); in RX others' frames on that
# channel arrive with RxDone; GetRssiInst reads the medium's energy there. Without one (driver
# tests), TX ends after tx_polls transactions (or times out / hangs, as scripted) and RSSI is
# rssi_raw. Scripted frames (incoming: [payload, crc_ok, freq_reg or None]) come first.
# record=False (a long simulation) keeps no log of commands and frames (sent, commands: None).
from hal.compat import const
from hal.sim.chips.air import OnAir
from hal.sim.chips.bus import SimPin

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
_XTAL_HZ = const(32000000)
_SHORT = const(10)  # the longest fixed-length command (SetPacketParams) with its opcode
# (paDutyCycle, hpMax) -> (dBm out, the SetTxParams power byte of that row)
_HP_ROWS = {(0x02, 0x02): (14, 22), (0x02, 0x03): (17, 22), (0x03, 0x05): (20, 22), (0x04, 0x07): (22, 22)}
_LP_ROWS = {(0x06, 0x00): (15, 14), (0x04, 0x00): (14, 14), (0x01, 0x00): (10, 13)}


class SimSx126x(OnAir):
    def __init__(self, variant="sx1262", busy_polls=1, medium=None, record=True):
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
        self.sent = [] if record else None  # (freq_reg, payload, tx_params, pa_config)
        self.frames_sent = 0
        self.incoming = []  # [payload, crc_ok, freq_reg or None]
        self.dropped = 0
        self.rssi_raw = 200
        self.rssi_by_freq = {}
        self.packet_rssi_raw = 160
        self.violations = []
        self.commands = [] if record else None  # (opcode, params) of every executed command
        self.resets = 0
        self.clear_errors_params = 2 if variant == "sx1262" else 1
        self.tx_power_dbm = None  # what the last frame was sent at (others hear it on a medium)
        # made once, so that a transaction allocates nothing: the parameters of a short command
        # (by their count), the answer of a read command, the packet parameters in force
        self._params = [bytearray(k) for k in range(_SHORT)]
        self._data = bytearray(3)
        self._st = self._first = self._base = self._mask = self._count = 0  # see _answer
        self._src = self._data
        self._packet_params = bytearray(9)
        self._power_on()
        if medium is not None:
            self.attach(medium)

    def freq_hz(self):
        """The frequency SetRfFrequency set, in Hz (DS 13.4.1: reg * 32 MHz / 2^25)."""
        return (self.freq_reg * _XTAL_HZ + (1 << 24)) >> 25

    def _power_on(self):
        self.mode = STBY_RC
        self.cmd_status = 0
        self.regs = bytearray(0x1000)
        self.regs[0x06B8] = 0xA0  # bits 7:1 hold something the driver must preserve
        self.regs[0x08D8] = 0xC8
        self.buffer = bytearray(256)
        self._buffer_view = memoryview(self.buffer)
        self._frames = {}  # (offset << 8) | length -> that view of the buffer: a frame to send
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
        self._out_dbm = None  # what they make of the PA's output
        self.tx_base = 0
        self.rx_base = 0
        self.tcxo = None
        self.dio2_rf_switch = False
        self.regulator = 0
        self.calibrations = []
        self.image_cal = None
        self._busy_left = 0
        self._tx_left = None
        self._tx_end = None
        self._rx_timeout = None
        self.tx_timeout = None
        self.rx_len = 0
        self.rx_start = 0
        self._waking = False

    def busy_pin(self):
        return SimPin("busy", reader=self.read_busy)

    def dio1_pin(self):
        return SimPin("dio1", reader=self.read_dio1)

    def reset_pin(self):
        return SimPin("reset", 1, on_change=self._reset_edge)

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

    # simulated activity between transactions. What runs for every transaction is cut into
    # methods whose frames fit in 11 words: on MicroPython a larger one is taken from the heap
    # at each call (and the hub tests run every radio kind on MicroPython too).
    def _raise(self, bits):
        self.irq |= bits & self.irq_mask

    def _advance(self):
        if self.mode == TX:
            if self._tx_left is not None and self.tx_outcome != "hang":
                self._tx_progress()
        elif self.mode == RX and not self.irq & IRQ_RX_DONE:
            self._rx_progress()

    def _tx_progress(self):
        if self._tx_end is not None:
            self.air.wait_until(self._tx_end)  # the frame is on the air until then
            self._tx_left = 1
        self._tx_left -= 1
        if self._tx_left > 0:
            return
        self._tx_left = None
        self._tx_end = None
        self.mode = STBY_RC
        self._raise(IRQ_TX_DONE if self.tx_outcome == "done" else IRQ_TIMEOUT)

    def _rx_progress(self):
        if self.incoming and self._scripted():
            return
        if self.air is not None and self.freq_reg is not None:
            got = self.air.take(self.freq_hz())
            if got is not None:
                self._deliver(got[1], True)
                return
        if self._rx_timeout not in (None, 0, 0xFFFFFF):
            self.mode = STBY_RC
            self._raise(IRQ_TIMEOUT)

    def _scripted(self):
        # the first scripted frame for the tuned frequency, delivered: False if none
        for k in range(len(self.incoming)):
            e = self.incoming[k]
            if e[2] is None or e[2] == self.freq_reg:
                del self.incoming[k]
                self._deliver(e[0], e[1])
                return True
        return False

    def _deliver(self, payload, crc_ok):
        pp = self.packet_params
        if pp is None or pp[5] != 0x01 or len(payload) > pp[6]:
            self.dropped += 1  # not variable length, or longer than accepted
            return
        self._store(payload)
        self.rx_len = len(payload)
        self.rx_start = self.rx_base
        self._raise(IRQ_RX_DONE | (0 if crc_ok else IRQ_CRC_ERR))
        if self._rx_timeout != 0xFFFFFF:
            self.mode = STBY_RC

    def _store(self, payload):
        for i in range(len(payload)):
            self.buffer[(self.rx_base + i) & 0xFF] = payload[i]

    def status_byte(self):
        return ((self.mode & 7) << 4) | ((self.cmd_status & 7) << 1)

    def begin(self):
        if self.mode == SLEEP:
            self._waking = True
            return
        if self.stuck_busy or self._busy_left > 0:  # (asleep: returned above)
            self.violations.append("NSS low while BUSY high")
        self._advance()

    def _get_data(self, op):
        # the data of read command op (after its status byte) into self._data; returns their count
        d = self._data
        if op == 0x12:
            d[0] = self.irq >> 8
            d[1] = self.irq & 0xFF
            return 2
        if op == 0x13:
            d[0] = self.rx_len
            d[1] = self.rx_start
            return 2
        if op == 0x14:
            d[0] = 0
            d[1] = d[2] = self.packet_rssi_raw
            return 3
        if op == 0x15:
            d[0] = self._rssi_inst()
            return 1
        if op == 0x17:
            d[0] = self.errors >> 8
            d[1] = self.errors & 0xFF
            return 2
        if op == 0x11:
            d[0] = self.packet_type or 0
            return 1
        return 0

    def _rssi_inst(self):
        if self.mode != RX:
            self.violations.append("GetRssiInst outside RX")
        if self.air is not None and self.freq_reg is not None:
            raw = -2 * self.air.energy_dbm(self.freq_hz())  # DS 13.5.4: -RssiInst/2 dBm
            return 0 if raw < 0 else 255 if raw > 255 else raw
        return self.rssi_by_freq.get(self.freq_reg, self.rssi_raw)

    def transfer(self, mosi, i0, n, miso):
        # MISO: the status byte, then the data of a read command (its opcode, address or offset
        # and a status byte come first); zeros from an absent or waking chip
        if miso is not None:
            self._answer(mosi, i0 + n)
            self._clock_out(i0, miso)

    def _answer(self, mosi, end):
        # where this transaction's MISO bytes come from, now that end of them are clocked:
        # _st for the first _first, then _src from _base (wrapping at _mask), or else the
        # _count bytes of _src and zeros after them
        self._mask = self._count = self._base = 0
        if self._waking or not self.present:
            self._st = 0
            self._first = end
            return
        self._st = self.status_byte()
        op = mosi[0]
        if op == 0x1D:  # ReadRegister: address, status, then registers
            self._src = self.regs
            self._first = 4
            self._mask = 0xFFF
            if end > 3:
                self._base = (mosi[1] << 8) | mosi[2]
        elif op == 0x1E:  # ReadBuffer: offset, status, then the buffer
            self._src = self.buffer
            self._first = 3
            self._mask = 0xFF
            if end > 2:
                self._base = mosi[1]
        elif op in _SX_READS:  # status, then data
            self._src = self._data
            self._first = 2
            if end > 2:
                self._count = self._get_data(op)
        else:
            self._first = end

    def _clock_out(self, i, miso):
        src = self._src
        for k in range(len(miso)):
            j = i + k - self._first
            if j < 0:
                miso[k] = self._st
            elif self._mask:
                miso[k] = src[(self._base + j) & self._mask]
            elif j < self._count:
                miso[k] = src[j]
            else:
                miso[k] = 0

    def end(self, mosi, n):
        if self._waking:
            self._woken(mosi, n)
        elif n:
            self._command(mosi, n)

    def _woken(self, mosi, n):
        self._waking = False
        if n:
            self.violations.append("command 0x{:02x} sent to a sleeping chip".format(mosi[0]))
        self.mode = STBY_RC
        self._busy_left = self.busy_polls

    def _command(self, mosi, n):
        op = mosi[0]
        if self.commands is not None:
            self.commands.append((op, bytes(mosi[1:n])))
        self.cmd_status = 0
        self._busy_left = self.busy_polls
        if op == 0x0D:
            self._write_registers(mosi, n)
        elif op == 0x0E:
            self._write_buffer(mosi, n)
        elif op not in _SX_READS:
            self._run(op, self._params_of(mosi, n))

    def _write_registers(self, mosi, n):
        # WriteRegister: address, then the registers
        a = ((mosi[1] << 8) | mosi[2]) - 3
        for k in range(3, n):
            self.regs[(a + k) & 0xFFF] = mosi[k]

    def _write_buffer(self, mosi, n):
        # WriteBuffer: offset, then the data
        a = mosi[1] - 2
        for k in range(2, n):
            self.buffer[(a + k) & 0xFF] = mosi[k]

    def _params_of(self, mosi, n):
        if n > _SHORT:
            return memoryview(mosi)[1:n]  # too long for any fixed-length command: refused
        p = self._params[n - 1]  # the parameters, copied into a buffer of their length
        for k in range(n - 1):
            p[k] = mosi[k + 1]
        return p

    def _run(self, op, p):
        if self._valid(op, p):
            self._execute(op, p)

    def _valid(self, op, p):
        want = self.clear_errors_params if op == 0x07 else _SX_PARAMS.get(op)
        if want is None:
            self.violations.append("unknown opcode 0x{:02x}".format(op))
            self.cmd_status = 5
            return False
        if len(p) != want:
            self.violations.append("opcode 0x{:02x} with {} parameter bytes, not {}".format(op, len(p), want))
            self.cmd_status = 4
            return False
        if op in _SX_STANDBY_ONLY and self.mode != STBY_RC and self.mode != STBY_XOSC:
            self.violations.append("opcode 0x{:02x} outside standby (mode {})".format(op, self.mode))
        return True

    def _execute(self, op, p):
        # the frequent ones first
        if op == 0x80:
            self.mode = STBY_XOSC if p[0] else STBY_RC
            self._tx_left = None
            self._tx_end = None
            self._rx_timeout = None
        elif op == 0x02:
            self.irq &= ~((p[0] << 8) | p[1])
        elif op == 0x8C:
            pp = self._packet_params  # kept in place: one per chip, however many frames
            for k in range(9):
                pp[k] = p[k]
            self.packet_params = pp
        elif op == 0x83:
            self._set_tx((p[0] << 16) | (p[1] << 8) | p[2])
        elif op == 0x82:
            self.mode = RX
            self._rx_timeout = (p[0] << 16) | (p[1] << 8) | p[2]
        elif op == 0x86:
            self.freq_reg = (p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
        else:
            self._configure(op, p)

    def _set_tx(self, timeout):
        if self.packet_type is None or self.freq_reg is None:
            self.violations.append("SetTx before packet type and frequency")
        self.mode = TX
        self._tx_left = self.tx_polls
        self.tx_timeout = timeout
        if self.tx_outcome == "done":
            self.frames_sent += 1
            self.tx_power_dbm = self._out_dbm
            self._send(self._tx_frame())

    def _tx_frame(self):
        # the frame in the buffer: a view made once per offset and length (a run's frames come
        # in a few lengths)
        n = self.packet_params[6] if self.packet_params else 0
        a = self.tx_base
        if a + n > 256:
            return (self.buffer + self.buffer)[a : a + n]
        payload = self._frames.get((a << 8) | n)
        if payload is None:
            payload = self._frames[(a << 8) | n] = self._buffer_view[a : a + n]
        return payload

    def _send(self, payload):
        if self.sent is not None:
            self.sent.append((self.freq_reg, bytes(payload), self.tx_params, self.pa_config))
        if self.air is not None and self.freq_reg is not None:
            self._tx_end = self.air.send(self.freq_hz(), payload)

    def _configure(self, op, p):
        if op == 0x84:
            self.mode = SLEEP
        elif op == 0xC1:
            self.mode = FS
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
            self._out_dbm = self._output_dbm()
            if self.variant == "sx1262" and p[2] != 0x00:
                self.violations.append("SX1262 SetPaConfig deviceSel must be 0")
        elif op == 0x08:
            self.irq_mask = (p[0] << 8) | p[1]
            self.dio1_mask = (p[2] << 8) | p[3]
        elif op == 0x07:
            self.errors = 0
        elif op == 0x9D:
            self.dio2_rf_switch = bool(p[0])
        elif op == 0x97:
            self.tcxo = (p[0], (p[1] << 16) | (p[2] << 8) | p[3])
            self.errors |= 0x0020  # XOSC_START_ERR, as the datasheet warns
        elif op == 0x8A:
            self.packet_type = p[0]
        elif op == 0x8E:
            self.tx_params = (p[0] - 256 if p[0] > 127 else p[0], p[1])
            self._out_dbm = self._output_dbm()
        elif op == 0x8B:
            self.mod_params = bytes(p)
        elif op == 0x8F:
            self.tx_base = p[0]
            self.rx_base = p[1]

    def _output_dbm(self):
        # the PA's output: its optimal row (DS table 13-21, RM0453 table 35) less what SetTxParams asks below it
        if self.pa_config is None or self.tx_params is None:
            return None
        rows = _LP_ROWS if self.variant == "stm32wl" and self.pa_config[2] == 1 else _HP_ROWS
        row = rows.get((self.pa_config[0], self.pa_config[1]))
        power = self.tx_params[0]
        return power if row is None else row[0] - (row[1] - power)

    # helpers for tests
    def last(self, op):
        for o, p in reversed(self.commands):
            if o == op:
                return p
        return None

    def count(self, op):
        return len([1 for o, _ in self.commands if o == op])

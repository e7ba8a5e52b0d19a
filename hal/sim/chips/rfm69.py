# Over 400 lines: one chip's model, register by register, in methods small enough that a transfer needs no heap.
# A HopeRF RFM69 (SX1231H core) at its SPI bus, as hal.rfm69 drives it: the 0x80 registers, a
# 66-byte FIFO that TX drains and RX fills tx_rate / rx_rate bytes per SPI transaction, IRQ
# flags computed from that state, DIO0 mapping, RSSI, the reset pin. Misuse (FIFO underrun or
# overrun, +20 dBm settings with OCP on, test registers left on in RX...) is recorded in
# .violations.
#
# On a medium (attach(medium), a hal.sim.radio.Medium): a packet that has left the FIFO goes on
# the channel RegFrf names, with its airtime, and PacketSent rises when the airtime has passed
# (a driver polling for it waits that long: on a virtual clock the time moves on); in RX the
# frames others send on that channel fill the FIFO; RssiStart reads the medium's energy on the
# channel. Scripted frames (incoming: [payload, crc_ok, frf or None]) arrive before the
# medium's; without a medium RSSI is what rssi_raw says. record=False (a long simulation) keeps
# no log of frames and modes (sent, mode_log: None).
from hal.sim.chips.air import OnAir
from hal.sim.chips.bus import SimPin

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


class SimRfm69(OnAir):
    def __init__(self, tx_rate=4, rx_rate=4, medium=None, record=True):
        self.bus = None
        self.tx_rate = tx_rate
        self.rx_rate = rx_rate
        self.present = True
        self.tx_outcome = "done"  # or "hang": nothing leaves the FIFO
        self.sent = [] if record else None  # (frf, payload, pa_level, test_pa1, test_pa2, ocp)
        self.frames_sent = 0
        self.tx_power_dbm = None  # what the last frame was sent at (others hear it on a medium)
        self.incoming = []  # [payload, crc_ok, frf or None]
        self.rssi_raw = 200
        self.rssi_by_frf = {}
        self.violations = []
        self.resets = 0
        self.overruns = 0
        self.filtered = 0
        self.mode_log = [] if record else None
        self._power_on()
        if medium is not None:
            self.attach(medium)

    def _power_on(self):
        self.regs = bytearray(0x80)
        for k, v in _RF_DEFAULTS.items():
            self.regs[k] = v
        self.fifo = _Fifo()
        self.packet_sent = False
        self.payload_ready = False
        self.crc_ok = False
        self.overrun = False
        self.rssi_done = False
        self._out = bytearray(256)  # TX: bytes gone on air for the current packet (_out_n)
        self._out_view = memoryview(self._out)
        self._frames = {}  # length -> the view of _out of a packet that long (made once each)
        self._out_n = 0
        self._rx = None  # RX: the payload being received, after its length byte (_rx_pos: sent so far)
        self._rx_pos = 0
        self._rx_crc_ok = True

    @property
    def mode(self):
        return (self.regs[0x01] >> 2) & 0x07

    def frf(self):
        return (self.regs[0x07] << 16) | (self.regs[0x08] << 8) | self.regs[0x09]

    def freq_hz(self):
        """The frequency RegFrf holds, in Hz (DS 3.2.3: Frf * 32 MHz / 2^19)."""
        return (self.frf() * 32000000 + (1 << 18)) >> 19

    def _output_dbm(self):
        # DS 3.3.6: PA0 or PA1 alone -18 + OutputPower; PA1+PA2 -14 + OP, -11 + OP with the
        # +20 dBm test-register settings
        level = self.regs[0x11]
        op = level & 0x1F
        if level & 0x60 != 0x60:
            return -18 + op
        return (-11 if self.regs[0x5A] == 0x5D else -14) + op

    # pins
    def reset_pin(self):
        return SimPin("reset", 0, on_change=self._reset_edge)

    def _reset_edge(self, level):
        if not level:  # RESET released after a high pulse
            self._power_on()
            self.resets += 1

    def dio0_pin(self):
        return SimPin("dio0", reader=self.read_dio0)

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

    # activity. What runs for every transaction is cut into methods whose frames fit in 11
    # words: on MicroPython a larger one is taken from the heap at each call (and the hub tests
    # run every radio kind on MicroPython too).
    def _advance(self):
        if self.mode == RF_TX:
            if self.tx_outcome == "done" and not self.packet_sent:
                self._tx_progress()
        elif self.mode == RF_RX and not self.payload_ready:
            self._rx_progress()

    def _tx_progress(self):
        on = self._out_n
        if not on and not self.regs[0x3C] & 0x80 and len(self.fifo) <= self.regs[0x3C] & 0x7F:
            return  # TxStartCondition FifoLevel: waits for more than the threshold
        k = self._to_air(on)  # bytes on air this transaction
        on += k
        self._out_n = on
        if on and on == 1 + self._out[0]:
            self._packet_out(on)
        elif k < self.tx_rate and on:
            self.violations.append("FIFO underrun during TX")

    def _to_air(self, on):
        # what leaves the FIFO in this transaction into _out after the on bytes there: how many
        fifo = self.fifo
        k = 1 + (self._out[0] if on else fifo.peek() if len(fifo) else 0) - on
        k = min(self.tx_rate, len(fifo), k)
        for j in range(on, on + k):
            self._out[j] = fifo.pop()
        return k

    def _packet_out(self, on):
        # a view of _out made once per length (a run's frames come in a few lengths)
        payload = self._frames.get(on)
        if payload is None:
            payload = self._frames[on] = self._out_view[1:on]
        self._sent(payload)
        self._out_n = 0
        self.packet_sent = True

    def _rx_progress(self):
        if self._rx is None and not self._next_rx():
            return
        self._rx_fill()
        if self._rx is not None and self._rx_pos > len(self._rx):
            self._rx = None
            if self._rx_crc_ok:
                self.crc_ok = True
                self.payload_ready = True
            elif self.regs[0x37] & 0x08:  # CrcAutoClearOff: hand the bad frame over
                self.payload_ready = True
            else:
                self.fifo.clear()

    def _next_rx(self):
        # a frame starts arriving: False if none does
        if not self._arriving():
            return False
        if self.regs[0x37] & 0x80 and len(self._rx) > self.regs[0x38]:
            self.filtered += 1  # longer than RegPayloadLength: dropped
            self._rx = None
            return False
        self._rx_pos = 0
        return True

    def _rx_fill(self):
        # up to rx_rate bytes of the frame (its length byte first) into the FIFO
        rx = self._rx
        for _ in range(self.rx_rate):
            pos = self._rx_pos
            if pos > len(rx):
                return
            if len(self.fifo) >= FIFO_SIZE:
                self.overrun = True
                self.overruns += 1
                self._rx = None
                return
            self.fifo.push(rx[pos - 1] if pos else len(rx))
            self._rx_pos = pos + 1

    def _sent(self, payload):
        # the packet has left the FIFO: on the medium for its airtime
        self.frames_sent += 1
        self.tx_power_dbm = self._output_dbm()
        if self.sent is not None:
            self._record(payload)
        if self.air is not None:
            self.air.wait_until(self.air.send(self.freq_hz(), payload))

    def _record(self, payload):
        regs = self.regs
        self.sent.append((self.frf(), bytes(payload), regs[0x11], regs[0x5A], regs[0x5C], regs[0x13]))

    def _arriving(self):
        # the next frame for the tuned frequency into _rx and _rx_crc_ok: False if none
        for k in range(len(self.incoming)):
            payload, crc_ok, frf = self.incoming[k]
            if frf is None or frf == self.frf():
                del self.incoming[k]
                self._rx = payload
                self._rx_crc_ok = crc_ok
                return True
        if self.air is not None:
            got = self.air.take(self.freq_hz())
            if got is not None:
                self._rx = got[1]
                self._rx_crc_ok = True
                return True
        return False

    def flags1(self):
        m = self.mode
        v = 0x80  # ModeReady: mode switches are immediate here
        if m == RF_RX:
            v |= 0x40
        if m == RF_TX:
            v |= 0x20
        if m == RF_FS or m == RF_TX or m == RF_RX:  # (a tuple of names would be built per read)
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
            if not len(self.fifo):
                self.violations.append("FIFO read while empty")
                return 0
            b = self.fifo.pop()
            if not len(self.fifo) and self.payload_ready:
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
            self.fifo.push(v)
            return
        if reg == 0x10:
            self.violations.append("write to read-only RegVersion")
            return
        if reg == 0x27:
            return
        if reg == 0x28:
            if v & 0x10:  # FifoOverrun: clears the FIFO
                self.fifo.clear()
                self.overrun = False
                self.payload_ready = False
                self.crc_ok = False
            return
        if reg == 0x23:
            if v & 0x01:
                if self.mode != RF_RX:
                    self.violations.append("RssiStart outside RX")
                if self.air is not None:
                    raw = -2 * self.air.energy_dbm(self.freq_hz())  # DS 6.4: -RssiValue/2 dBm
                    self.regs[0x24] = 0 if raw < 0 else 255 if raw > 255 else raw
                else:
                    self.regs[0x24] = self.rssi_by_frf.get(self.frf(), self.rssi_raw)
                self.rssi_done = True
            return
        old_mode = self.mode
        self.regs[reg & 0x7F] = v
        if reg == 0x01 and self.mode != old_mode:
            if self.mode_log is not None:
                self.mode_log.append(self.mode)
            if old_mode == RF_TX:
                self.packet_sent = False
                if self._out_n:
                    self.violations.append("left TX in the middle of a packet")
                self._out_n = 0
            if old_mode == RF_RX:
                self.rssi_done = False
                self._rx = None
            if self.mode == RF_TX and self.regs[0x5A] == 0x5D and self.regs[0x13] != 0x0F:
                self.violations.append("+20 dBm settings with OCP on")
            if self.mode == RF_RX and (self.regs[0x5A] != 0x55 or self.regs[0x5C] != 0x70):
                self.violations.append("high-power test registers left on in RX")

    def begin(self):
        self._advance()

    def transfer(self, mosi, i0, n, miso):
        # DS 5.2.1: the address byte, then data to or from consecutive registers (RegFifo
        # stays); MISO: zeros, but for the registers read
        if miso is not None:
            _zero(miso, n)
        if not self.present:
            return
        if mosi[0] & 0x80:
            self._written(mosi, i0 if i0 else 1, i0 + n)
        else:
            self._read_out(mosi[0], i0, miso if miso is not None else bytearray(n))

    def _written(self, mosi, start, end):
        # MOSI bytes start..end-1 (data, not the address byte) into the registers or the FIFO
        if mosi[0] != 0x80:
            self._write_regs(mosi, start, end)
        elif not self.fifo.fill(mosi, start, end):
            self.violations.append("FIFO write while full")
            self.overrun = True

    def _write_regs(self, mosi, i, end):
        while i < end:
            self._write(mosi[0] + i - 0x81, mosi[i])  # (mosi[0] & 0x7F) + i - 1: mosi[0] has bit 7
            i += 1

    def _read_out(self, reg, i0, miso):
        # the registers read for the MISO bytes from i0 on (RegFifo: the FIFO again and again)
        for k in range(len(miso)):
            if i0 + k:  # (not the address byte)
                miso[k] = self._read(reg + i0 + k - 1 if reg else 0)

    def end(self, mosi, n):
        pass


def _zero(buf, n):
    for k in range(n):
        buf[k] = 0


class _Fifo:
    """The 66-byte FIFO: a ring, so that moving bytes through it allocates nothing."""

    def __init__(self):
        self._ring = bytearray(FIFO_SIZE)
        self._head = 0
        self._n = 0

    def __len__(self):
        return self._n

    def clear(self):
        self._head = self._n = 0

    def fill(self, data, i, end):
        """data[i:end] in, while there is room: False if it ran out."""
        while i < end:
            if self._n >= FIFO_SIZE:
                return False
            self._ring[(self._head + self._n) % FIFO_SIZE] = data[i]
            self._n += 1
            i += 1
        return True

    def push(self, b):
        self._ring[(self._head + self._n) % FIFO_SIZE] = b
        self._n += 1

    def peek(self):
        return self._ring[self._head]

    def pop(self):
        b = self._ring[self._head]
        self._head = (self._head + 1) % FIFO_SIZE
        self._n -= 1
        return b

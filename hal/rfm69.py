# Over 400 lines: one chip's driver with its datasheet notes, in methods small enough that a frame needs no heap.
# HopeRF RFM69HCW / RFM69HW (Semtech SX1231H core) register-level driver for the GB868 PHY.
#
# "DS" = HopeRF RFM69HCW datasheet v1.1. SPI: first byte is the register address, bit 7 set for
# a write; further bytes go to / come from consecutive registers (RegFifo does not advance).
#
# What the chip can and cannot do of IEEE 802.15.4g MR-FSK (the GB868 PHY):
# - can: FSK with Gaussian BT 0.5 shaping, 100 kbit/s, 35 kHz deviation (573 Fsteps = 34.97 kHz),
#   8-byte (64-bit) preamble, the 2-byte SFD 0x904E as sync word (sent MSB first, the SFD's
#   bit order), variable length, CRC-16.
# - cannot: the 2-byte PHR. Its variable-length header is ONE length byte (DS 5.5.2.2).
# - cannot: PN9 whitening of the PSDU only. DS 5.5.8.2: the x^9+x^5+1 LFSR whitens the
#   payload (length byte included) and the CRC. Whitening is on - the nearest it has - but the
#   sequence covers different bits than 802.15.4g's, which never whitens the PHR.
# - CRC: CRC-16 CCITT (x^16+x^12+x^5+1, the 802.15.4 FCS polynomial) as the chip computes it
#   (DS 5.5.3: seed 0x1D0F, complemented), not bit-identical to the FCS.
# Same framing as hal.sx126x with its CCITT CRC setting: preamble, 0x904E, length, payload,
# CRC. The 66-byte FIFO is smaller than a frame (up to 126 bytes with the length byte), so
# transmit() refills it and receive() drains it while the packet is on air, using FifoLevel
# (set while more than _FIFO_THRESH bytes are in the FIFO).
from hal import phy
from hal.compat import const
from hal.contracts import RadioError
from hal.radio_driver import MAX_PAYLOAD, RadioDriver

# Registers (DS 6.1 table 23)
_REG_FIFO = const(0x00)
_REG_OPMODE = const(0x01)  # DS 6.2
_REG_DATAMODUL = const(0x02)  # DS 6.2
_REG_BITRATE_MSB = const(0x03)  # DS 6.2, 0x03-0x04
_REG_FDEV_MSB = const(0x05)  # DS 6.2, 0x05-0x06
_REG_FRF_MSB = const(0x07)  # DS 6.2, 0x07-0x09; the new frequency applies when the LSB is written
_REG_VERSION = const(0x10)  # DS 6.2
_REG_PA_LEVEL = const(0x11)  # DS 6.3
_REG_OCP = const(0x13)  # DS 6.3
_REG_RX_BW = const(0x19)  # DS 6.4
_REG_AFC_BW = const(0x1A)  # DS 6.4
_REG_RSSI_CONFIG = const(0x23)  # DS 6.4
_REG_RSSI_VALUE = const(0x24)  # DS 6.4: RSSI = -RssiValue/2 dBm
_REG_DIO_MAPPING1 = const(0x25)  # DS 6.5
_REG_IRQ_FLAGS1 = const(0x27)  # DS 6.5
_REG_IRQ_FLAGS2 = const(0x28)  # DS 6.5
_REG_PREAMBLE_MSB = const(0x2C)  # DS 6.6, 0x2C-0x2D: preamble size in bytes
_REG_SYNC_CONFIG = const(0x2E)  # DS 6.6
_REG_SYNC_VALUE1 = const(0x2F)  # DS 6.6, 0x2F-0x36
_REG_PACKET_CONFIG1 = const(0x37)  # DS 6.6
_REG_PAYLOAD_LENGTH = const(0x38)  # DS 6.6: in variable mode, the longest accepted in RX
_REG_FIFO_THRESH = const(0x3C)  # DS 6.6
_REG_PACKET_CONFIG2 = const(0x3D)  # DS 6.6
_REG_TEST_PA1 = const(0x5A)  # DS 6.8 / 3.3.7
_REG_TEST_PA2 = const(0x5C)  # DS 6.8 / 3.3.7
_REG_TEST_DAGC = const(0x6F)  # DS 6.8

_VERSION = const(0x24)  # RegVersion of the SX1231H inside

# RegOpMode Mode bits 4:2 (DS 4.2, 6.2)
_MODE_SLEEP = const(0x00)
_MODE_STANDBY = const(0x04)
_MODE_TX = const(0x0C)
_MODE_RX = const(0x10)

# RegIrqFlags1 / RegIrqFlags2 (DS 6.5)
_IRQ1_MODE_READY = const(0x80)
_IRQ1_RX_READY = const(0x40)
_IRQ2_FIFO_NOT_EMPTY = const(0x40)
_IRQ2_FIFO_LEVEL = const(0x20)
_IRQ2_FIFO_OVERRUN = const(0x10)  # write 1 to clear the FIFO
_IRQ2_PACKET_SENT = const(0x08)
_IRQ2_PAYLOAD_READY = const(0x04)
_IRQ2_CRC_OK = const(0x02)
_RSSI_START = const(0x01)
_RSSI_DONE = const(0x02)

_FXOSC = const(32000000)
_FSTEP_SHIFT = const(19)  # DS 3.2.3: Fstep = Fxosc / 2^19 = 61.035 Hz
_FIFO_SIZE = const(66)  # DS 1
_FIFO_THRESH = const(32)

# Configuration (DS 3.3.2, 3.3.3, 3.3.5, 5.5)
_DATAMODUL = const(0x02)  # packet mode, FSK, Gaussian BT 0.5 (ModulationShaping 10)
_BITRATE = _FXOSC // phy.BITRATE_BPS  # 320 = 0x0140
_FDEV = ((phy.DEVIATION_HZ << _FSTEP_SHIFT) + _FXOSC // 2) // _FXOSC  # 573 = 0x023D
_RX_BW = const(0x42)  # DccFreq 010, RxBwMant 16, RxBwExp 2: 125 kHz single-sided (DS table 14)
_AFC_BW = const(0x41)  # 250 kHz
_SYNC_CONFIG = const(0x88)  # SyncOn, fill FIFO on sync, SyncSize+1 = 2 bytes, no tolerance
_PACKET_CONFIG1 = const(0xD8)  # variable length, whitening, CRC on, CrcAutoClearOff
_PACKET_CONFIG2 = const(0x02)  # AutoRxRestartOn, AES off
_FIFO_THRESH_REG = 0x80 | _FIFO_THRESH  # TxStartCondition: FIFO not empty
_DIO0_RX_PAYLOAD_READY = const(0x40)  # RegDioMapping1 Dio0Mapping 01 in RX
_DIO0_TX_PACKET_SENT = const(0x00)  # Dio0Mapping 00 in TX
_TEST_DAGC = const(0x30)  # DS 3.4.4: improved fading margin (AfcLowBetaOn = 0)

_MODE_TIMEOUT_MS = const(20)
_TX_MARGIN_MS = const(50)
_RX_FRAME_MS = phy.airtime_us(MAX_PAYLOAD) // 1000 + _TX_MARGIN_MS  # a started frame ends by then


def frf_reg(hz):
    """RegFrf value: round(hz * 2^19 / 32 MHz), to the nearest step.

    2^19 / 32 MHz = 256 / 15625: whole multiples of 15625 Hz and the rest apart, so that no
    intermediate value leaves a 32-bit port's small ints (hz << 19 would be a long int)."""
    q = hz // 15625
    return q * 256 + ((hz - q * 15625) * 256 + 7812) // 15625


_FIFO_READ = bytes((_REG_FIFO,))  # the address byte of a FIFO burst; then the data
_FIFO_WRITE = bytes((_REG_FIFO | 0x80,))


class Rfm69(RadioDriver):
    """RFM69 on spi (machine.SPI-like) with cs(level); reset (active high) and dio0 optional.

    high_power: an H module (RFM69HCW/HW, PA1/PA2 on PA_BOOST, -2..+20 dBm); otherwise PA0 on
    RFIO (RFM69CW/W, -18..+13 dBm).

    A register goes in and out through two-byte buffers made here once, a received frame is
    gathered in a buffer of 256 bytes: in steady state a frame allocates only views (of a frame
    longer than the FIFO and of each burst that moves part of it, of each burst received into the
    buffer and of the bytes receive() returns) and those bytes (on MicroPython every allocation
    brings the next collection of the whole heap nearer).
    """

    def __init__(self, spi, cs, band, tx_power_cap_dbm, reset=None, dio0=None, clock=None, high_power=True):
        self.high_power = bool(high_power)
        self.MIN_DBM = -2 if self.high_power else -18
        self.MAX_DBM = 20 if self.high_power else 13
        RadioDriver.__init__(self, band, tx_power_cap_dbm, clock)
        self._spi = spi
        self._cs = cs
        self._reset = reset
        self._dio0 = dio0
        self._rx_on = False
        self._rx = bytearray(256)  # the frame being received: length byte, payload (_rx_n so far)
        self._rx_view = memoryview(self._rx)
        self._rx_n = 0
        self._rx_active = False  # part of a frame is in the FIFO or already read
        self._boost = False  # +18..+20 dBm test-register settings in use
        self._boost_wanted = False
        self.crc_errors = 0
        self.overruns = 0
        self._rd = bytearray(2)  # reading a register: its address, a NOP; the answer in _in
        self._in = bytearray(2)
        self._wr = bytearray(2)  # writing one: address | 0x80, value
        self._tx_head = bytearray((_REG_FIFO | 0x80, 0))  # a frame's first burst: its length byte
        self._tx_view = None  # a frame being sent: its view (if longer than the FIFO), length,
        self._tx_n = 0  # how much of it is in the FIFO, when it must be out
        self._tx_pos = 0
        self._tx_deadline = 0
        self._frf = bytearray((_REG_FRF_MSB | 0x80, 0, 0, 0))

    # -- bus

    def _write(self, addr, data):
        self._send_data(bytes((addr | 0x80,)), data)

    def _reg(self, addr):
        self._rd[0] = addr & 0x7F
        self._select()
        self._spi.write_readinto(self._rd, self._in)
        self._deselect()
        return self._in[1]

    def _set(self, addr, value):
        wr = self._wr
        wr[0] = addr | 0x80
        wr[1] = value
        self._send(wr)

    def _mode(self, mode):
        self._set(_REG_OPMODE, mode)
        deadline = self._deadline(_MODE_TIMEOUT_MS)
        while not self._reg(_REG_IRQ_FLAGS1) & _IRQ1_MODE_READY:
            if self._expired(deadline):
                raise RadioError("RFM69 did not reach mode 0x{:02x}".format(mode))

    def _standby(self):
        self._mode(_MODE_STANDBY)
        self._rx_on = False
        self._rx_n = 0
        if self._boost:
            self._high_power_regs(False)
            self._boost = False

    def _clear_fifo(self):
        self._set(_REG_IRQ_FLAGS2, _IRQ2_FIFO_OVERRUN)

    def _high_power_regs(self, on):
        # DS 3.3.7: +20 dBm needs RegTestPa1/2 = 0x5D/0x7C in TX only (0x55/0x70 otherwise),
        # and RegOcp off (0x0F) while they are on (default 0x1A, 95 mA).
        self._set(_REG_TEST_PA1, 0x5D if on else 0x55)
        self._set(_REG_TEST_PA2, 0x7C if on else 0x70)
        self._set(_REG_OCP, 0x0F if on else 0x1A)

    # -- configuration

    def init(self):
        """Reset (if wired) and configure the module; RadioError if no RFM69 answers."""
        self.ready = False
        self._rx_on = False
        if self._reset is not None:
            self._reset(1)  # DS 7.2.2: RESET high for > 100 us, then 5 ms before use
            self.clock.sleep_ms(1)
            self._reset(0)
            self.clock.sleep_ms(5)
        version = self._reg(_REG_VERSION)
        if version != _VERSION:
            raise RadioError("no RFM69 answering (RegVersion 0x{:02x})".format(version))
        self._mode(_MODE_STANDBY)
        self._write(_REG_DATAMODUL, bytes((_DATAMODUL, _BITRATE >> 8, _BITRATE & 0xFF, _FDEV >> 8, _FDEV & 0xFF)))
        self._set(_REG_RX_BW, _RX_BW)
        self._set(_REG_AFC_BW, _AFC_BW)
        self._write(_REG_PREAMBLE_MSB, bytes((0, phy.PREAMBLE_BYTES)))
        self._set(_REG_SYNC_CONFIG, _SYNC_CONFIG)
        self._write(_REG_SYNC_VALUE1, bytes(((phy.SFD >> 8) & 0xFF, phy.SFD & 0xFF)))
        self._set(_REG_PACKET_CONFIG1, _PACKET_CONFIG1)
        self._set(_REG_PAYLOAD_LENGTH, MAX_PAYLOAD)
        self._set(_REG_FIFO_THRESH, _FIFO_THRESH_REG)
        self._set(_REG_PACKET_CONFIG2, _PACKET_CONFIG2)
        self._set(_REG_TEST_DAGC, _TEST_DAGC)
        self._boost = False
        self._high_power_regs(False)
        self._apply_power(self.tx_power_dbm)
        self._clear_fifo()
        self.ready = True
        if self.frequency_hz is not None:
            self._set_frequency(self.frequency_hz)

    def _set_frequency(self, hz):
        if self._rx_on:
            self._standby()
        reg = frf_reg(hz)
        cmd = self._frf
        cmd[1] = (reg >> 16) & 0xFF
        cmd[2] = (reg >> 8) & 0xFF
        cmd[3] = reg & 0xFF
        self._send(cmd)

    def _pa_level(self, dbm):
        # DS 3.3.6 / table 10: PA0 -18..+13 (Pout = -18 + OutputPower); PA1 -2..+13 (-18 + OP);
        # PA1+PA2 +2..+17 (-14 + OP); PA1+PA2 with high-power settings +5..+20 (-11 + OP).
        if not self.high_power:
            return 0x80 | (dbm + 18), False
        if dbm <= 13:
            return 0x40 | (dbm + 18), False
        if dbm <= 17:
            return 0x60 | (dbm + 14), False
        return 0x60 | (dbm + 11), True

    def _apply_power(self, dbm):
        level, boost = self._pa_level(dbm)
        self._set(_REG_PA_LEVEL, level)
        self._boost_wanted = boost

    # -- Radio

    def transmit(self, frame):
        n = self._check_frame(frame)
        self._ensure_ready()
        self._tuned()
        airtime = phy.airtime_us(n)
        self._standby()
        self._clear_fifo()
        self._set(_REG_DIO_MAPPING1, _DIO0_TX_PACKET_SENT)
        self._load(frame, n)
        if self._boost_wanted:
            self._high_power_regs(True)
            self._boost = True
        self._tx_deadline = self._deadline(airtime // 1000 + _TX_MARGIN_MS)
        self._on_air()
        return airtime

    def _load(self, frame, n):
        # the FIFO takes the length byte and the frame: as much as fits now, the rest as it drains
        self._tx_head[1] = n
        self._tx_n = n
        if n < _FIFO_SIZE:
            self._tx_pos = n
            self._send_data(self._tx_head, frame)
        else:
            self._tx_pos = _FIFO_SIZE - 1
            self._tx_view = memoryview(frame)
            self._send_data(self._tx_head, self._tx_view[: _FIFO_SIZE - 1])

    def _on_air(self):
        try:
            self._mode(_MODE_TX)
            while self._tx_pos < self._tx_n:
                self._refill()
            self._wait_sent()
        finally:
            self._tx_view = None
            self._standby()

    def _refill(self):
        if not self._reg(_REG_IRQ_FLAGS2) & _IRQ2_FIFO_LEVEL:
            # at most _FIFO_THRESH bytes queued: room for the rest of the FIFO
            pos = self._tx_pos
            end = pos + _FIFO_SIZE - _FIFO_THRESH
            if end > self._tx_n:
                end = self._tx_n
            self._send_data(_FIFO_WRITE, self._tx_view[pos:end])
            self._tx_pos = end
        elif self._expired(self._tx_deadline):
            raise RadioError("transmit failed: the FIFO did not drain")

    def _wait_sent(self):
        while True:
            if self._dio0 is not None:
                sent = self._dio0()
            else:
                sent = self._reg(_REG_IRQ_FLAGS2) & _IRQ2_PACKET_SENT
            if sent:
                return
            if self._expired(self._tx_deadline):
                raise RadioError("transmit failed: no PacketSent")

    def _start_rx(self):
        self._standby()
        self._clear_fifo()
        self._set(_REG_DIO_MAPPING1, _DIO0_RX_PAYLOAD_READY)
        self._mode(_MODE_RX)
        self._rx_on = True
        self._rx_n = 0
        self._rx_active = False

    def _restart_rx(self):
        self.overruns += 1
        self._start_rx()

    def _read_fifo(self, k):
        # the next k bytes of the frame from the FIFO
        n = self._rx_n
        self._select()
        self._spi.write(_FIFO_READ)
        self._spi.readinto(self._rx_view[n : n + k], 0)
        self._deselect()
        self._rx_n = n + k

    def _poll_rx(self):
        """A finished frame (bytes), False for a dropped one, or None when nothing finished;
        sets _rx_active while a frame is part way in."""
        flags = self._reg(_REG_IRQ_FLAGS2)
        self._rx_active = False
        if flags & _IRQ2_FIFO_OVERRUN:
            self._restart_rx()
            return False
        if flags & _IRQ2_PAYLOAD_READY:
            if not self._rx_n:
                self._read_fifo(1)
            rest = 1 + self._rx[0] - self._rx_n
            if rest > 0:
                self._read_fifo(rest)
            n = self._rx_n
            self._rx_n = 0
            if not flags & _IRQ2_CRC_OK:
                self.crc_errors += 1
                return False
            return bytes(self._rx_view[1:n])
        if flags & _IRQ2_FIFO_LEVEL:
            # more than _FIFO_THRESH bytes of this frame are waiting: take that many
            if self._rx_n + _FIFO_THRESH > len(self._rx):
                self._restart_rx()  # longer than any frame: not one to keep
                return False
            self._read_fifo(_FIFO_THRESH)
        self._rx_active = bool(self._rx_n) or bool(flags & _IRQ2_FIFO_NOT_EMPTY)
        return None

    def receive(self, timeout_ms=0):
        """The next frame with a good CRC within timeout_ms, else None. Leaves RX running. A
        frame already arriving when the time is up is finished first (FIFO would overrun)."""
        self._ensure_ready()
        self._tuned()
        if not self._rx_on:
            self._start_rx()
        deadline = self._deadline(timeout_ms if timeout_ms > 0 else 0)
        hard = None
        while True:
            got = self._poll_rx()
            if got:
                return got
            if self._expired(deadline):
                if not self._rx_active:
                    return None
                if hard is None:
                    hard = self._deadline(_RX_FRAME_MS)
                elif self._expired(hard):
                    self._restart_rx()
                    return None
            elif got is None and not self._rx_active:
                self.clock.sleep_ms(1)

    def energy(self, page, channel):
        """RSSI on (page, channel) in dBm (RegRssiValue -value/2, the half-dB truncated toward
        0), then back on the tuned channel with RX stopped."""
        hz = self._frequency(page, channel)
        self._ensure_ready()
        self._set_frequency(hz)
        self._start_rx()
        deadline = self._deadline(_MODE_TIMEOUT_MS)
        while not self._reg(_REG_IRQ_FLAGS1) & _IRQ1_RX_READY:
            if self._expired(deadline):
                self._standby()
                raise RadioError("RFM69 RX not ready for an RSSI reading")
        self._set(_REG_RSSI_CONFIG, _RSSI_START)
        while not self._reg(_REG_RSSI_CONFIG) & _RSSI_DONE:
            if self._expired(deadline):
                self._standby()
                raise RadioError("RFM69 RSSI reading did not finish")
        raw = self._reg(_REG_RSSI_VALUE)
        self._standby()
        if self.frequency_hz is not None and self.frequency_hz != hz:
            self._set_frequency(self.frequency_hz)
        return -(raw >> 1)

    def deinit(self):
        if self.ready:
            self._standby()
            self._mode(_MODE_SLEEP)
        self.ready = False

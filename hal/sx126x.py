# Over 400 lines: one chip's driver with its datasheet notes, in methods small enough that a frame needs no heap.
# Semtech SX126x (SX1262) register-level driver for the GB868 PHY, and the SX126x command set
# that the STM32WL sub-GHz radio shares (hal.stm32wl).
# Over 400 lines: the command set is shared by two chips (this one and the STM32WL's core), and
# each command carries the datasheet section it follows.
#
# "DS" = Semtech SX1261/2 datasheet (Rev 2.1). Every command is an SPI transaction framed by
# NSS, sent only while BUSY is low; data comes back as: opcode, [parameters], status, data...
#
# What the chip can and cannot do of IEEE 802.15.4g MR-FSK (the GB868 PHY):
# - can: 2-GFSK, BT 0.5 pulse shape, 100 kbit/s, 35 kHz deviation, 64-bit preamble, the 16-bit
#   SFD 0x904E as its sync word (sent MSB first: 1001 0000 0100 1110, the SFD's bit order),
#   variable length, a 2-byte CRC appended by the chip.
# - cannot: the 2-byte PHR. Its variable-length header is ONE length byte, sent MSB first.
# - cannot: PN9 whitening of the PSDU. Its whitening is the x^9+x^5+1 LFSR (DS 6.2.3.3), but
#   applied with bit orders reversed around it and over the length byte and CRC as well, so it
#   is not the 802.15.4g PN9 sequence; it is on (the seed set to 0x1FF, PN9's), which keeps the
#   spectrum white but is not interoperable with an 802.15.4g PHY.
# - CRC: the 802.15.4 FCS polynomial x^16+x^12+x^5+1 (0x1021), in the CCITT form the Semtech
#   FSK packet engines use (seed 0x1D0F, inverted); bit order again differs from the FCS.
# So frames on air are: preamble, 0x904E, length, payload, CRC-16. Boards with these drivers
# (SX1262, STM32WL, RFM69 - same framing, see hal.rfm69) are meant to talk to each other, not
# to a Zigbee GB868 hub radio; a software PHR + PN9 in a fixed-length packet would be the way
# there, and is not done here.
from hal import phy
from hal.compat import const
from hal.contracts import RadioError
from hal.mcu import ConfigError
from hal.radio_driver import MAX_PAYLOAD, RadioDriver

# Commands (DS 11 lists them, DS 13 gives their parameters)
_CMD_SET_SLEEP = const(0x84)  # DS 13.1.1
_CMD_SET_STANDBY = const(0x80)  # DS 13.1.2
_CMD_SET_TX = const(0x83)  # DS 13.1.4
_CMD_SET_RX = const(0x82)  # DS 13.1.5
_CMD_SET_REGULATOR_MODE = const(0x96)  # DS 13.1.11
_CMD_CALIBRATE = const(0x89)  # DS 13.1.12
_CMD_CALIBRATE_IMAGE = const(0x98)  # DS 13.1.13
_CMD_SET_PA_CONFIG = const(0x95)  # DS 13.1.14
_CMD_WRITE_REGISTER = const(0x0D)  # DS 13.2.1
_CMD_READ_REGISTER = const(0x1D)  # DS 13.2.2
_CMD_WRITE_BUFFER = const(0x0E)  # DS 13.2.3
_CMD_READ_BUFFER = const(0x1E)  # DS 13.2.4
_CMD_SET_DIO_IRQ_PARAMS = const(0x08)  # DS 13.3.1
_CMD_GET_IRQ_STATUS = const(0x12)  # DS 13.3.3
_CMD_CLEAR_IRQ_STATUS = const(0x02)  # DS 13.3.4
_CMD_SET_DIO2_AS_RF_SWITCH = const(0x9D)  # DS 13.3.5
_CMD_SET_DIO3_AS_TCXO_CTRL = const(0x97)  # DS 13.3.6
_CMD_SET_RF_FREQUENCY = const(0x86)  # DS 13.4.1
_CMD_SET_PACKET_TYPE = const(0x8A)  # DS 13.4.2
_CMD_SET_TX_PARAMS = const(0x8E)  # DS 13.4.4
_CMD_SET_MODULATION_PARAMS = const(0x8B)  # DS 13.4.5
_CMD_SET_PACKET_PARAMS = const(0x8C)  # DS 13.4.6
_CMD_SET_BUFFER_BASE_ADDRESS = const(0x8F)  # DS 13.4.8
_CMD_GET_STATUS = const(0xC0)  # DS 13.5.1
_CMD_GET_RX_BUFFER_STATUS = const(0x13)  # DS 13.5.2
_CMD_GET_PACKET_STATUS = const(0x14)  # DS 13.5.3
_CMD_GET_RSSI_INST = const(0x15)  # DS 13.5.4
_CMD_GET_DEVICE_ERRORS = const(0x17)  # DS 13.6.1
_CMD_CLEAR_DEVICE_ERRORS = const(0x07)  # DS 13.6.2 (two parameter bytes on the SX1262)

# Registers (DS table 12-1)
_REG_WHITENING_INIT_MSB = const(0x06B8)  # bit 0 only: bits 7:1 must be preserved (DS 6.2.3.3)
_REG_CRC_INIT_MSB = const(0x06BC)  # 0x06BC-0x06BD initial value, 0x06BE-0x06BF polynomial
_REG_SYNC_WORD_0 = const(0x06C0)  # 0x06C0-0x06C7, first byte sent first
_REG_TX_CLAMP_CONFIG = const(0x08D8)  # DS 15.2 workaround (SX1262 only)

# Status byte (DS 13.5.1): chip mode in bits 6:4, command status in bits 3:1
_MODE_STBY_RC = const(2)
_MODE_STBY_XOSC = const(3)

# IRQ bits (DS 13.3.1)
_IRQ_TX_DONE = const(0x0001)
_IRQ_RX_DONE = const(0x0002)
_IRQ_CRC_ERR = const(0x0040)
_IRQ_TIMEOUT = const(0x0200)
_IRQ_ALL = const(0xFFFF)

# Parameter values
_STDBY_RC = const(0x00)  # DS 13.1.2
_PACKET_TYPE_GFSK = const(0x00)  # DS 13.4.2
_REGULATOR_DCDC = const(0x01)  # DS 13.1.11
_CALIBRATE_ALL = const(0x7F)  # DS 13.1.12: RC64k, RC13M, PLL, ADC pulse/N/P, image
_RX_CONTINUOUS = const(0xFFFFFF)  # DS 13.1.5
_RAMP_40US = const(0x02)  # DS 13.4.4 RampTime
_PULSE_GAUSSIAN_BT_0_5 = const(0x09)  # DS 13.4.5 (GFSK) PulseShape
_RX_BW_234300 = const(0x0A)  # DS 13.4.5 (GFSK) Bandwidth: 234.3 kHz (double-sided) >= 2*(35 + 50) kHz + margin
_PREAMBLE_DETECT_16_BITS = const(0x05)  # DS 13.4.6 (GFSK) PreambleDetectorLength
_ADDR_COMP_OFF = const(0x00)
_PACKET_VARIABLE = const(0x01)  # DS 13.4.6 (GFSK) PacketType: length byte in the packet
_CRC_2_BYTES_INV = const(0x06)  # DS 13.4.6 (GFSK) CRCType
_WHITENING_ON = const(0x01)
_TX_BASE = const(0x00)  # the 256-byte buffer split: TX 0x00-0x7F, RX 0x80-0xFF
_RX_BASE = const(0x80)

_XTAL_HZ = const(32000000)  # SX1262 reference (TCXO or crystal) and STM32WL HSE32
_BR_REG = (32 * _XTAL_HZ) // phy.BITRATE_BPS  # DS 13.4.5: 32 * Fxtal / bitrate = 10240 = 0x002800
_FDEV_REG = ((phy.DEVIATION_HZ << 25) + _XTAL_HZ // 2) // _XTAL_HZ  # Fdev * 2^25 / Fxtal = 36700 = 0x008F5C
_CRC_SEED = const(0x1D0F)
_CRC_POLY = const(0x1021)
_WHITENING_SEED = const(0x01FF)

# DS 13.3.6 table 13-35: DIO3 TCXO voltages (mV) by code
_TCXO_MV = (1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300)

# DS 9.2.1 table 9-2 CalibrateImage (freq1, freq2) in 4 MHz units: 0xD7-0xDB = 860-876 MHz
# covers pages 28-30 (863.25-875.45 MHz); 0xE1-0xE9 = 900-932 MHz covers page 31.
_IMAGE_CAL = {"868": (0xD7, 0xDB), "915": (0xE1, 0xE9)}

_BUSY_TIMEOUT_MS = const(20)
_CALIBRATE_TIMEOUT_MS = const(100)  # DS says 3.5 ms; allow for slow TCXO start
_TX_MARGIN_MS = const(50)  # beyond the frame's airtime before a TX is declared stuck
_RSSI_SETTLE_MS = const(1)


def rf_frequency_reg(hz):
    """SetRfFrequency value: round(hz * 2^25 / 32 MHz), to the nearest step.

    2^25 / 32 MHz = 16384 / 15625: whole multiples of 15625 Hz and the rest apart, so that no
    intermediate value leaves a 32-bit port's small ints (hz << 25 would be a long int)."""
    q = hz // 15625
    return q * 16384 + ((hz - q * 15625) * 16384 + 7812) // 15625


# Commands that never change, as they go on the bus (opcode first). A read command is followed
# by a NOP for each byte that comes back (the status first, then the data).
_STANDBY_RC = bytes((_CMD_SET_STANDBY, _STDBY_RC))
_CLEAR_ALL_IRQS = bytes((_CMD_CLEAR_IRQ_STATUS, _IRQ_ALL >> 8, _IRQ_ALL & 0xFF))
_RX_CONTINUOUSLY = bytes((_CMD_SET_RX, _RX_CONTINUOUS >> 16, (_RX_CONTINUOUS >> 8) & 0xFF, _RX_CONTINUOUS & 0xFF))
_WRITE_TX_BASE = bytes((_CMD_WRITE_BUFFER, _TX_BASE))  # then the frame
_SLEEP_COLD = bytes((_CMD_SET_SLEEP, 0x00))  # DS 13.1.1: cold start, configuration lost
_CLEAR_DEVICE_ERRORS = bytes((_CMD_CLEAR_DEVICE_ERRORS, 0, 0))
_GET_STATUS = bytes((_CMD_GET_STATUS, 0))
_GET_IRQ_STATUS = bytes((_CMD_GET_IRQ_STATUS, 0, 0, 0))
_GET_DEVICE_ERRORS = bytes((_CMD_GET_DEVICE_ERRORS, 0, 0, 0))
_GET_RX_BUFFER_STATUS = bytes((_CMD_GET_RX_BUFFER_STATUS, 0, 0, 0))
_GET_PACKET_STATUS = bytes((_CMD_GET_PACKET_STATUS, 0, 0, 0, 0))
_GET_RSSI_INST = bytes((_CMD_GET_RSSI_INST, 0, 0))
_ANSWER_MAX = const(5)  # the longest of these


def _put_u24(buf, i, v):
    buf[i] = (v >> 16) & 0xFF
    buf[i + 1] = (v >> 8) & 0xFF
    buf[i + 2] = v & 0xFF


class Sx126x(RadioDriver):
    """The SX126x command set over a bus: spi (machine.SPI-like), cs(level), busy() -> level.

    Pins are used as callables (machine.Pin is both), so the STM32WL's stm.subghz_cs and
    stm.subghz_is_busy fit the same slots. irq: DIO1 as a readable pin, or None to poll the
    IRQ status over SPI. reset: NRESET pin (active low) or None.

    What a frame takes (transmit, receive, energy, tune) goes through buffers made here once:
    the commands whose parameters change are filled in place, the others are constants, the
    answers come back into a buffer of their length and a received frame into a buffer of 255
    bytes. In steady state a frame allocates nothing but the bytes receive() returns and the
    view of the buffer they are read through (on MicroPython every allocation brings the next
    collection of the whole heap nearer).
    """

    MIN_DBM = -9
    MAX_DBM = 22

    def __init__(
        self,
        spi,
        cs,
        busy,
        band,
        tx_power_cap_dbm,
        reset=None,
        irq=None,
        clock=None,
        tcxo_mv=None,
        dio2_rf_switch=False,
        dcdc=False,
    ):
        RadioDriver.__init__(self, band, tx_power_cap_dbm, clock)
        if tcxo_mv is not None and tcxo_mv not in _TCXO_MV:
            raise ConfigError("tcxo_mv must be one of {}, not {!r}".format(_TCXO_MV, tcxo_mv))
        self._spi = spi
        self._cs = cs
        self._busy = busy
        self._reset = reset
        self._irq = irq
        self._tcxo_mv = tcxo_mv
        self._dio2_rf_switch = dio2_rf_switch
        self._dcdc = dcdc
        self._rx_on = False
        self._asleep = False
        self.last_rssi_dbm = None
        self.crc_errors = 0
        # DS 13.4.6 (GFSK) SetPacketParams: preamble length in bits (2 bytes), detector, sync
        # word bits, address filtering, header type, payload length ([7]), CRC type, whitening.
        self._packet = bytearray(
            (
                _CMD_SET_PACKET_PARAMS,
                0,
                phy.PREAMBLE_BYTES * 8,
                _PREAMBLE_DETECT_16_BITS,
                phy.SFD_BYTES * 8,
                _ADDR_COMP_OFF,
                _PACKET_VARIABLE,
                MAX_PAYLOAD,
                _CRC_2_BYTES_INV,
                _WHITENING_ON,
            )
        )
        self._set_tx = bytearray((_CMD_SET_TX, 0, 0, 0))  # timeout in [1:4]
        self._rf_frequency = bytearray((_CMD_SET_RF_FREQUENCY, 0, 0, 0, 0))  # step in [1:5]
        self._read_rx = bytearray((_CMD_READ_BUFFER, 0, 0))  # offset in [1], then the status
        self._answers = [bytearray(k) for k in range(_ANSWER_MAX + 1)]  # by command length
        self._frame = memoryview(bytearray(255))  # a received frame (its length is one byte)

    # -- bus

    def _wait_ready(self, timeout_ms=_BUSY_TIMEOUT_MS):
        if not self._busy():
            return
        deadline = self._deadline(timeout_ms)
        while self._busy():
            if self._expired(deadline):
                raise RadioError("radio BUSY stayed high for {} ms".format(timeout_ms))

    def _select(self):
        # NSS low once the chip can take a command (waking it first if it sleeps)
        if self._open:
            self._cs(1)
        busy_ms = _BUSY_TIMEOUT_MS
        if self._asleep:
            # DS 9.3: a falling edge of NSS wakes the chip from sleep; BUSY drops when it is up.
            self._cs(0)
            self._cs(1)
            self._asleep = False
            busy_ms = _CALIBRATE_TIMEOUT_MS
        self._wait_ready(busy_ms)
        self._cs(0)
        self._open = True

    def _ask(self, cmd):
        """One read command: cmd (opcode, parameters, NOPs) out; returns what came back meanwhile
        (a buffer of cmd's length, overwritten by the next command of that length)."""
        answer = self._answers[len(cmd)]
        self._select()
        self._spi.write_readinto(cmd, answer)
        self._deselect()
        return answer

    def _read_into(self, cmd, into):
        """One read command: cmd (opcode, parameters, the status byte's NOP), then into filled."""
        self._select()
        self._spi.write(cmd)
        self._spi.readinto(into, 0)
        self._deselect()

    def _write_reg(self, addr, data):
        self._send_data(bytes((_CMD_WRITE_REGISTER, (addr >> 8) & 0xFF, addr & 0xFF)), data)

    def _read_reg(self, addr, n=1):
        data = bytearray(n)
        self._read_into(bytes((_CMD_READ_REGISTER, (addr >> 8) & 0xFF, addr & 0xFF, 0)), data)
        return data

    def status(self):
        """(chip mode, command status) from GetStatus (DS 13.5.1)."""
        s = self._ask(_GET_STATUS)[1]
        return (s >> 4) & 0x07, (s >> 1) & 0x07

    def _irq_status(self):
        r = self._ask(_GET_IRQ_STATUS)
        return (r[2] << 8) | r[3]

    def _clear_irq(self):
        self._send(_CLEAR_ALL_IRQS)

    def device_errors(self):
        r = self._ask(_GET_DEVICE_ERRORS)
        return (r[2] << 8) | r[3]

    def _clear_device_errors(self):
        self._send(_CLEAR_DEVICE_ERRORS)

    def _standby(self):
        self._send(_STANDBY_RC)
        self._rx_on = False

    # -- board hooks (RF switch, PA): overridden by chip variants

    def _rf_tx(self):
        pass

    def _rf_rx(self):
        pass

    def _rf_off(self):
        pass

    def _pa_settings(self, dbm):
        """(SetPaConfig parameters, SetTxParams power byte) for dbm."""
        raise NotImplementedError

    def _chip_workarounds(self):
        pass

    # -- configuration

    def _hard_reset(self):
        if self._reset is None:
            return
        self._asleep = False  # a reset wakes the chip too
        self._reset(0)
        self.clock.sleep_ms(1)  # DS 8.1: NRESET low for at least 100 us
        self._reset(1)
        self.clock.sleep_ms(1)

    def init(self):
        """Reset (if wired) and configure the chip for the GB868 PHY; RadioError if it fails."""
        self.ready = False
        self._rx_on = False
        self._hard_reset()
        if self._reset is None and self._busy():
            # no reset line (STM32WL, or NRESET not wired): the chip may be asleep from an
            # earlier run (BUSY stays high in sleep); an NSS edge wakes it
            self._asleep = True
        if not self._asleep:
            self._wait_ready(_CALIBRATE_TIMEOUT_MS)  # a chip just reset is busy while it boots
        self._send(_STANDBY_RC)
        mode = self.status()[0]
        if mode not in (_MODE_STBY_RC, _MODE_STBY_XOSC):
            raise RadioError("no SX126x answering (chip mode {} after SetStandby)".format(mode))
        if self._dcdc:
            self._send(bytes((_CMD_SET_REGULATOR_MODE, _REGULATOR_DCDC)))
        if self._tcxo_mv is not None:
            # DS 13.3.6: supply the TCXO from DIO3, startup timeout in 15.625 us steps (5 ms);
            # the XOSC_START_ERR raised before the TCXO ran is expected: clear it, recalibrate.
            code = _TCXO_MV.index(self._tcxo_mv)
            cmd = bytearray((_CMD_SET_DIO3_AS_TCXO_CTRL, code, 0, 0, 0))
            _put_u24(cmd, 2, 320)
            self._send(cmd)
            self._clear_device_errors()
            self._send(bytes((_CMD_CALIBRATE, _CALIBRATE_ALL)))
            self._wait_ready(_CALIBRATE_TIMEOUT_MS)
        if self._dio2_rf_switch:
            self._send(bytes((_CMD_SET_DIO2_AS_RF_SWITCH, 0x01)))
        self._send(bytes((_CMD_SET_PACKET_TYPE, _PACKET_TYPE_GFSK)))
        cal = _IMAGE_CAL[self.band]
        self._send(bytes((_CMD_CALIBRATE_IMAGE, cal[0], cal[1])))
        self._wait_ready(_CALIBRATE_TIMEOUT_MS)
        mod = bytearray((_CMD_SET_MODULATION_PARAMS, 0, 0, 0, _PULSE_GAUSSIAN_BT_0_5, _RX_BW_234300, 0, 0, 0))
        _put_u24(mod, 1, _BR_REG)
        _put_u24(mod, 6, _FDEV_REG)
        self._send(mod)
        self._packet_params(MAX_PAYLOAD)
        self._write_reg(_REG_SYNC_WORD_0, bytes(((phy.SFD >> 8) & 0xFF, phy.SFD & 0xFF)))
        self._write_reg(
            _REG_CRC_INIT_MSB,
            bytes((_CRC_SEED >> 8, _CRC_SEED & 0xFF, _CRC_POLY >> 8, _CRC_POLY & 0xFF)),
        )
        msb = self._read_reg(_REG_WHITENING_INIT_MSB)[0]
        self._write_reg(_REG_WHITENING_INIT_MSB, bytes(((msb & 0xFE) | (_WHITENING_SEED >> 8), _WHITENING_SEED & 0xFF)))
        self._send(bytes((_CMD_SET_BUFFER_BASE_ADDRESS, _TX_BASE, _RX_BASE)))
        irqs = _IRQ_TX_DONE | _IRQ_RX_DONE | _IRQ_CRC_ERR | _IRQ_TIMEOUT
        dio1 = _IRQ_TX_DONE | _IRQ_RX_DONE | _IRQ_TIMEOUT
        self._send(bytes((_CMD_SET_DIO_IRQ_PARAMS, irqs >> 8, irqs & 0xFF, dio1 >> 8, dio1 & 0xFF, 0, 0, 0, 0)))
        self._chip_workarounds()
        self._apply_power(self.tx_power_dbm)
        self._clear_irq()
        errors = self.device_errors()
        if errors:
            raise RadioError("SX126x reports errors 0x{:04x} after configuration".format(errors))
        self.ready = True
        if self.frequency_hz is not None:
            self._set_frequency(self.frequency_hz)

    def _packet_params(self, length):
        cmd = self._packet
        cmd[7] = length
        self._send(cmd)

    def _set_frequency(self, hz):
        if self._rx_on:
            self._standby()
        reg = rf_frequency_reg(hz)
        cmd = self._rf_frequency
        cmd[1] = (reg >> 24) & 0xFF
        _put_u24(cmd, 2, reg & 0xFFFFFF)
        self._send(cmd)

    def _apply_power(self, dbm):
        pa, power = self._pa_settings(dbm)
        self._send(bytes((_CMD_SET_PA_CONFIG, pa[0], pa[1], pa[2], pa[3])))
        self._send(bytes((_CMD_SET_TX_PARAMS, power & 0xFF, _RAMP_40US)))

    # -- Radio

    def _irq_wait(self, mask, deadline, poll_sleep):
        """IRQ flags once one in mask is set, or 0 at the deadline."""
        while True:
            if self._irq is None or self._irq():
                flags = self._irq_status()
                if flags & mask:
                    return flags
            if self._expired(deadline):
                return 0
            if poll_sleep:
                self.clock.sleep_ms(1)

    def transmit(self, frame):
        n = self._check_frame(frame)
        self._ensure_ready()
        self._tuned()
        self._standby()
        self._clear_irq()
        self._packet_params(n)
        self._send_data(_WRITE_TX_BASE, frame)
        self._rf_tx()
        return self._tx(phy.airtime_us(n))

    def _tx(self, airtime):
        # SetTx timeout (DS 13.1.4, 15.625 us steps): the chip's own guard, then ours.
        guard_ms = airtime // 1000 + _TX_MARGIN_MS
        _put_u24(self._set_tx, 1, guard_ms * 64)
        self._send(self._set_tx)
        deadline = self._deadline(guard_ms + _TX_MARGIN_MS)
        flags = self._irq_wait(_IRQ_TX_DONE | _IRQ_TIMEOUT, deadline, False)
        self._rf_off()
        if not flags & _IRQ_TX_DONE:
            self._tx_failed(flags)
        self._clear_irq()
        return airtime

    def _tx_failed(self, flags):
        self._standby()
        self._clear_irq()
        why = "the chip's TX timeout fired" if flags & _IRQ_TIMEOUT else "no TxDone IRQ"
        raise RadioError("transmit failed: {}".format(why))

    def _start_rx(self):
        self._standby()
        self._clear_irq()
        self._packet_params(MAX_PAYLOAD)
        self._rf_rx()
        self._send(_RX_CONTINUOUSLY)
        self._rx_on = True

    def receive(self, timeout_ms=0):
        """The next frame with a good CRC within timeout_ms, else None. Leaves RX running, so
        a frame arriving between calls waits in the chip (one frame deep)."""
        self._ensure_ready()
        self._tuned()
        if not self._rx_on:
            self._start_rx()
        deadline = self._deadline(timeout_ms if timeout_ms > 0 else 0)
        while True:
            flags = self._irq_wait(_IRQ_RX_DONE, deadline, True)
            if not flags:
                return None
            self._clear_irq()
            if flags & _IRQ_CRC_ERR:
                self.crc_errors += 1
                continue
            return self._read_frame()

    def _read_frame(self):
        r = self._ask(_GET_RX_BUFFER_STATUS)
        self._read_rx[1] = r[3]  # where the frame starts in the buffer
        data = self._frame[: r[2]]
        self._read_into(self._read_rx, data)
        self.last_rssi_dbm = -(self._ask(_GET_PACKET_STATUS)[3] >> 1)  # DS 13.5.3: RssiSync, -value/2 dBm
        return bytes(data)

    def energy(self, page, channel):
        """RSSI on (page, channel) in dBm (GetRssiInst -value/2, the half-dB truncated toward
        0), then back on the tuned channel with RX stopped."""
        hz = self._frequency(page, channel)
        self._ensure_ready()
        self._set_frequency(hz)
        self._start_rx()
        self.clock.sleep_ms(_RSSI_SETTLE_MS)
        raw = self._ask(_GET_RSSI_INST)[2]
        self._standby()
        self._rf_off()
        if self.frequency_hz is not None and self.frequency_hz != hz:
            self._set_frequency(self.frequency_hz)
        return -(raw >> 1)

    def deinit(self):
        if self.ready:
            self._standby()
            self._rf_off()
            self._send(_SLEEP_COLD)
            self._asleep = True
        self.ready = False


# DS 13.1.14.1 table 13-21: SX1262 PA optimal settings (paDutyCycle, hpMax, deviceSel=0, 1)
# for +14/+17/+20/+22 dBm, each with SetTxParams +22 dBm.
_SX1262_PA_OPTIMAL = {
    14: (0x02, 0x02),
    17: (0x02, 0x03),
    20: (0x03, 0x05),
    22: (0x04, 0x07),
}


class Sx1262(Sx126x):
    """SX1262: high-power PA only, -9..+22 dBm."""

    MIN_DBM = -9
    MAX_DBM = 22

    def _pa_settings(self, dbm):
        # The datasheet's optimal rows where one exists; otherwise the +22 dBm PA setting with
        # the nominal power in SetTxParams (DS 13.4.4: -9..+22 dBm in 1 dB steps).
        row = _SX1262_PA_OPTIMAL.get(dbm)
        if row is not None:
            return (row[0], row[1], 0x00, 0x01), 22
        return (0x04, 0x07, 0x00, 0x01), dbm

    def _chip_workarounds(self):
        # DS 15.2: better resistance to antenna mismatch: TxClampConfig |= 0x1E.
        v = self._read_reg(_REG_TX_CLAMP_CONFIG)[0]
        self._write_reg(_REG_TX_CLAMP_CONFIG, bytes((v | 0x1E,)))

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
    """SetRfFrequency value: round(hz * 2^25 / 32 MHz), integer arithmetic, nearest step."""
    return ((hz << 25) + _XTAL_HZ // 2) // _XTAL_HZ


def _u24(v):
    return bytes(((v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF))


class Sx126x(RadioDriver):
    """The SX126x command set over a bus: spi (machine.SPI-like), cs(level), busy() -> level.

    Pins are used as callables (machine.Pin is both), so the STM32WL's stm.subghz_cs and
    stm.subghz_is_busy fit the same slots. irq: DIO1 as a readable pin, or None to poll the
    IRQ status over SPI. reset: NRESET pin (active low) or None.
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

    # -- bus

    def _wait_ready(self, timeout_ms=_BUSY_TIMEOUT_MS):
        if not self._busy():
            return
        deadline = self._deadline(timeout_ms)
        while self._busy():
            if self._expired(deadline):
                raise RadioError("radio BUSY stayed high for {} ms".format(timeout_ms))

    def _cmd(self, opcode, params=b"", nread=0, busy_ms=_BUSY_TIMEOUT_MS):
        """One command; returns the nread bytes after the parameters (status first)."""
        if self._asleep:
            # DS 9.3: a falling edge of NSS wakes the chip from sleep; BUSY drops when it is up.
            self._cs(0)
            self._cs(1)
            self._asleep = False
            busy_ms = _CALIBRATE_TIMEOUT_MS
        self._wait_ready(busy_ms)
        n = 1 + len(params)
        out = bytearray(n + nread)
        out[0] = opcode
        out[1:n] = params
        got = bytearray(len(out))
        self._cs(0)
        try:
            self._spi.write_readinto(out, got)
        finally:
            self._cs(1)
        return bytes(got[n:]) if nread else None

    def _write_reg(self, addr, data):
        self._cmd(_CMD_WRITE_REGISTER, bytes(((addr >> 8) & 0xFF, addr & 0xFF)) + bytes(data))

    def _read_reg(self, addr, n=1):
        return self._cmd(_CMD_READ_REGISTER, bytes(((addr >> 8) & 0xFF, addr & 0xFF)), 1 + n)[1:]

    def status(self):
        """(chip mode, command status) from GetStatus (DS 13.5.1)."""
        s = self._cmd(_CMD_GET_STATUS, b"", 1)[0]
        return (s >> 4) & 0x07, (s >> 1) & 0x07

    def _irq_status(self):
        r = self._cmd(_CMD_GET_IRQ_STATUS, b"", 3)
        return (r[1] << 8) | r[2]

    def _clear_irq(self, mask=_IRQ_ALL):
        self._cmd(_CMD_CLEAR_IRQ_STATUS, bytes(((mask >> 8) & 0xFF, mask & 0xFF)))

    def device_errors(self):
        r = self._cmd(_CMD_GET_DEVICE_ERRORS, b"", 3)
        return (r[1] << 8) | r[2]

    def _clear_device_errors(self):
        self._cmd(_CMD_CLEAR_DEVICE_ERRORS, b"\x00\x00")

    def _standby(self):
        self._cmd(_CMD_SET_STANDBY, bytes((_STDBY_RC,)))
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
        self._cmd(_CMD_SET_STANDBY, bytes((_STDBY_RC,)), busy_ms=_CALIBRATE_TIMEOUT_MS)
        mode = self.status()[0]
        if mode not in (_MODE_STBY_RC, _MODE_STBY_XOSC):
            raise RadioError("no SX126x answering (chip mode {} after SetStandby)".format(mode))
        if self._dcdc:
            self._cmd(_CMD_SET_REGULATOR_MODE, bytes((_REGULATOR_DCDC,)))
        if self._tcxo_mv is not None:
            # DS 13.3.6: supply the TCXO from DIO3, startup timeout in 15.625 us steps (5 ms);
            # the XOSC_START_ERR raised before the TCXO ran is expected: clear it, recalibrate.
            code = _TCXO_MV.index(self._tcxo_mv)
            self._cmd(_CMD_SET_DIO3_AS_TCXO_CTRL, bytes((code,)) + _u24(320))
            self._clear_device_errors()
            self._cmd(_CMD_CALIBRATE, bytes((_CALIBRATE_ALL,)))
            self._wait_ready(_CALIBRATE_TIMEOUT_MS)
        if self._dio2_rf_switch:
            self._cmd(_CMD_SET_DIO2_AS_RF_SWITCH, b"\x01")
        self._cmd(_CMD_SET_PACKET_TYPE, bytes((_PACKET_TYPE_GFSK,)))
        cal = _IMAGE_CAL[self.band]
        self._cmd(_CMD_CALIBRATE_IMAGE, bytes(cal))
        self._wait_ready(_CALIBRATE_TIMEOUT_MS)
        self._cmd(
            _CMD_SET_MODULATION_PARAMS,
            _u24(_BR_REG) + bytes((_PULSE_GAUSSIAN_BT_0_5, _RX_BW_234300)) + _u24(_FDEV_REG),
        )
        self._packet_params(MAX_PAYLOAD)
        self._write_reg(_REG_SYNC_WORD_0, bytes(((phy.SFD >> 8) & 0xFF, phy.SFD & 0xFF)))
        self._write_reg(
            _REG_CRC_INIT_MSB,
            bytes((_CRC_SEED >> 8, _CRC_SEED & 0xFF, _CRC_POLY >> 8, _CRC_POLY & 0xFF)),
        )
        msb = self._read_reg(_REG_WHITENING_INIT_MSB)[0]
        self._write_reg(_REG_WHITENING_INIT_MSB, bytes(((msb & 0xFE) | (_WHITENING_SEED >> 8), _WHITENING_SEED & 0xFF)))
        self._cmd(_CMD_SET_BUFFER_BASE_ADDRESS, bytes((_TX_BASE, _RX_BASE)))
        irqs = _IRQ_TX_DONE | _IRQ_RX_DONE | _IRQ_CRC_ERR | _IRQ_TIMEOUT
        dio1 = _IRQ_TX_DONE | _IRQ_RX_DONE | _IRQ_TIMEOUT
        self._cmd(_CMD_SET_DIO_IRQ_PARAMS, bytes((irqs >> 8, irqs & 0xFF, dio1 >> 8, dio1 & 0xFF, 0, 0, 0, 0)))
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
        # DS 13.4.6 (GFSK): preamble length in bits (2 bytes), detector, sync word bits,
        # address filtering, header type, payload length, CRC type, whitening.
        self._cmd(
            _CMD_SET_PACKET_PARAMS,
            bytes(
                (
                    0,
                    phy.PREAMBLE_BYTES * 8,
                    _PREAMBLE_DETECT_16_BITS,
                    phy.SFD_BYTES * 8,
                    _ADDR_COMP_OFF,
                    _PACKET_VARIABLE,
                    length,
                    _CRC_2_BYTES_INV,
                    _WHITENING_ON,
                )
            ),
        )

    def _set_frequency(self, hz):
        if self._rx_on:
            self._standby()
        reg = rf_frequency_reg(hz)
        self._cmd(_CMD_SET_RF_FREQUENCY, bytes(((reg >> 24) & 0xFF, (reg >> 16) & 0xFF, (reg >> 8) & 0xFF, reg & 0xFF)))

    def _apply_power(self, dbm):
        pa, power = self._pa_settings(dbm)
        self._cmd(_CMD_SET_PA_CONFIG, bytes(pa))
        self._cmd(_CMD_SET_TX_PARAMS, bytes((power & 0xFF, _RAMP_40US)))

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
        airtime = phy.airtime_us(n)
        self._standby()
        self._clear_irq()
        self._packet_params(n)
        self._cmd(_CMD_WRITE_BUFFER, bytes((_TX_BASE,)) + bytes(frame))
        self._rf_tx()
        # SetTx timeout (DS 13.1.4, 15.625 us steps): the chip's own guard, then ours.
        guard_ms = airtime // 1000 + _TX_MARGIN_MS
        self._cmd(_CMD_SET_TX, _u24(guard_ms * 64))
        flags = self._irq_wait(_IRQ_TX_DONE | _IRQ_TIMEOUT, self._deadline(guard_ms + _TX_MARGIN_MS), False)
        self._rf_off()
        if not flags & _IRQ_TX_DONE:
            self._standby()
            self._clear_irq()
            why = "the chip's TX timeout fired" if flags & _IRQ_TIMEOUT else "no TxDone IRQ"
            raise RadioError("transmit failed: {}".format(why))
        self._clear_irq()
        return airtime

    def _start_rx(self):
        self._standby()
        self._clear_irq()
        self._packet_params(MAX_PAYLOAD)
        self._rf_rx()
        self._cmd(_CMD_SET_RX, _u24(_RX_CONTINUOUS))
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
            r = self._cmd(_CMD_GET_RX_BUFFER_STATUS, b"", 3)
            length, start = r[1], r[2]
            data = self._cmd(_CMD_READ_BUFFER, bytes((start,)), 1 + length)[1:]
            ps = self._cmd(_CMD_GET_PACKET_STATUS, b"", 4)
            self.last_rssi_dbm = -(ps[2] >> 1)  # DS 13.5.3: RssiSync, -value/2 dBm
            return data

    def energy(self, page, channel):
        """RSSI on (page, channel) in dBm (GetRssiInst -value/2, the half-dB truncated toward
        0), then back on the tuned channel with RX stopped."""
        hz = self._frequency(page, channel)
        self._ensure_ready()
        self._set_frequency(hz)
        self._start_rx()
        self.clock.sleep_ms(_RSSI_SETTLE_MS)
        raw = self._cmd(_CMD_GET_RSSI_INST, b"", 2)[1]
        self._standby()
        self._rf_off()
        if self.frequency_hz is not None and self.frequency_hz != hz:
            self._set_frequency(self.frequency_hz)
        return -(raw >> 1)

    def deinit(self):
        if self.ready:
            self._standby()
            self._rf_off()
            self._cmd(_CMD_SET_SLEEP, b"\x00")  # DS 13.1.1: cold start, configuration lost
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

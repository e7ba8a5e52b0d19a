# STM32WL55 sub-GHz radio (SUBGHZ): an SX126x-class core behind the MCU's internal SUBGHZSPI.
# The command set, packet engine and frequency formula are the SX126x ones (hal.sx126x); only
# the plumbing and the power amplifiers differ.
#
# "RM" = ST RM0453 (STM32WL5x reference manual), section 5 "Sub-GHz radio (SUBGHZ)".
# Plumbing on MicroPython's stm32 port (ports/stm32/subghz.c, the `stm` module):
#   machine.SPI("SUBGHZ")      the SUBGHZSPI (RM: at most 16 MHz; 8 MHz used)
#   stm.subghz_cs(level)       NSS: falsy selects, truthy releases
#   stm.subghz_is_busy()       the raw RFBUSYS flag
#   stm.subghz_irq(handler)    installs a handler for the radio IRQ (None disables it). The IRQ
#                              line cannot be read as a level, so this driver passes None and
#                              polls Get_IrqStatus over SPI instead.
# There is no reset pin: the port resets the radio (RCC RFRST) when it boots.
# Frequency: Set_RfFrequency (RM 5.8.4) = f * 2^25 / 32 MHz, HSE32 reference: rf_frequency_reg.
from hal.compat import const
from hal.sx126x import Sx126x

_CMD_CLR_ERROR = const(0x07)  # RM 5.8.7 Clr_Error(): ONE parameter byte here (SX1262: two)
_CLEAR_ERRORS = bytes((_CMD_CLR_ERROR, 0x00))
_REG_OCP = const(0x08E7)  # RM SUBGHZ_PAOCPR: current limit in 2.5 mA steps

# RM 5.8.3 Set_PaConfig() and table 35 (PA optimal settings): (PaDutyCycle, HpMax, PaSel, 0x01)
# with the Set_TxParams power byte. LP PA (PaSel 1): up to +15 dBm; HP PA (PaSel 0): up to +22.
_LP_OPTIMAL = {
    15: ((0x06, 0x00, 0x01, 0x01), 14),
    14: ((0x04, 0x00, 0x01, 0x01), 14),
    10: ((0x01, 0x00, 0x01, 0x01), 13),
}
_HP_OPTIMAL = {
    22: ((0x04, 0x07, 0x00, 0x01), 22),
    20: ((0x03, 0x05, 0x00, 0x01), 22),
    17: ((0x02, 0x03, 0x00, 0x01), 22),
}
_LP_MAX_DBM = const(15)


class NucleoFrontEnd:
    """The NUCLEO-WL55JC RF switch (UM2592: FE_CTRL1/2/3 on PC4/PC5/PC3).

    (ctrl1, ctrl2, ctrl3): off 0,0,0; RX 1,0,1; TX on the LP PA 1,1,1; TX on the HP PA 0,1,1.
    """

    def __init__(self, ctrl1, ctrl2, ctrl3):
        self._pins = (ctrl1, ctrl2, ctrl3)
        self.state = None

    def _set(self, levels, state):
        pins = self._pins
        pins[0](levels[0])
        pins[1](levels[1])
        pins[2](levels[2])
        self.state = state

    def off(self):
        self._set((0, 0, 0), "off")

    def rx(self):
        self._set((1, 0, 1), "rx")

    def tx(self, hp):
        self._set((0, 1, 1) if hp else (1, 1, 1), "tx_hp" if hp else "tx_lp")


class Stm32wlRadio(Sx126x):
    """The STM32WL55 sub-GHz radio: -17..+22 dBm (LP PA to +15, HP PA above)."""

    MIN_DBM = -17
    MAX_DBM = 22

    def __init__(self, spi, stm, band, tx_power_cap_dbm, front_end=None, clock=None, tcxo_mv=1700, dcdc=False):
        # stm: the `stm` module (or a stand-in with subghz_cs, subghz_is_busy, subghz_irq).
        # tcxo_mv: the NUCLEO-WL55JC's HSE32 is a TCXO fed from PB0-VDDTCXO, which the radio
        # drives like an SX1262's DIO3 (RM 5.8.7 Set_TcxoMode).
        Sx126x.__init__(
            self,
            spi,
            stm.subghz_cs,
            stm.subghz_is_busy,
            band,
            tx_power_cap_dbm,
            reset=None,
            irq=None,
            clock=clock,
            tcxo_mv=tcxo_mv,
            dio2_rf_switch=False,
            dcdc=dcdc,
        )
        self._stm = stm
        self._front_end = front_end
        self._hp = False

    def init(self):
        self._stm.subghz_irq(None)  # polled: keep the radio IRQ disabled in the NVIC
        if self._front_end is not None:
            self._front_end.off()
        Sx126x.init(self)

    def _clear_device_errors(self):
        self._send(_CLEAR_ERRORS)

    def _pa_settings(self, dbm):
        if dbm <= _LP_MAX_DBM:
            self._hp = False
            got = _LP_OPTIMAL.get(dbm)
            if got is None:
                # LP PA at its +14 dBm setting, nominal power -17..+14 dBm (RM Set_TxParams)
                got = ((0x04, 0x00, 0x01, 0x01), dbm if dbm < 14 else 14)
        else:
            self._hp = True
            got = _HP_OPTIMAL.get(dbm)
            if got is None:
                got = ((0x04, 0x07, 0x00, 0x01), dbm)
        return got

    def _apply_power(self, dbm):
        Sx126x._apply_power(self, dbm)
        # Current limit to match the PA in use: 60 mA LP, 140 mA HP (RM Set_PaConfig note).
        self._write_reg(_REG_OCP, bytes((0x38 if self._hp else 0x18,)))

    def _rf_tx(self):
        if self._front_end is not None:
            self._front_end.tx(self._hp)

    def _rf_rx(self):
        if self._front_end is not None:
            self._front_end.rx()

    def _rf_off(self):
        if self._front_end is not None:
            self._front_end.off()

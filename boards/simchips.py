# A simulated board's radio: the simple SimRadio, or a real board's radio driver on a simulated
# chip. For a driver, the board module's own make_radio() (its pins, SPI, driver options) runs
# over a SimMachine wired the way its PINS say, and the chip sits on the simulated medium: the
# driver's SPI traffic decides what goes on the air, on which channel. boards.sim and boards.unix
# build their radio here; nothing is built at import.
#   RADIOS                the kinds: "sim" (hal.sim.radio.SimRadio, no driver) and one per chip,
#                         each carried the way the board named in BOARD_OF wires it
#   make_radio(radio, clock, medium, band, tx_power_cap_dbm) -> (Radio, chip or None); radio is
#                         a kind or the name of a board module with a radio chip
#   wire(board, ...)      -> (machine, stm or None, chip): the stand-ins a board module's
#                         make_radio() takes, wired to a new chip
#   board_hal(name, ...)  a board module's Hal with its radio on a simulated chip
RADIOS = ("sim", "sx1262", "rfm69", "stm32wl")
BOARD_OF = {"sx1262": "heltec_wifi_lora32_v3", "rfm69": "pico_rfm69", "stm32wl": "nucleo_wl55jc"}
_FIFO_RATE = 16


def _board(board):
    if isinstance(board, str):
        from boards import load

        return load(BOARD_OF.get(board, board))
    return board


def wire(board, medium=None, record=True, uid=None):
    """(machine, stm or None, chip) for board (a module or its name): a new chip of the kind its
    RADIO names, on medium if given, its NSS/BUSY/RESET/IRQ pins where the board's PINS put them."""
    from hal.sim.chips.bus import SimSpiBus
    from hal.sim.chips.machine import SimMachine

    board = _board(board)
    pins = board.PINS
    kind = board.RADIO
    if kind == "SX1262":
        from hal.sim.chips.sx126x import SimSx126x

        chip = SimSx126x(medium=medium, record=record)
        bus = SimSpiBus(chip, record)
        wired = {
            pins["cs"]: bus.cs_pin(),
            pins["busy"]: chip.busy_pin(),
            pins["reset"]: chip.reset_pin(),
            pins["dio1"]: chip.dio1_pin(),
        }
        stm = None
    elif kind == "RFM69HCW":
        from hal.sim.chips.rfm69 import SimRfm69

        # the FIFO moves 16 bytes a transaction: still refilled while a long frame is on air
        chip = SimRfm69(_FIFO_RATE, _FIFO_RATE, medium=medium, record=record)
        bus = SimSpiBus(chip, record)
        wired = {pins["cs"]: bus.cs_pin(), pins["reset"]: chip.reset_pin(), pins["dio0"]: chip.dio0_pin()}
        stm = None
    elif kind == "STM32WL SUBGHZ":
        from hal.sim.chips import stm32wl

        chip = stm32wl.chip(medium=medium, record=record)
        bus = SimSpiBus(chip, record)
        wired = {}
        stm = stm32wl.SimStm(bus)
    else:
        raise ValueError("no simulated chip for a {} radio (board {})".format(kind, board.NAME))
    if uid is None:
        return SimMachine(bus, wired), stm, chip
    return SimMachine(bus, wired, uid=uid), stm, chip


def board_radio(board, clock, medium=None, band=None, tx_power_cap_dbm=None, record=False):
    """(the board's radio driver, its chip): board's make_radio() on a wired chip."""
    board = _board(board)
    machine, stm, chip = wire(board, medium, record)
    options = {} if stm is None else {"stm": stm}
    cap = board.TX_POWER_CAP_DBM if tx_power_cap_dbm is None else tx_power_cap_dbm
    radio = board.make_radio(machine, dict(board.PINS), band or board.BAND, cap, board.SPI_BAUDRATE, clock, **options)
    return radio, chip


def make_radio(radio, clock, medium, band, tx_power_cap_dbm):
    """(Radio, chip or None) on medium: radio is one of RADIOS or a board module's name."""
    if radio == "sim":
        from hal.sim.radio import SimRadio

        return SimRadio(medium, clock, band=band, tx_power_dbm=tx_power_cap_dbm), None
    if radio not in BOARD_OF and radio not in BOARD_OF.values():
        raise ValueError("radio must be one of {} or a board with a radio chip, not {!r}".format(RADIOS, radio))
    return board_radio(radio, clock, medium, band, tx_power_cap_dbm)


def board_hal(name, clock, storage, identity, medium, band=None, link=None, reset=None):
    """The Hal of board module `name` on simulated parts: its radio driver on a chip on medium,
    with the clock, storage, identity and link given (its MCU's are not simulated)."""
    from hal.contracts import Hal

    board = _board(name)
    radio, _chip = board_radio(board, clock, medium, band)
    return Hal(radio, clock, storage, link=link, identity=identity, board=board, reset=reset)

# The GB868 sub-GHz PHY and channel plan: what radios (real and simulated) need to tune and to
# time a frame. Source: ../shared/DOMAIN.md section 1 (Silicon Labs GB868 radio config, IEEE
# 802.15.4g MR-FSK; channel plan pages 28-31).
from hal.compat import const

# page: (first channel, last channel, base frequency in Hz for channel 0 of the plan)
# Centre frequency = base + 200 kHz * channel.
PLAN = {
    28: (0, 26, 863250000),
    29: (27, 34, 863250000),
    30: (35, 61, 863250000),
    31: (0, 26, 915350000),
}
# The regulated duty-cycle limit of each channel, permille of the hour, one byte a channel: the
# lower band's channels 0-61 (pages 28-30) at their channel number, page 31's at 62 + channel.
# README "Regulated duty-cycle limits" gives the sources; agent/regulatory.py derives these from
# the sub-bands (the tests check that the two agree) and reads them (regulated_permille). 863.25-865.05 MHz 0.1 %, 865.25-868.45
# MHz 1 %, 868.65-869.65 MHz 0.1 %, 869.85-870.05 MHz 1 %, 870-876 and 915-921 MHz 2.5 %.
LIMITS = (
    b"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a"
    b"\x01\x01\x01\x01\x01\x01\x0a\x0a"
    b"\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19"
    b"\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19\x19"
)
LOWER_BAND_PAGES = (28, 29, 30)
UPPER_BAND_PAGE = 31
_SPACING_HZ = const(200000)

BITRATE_BPS = const(100000)  # 2-GFSK, BT 0.5, 35 kHz deviation
DEVIATION_HZ = const(35000)
PREAMBLE_BYTES = const(8)  # 64-bit preamble
SFD = const(0x904E)
SFD_BYTES = const(2)
_PHR_BYTES = const(2)
FCS_BYTES = const(2)
MAX_PSDU = const(127)  # PHY payload including the FCS


class ChannelError(ValueError):
    """An impossible (page, channel): the message says which value is wrong."""


def check(page, channel):
    """Raise ChannelError unless (page, channel) is in the plan."""
    band_of(page)
    entry = PLAN[page]
    if not isinstance(channel, int) or not entry[0] <= channel <= entry[1]:
        raise ChannelError("channel {} is not on page {} (channels {}-{})".format(channel, page, entry[0], entry[1]))


def frequency_hz(page, channel):
    """Centre frequency in Hz of (page, channel)."""
    check(page, channel)
    return PLAN[page][2] + _SPACING_HZ * channel


def band_of(page):
    """'868' for the lower band pages, '915' for page 31."""
    if page not in PLAN:
        raise ChannelError("page {} is not a sub-GHz page (28-31)".format(page))
    return "915" if page == UPPER_BAND_PAGE else "868"


def airtime_us(n):
    """On-air time in microseconds of one frame whose MAC payload is n bytes.

    Preamble + SFD + PHR + payload + FCS, 80 us a byte at 100 kbit/s.
    """
    if n < 0 or n + FCS_BYTES > MAX_PSDU:
        raise ValueError("payload of {} bytes does not fit a {}-byte PSDU".format(n, MAX_PSDU))
    nbytes = PREAMBLE_BYTES + SFD_BYTES + _PHR_BYTES + n + FCS_BYTES
    return nbytes * 8 * 1000000 // BITRATE_BPS

# The regulated duty-cycle limits of the GB sub-GHz channels (README "Regulated duty-cycle
# limits" gives the sources): the sub-bands as the sources give them and the rule that gives each
# channel its limit. hal.phy.LIMITS holds the result, one byte a channel, and is what the agent
# uses (agent/agility.py reads it when it tunes); this module, never loaded by the agent, reads it
# for the tools and the tests (regulated_permille) and derives it (limit_of: the tests check that
# the two agree).
from agent.channels import UPPER_BAND_PAGE, check, frequency_hz
from hal.compat import const
from hal.phy import LIMITS

# The sub-bands of 863-870 MHz with their own limit, (low kHz, high kHz, permille of the hour), from
# ERC/REC 70-03 Annex 1 and EN 300 220-2. Anywhere else in 863-870 MHz (868.6-868.7, 869.2-869.4,
# 869.65-869.7 MHz: alarm sub-bands, not for a hub) only the band-wide 0.1 % applies. For
# 870-876 MHz and 915-921 MHz the sources found give no figure for a hub's 200 kHz channel; the
# GBCS ceiling applies there. Every channel's limit is the lowest over the 200 kHz it occupies,
# and never above the GBCS ceiling of 2.5 % (LimitedCriticalDutyCycleThreshold is below 2.5 %).
SUB_BANDS = (
    (863000, 865000, 1),
    (865000, 868000, 10),
    (868000, 868600, 10),
    (868700, 869200, 1),
    (869400, 869650, 100),
    (869700, 870000, 10),
)
BAND_WIDE = (863000, 870000, 1)
GBCS_CEILING = const(25)
_HALF_KHZ = const(100)  # half a channel


def limit_of(page, channel):
    """The regulated limit (permille) of (page, channel) derived from SUB_BANDS: what
    hal.phy.LIMITS holds."""
    lo = frequency_hz(page, channel) // 1000 - _HALF_KHZ
    hi = lo + 2 * _HALF_KHZ
    limit = GBCS_CEILING
    if hi <= BAND_WIDE[0] or lo >= BAND_WIDE[1]:
        return limit  # 870-876 or 915-921 MHz: no figure found, the GBCS ceiling
    # walk the channel's span: each stretch takes its sub-band's limit, or the band-wide one
    at = lo
    while at < hi:
        here, upto = BAND_WIDE[2], hi
        for a, b, permille in SUB_BANDS:
            if a <= at < b:
                here, upto = permille, min(b, hi)
                break
            if at < a < upto:
                upto = a
        if at >= BAND_WIDE[1]:
            here = GBCS_CEILING
        limit = min(limit, here)
        at = upto
    return limit


def regulated_permille(page, channel):
    """The regulated duty-cycle limit of (page, channel) that hal.phy.LIMITS holds, permille of
    the hour (25 = 2.5 %); ChannelError for an impossible channel."""
    check(page, channel)
    return LIMITS[62 + channel if page == UPPER_BAND_PAGE else channel]

# Sub-GHz channel plan (pages 28-31) and the 32-bit page masks of GBCS.
#
# Mask layout (Silicon Labs ember-types.h: "page bits 31...27, channel bits 26...0"): the page
# number in bits 31..27, a channel bitmap in bits 26..0, bit n standing for the page's n-th
# channel: page 28 and 31 bit n = channel n, page 29 bit n = channel 27+n, page 30 bit n = 35+n.
# RTDS examples: E0000001 = page 28 channel 0; E8000006 = page 29 channels 28, 29.
# Zigbee stacks also know page 29 channel 62 (bit 8); DUIS has no Channel62, so the DCC cannot
# configure it and decode_mask refuses it.
from hal.compat import const
from hal.phy import LOWER_BAND_PAGES, PLAN, UPPER_BAND_PAGE, ChannelError, band_of, check, frequency_hz

__all__ = (
    "LOWER_BAND_PAGES",
    "PLAN",
    "PAGES",
    "UPPER_BAND_PAGE",
    "ChannelError",
    "channels_of",
    "check",
    "configured_channels",
    "decode_mask",
    "encode_mask",
    "frequency_hz",
    "mask_hex",
    "page_of_channel",
    "parse_mask_hex",
)

PAGES = (28, 29, 30, 31)
_PAGE_SHIFT = const(27)
_BITMAP = const(0x07FFFFFF)


def channels_of(page):
    """All channel numbers of a page, lowest first."""
    band_of(page)  # ChannelError for a page outside 28-31
    first, last = PLAN[page][0], PLAN[page][1]
    return tuple(range(first, last + 1))


def page_of_channel(channel, upper_band=False):
    """The page that carries a channel number: lower band 0-61, or page 31 with upper_band."""
    if upper_band:
        check(UPPER_BAND_PAGE, channel)
        return UPPER_BAND_PAGE
    for page in LOWER_BAND_PAGES:
        first, last = PLAN[page][0], PLAN[page][1]
        if isinstance(channel, int) and first <= channel <= last:
            return page
    raise ChannelError("channel {} is not a lower-band channel (0-61)".format(channel))


def encode_mask(page, channels):
    """The 32-bit mask of a page and an iterable of its channel numbers."""
    band_of(page)
    bits = 0
    first = PLAN[page][0]
    for ch in channels:
        check(page, ch)
        bits |= 1 << (ch - first)
    return (page << _PAGE_SHIFT) | bits


def decode_mask(mask):
    """(page, channels) of a 32-bit mask, channels ascending; ChannelError if impossible."""
    if not isinstance(mask, int) or not 0 <= mask <= 0xFFFFFFFF:
        raise ChannelError("mask {!r} is not a 32-bit unsigned value".format(mask))
    page = mask >> _PAGE_SHIFT
    if page not in PLAN:
        raise ChannelError("mask {} names page {}, not a sub-GHz page (28-31)".format(mask_hex(mask), page))
    first, last = PLAN[page][0], PLAN[page][1]
    bits = mask & _BITMAP
    extra = bits >> (last - first + 1)
    if extra:
        n = last - first + 1
        while not extra & 1:
            extra >>= 1
            n += 1
        if page == 29 and n == 8:
            raise ChannelError("mask {} sets channel 62, which DUIS cannot configure".format(mask_hex(mask)))
        raise ChannelError(
            "mask {} sets bit {} on page {}, which has bits 0-{} (channels {}-{})".format(
                mask_hex(mask), n, page, last - first, first, last
            )
        )
    chans = []
    n = 0
    while bits:
        if bits & 1:
            chans.append(first + n)
        bits >>= 1
        n += 1
    return page, tuple(chans)


def configured_channels(masks):
    # The (page, channel) pairs of a configuration's four masks (pages 28, 29, 30, 31 in this
    # order), in plan order. ChannelError unless each mask is its page's and the channel sets obey
    # the configuration's rules (agent/subghz.py): a used lower-band page has two channels or
    # more, and one lower-band page at least is used. A stored configuration is checked so, from
    # its masks alone, without the validator (agent/hub.py).
    if not isinstance(masks, (list, tuple)) or len(masks) != len(PAGES):
        raise ChannelError("expected the four masks of pages 28-31, got {!r}".format(masks))
    out = []
    lower = 0
    for i in range(len(PAGES)):
        page, chans = decode_mask(masks[i])
        if page != PAGES[i]:
            raise ChannelError("mask {} is for page {}, not {}".format(mask_hex(masks[i]), page, PAGES[i]))
        if page != UPPER_BAND_PAGE:
            if len(chans) == 1:
                raise ChannelError("page {} is used with one channel".format(page))
            lower += len(chans)
        for ch in chans:
            out.append((page, ch))
    if not lower:
        raise ChannelError("no lower-band channel")
    return out


def mask_hex(mask):
    return "{:08X}".format(mask)


def parse_mask_hex(text):
    """'E8000006' -> 0xE8000006, checked by decode_mask."""
    try:
        if len(text) != 8:
            raise ValueError
        mask = int(text, 16)
    except (TypeError, ValueError):
        raise ChannelError("{!r} is not an 8-digit hex channel mask".format(text))
    decode_mask(mask)
    return mask

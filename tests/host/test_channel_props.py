"""Property tests for the channel plan and page masks (hypothesis)."""

from hypothesis import given
from hypothesis import strategies as st

from agent import channels
from agent.channels import ChannelError


@st.composite
def page_and_channels(draw):
    page = draw(st.sampled_from(channels.PAGES))
    chans = draw(st.lists(st.sampled_from(channels.channels_of(page)), unique=True))
    return page, chans


@given(page_and_channels())
def test_encode_decode_round_trip(pc):
    page, chans = pc
    mask = channels.encode_mask(page, chans)
    assert mask >> 27 == page
    assert channels.decode_mask(mask) == (page, tuple(sorted(chans)))
    assert channels.parse_mask_hex(channels.mask_hex(mask)) == mask


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_every_32_bit_value_decodes_or_is_refused_by_name(mask):
    try:
        page, chans = channels.decode_mask(mask)
    except ChannelError as e:
        assert "page" in str(e) or "bit" in str(e) or "channel 62" in str(e)
        return
    assert channels.encode_mask(page, chans) == mask


@given(st.sampled_from(channels.PAGES), st.integers(min_value=-100, max_value=200))
def test_frequency_of_any_pair_is_in_its_band_or_refused(page, ch):
    try:
        hz = channels.frequency_hz(page, ch)
    except ChannelError as e:
        assert str(ch) in str(e)
        assert ch not in channels.channels_of(page)
        return
    assert (915_350_000 <= hz <= 920_550_000) if page == 31 else (863_250_000 <= hz <= 875_450_000)
    assert (hz - (915_350_000 if page == 31 else 863_250_000)) % 200_000 == 0

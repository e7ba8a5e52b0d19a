# The channel plan's boundaries, each pinned by the rule it keeps: the mask 0 is a 32-bit value
# (of no sub-GHz page), a bit past a page's channels is named by its own number however far
# past it is, and every refusal says which value is wrong and what the plan allows.
import unittest

from agent import channels
from agent.channels import ChannelError


def refusal(fn, *args):
    with unittest.TestCase().assertRaises(ChannelError) as cm:
        fn(*args)
    return str(cm.exception)


class TestMaskRange(unittest.TestCase):
    def test_mask_zero_is_a_32_bit_value_that_names_no_sub_ghz_page(self):
        self.assertEqual(refusal(channels.decode_mask, 0), "mask 00000000 names page 0, not a sub-GHz page (28-31)")
        self.assertEqual(
            refusal(channels.decode_mask, 0x08000000), "mask 08000000 names page 1, not a sub-GHz page (28-31)"
        )

    def test_values_outside_32_bits_unsigned_are_refused_as_such(self):
        self.assertEqual(refusal(channels.decode_mask, -1), "mask -1 is not a 32-bit unsigned value")
        self.assertEqual(refusal(channels.decode_mask, 1 << 32), "mask 4294967296 is not a 32-bit unsigned value")
        self.assertEqual(refusal(channels.decode_mask, "E8000006"), "mask 'E8000006' is not a 32-bit unsigned value")

    def test_the_highest_mask_of_each_page_decodes_to_its_last_channel(self):
        self.assertEqual(channels.decode_mask(0xE0000000 | 1 << 26), (28, (26,)))
        self.assertEqual(channels.decode_mask(0xE8000000 | 1 << 7), (29, (34,)))
        self.assertEqual(channels.decode_mask(0xF0000000 | 1 << 26), (30, (61,)))


class TestBitsPastThePage(unittest.TestCase):
    def test_a_bit_past_the_page_is_named_by_its_own_number(self):
        for bit in (9, 10, 13, 26):
            self.assertEqual(
                refusal(channels.decode_mask, 0xE8000000 | 1 << bit | 0x6),
                "mask {} sets bit {} on page 29, which has bits 0-7 (channels 27-34)".format(
                    channels.mask_hex(0xE8000000 | 1 << bit | 0x6), bit
                ),
            )

    def test_channel_62_on_page_29_is_refused_by_name(self):
        self.assertEqual(
            refusal(channels.decode_mask, 0xE8000100), "mask E8000100 sets channel 62, which DUIS cannot configure"
        )
        # the lowest bit past the page decides the message
        self.assertEqual(
            refusal(channels.decode_mask, 0xE8000500), "mask E8000500 sets channel 62, which DUIS cannot configure"
        )


class TestRefusalWords(unittest.TestCase):
    def test_a_channel_outside_the_lower_band_is_named(self):
        self.assertEqual(refusal(channels.page_of_channel, 62), "channel 62 is not a lower-band channel (0-61)")
        self.assertEqual(refusal(channels.page_of_channel, -1), "channel -1 is not a lower-band channel (0-61)")
        self.assertEqual(channels.page_of_channel(61), 30)
        self.assertEqual(channels.page_of_channel(0), 28)

    def test_text_that_is_not_eight_hex_digits_is_named(self):
        for text in ("E800006", "E800000G", None):
            self.assertEqual(
                refusal(channels.parse_mask_hex, text), "{!r} is not an 8-digit hex channel mask".format(text)
            )
        self.assertEqual(channels.parse_mask_hex("E8000006"), 0xE8000006)


class TestConfiguredChannels(unittest.TestCase):
    """A stored configuration's four masks: each refusal names the mask or page at fault."""

    def test_a_list_that_is_not_four_masks_is_shown(self):
        self.assertEqual(
            refusal(channels.configured_channels, [1, 2, 3]), "expected the four masks of pages 28-31, got [1, 2, 3]"
        )

    def test_a_mask_in_the_wrong_place_names_its_page_and_the_one_expected(self):
        masks = [0xE8000006, 0xE8000006, 0xF0000006, 0xF8000000]
        self.assertEqual(refusal(channels.configured_channels, masks), "mask E8000006 is for page 29, not 28")

    def test_a_lower_band_page_with_one_channel_is_named(self):
        masks = [0xE0000006, 0xE8000000, 0xF0000002, 0xF8000000]
        self.assertEqual(refusal(channels.configured_channels, masks), "page 30 is used with one channel")

    def test_no_lower_band_channel_is_said_so(self):
        masks = [0xE0000000, 0xE8000000, 0xF0000000, 0xF8000006]
        self.assertEqual(refusal(channels.configured_channels, masks), "no lower-band channel")
        masks[1] = 0xE8000006
        self.assertEqual(channels.configured_channels(masks), [(29, 28), (29, 29), (31, 1), (31, 2)])

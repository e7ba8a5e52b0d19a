import unittest

from agent import channels, regulatory
from agent.channels import ChannelError
from agent.regulatory import regulated_permille
from hal.phy import LIMITS


class Plan(unittest.TestCase):
    def test_centre_frequencies(self):
        self.assertEqual(channels.frequency_hz(28, 0), 863250000)
        self.assertEqual(channels.frequency_hz(28, 26), 868450000)
        self.assertEqual(channels.frequency_hz(29, 27), 868650000)
        self.assertEqual(channels.frequency_hz(29, 34), 870050000)
        self.assertEqual(channels.frequency_hz(30, 35), 870250000)
        self.assertEqual(channels.frequency_hz(30, 61), 875450000)
        self.assertEqual(channels.frequency_hz(31, 0), 915350000)
        self.assertEqual(channels.frequency_hz(31, 26), 920550000)

    def test_channels_of_pages(self):
        self.assertEqual(len(channels.channels_of(28)), 27)
        self.assertEqual(channels.channels_of(29), (27, 28, 29, 30, 31, 32, 33, 34))
        self.assertEqual(channels.channels_of(30)[0], 35)
        self.assertEqual(channels.channels_of(30)[-1], 61)

    def test_impossible_pairs_name_the_wrong_value(self):
        for page, ch, word in (
            (28, 27, "channel 27"),
            (31, 40, "channel 40"),
            (27, 0, "page 27"),
            (29, 26, "channel 26"),
        ):
            with self.assertRaises(ChannelError) as cm:
                channels.frequency_hz(page, ch)
            self.assertIn(word, str(cm.exception))

    def test_page_of_channel(self):
        self.assertEqual(channels.page_of_channel(0), 28)
        self.assertEqual(channels.page_of_channel(27), 29)
        self.assertEqual(channels.page_of_channel(61), 30)
        self.assertEqual(channels.page_of_channel(3, upper_band=True), 31)
        with self.assertRaises(ChannelError):
            channels.page_of_channel(62)
        with self.assertRaises(ChannelError):
            channels.page_of_channel(27, upper_band=True)


class Masks(unittest.TestCase):
    VECTORS = (
        ("E0000001", 28, (0,)),
        ("E8000006", 29, (28, 29)),
        ("F0000006", 30, (36, 37)),
        ("F8000006", 31, (1, 2)),
        ("E7FFFFFF", 28, tuple(range(27))),
        ("E80000FF", 29, tuple(range(27, 35))),
        ("F7FFFFFF", 30, tuple(range(35, 62))),
        ("E0000000", 28, ()),
    )

    def test_rtds_vectors_both_ways(self):
        for text, page, chans in self.VECTORS:
            mask = channels.parse_mask_hex(text)
            self.assertEqual(channels.decode_mask(mask), (page, chans))
            self.assertEqual(channels.mask_hex(channels.encode_mask(page, chans)), text)

    def test_encode_is_order_and_duplicate_insensitive(self):
        self.assertEqual(channels.encode_mask(29, [29, 28, 28]), 0xE8000006)

    def test_round_trip_every_single_channel(self):
        for page in channels.PAGES:
            for ch in channels.channels_of(page):
                self.assertEqual(channels.decode_mask(channels.encode_mask(page, [ch])), (page, (ch,)))

    def test_encode_refuses_channels_off_the_page(self):
        with self.assertRaises(ChannelError) as cm:
            channels.encode_mask(28, [1, 27])
        self.assertIn("27", str(cm.exception))
        with self.assertRaises(ChannelError):
            channels.encode_mask(32, [1])

    def test_decode_refuses_impossible_masks(self):
        bad = (
            (0xD8000001, "page 27"),  # page 27
            (0xE8000100, "channel 62"),  # page 29 bit 8: Zigbee's channel 62, not in DUIS
            (0xE8000200, "bit 9"),
            (0xF8000000 | (1 << 27) - 1, None),  # page 31 all 27 bits: valid
            (-1, "32-bit"),
            (1 << 32, "32-bit"),
        )
        for mask, word in bad:
            if word is None:
                self.assertEqual(len(channels.decode_mask(mask)[1]), 27)
                continue
            with self.assertRaises(ChannelError) as cm:
                channels.decode_mask(mask)
            self.assertIn(word, str(cm.exception))

    def test_parse_mask_hex_refuses_garbage(self):
        for text in ("E000001", "E00000010", "XYZ00000", "", None):
            with self.assertRaises(ChannelError):
                channels.parse_mask_hex(text)


class Configured(unittest.TestCase):
    def test_the_pairs_of_four_masks_in_plan_order(self):
        masks = [0xE0000006, 0xE8000006, 0xF0000006, 0xF8000006]  # DBCH04
        self.assertEqual(
            channels.configured_channels(masks),
            [(28, 1), (28, 2), (29, 28), (29, 29), (30, 36), (30, 37), (31, 1), (31, 2)],
        )
        self.assertEqual(
            channels.configured_channels([0xE0000000, 0xE8000003, 0xF0000000, 0xF8000000]), [(29, 27), (29, 28)]
        )

    def test_masks_that_make_no_configuration(self):
        for masks, word in (
            ([0xE0000002, 0xE8000006, 0xF0000006, 0xF8000000], "one channel"),
            ([0xE8000006, 0xE0000006, 0xF0000006, 0xF8000000], "page"),
            ([0xE0000000, 0xE8000000, 0xF0000000, 0xF8000006], "lower-band"),
            ([0xE0000006, 0xE8000006, 0xF0000006], "four"),
            ([0xE0000006, 0xE8000100, 0xF0000006, 0xF8000000], "channel 62"),
            ("E0000006", "four"),
        ):
            with self.assertRaises(ChannelError) as cm:
                channels.configured_channels(masks)
            self.assertIn(word, str(cm.exception))


class RegulatedLimits(unittest.TestCase):
    """The limit each channel is held to (README "Regulated duty-cycle limits")."""

    def test_the_plan_data_is_what_the_sub_band_table_gives(self):
        for page in channels.PAGES:
            for ch in channels.channels_of(page):
                self.assertEqual(regulated_permille(page, ch), regulatory.limit_of(page, ch), (page, ch))
        self.assertEqual(len(LIMITS), 62 + 27)  # one byte a channel: 0-61, then page 31

    def test_channels_by_sub_band(self):
        for page, ch, mhz, permille in (
            (28, 0, "863.25", 1),  # 863-865 MHz: 0.1 %
            (28, 9, "865.05", 1),  # overlaps 864.95-865 MHz: the lower limit
            (28, 10, "865.25", 10),  # 865-868 MHz: 1 %
            (28, 24, "868.05", 10),  # across 868 MHz: 1 % on both sides
            (28, 26, "868.45", 10),  # 868.0-868.6 MHz: 1 %
            (29, 27, "868.65", 1),  # reaches the 868.6-868.7 MHz alarm band: 0.1 %
            (29, 28, "868.85", 1),  # 868.7-869.2 MHz: 0.1 %
            (29, 31, "869.45", 1),  # mostly the 10 % band, but reaches below 869.4 MHz
            (29, 33, "869.85", 10),  # 869.7-870 MHz: 1 %
            (29, 34, "870.05", 10),  # across 870 MHz
            (30, 36, "870.45", 25),  # 870-876 MHz: the GBCS ceiling
            (31, 1, "915.55", 25),  # 915-921 MHz: the GBCS ceiling
        ):
            self.assertEqual(channels.frequency_hz(page, ch), int(mhz.replace(".", "")) * 10000)
            self.assertEqual(regulated_permille(page, ch), permille, mhz)

    def test_no_channel_above_the_gbcs_ceiling_nor_at_zero(self):
        for page in channels.PAGES:
            for ch in channels.channels_of(page):
                self.assertIn(regulated_permille(page, ch), (1, 10, 25))

    def test_an_impossible_channel_is_refused(self):
        with self.assertRaises(ChannelError):
            regulated_permille(29, 35)

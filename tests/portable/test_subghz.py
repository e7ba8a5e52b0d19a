import unittest

from agent import subghz
from tests.kits.hubkit import TEMPLATE


def template():
    """The configuration of the DCC's DBCH04 6.28 success template, as a mapping."""
    return dict(TEMPLATE)


def with_(**changes):
    m = template()
    m.update(changes)
    return m


class Valid(unittest.TestCase):
    def test_template_is_valid(self):
        r = subghz.validate(template())
        self.assertEqual(r.code, "I0")
        self.assertTrue(r.ok)
        self.assertEqual(r.errors, [])
        cfg = r.config
        self.assertEqual(cfg.channels[29], (28, 29))
        self.assertEqual(cfg.normal_limited_permille, 13)
        self.assertEqual(cfg.limited_critical_permille, 22)
        self.assertEqual(cfg.get("LocalCHFailurePercentage"), 4000)
        self.assertEqual(cfg.masks(), [0xE0000006, 0xE8000006, 0xF0000006, 0xF8000006])

    def test_round_trip_through_mapping(self):
        cfg = subghz.validate(template()).config
        again = subghz.validate(cfg.to_mapping())
        self.assertEqual(again.code, "I0")
        self.assertTrue(again.config == cfg)
        self.assertEqual(cfg.to_mapping()["NormalLimitedDutyCycleThreshold"], "1.3")
        self.assertEqual(cfg.to_mapping()["NonGSMEPoorCommsPercentageThreshold"], "60.00")

    def test_unused_pages_are_fine(self):
        r = subghz.validate(
            with_(LowerBandSubGHzChannels27To34=[], LowerBandSubGHzChannels35To61=[], UpperBandSubGHzChannels0To26=[])
        )
        self.assertEqual(r.code, "I0")
        self.assertEqual(r.config.usable_channels(), [(28, 1), (28, 2)])

    def test_upper_band_needs_no_pair(self):
        self.assertEqual(subghz.validate(with_(UpperBandSubGHzChannels0To26=[5])).code, "I0")

    def test_inclusive_and_exclusive_bounds(self):
        ok = (
            ("NormalLimitedDutyCycleThreshold", "0.5"),
            ("NormalLimitedDutyCycleThreshold", "1.5"),
            ("LimitedCriticalDutyCycleThreshold", "1.6"),
            ("LimitedCriticalDutyCycleThreshold", "2.4"),
            ("MaximumSubGHzChannelChangesPerWeek", 1),
            ("MaximumSubGHzChannelChangesPerWeek", 7),
            ("GSMECurfew", 2),
            ("GSMECurfew", 65535),
            ("ChannelQuieterThreshold", 255),
            ("ChannelNoisierThreshold", 0),
            ("ChannelNoisierThreshold", 20),
            ("NonGSMEPoorCommsPercentageThreshold", "1.00"),
            ("NonGSMEPoorCommsPercentageThreshold", "100.00"),
            ("NonGSMEPoorCommsMeasurementPeriods", 50),
            ("NonGSMEPoorCommsMeasurementPeriods", 150),
            ("LocalCHNoiseMeasurementPeriod", 61),
            ("LocalCHFailurePercentage", "1"),
            ("LocalCHRetryPercentage", 100),
        )
        for name, value in ok:
            with self.subTest(name=name, value=value):
                self.assertEqual(subghz.validate(with_(**{name: value})).code, "I0")

    def test_numbers_as_float_and_int(self):
        r = subghz.validate(with_(NormalLimitedDutyCycleThreshold=1.0, LocalCHRetryPercentage=12.5))
        self.assertEqual(r.code, "I0")
        self.assertEqual(r.config.normal_limited_permille, 10)
        self.assertEqual(r.config.get("LocalCHRetryPercentage"), 1250)

    def test_duplicates_collapse(self):
        r = subghz.validate(with_(LowerBandSubGHzChannels0To26=[2, 1, 2]))
        self.assertEqual(r.config.channels[28], (1, 2))

    def test_region_warning_for_upper_band(self):
        r = subghz.validate(template(), region="South")
        self.assertEqual(r.code, "I0")
        self.assertEqual(r.warnings[0][0], "UpperBandSubGHzChannels0To26")
        self.assertEqual(subghz.validate(template(), region="North").warnings, [])
        self.assertEqual(subghz.validate(with_(UpperBandSubGHzChannels0To26=[]), region="Central").warnings, [])


class Invalid(unittest.TestCase):
    def assertCode(self, mapping, code, field=None):
        r = subghz.validate(mapping)
        self.assertEqual(r.code, code, r.errors)
        self.assertIsNone(r.config)
        self.assertTrue(r.errors)
        if field:
            self.assertEqual(r.errors[0][0], field)
        return r

    def test_channel_outside_its_page_is_e062801(self):
        r = self.assertCode(with_(LowerBandSubGHzChannels0To26=[1, 27]), "E062801", "LowerBandSubGHzChannels0To26")
        self.assertIn("channel 27", r.errors[0][1])
        self.assertCode(with_(LowerBandSubGHzChannels27To34=[26, 27]), "E062801")
        self.assertCode(with_(LowerBandSubGHzChannels35To61=[61, 62]), "E062801")
        self.assertCode(with_(UpperBandSubGHzChannels0To26=[40]), "E062801")

    def test_no_lower_band_channel_is_e062801(self):
        self.assertCode(
            with_(LowerBandSubGHzChannels0To26=[], LowerBandSubGHzChannels27To34=[], LowerBandSubGHzChannels35To61=[]),
            "E062801",
        )

    def test_malformed_channel_items_are_e062801(self):
        for bad in ("1,2", 5, [1, "2"], [1, True], {"a": 1}):
            with self.subTest(bad=bad):
                self.assertCode(with_(LowerBandSubGHzChannels0To26=bad), "E062801")
        m = template()
        del m["LowerBandSubGHzChannels27To34"]
        self.assertCode(m, "E062801", "LowerBandSubGHzChannels27To34")

    def test_one_channel_on_a_used_lower_page_is_e062802(self):
        for name in ("LowerBandSubGHzChannels0To26", "LowerBandSubGHzChannels27To34", "LowerBandSubGHzChannels35To61"):
            first = {"LowerBandSubGHzChannels0To26": 3, "LowerBandSubGHzChannels27To34": 30}.get(name, 40)
            with self.subTest(name=name):
                r = self.assertCode(with_(**{name: [first]}), "E062802", name)
                self.assertIn("two", r.errors[0][1])

    def test_channel_error_wins_over_pair_error(self):
        self.assertCode(with_(LowerBandSubGHzChannels0To26=[1], LowerBandSubGHzChannels27To34=[99]), "E062801")

    def test_out_of_range_parameters_are_e062803(self):
        bad = (
            ("NormalLimitedDutyCycleThreshold", "0.4"),
            ("NormalLimitedDutyCycleThreshold", "2.1"),
            ("NormalLimitedDutyCycleThreshold", "1.25"),  # two decimal places
            ("LimitedCriticalDutyCycleThreshold", "1.5"),  # exclusive
            ("LimitedCriticalDutyCycleThreshold", "2.5"),  # exclusive
            ("MaximumSubGHzChannelChangesPerWeek", 0),
            ("MaximumSubGHzChannelChangesPerWeek", 8),
            ("MaximumSubGHzChannelChangesPerWeek", "1.5"),
            ("GSMECurfew", 1),  # exclusive
            ("GSMECurfew", 65536),
            ("ChannelQuieterThreshold", 0),
            ("ChannelQuieterThreshold", 256),
            ("ChannelNoisierThreshold", 21),
            ("ChannelNoisierThreshold", -1),
            ("NonGSMEPoorCommsPercentageThreshold", "0.99"),
            ("NonGSMEPoorCommsPercentageThreshold", "100.01"),
            ("NonGSMEPoorCommsPercentageThreshold", "50.001"),
            ("NonGSMEPoorCommsMeasurementPeriods", 49),
            ("NonGSMEPoorCommsMeasurementPeriods", 151),
            ("LocalCHNoiseMeasurementPeriod", 60),  # exclusive
            ("LocalCHFailurePercentage", "abc"),
            ("LocalCHRetryPercentage", None),
            ("LocalCHRetryPercentage", True),
            ("LocalCHRetryPercentage", ""),
            ("LocalCHRetryPercentage", "."),
        )
        for name, value in bad:
            with self.subTest(name=name, value=value):
                self.assertCode(with_(**{name: value}), "E062803", name)

    def test_thresholds_must_be_ordered(self):
        self.assertCode(
            with_(NormalLimitedDutyCycleThreshold="2.0", LimitedCriticalDutyCycleThreshold="1.8"),
            "E062803",
            "LimitedCriticalDutyCycleThreshold",
        )

    def test_missing_and_unknown_items_are_e062803(self):
        m = template()
        del m["GSMECurfew"]
        self.assertCode(m, "E062803", "GSMECurfew")
        self.assertCode(with_(Channel62=[62]), "E062803", "Channel62")

    def test_not_a_mapping(self):
        self.assertEqual(subghz.validate([1, 2]).code, "E062803")
        self.assertEqual(subghz.validate(None).code, "E062803")

    def test_all_errors_are_listed(self):
        r = subghz.validate(with_(GSMECurfew=0, ChannelQuieterThreshold=0, LowerBandSubGHzChannels0To26=[4]))
        self.assertEqual(r.code, "E062802")
        self.assertEqual(
            [f for f, _ in r.errors], ["LowerBandSubGHzChannels0To26", "GSMECurfew", "ChannelQuieterThreshold"]
        )
        self.assertEqual(r.as_dict()["rc"], "E062802")


class Decimals(unittest.TestCase):
    def test_parse_and_format(self):
        self.assertEqual(subghz.parse_decimal("1.5", 1, "x"), 15)
        self.assertEqual(subghz.parse_decimal("1.50", 1, "x"), 15)
        self.assertEqual(subghz.parse_decimal("100", 2, "x"), 10000)
        self.assertEqual(subghz.parse_decimal(" 7 ", 0, "x"), 7)
        self.assertEqual(subghz.parse_decimal("-0.5", 1, "x"), -5)
        self.assertEqual(subghz.format_decimal(5, 2), "0.05")
        self.assertEqual(subghz.format_decimal(10000, 2), "100.00")
        self.assertEqual(subghz.format_decimal(15, 1), "1.5")
        with self.assertRaises(subghz.ConfigError) as cm:
            subghz.parse_decimal("1.55", 1, "NormalLimitedDutyCycleThreshold")
        self.assertEqual(cm.exception.field, "NormalLimitedDutyCycleThreshold")
        self.assertEqual(cm.exception.code, "E062803")

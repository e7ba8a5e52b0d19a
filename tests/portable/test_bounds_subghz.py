# The Sub GHz Configuration's boundaries, each pinned by the rule it keeps: equal duty-cycle
# thresholds are refused, the first and last channel of every page are on it, decimals are read
# with their sign and leading point, only ASCII 0-9 are digits, every bad item is reported (not
# just the first) in words that name the item, the value and the allowed range, and the
# warnings survive a refusal.
import unittest

from agent import subghz
from tests.kits.hubkit import TEMPLATE

E1, E2, E3 = "E062801", "E062802", "E062803"
SOUTH_WARNING = (
    "UpperBandSubGHzChannels0To26",
    "should be empty in the South region (accepted: the DCC does not validate it)",
)


def with_(**changes):
    m = dict(TEMPLATE)
    m.update(changes)
    return m


def refusal(mapping, region=None):
    r = subghz.validate(mapping, region)
    return r.code, r.errors


class TestThresholdOrder(unittest.TestCase):
    def test_equal_duty_cycle_thresholds_are_refused(self):
        got = refusal(with_(NormalLimitedDutyCycleThreshold="1.6", LimitedCriticalDutyCycleThreshold="1.6"))
        self.assertEqual(
            got,
            (
                E3,
                [
                    (
                        "LimitedCriticalDutyCycleThreshold",
                        "must be above NormalLimitedDutyCycleThreshold (1.6 is not above 1.6)",
                    )
                ],
            ),
        )

    def test_thresholds_one_tenth_apart_are_accepted(self):
        r = subghz.validate(with_(NormalLimitedDutyCycleThreshold="1.6", LimitedCriticalDutyCycleThreshold="1.7"))
        self.assertEqual((r.code, r.config.normal_limited_permille, r.config.limited_critical_permille), ("I0", 16, 17))


class TestChannelBounds(unittest.TestCase):
    def test_the_first_and_last_channel_of_every_page_are_on_it(self):
        r = subghz.validate(
            with_(
                LowerBandSubGHzChannels0To26=[26, 0],
                LowerBandSubGHzChannels27To34=[27, 34],
                LowerBandSubGHzChannels35To61=[61, 35],
                UpperBandSubGHzChannels0To26=[0, 26],
            )
        )
        self.assertEqual(r.code, "I0")
        self.assertEqual(r.config.channels, {28: (0, 26), 29: (27, 34), 30: (35, 61), 31: (0, 26)})

    def test_a_channel_just_off_a_page_is_refused_naming_the_page_range(self):
        for chans, ch in (([26, 28], 26), ([28, 35], 35)):
            self.assertEqual(
                refusal(with_(LowerBandSubGHzChannels27To34=chans)),
                (E1, [("LowerBandSubGHzChannels27To34", "channel {} is not on page 29 (channels 27-34)".format(ch))]),
            )

    def test_no_value_for_a_channel_item_means_no_channel_on_that_page(self):
        r = subghz.validate(with_(LowerBandSubGHzChannels0To26=None))
        self.assertEqual((r.code, r.config.channels[28]), ("I0", ()))

    def test_channel_items_that_are_not_channel_lists_are_refused_in_words(self):
        self.assertEqual(
            refusal(with_(LowerBandSubGHzChannels27To34="28")),
            (E1, [("LowerBandSubGHzChannels27To34", "expected a list of channel numbers, got '28'")]),
        )
        self.assertEqual(
            refusal(with_(LowerBandSubGHzChannels27To34=[28, True])),
            (E1, [("LowerBandSubGHzChannels27To34", "True is not a channel number")]),
        )

    def test_missing_empty_and_single_channel_pages_are_refused_in_words(self):
        m = with_()
        del m["UpperBandSubGHzChannels0To26"]
        self.assertEqual(
            refusal(m),
            (E1, [("UpperBandSubGHzChannels0To26", "missing (an empty list means no channel on this page)")]),
        )
        self.assertEqual(
            refusal(
                with_(
                    LowerBandSubGHzChannels0To26=[], LowerBandSubGHzChannels27To34=[], LowerBandSubGHzChannels35To61=[]
                )
            ),
            (
                E1,
                [("LowerBandSubGHzChannels0To26", "no lower-band channel: at least one lower-band page must be used")],
            ),
        )
        self.assertEqual(
            refusal(with_(LowerBandSubGHzChannels35To61=[40])),
            (
                E2,
                [("LowerBandSubGHzChannels35To61", "page 30 is used with one channel; a used page needs at least two")],
            ),
        )

    def test_usable_channels_are_in_plan_order_and_filtered_by_page(self):
        cfg = subghz.validate(with_()).config
        every = [(28, 1), (28, 2), (29, 28), (29, 29), (30, 36), (30, 37), (31, 1), (31, 2)]
        self.assertEqual(cfg.usable_channels(), every)
        self.assertEqual(cfg.usable_channels(pages=(29,)), [(29, 28), (29, 29)])
        self.assertEqual(cfg.usable_channels(pages=(30, 31)), every[4:])


class TestDecimals(unittest.TestCase):
    def _value(self, text, name="NormalLimitedDutyCycleThreshold"):
        r = subghz.validate(with_(**{name: text}))
        self.assertEqual(r.code, "I0", (text, r.errors))
        return r.config.get(name)

    def test_a_plus_sign_and_a_leading_point_are_read(self):
        self.assertEqual(self._value("+1.5"), 15)
        self.assertEqual(self._value(".5"), 5)
        self.assertEqual(self._value(" 2.0 "), 20)
        self.assertEqual(self._value("+55.5", "LocalCHRetryPercentage"), 5550)

    def test_nine_is_a_digit_and_the_character_after_it_is_not(self):
        self.assertEqual(self._value("1.9"), 19)
        self.assertEqual(self._value("9", "ChannelNoisierThreshold"), 9)
        for text in ("1:5", "1.:", ":", "1/5"):
            self.assertEqual(
                refusal(with_(NormalLimitedDutyCycleThreshold=text)),
                (E3, [("NormalLimitedDutyCycleThreshold", "{!r} is not a decimal number".format(text))]),
            )

    def test_parse_decimal_names_the_item_and_the_response_code(self):
        for value, detail in (
            (True, "True is not a number"),
            (None, "None is not a number"),
            (["1"], "['1'] is not a number"),
            ("1,5", "'1,5' is not a decimal number"),
            ("1.25", "1.25 has more than 1 decimal place"),
        ):
            with self.assertRaises(subghz.ConfigError) as cm:
                subghz.parse_decimal(value, 1, "NormalLimitedDutyCycleThreshold")
            e = cm.exception
            self.assertEqual((e.field, e.code, e.detail), ("NormalLimitedDutyCycleThreshold", E3, detail))
            self.assertEqual(str(e), "NormalLimitedDutyCycleThreshold: " + detail)
        with self.assertRaises(subghz.ConfigError) as cm:
            subghz.parse_decimal("60.001", 2, "LocalCHRetryPercentage")
        self.assertEqual(cm.exception.detail, "60.001 has more than 2 decimal places")

    def test_out_of_range_values_are_refused_with_the_value_and_both_bounds(self):
        cases = (
            ("LimitedCriticalDutyCycleThreshold", "1.5", "1.5 is out of range: more than 1.5 and less than 2.5"),
            ("LimitedCriticalDutyCycleThreshold", "2.5", "2.5 is out of range: more than 1.5 and less than 2.5"),
            ("NormalLimitedDutyCycleThreshold", "0.4", "0.4 is out of range: at least 0.5 and at most 2.0"),
            ("LocalCHFailurePercentage", "0", "0.00 is out of range: at least 1.00 and at most 100.00"),
            ("LocalCHFailurePercentage", "-1", "-1.00 is out of range: at least 1.00 and at most 100.00"),
            ("LocalCHRetryPercentage", "-0.5", "-0.50 is out of range: at least 1.00 and at most 100.00"),
            ("ChannelNoisierThreshold", -1, "-1 is out of range: at least 0 and at most 20"),
            ("MaximumSubGHzChannelChangesPerWeek", 8, "8 is out of range: at least 1 and at most 7"),
            ("GSMECurfew", 1, "1 is out of range: more than 1 and at most 65535"),
        )
        for name, value, message in cases:
            self.assertEqual(refusal(with_(**{name: value})), (E3, [(name, message)]), name)


class TestEveryErrorReported(unittest.TestCase):
    def test_every_missing_or_malformed_item_is_reported_in_schema_order(self):
        m = with_(GSMECurfew="x", LocalCHRetryPercentage="y")
        del m["NormalLimitedDutyCycleThreshold"]
        del m["LocalCHFailurePercentage"]
        self.assertEqual(
            refusal(m),
            (
                E3,
                [
                    ("NormalLimitedDutyCycleThreshold", "missing"),
                    ("GSMECurfew", "'x' is not a decimal number"),
                    ("LocalCHFailurePercentage", "missing"),
                    ("LocalCHRetryPercentage", "'y' is not a decimal number"),
                ],
            ),
        )

    def test_an_unknown_item_and_a_non_mapping_are_refused_in_words(self):
        self.assertEqual(refusal(with_(Foo=1)), (E3, [("Foo", "not a data item of the Sub GHz Configuration")]))
        r = subghz.validate(["x"])
        self.assertEqual(
            r.as_dict(),
            {
                "rc": E3,
                "errors": [{"field": "SubGHzConfiguration", "message": "expected a mapping of data items"}],
                "warnings": [],
            },
        )

    def test_a_refused_configuration_still_carries_the_region_warning(self):
        for changes, code in (
            ({"LowerBandSubGHzChannels27To34": [26, 27]}, E1),
            ({"LowerBandSubGHzChannels27To34": [27]}, E2),
            ({"GSMECurfew": 0}, E3),
        ):
            r = subghz.validate(with_(**changes), region="South")
            self.assertEqual(r.code, code)
            self.assertEqual(r.warnings, [SOUTH_WARNING])
            self.assertEqual(r.as_dict()["warnings"], [{"field": SOUTH_WARNING[0], "message": SOUTH_WARNING[1]}])
            self.assertEqual(r.as_dict()["errors"], [{"field": f, "message": m} for f, m in r.errors])


class TestConfigValue(unittest.TestCase):
    def test_integer_items_stay_integers_in_the_mapping_and_decimals_become_text(self):
        m = subghz.validate(with_()).config.to_mapping()
        self.assertEqual(m["MaximumSubGHzChannelChangesPerWeek"], 5)
        self.assertIsInstance(m["MaximumSubGHzChannelChangesPerWeek"], int)
        self.assertEqual(m["NormalLimitedDutyCycleThreshold"], "1.3")
        self.assertEqual(m["LocalCHFailurePercentage"], "40.00")

    def test_configurations_are_equal_only_when_channels_and_parameters_both_are(self):
        a = subghz.validate(with_()).config
        self.assertEqual(a, subghz.validate(with_()).config)
        self.assertNotEqual(a, subghz.validate(with_(UpperBandSubGHzChannels0To26=[3, 4])).config)
        self.assertNotEqual(a, subghz.validate(with_(GSMECurfew=8)).config)
        self.assertNotEqual(a, None)
        self.assertNotEqual(a, "config")

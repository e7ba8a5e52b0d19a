import unittest

from agent import codes, dcc_tables


class ResponseCodes(unittest.TestCase):
    def test_table_one_has_the_ranges_the_duis_names(self):
        for code in ("I0", "I99", "E1", "E5", "E11", "E19", "E55", "E59", "E71", "E100"):
            self.assertIn(code, dcc_tables.RESPONSE_CODES)
        # Table 1 has gaps: E6-E10 do not exist.
        self.assertNotIn("E6", dcc_tables.RESPONSE_CODES)

    def test_every_code_has_a_name_and_a_type_matching_its_prefix(self):
        for code, (name, kind) in dcc_tables.RESPONSE_CODES.items():
            self.assertTrue(name)
            self.assertEqual(code[0], kind)

    def test_subghz_codes(self):
        for code in ("E062801", "E062802", "E062803"):
            self.assertIsNotNone(codes.response_name(code))
        self.assertIsNone(codes.response_name("E062899"))

    def test_success(self):
        self.assertTrue(codes.is_success("I0"))
        self.assertTrue(codes.is_success("I99"))
        self.assertFalse(codes.is_success("E59"))


class DccAlerts(unittest.TestCase):
    def test_allowed_codes_refer_to_known_response_codes(self):
        for alert, (name, allowed, element) in dcc_tables.DCC_ALERTS.items():
            self.assertTrue(name and element)
            for code in allowed or ():
                self.assertIn(code, dcc_tables.RESPONSE_CODES, alert)

    def test_table_42_examples(self):
        self.assertEqual(codes.allowed_response("N64"), ("I0",))
        self.assertEqual(codes.allowed_response("N53"), ("E58",))
        self.assertEqual(codes.allowed_response("N14"), ("E43", "E46", "E47"))
        self.assertIn("E060502", codes.allowed_response("N7"))

    def test_n54_depends_on_the_gbcs_alert(self):
        i0 = (0x8F21, 0x8F23, 0x8F25, 0x8F26, 0x8F27, 0x8F28, 0x8F2A)
        e59 = (0x8F20, 0x8F22, 0x8F24, 0x8F29, 0x8F2B, 0x8F2C, 0x8F2D)
        for a in i0:
            self.assertEqual(codes.allowed_response("N54", a), ("I0",))
        for a in e59:
            self.assertEqual(codes.allowed_response("N54", a), ("E59",))
        self.assertEqual(sorted(i0 + e59), sorted(codes.GBCS_ALERTS))

    def test_bad_lookups_say_what_is_wrong(self):
        with self.assertRaises(ValueError):
            codes.allowed_response("N54")
        with self.assertRaises(ValueError) as cm:
            codes.allowed_response("N54", 0x8F30)
        self.assertIn("8F30", str(cm.exception))
        with self.assertRaises(ValueError):
            codes.allowed_response("N32")

    def test_seeds_silent_codes_have_no_allowed_set(self):
        self.assertIsNone(codes.allowed_response("N62"))


class GbcsAlerts(unittest.TestCase):
    def test_names_and_payloads(self):
        self.assertEqual(len(codes.GBCS_ALERTS), 14)
        self.assertEqual(codes.GBCS_ALERTS[codes.ALERT_LIMITED_ACTION][2], "eui")
        self.assertEqual(codes.GBCS_ALERTS[codes.ALERT_CONFIG_CHANGED][2], "config")
        self.assertIsNone(codes.GBCS_ALERTS[codes.ALERT_SCAN_INITIATED][2])

    def test_hex(self):
        self.assertEqual(codes.gbcs_alert_hex(0x8F2A), "8F2A")

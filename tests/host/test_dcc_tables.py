"""host_tools.duis.dcc_tables: the DCC's response code and alert tables, and the board's own
copies of what it needs from them (agent.codes, agent.alerts) agreeing with them."""

import unittest

from agent import alerts, codes
from host_tools.duis import dcc_tables

EUI = b"\x00\xdb\x12\x34\x56\x78\x90\xa2"
I0_ALERTS = (0x8F21, 0x8F23, 0x8F25, 0x8F26, 0x8F27, 0x8F28, 0x8F2A)
E59_ALERTS = (0x8F20, 0x8F22, 0x8F24, 0x8F29, 0x8F2B, 0x8F2C, 0x8F2D)


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
            self.assertIsNotNone(dcc_tables.response_name(code))
        self.assertIsNone(dcc_tables.response_name("E062899"))

    def test_the_codes_a_board_writes_are_in_table_one(self):
        self.assertEqual(dcc_tables.response_name(codes.SUCCESS), "Success")
        self.assertEqual(dcc_tables.response_name("I99"), "Acknowledgement")

    def test_success(self):
        self.assertTrue(dcc_tables.is_success("I0"))
        self.assertTrue(dcc_tables.is_success("I99"))
        self.assertFalse(dcc_tables.is_success("E59"))


class DccAlerts(unittest.TestCase):
    def test_allowed_codes_refer_to_known_response_codes(self):
        for alert, (name, allowed, element) in dcc_tables.DCC_ALERTS.items():
            self.assertTrue(name and element)
            for code in allowed or ():
                self.assertIn(code, dcc_tables.RESPONSE_CODES, alert)

    def test_table_42_examples(self):
        self.assertEqual(dcc_tables.allowed_response("N64"), ("I0",))
        self.assertEqual(dcc_tables.allowed_response("N53"), ("E58",))
        self.assertEqual(dcc_tables.allowed_response("N14"), ("E43", "E46", "E47"))
        self.assertIn("E060502", dcc_tables.allowed_response("N7"))

    def test_n54_depends_on_the_gbcs_alert(self):
        for a in I0_ALERTS:
            self.assertEqual(dcc_tables.allowed_response("N54", a), ("I0",))
        for a in E59_ALERTS:
            self.assertEqual(dcc_tables.allowed_response("N54", a), ("E59",))
        self.assertEqual(sorted(I0_ALERTS + E59_ALERTS), sorted(dcc_tables.GBCS_ALERTS))

    def test_bad_lookups_say_what_is_wrong(self):
        with self.assertRaises(ValueError):
            dcc_tables.allowed_response("N54")
        with self.assertRaises(ValueError) as cm:
            dcc_tables.allowed_response("N54", 0x8F30)
        self.assertIn("8F30", str(cm.exception))
        with self.assertRaises(ValueError):
            dcc_tables.allowed_response("N32")

    def test_seeds_silent_codes_have_no_allowed_set(self):
        self.assertIsNone(dcc_tables.allowed_response("N62"))


class GbcsAlerts(unittest.TestCase):
    def test_names_and_payloads(self):
        self.assertEqual(len(dcc_tables.GBCS_ALERTS), 14)
        for code, (name, _rc, kind) in dcc_tables.GBCS_ALERTS.items():
            self.assertTrue(name, code)
            self.assertIn(kind, (None, "eui", "channel", "scan_outcome", "config", "request", "eui_type"))
        self.assertEqual(dcc_tables.GBCS_ALERTS[codes.ALERT_LIMITED_ACTION][2], "eui")
        self.assertEqual(dcc_tables.GBCS_ALERTS[codes.ALERT_CONFIG_CHANGED][2], "config")
        self.assertIsNone(dcc_tables.GBCS_ALERTS[codes.ALERT_SCAN_INITIATED][2])
        self.assertEqual(dcc_tables.GBCS_ALERTS[codes.ALERT_NO_CAPACITY][0], "No More Sub GHz Device Capacity")

    def test_the_board_alert_constants_are_the_table_codes(self):
        names = [n for n in dir(codes) if n.startswith("ALERT_")]
        self.assertEqual(sorted(getattr(codes, n) for n in names), sorted(dcc_tables.GBCS_ALERTS))

    def test_board_rc_agrees_with_the_table(self):
        for code, (_name, rc, _kind) in dcc_tables.GBCS_ALERTS.items():
            self.assertEqual(codes.gbcs_alert_rc(code), rc, hex(code))

    def test_hex(self):
        self.assertEqual(dcc_tables.gbcs_alert_hex(0x8F2A), "8F2A")
        self.assertEqual(dcc_tables.gbcs_alert_hex(0x8F20), "8F20")


class BoardAlerts(unittest.TestCase):
    def test_n54_carries_its_table_42_rc(self):
        for code, (_name, rc, _kind) in dcc_tables.GBCS_ALERTS.items():
            _kind, data = alerts.n54(EUI, code)
            self.assertEqual((data["rc"],), dcc_tables.allowed_response("N54", code))
            self.assertEqual(data["rc"], rc)

    def test_n64_carries_what_table_42_allows(self):
        _kind, data = alerts.n64(EUI, "2.1.0")
        self.assertEqual((data["rc"],), dcc_tables.allowed_response("N64"))

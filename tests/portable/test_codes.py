import unittest

from agent import alerts, codes, dcc_tables

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

    def test_alert_constants_are_the_fourteen_codes(self):
        names = [n for n in dir(codes) if n.startswith("ALERT_")]
        self.assertEqual(len(names), 14)
        self.assertEqual(sorted(getattr(codes, n) for n in names), sorted(dcc_tables.GBCS_ALERTS))
        self.assertEqual(codes.ALERT_LIMITED_ACTION, 0x8F20)
        self.assertEqual(codes.ALERT_CONFIG_CHANGED, 0x8F2A)
        self.assertEqual(codes.ALERT_NO_CAPACITY, 0x8F2D)

    def test_board_rc_agrees_with_the_table(self):
        for code, (_name, rc, _kind) in dcc_tables.GBCS_ALERTS.items():
            self.assertEqual(codes.gbcs_alert_rc(code), rc, hex(code))
        for code in I0_ALERTS:
            self.assertEqual(codes.gbcs_alert_rc(code), "I0")
        for code in E59_ALERTS:
            self.assertEqual(codes.gbcs_alert_rc(code), "E59")

    def test_board_rc_refuses_other_codes(self):
        for code in (0, 0x8F1F, 0x8F2E, 0x8F30, 0x8E20, -1, 0x18F20):
            with self.assertRaises(ValueError) as cm:
                codes.gbcs_alert_rc(code)
            self.assertIn("not a Dual Band CH alert code", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            codes.gbcs_alert_rc(0x8F2E)
        self.assertIn("8F2E", str(cm.exception))

    def test_hex(self):
        self.assertEqual(dcc_tables.gbcs_alert_hex(0x8F2A), "8F2A")
        self.assertEqual(dcc_tables.gbcs_alert_hex(0x8F20), "8F20")


class AlertEvents(unittest.TestCase):
    def test_n54_carries_the_code_in_hex_and_its_table_42_rc(self):
        for code, (_name, rc, _kind) in dcc_tables.GBCS_ALERTS.items():
            kind, data = alerts.n54(EUI, code)
            self.assertEqual(kind, "N54")
            self.assertEqual(
                data, {"CHFDeviceID": "00-DB-12-34-56-78-90-A2", "DeviceAlertCode": "{:04X}".format(code), "rc": rc}
            )

    def test_n54_limited_action_names_the_suspended_device(self):
        meter = b"\x00\xdb\x12\x34\x56\x78\x90\xb1"
        _kind, data = alerts.n54(EUI, 0x8F20, {"eui": meter})
        self.assertEqual(data["payload"], {"DeviceIDToSuspend": "00-DB-12-34-56-78-90-B1"})
        self.assertEqual(data["rc"], "E59")
        _kind, data = alerts.n54(EUI, 0x8F20, {"eui": None})
        self.assertNotIn("payload", data)

    def test_n54_refuses_codes_outside_the_range(self):
        for code in (0x8F1F, 0x8F2E):
            with self.assertRaises(ValueError):
                alerts.n54(EUI, code)

    def test_n64_carries_what_table_42_allows(self):
        kind, data = alerts.n64(EUI, "2.1.0")
        self.assertEqual(kind, "N64")
        self.assertEqual((data["rc"],), dcc_tables.allowed_response("N64"))
        self.assertEqual(data, {"DeviceID": "00-DB-12-34-56-78-90-A2", "FirmwareVersion": "2.1.0", "rc": "I0"})
        for bad in ("", "123456789", None):
            with self.assertRaises(ValueError):
                alerts.n64(EUI, bad)

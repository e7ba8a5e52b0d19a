import unittest

from agent import alerts, codes

EUI = b"\x00\xdb\x12\x34\x56\x78\x90\xa2"
I0_ALERTS = (0x8F21, 0x8F23, 0x8F25, 0x8F26, 0x8F27, 0x8F28, 0x8F2A)
E59_ALERTS = (0x8F20, 0x8F22, 0x8F24, 0x8F29, 0x8F2B, 0x8F2C, 0x8F2D)
# The DCC's tables these codes come from are host_tools.duis.dcc_tables: tests/host/test_dcc_tables.py
# checks that the board's codes agree with them.


class GbcsAlerts(unittest.TestCase):
    def test_alert_constants_are_the_fourteen_codes(self):
        names = [n for n in dir(codes) if n.startswith("ALERT_")]
        self.assertEqual(len(names), 14)
        self.assertEqual(sorted(getattr(codes, n) for n in names), sorted(I0_ALERTS + E59_ALERTS))
        self.assertEqual(codes.ALERT_LIMITED_ACTION, 0x8F20)
        self.assertEqual(codes.ALERT_CONFIG_CHANGED, 0x8F2A)
        self.assertEqual(codes.ALERT_NO_CAPACITY, 0x8F2D)

    def test_board_rc_follows_table_42(self):
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


class AlertEvents(unittest.TestCase):
    def test_n54_carries_the_code_in_hex_and_its_table_42_rc(self):
        for code in I0_ALERTS + E59_ALERTS:
            kind, data = alerts.n54(EUI, code)
            self.assertEqual(kind, "N54")
            self.assertEqual(
                data,
                {
                    "CHFDeviceID": "00-DB-12-34-56-78-90-A2",
                    "DeviceAlertCode": "{:04X}".format(code),
                    "rc": "I0" if code in I0_ALERTS else "E59",
                },
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
        self.assertEqual(data, {"DeviceID": "00-DB-12-34-56-78-90-A2", "FirmwareVersion": "2.1.0", "rc": "I0"})
        for bad in ("", "123456789", None):
            with self.assertRaises(ValueError):
                alerts.n64(EUI, bad)

# The simulated HAN (hal/sim/han.py) around a hub (agent/han.py): the duty-cycle alerts raised by
# what the devices do, each payload checked, on CPython and MicroPython.
import unittest

from tests.kits.hubkit import Rig, config

ESME = "00-00-00-00-00-00-01-01"
GSME = "00-00-00-00-00-00-01-02"
IHD = "00-00-00-00-00-00-01-03"
PPMID = "00-00-00-00-00-00-01-04"
RID = "90-B3-D5-1F-30-01-00-00:00-00-00-00-00-00-01-01:1000"
MINUTE = 60000
# the DBCH04 example on page 30 only (870.45 / 870.65 MHz): the duty-cycle states one after the
# other below a 2.5 % regulated limit
PAGE_30 = {"LowerBandSubGHzChannels0To26": [], "LowerBandSubGHzChannels27To34": [], "UpperBandSubGHzChannels0To26": []}


class HanRig:
    def setUp(self):
        self.rig = Rig()
        rc, _, err = self.rig.call("config.set", config=config(**PAGE_30))
        self.assertEqual(rc, "I0", err)
        self.rig.drain()
        self.seen = []

    def add(self, eui, kind, **extra):
        rc, data, err = self.rig.call("han.add", eui=eui, type=kind, **extra)
        self.assertEqual(rc, "I0", err)
        return data

    def minutes(self, n, until=None):
        """Advance n virtual minutes (a minute at a time; stop once `until` is raised)."""
        for _ in range(n):
            self.assertEqual(self.rig.call("clock.advance", ms=MINUTE)[0], "I0")
            self.take()
            if until is not None and until in [c for c, _ in self.seen]:
                return True
        return False

    def take(self):
        got = self.rig.alerts()
        self.rig.drain()
        self.seen += got
        return got

    def sim(self, eui):
        for d in self.rig.call("han.list")[1]["simulated"]:
            if d["eui"] == eui:
                return d
        raise AssertionError("no simulated device " + eui)

    def row(self, eui):
        for d in self.rig.call("han.list")[1]["devices"]:
            if d["eui"] == eui:
                return d
        return None

    def payloads(self, code):
        return [p for c, p in self.seen if c == code]


class Joining(HanRig, unittest.TestCase):
    def test_devices_join_over_the_radio_and_are_listed(self):
        for eui, kind in ((ESME, "ESME"), (GSME, "GSME"), (IHD, "IHD"), (PPMID, "PPMID")):
            d = self.add(eui, kind)
            self.assertTrue(d["joined"], d)
        self.minutes(11)
        rows = {r["eui"]: r for r in self.rig.call("han.list")[1]["devices"]}
        self.assertEqual(sorted(rows), [ESME, GSME, IHD, PPMID])
        self.assertEqual(rows[GSME]["type"], "GSME")
        for r in rows.values():
            self.assertTrue(r["joined"] and not r["suspended"], r)
            self.assertTrue(r["heard_us"] > 0 and r["last_heard_s"] <= 600, r)
        self.assertTrue(rows[IHD]["airtime_us"] > rows[ESME]["airtime_us"])  # answered requests
        self.assertEqual([c for c, _ in self.seen], [])

    def test_past_capacity_the_device_is_refused_with_8F2D(self):
        capacity = self.rig.call("han.list")[1]["capacity"]
        for i in range(capacity):
            self.assertTrue(self.add("00-00-00-00-00-00-02-%02X" % i, "IHD")["joined"])
        late = "00-00-00-00-00-00-03-00"
        d = self.add(late, "CAD")
        self.assertFalse(d["joined"])
        self.assertEqual(d["refused"], 1)
        self.take()
        self.assertEqual(self.seen, [("8F2D", {"DeviceID": late, "DeviceType": "CAD"})])
        # it asks again later: refused again, reported once
        self.minutes(11)
        self.assertEqual(self.sim(late)["refused"], 2)
        self.assertEqual(len(self.payloads("8F2D")), 1)
        # a place frees: the device joins
        self.assertEqual(self.rig.call("han.remove", eui="00-00-00-00-00-00-02-00")[0], "I0")
        self.minutes(11)
        self.assertTrue(self.sim(late)["joined"])
        self.assertEqual(len(self.rig.call("han.list")[1]["devices"]), capacity)

    def test_a_sleepy_gsme_gets_what_waits_for_it_when_it_polls(self):
        self.add(GSME, "GSME", period_s=600)
        rc, data, err = self.rig.call("han.push", eui=GSME, len=60)
        self.assertEqual((rc, data["outcome"]), ("I0", "held"), err)
        self.assertEqual(self.row(GSME)["held"], 1)
        self.minutes(11)
        self.assertEqual(self.row(GSME)["held"], 0)
        self.assertTrue(self.sim(GSME)["mac"][0] >= 3)  # polls, readings and its ACK

    def test_mac_statistics_are_reported_with_failures_and_retries(self):
        self.add(ESME, "ESME", period_s=60)
        self.rig.call("han.script", eui=ESME, behaviour="lossy", loss=30)
        self.minutes(61)
        mac = self.row(ESME)["mac"]  # unicast total, failures, retries, period in minutes
        self.assertIsNotNone(mac)
        self.assertEqual(mac[3], 60)
        self.assertTrue(mac[0] >= 60 and mac[2] > 0, mac)
        # what the device counted is what the hub was told (its next period has begun since)
        self.assertEqual(self.sim(ESME)["reports"], 1)

    def test_the_table_survives_a_reboot_and_a_silent_gsme_is_seen_to_be(self):
        self.add(ESME, "ESME")
        self.add(GSME, "GSME", period_s=60)
        self.rig.boot()  # the hub reboots; the devices stay on the medium
        self.assertIsNone(self.rig.hub.han)
        self.minutes(2)
        rows = {r["eui"]: r for r in self.rig.call("han.list")[1]["devices"]}
        self.assertEqual(sorted(rows), [ESME, GSME])
        self.assertTrue(rows[GSME]["last_heard_s"] < 60, rows)
        self.rig.call("han.script", eui=GSME, behaviour="silent")
        self.minutes(10)
        self.assertTrue(self.row(GSME)["last_heard_s"] >= 9 * 60, self.row(GSME))
        self.assertTrue(self.row(GSME)["joined"])

    def test_a_noisy_channel_moves_the_hub_and_the_devices_follow(self):
        for eui, kind in ((ESME, "ESME"), (GSME, "GSME"), (IHD, "IHD")):
            self.add(eui, kind, period_s=60)
        before = self.rig.call("channel")[1]
        rc, data, err = self.rig.call("han.noise", page=before["page"], channel=before["channel"], dbm=-60)
        self.assertEqual(rc, "I0", err)
        self.assertEqual(data["interference"], [[before["page"], before["channel"], -60]])
        self.assertTrue(self.minutes(30, until="8F26"))
        moved = self.payloads("8F26")[-1]
        self.assertNotEqual((moved["page"], moved["channel"]), (before["page"], before["channel"]))
        self.assertIn(moved["trigger"], ("CHDetectedMessageFailureProblems", "CHDetectedMessageRetryProblems"))
        self.minutes(15)
        for eui in (ESME, GSME, IHD):
            d = self.sim(eui)
            self.assertTrue(d["joined"], d)
            self.assertEqual(d["channel"], [moved["page"], moved["channel"]], d)
        self.assertEqual(self.rig.call("han.noise", page=before["page"], channel=before["channel"])[0], "I0")


class DutyCycleOnDevices(HanRig, unittest.TestCase):
    def test_every_duty_cycle_alert_from_device_behaviour(self):
        for eui, kind in ((ESME, "ESME"), (GSME, "GSME"), (IHD, "IHD"), (PPMID, "PPMID")):
            self.add(eui, kind)
        # an IHD floods the hub with requests: Limited suspends it, by its EUI
        self.rig.call("han.script", eui=IHD, behaviour="flood")
        self.assertTrue(self.minutes(30, until="8F20"))
        self.assertEqual(self.payloads("8F20"), [{"DeviceIDToSuspend": IHD}])
        self.minutes(2)
        self.assertTrue(self.row(IHD)["suspended"])
        self.assertFalse(self.row(ESME)["suspended"])
        self.assertTrue(self.sim(IHD)["suspended_s"] > 0 and self.sim(IHD)["held"] > 0)
        # a PPMID floods as well: Critical suspends everyone by broadcast
        self.rig.call("han.script", eui=PPMID, behaviour="flood")
        self.assertTrue(self.minutes(30, until="8F22"))
        self.minutes(1)
        for eui in (ESME, IHD, PPMID):
            self.assertTrue(self.row(eui)["suspended"], eui)
            self.assertTrue(self.sim(eui)["suspended_s"] > 0, eui)
        self.rig.call("han.script", eui=IHD, behaviour="normal")
        self.rig.call("han.script", eui=PPMID, behaviour="normal")
        # essential commands to the ESME fill the hour to the regulated limit
        n = 0
        while self.rig.hub.duty.state != "regulated":
            rc, data, err = self.rig.call("han.push", eui=ESME, len=100, essential=True)
            self.assertEqual((rc, data["outcome"]), ("I0", "sent"), err)
            n += 1
            self.assertTrue(n < 5000)
        self.take()
        self.assertIn("8F24", [c for c, _ in self.seen])
        # a DCC command now cannot go: discarded with its RequestID and CRA flag
        rc, data, err = self.rig.call("han.push", eui=ESME, len=40, request_id=RID, cra="Command")
        self.assertEqual(data["outcome"], "discarded")
        # a tariff push (no RequestID) can wait: held
        self.assertEqual(self.rig.call("han.push", eui=ESME, len=40)[1]["outcome"], "held")
        self.take()
        self.assertEqual(self.payloads("8F2C"), [{"request_id": RID, "cra": "Command"}])
        # usage falls as the hour passes: 8F25, 8F23, 8F21 in that order, and devices released
        self.assertTrue(self.minutes(90, until="8F21"))
        codes = [c for c, _ in self.seen]
        falls = [c for c in codes if c in ("8F25", "8F23", "8F21")]
        self.assertEqual(falls[-3:], ["8F25", "8F23", "8F21"], codes)
        self.minutes(11)
        for eui in (ESME, IHD, PPMID):
            self.assertFalse(self.row(eui)["suspended"], eui)
            self.assertEqual(self.sim(eui)["suspended_s"], 0, eui)
        self.assertEqual(self.row(ESME)["held"], 0)  # the push that could wait went out
        self.assertTrue(self.sim(IHD)["asked_status"] > 0)  # GetSuspendZCLMessagesStatus


class AgilityByDevices(HanRig, unittest.TestCase):
    # frequency agility (agent/agility.py) driven by the simulated devices on the medium: the
    # GSME's silence, a non-GSME device's MAC statistics, the GSME reading the flags it is sent

    def advance(self, minutes, step=10):
        for _ in range(minutes // step):
            self.assertEqual(self.rig.call("clock.advance", ms=step * MINUTE)[0], "I0")
            self.take()

    def scans(self):
        return [(p["status"], p["trigger"]) for p in self.payloads("8F28")]

    def test_a_gsme_gone_silent_is_searched_for_three_times_then_8F29(self):
        self.add(ESME, "ESME")
        self.add(GSME, "GSME", period_s=60)
        self.minutes(3)
        self.assertEqual(self.payloads("8F29"), [])
        self.rig.call("han.script", eui=GSME, behaviour="silent")
        self.assertTrue(self.minutes(60, until="8F29"))
        self.assertEqual(len(self.payloads("8F29")), 1)
        curfew = [s for s in self.scans() if s[1] == "GSMEMissedItsCurfew"]
        self.assertEqual(len(curfew), 3, self.scans())
        # heard again: the search is over, and it may start again after another silence
        self.rig.call("han.script", eui=GSME, behaviour="normal")
        self.minutes(5)
        self.assertTrue(self.row(GSME)["last_heard_s"] < 300, self.row(GSME))

    def test_a_configuration_forbidding_the_gsmes_channel_moves_it_with_the_gsme(self):
        self.add(ESME, "ESME", period_s=60)
        self.add(GSME, "GSME", period_s=60)
        self.minutes(3)
        here = self.rig.call("channel")[1]
        self.assertEqual(here["page"], 30)
        allowed = [40, 41]  # page 30 without the operating channel (a used page takes two or more)
        self.assertNotIn(here["channel"], allowed)
        rc, _, err = self.rig.call("config.set", config=config(LowerBandSubGHzChannels35To61=allowed, **PAGE_30))
        self.assertEqual(rc, "I0", err)
        self.take()
        (changed,) = self.payloads("8F2A")
        self.assertEqual(changed["LowerBandSubGHzChannels35To61"], allowed)
        self.assertEqual(self.scans(), [("ScanRequestAccepted", "SMHANFormation")])
        # the CHF sequence with the GSME: it reads EnergyScanPending, then ChannelChangePending
        # and ChannelChange when it polls; then the hub moves, and every device follows
        self.assertTrue(self.minutes(10, until="8F26"))
        moved = self.payloads("8F26")[-1]
        self.assertEqual((moved["page"], moved["trigger"]), (30, "SMHANFormation"))
        self.assertIn(moved["channel"], allowed)
        self.assertTrue(self.sim(GSME)["attrs"], self.sim(GSME))  # what it read
        self.minutes(5)
        for eui in (ESME, GSME):
            self.assertEqual(self.sim(eui)["channel"], [30, moved["channel"]], self.sim(eui))

    def test_a_lossy_esme_reporting_poor_comms_asks_for_a_scan(self):
        rc, _, err = self.rig.call(
            "config.set",
            config=config(
                NonGSMEPoorCommsMeasurementPeriods=50, NonGSMEPoorCommsPercentageThreshold="20.00", **PAGE_30
            ),
        )
        self.assertEqual(rc, "I0", err)
        self.add(ESME, "ESME", period_s=60)
        self.rig.call("han.script", eui=ESME, behaviour="lossy", loss=60)
        for _ in range(8):  # MAC statistics every hour: 50 periods
            self.advance(7 * 60)
            if any(t == "SubGHzNon-GSMEDeviceRequest" for _, t in self.scans()):
                break
        self.assertIn(("ScanRequestAccepted", "SubGHzNon-GSMEDeviceRequest"), self.scans(), self.scans())
        # no channel is quieter than the operating one (nothing jams it): not changed (8F2B)
        self.advance(10)
        codes = [c for c, _ in self.seen]
        self.assertIn("8F27", codes)
        self.assertIn("8F2B", codes[codes.index("8F27") :], codes)


class NoHan(unittest.TestCase):
    def test_a_hub_without_devices_does_not_load_the_han(self):
        rig = Rig()
        rig.call("config.set", config=config())
        rig.call("send", count=10, len=50)
        rig.call("clock.advance", ms=MINUTE)
        self.assertIsNone(rig.hub.han)

    def test_bad_arguments_get_E49(self):
        rig = Rig()
        rig.call("config.set", config=config())
        self.assertEqual(rig.call("han.add", eui="nope", type="ESME")[0], "E49")
        self.assertEqual(rig.call("han.add", eui=ESME, type="TOASTER")[0], "E49")
        self.assertEqual(rig.call("han.push", eui=ESME)[0], "E49")  # not joined
        self.assertEqual(rig.call("han.script", eui=ESME, behaviour="flood")[0], "E49")

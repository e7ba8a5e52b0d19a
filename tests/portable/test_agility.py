# Frequency agility with the gas meter (agent/agility.py), one scenario per scan trigger and per
# assessment outcome that 8F28 can carry, the channel change sequence with a GSME that reads its
# flags and with one that does not, the lost-GSME search (8F29) and 8F2B; each alert as the hub
# sends it upward (N54 payloads through the outbox). The HAN's inputs are the agility's methods,
# called here as the HAN side calls them.
import unittest

from agent import agility, agility_scan
from hal.phy import PLAN
from tests.kits.hubkit import Rig, config

GSME = b"\x00\x0d\x6f\x00\x00\x00\x00\x47"
IHD = b"\x00\x0d\x6f\x00\x00\x00\x00\x11"
WAKE_S = 60
MIN_MS = 60000


def outcome(status, trigger):
    return ("8F28", {"status": status, "trigger": trigger})


class Scenario(unittest.TestCase):
    changes = {}

    def setUp(self):
        self.rig = Rig(seed=3)
        rc, _d, err = self.rig.call("config.set", config=config(**self.changes))
        self.assertEqual(rc, "I0", err)
        self.rig.drain()
        self.ag = self.rig.hub.agility

    def now(self):
        return self.rig.clock.monotonic_ms()

    def feed(self, alerts):
        self.rig.hub.raise_alerts(alerts)

    def advance(self, ms):
        self.rig.clock.advance_ms(ms)
        self.rig.hub.tick()

    def take(self):
        got = self.rig.alerts()
        self.rig.drain()
        return got

    def noisy(self, dbm=-70):
        page, ch = self.ag.operating
        self.rig.medium.set_noise(page, ch, dbm)
        return page, ch


class Shared(unittest.TestCase):
    def test_the_two_modules_agree_on_their_constants(self):
        for name in (
            "IDLE",
            "SCAN_PENDING",
            "CHANGE_PENDING",
            "HHT",
            "JOINING",
            "GSME_OTA",
            "LOST_SEARCHES",
        ):
            self.assertEqual(getattr(agility, name), getattr(agility_scan, name), name)

    def test_the_rare_inputs_are_methods_and_others_are_not(self):
        rig = Rig(seed=3)
        ag = rig.hub.agility
        self.assertFalse(hasattr(ag, "_private"))
        with self.assertRaises(AttributeError):
            ag.no_such_input()

    def test_the_rare_paths_are_let_go_after_use(self):
        import sys

        from hal.compat import unload

        unload("agent.agility_scan")  # this module's import of it
        rig = Rig(seed=3)
        rig.call("config.set", config=config())
        rig.call("scan")
        self.assertEqual(len(rig.alerts()), 6)  # 8F2A, 8F27 8F26, 8F28 8F27 8F2B
        self.assertFalse("agent.agility_scan" in sys.modules)


class Triggers(Scenario):
    def test_sm_han_formation_the_first_selection(self):
        rig = Rig(seed=3)
        rig.call("config.set", config=config())
        got = rig.alerts()[1:]
        op = rig.hub.agility.operating
        self.assertEqual(
            got, [("8F27", None), ("8F26", {"page": op[0], "channel": op[1], "trigger": "SMHANFormation"})]
        )

    def test_sm_han_formation_a_configuration_forbids_the_channel_the_gsme_is_on(self):
        self.ag.gsme_joined(GSME, WAKE_S, self.now())
        page, ch = self.ag.operating
        # the same configuration without the operating channel's page
        field = {28: "LowerBandSubGHzChannels0To26", 29: "LowerBandSubGHzChannels27To34"}.get(page)
        field = field or "LowerBandSubGHzChannels35To61"
        self.rig.call("config.set", config=config(**{field: []}))
        got = self.take()
        self.assertEqual(got[0][0], "8F2A")
        self.assertEqual(got[1:], [outcome("ScanRequestAccepted", "SMHANFormation")])
        self.assertEqual(self.ag.operating, (page, ch))  # 1-2: the GSME is told first
        self.feed(self.ag.gsme_read("EnergyScanPending", self.now()))
        self.assertEqual(self.take(), [("8F27", None)])
        target = self.ag.seq[1]
        self.assertNotEqual(target[0], page)
        self.feed(self.ag.gsme_read("ChannelChange", self.now()))
        self.assertEqual(
            self.take(), [("8F26", {"page": target[0], "channel": target[1], "trigger": "SMHANFormation"})]
        )
        self.assertEqual(self.ag.changes_left(), 5)  # a forced move is not counted

    def test_remote_party_command(self):
        self.assertEqual(self.rig.call("scan")[0], "I0")
        self.assertEqual(self.take()[:2], [outcome("ScanRequestAccepted", "RemotePartyCommand"), ("8F27", None)])

    def test_gsme_request(self):
        self.feed(self.ag.gsme_requests_scan(self.now()))
        self.assertEqual(self.take(), [outcome("ScanRequestAccepted", "GSMERequest"), ("8F27", None), ("8F2B", None)])

    def test_ch_detected_message_failure_problems(self):
        for i in range(10):
            self.ag.note_delivery(i % 2 == 0)  # half of them fail: 50 % >= 40.00 %
        # judged when LocalCHNoiseMeasurementPeriod (100 s) ends, not before
        self.advance(100 * 1000 - 1)
        self.assertEqual(self.take(), [])
        self.advance(1)
        self.assertEqual(
            self.take()[:2], [outcome("ScanRequestAccepted", "CHDetectedMessageFailureProblems"), ("8F27", None)]
        )

    def test_ch_detected_message_retry_problems(self):
        for _ in range(10):
            self.ag.note_delivery(True, retries=1)  # every one retried: 100 % >= 30.00 %
        self.advance(100 * 1000)
        self.assertEqual(
            self.take()[:2], [outcome("ScanRequestAccepted", "CHDetectedMessageRetryProblems"), ("8F27", None)]
        )

    def test_below_the_local_percentages_nothing_happens(self):
        for i in range(10):
            self.ag.note_delivery(i != 0, retries=1 if i < 2 else 0)  # 10 % failed, 20 % retried
        self.advance(100 * 1000)
        self.assertEqual(self.take(), [])

    def test_sub_ghz_non_gsme_device_request(self):
        # 50 % of an IHD's unicasts failed: under 60.00 %, nothing; then 70 %, over 130 periods
        self.assertEqual(self.ag.poor_comms(IHD, 100, 50, 0, 130, self.now()), [])
        self.assertEqual(self.ag.poor_comms(IHD, 100, 70, 0, 65, self.now()), [])  # 65 of 130 periods
        got = self.ag.poor_comms(IHD, 100, 70, 0, 65, self.now())
        self.feed(got)
        self.assertEqual(
            self.take()[:2], [outcome("ScanRequestAccepted", "SubGHzNon-GSMEDeviceRequest"), ("8F27", None)]
        )
        # the GSME's own reports are not a non-GSME device's
        self.ag.gsme_joined(GSME, WAKE_S, self.now())
        self.assertEqual(self.ag.poor_comms(GSME, 100, 100, 0, 200, self.now()), [])

    def test_gsme_missed_its_curfew_then_three_failed_searches(self):
        self.ag.gsme_joined(GSME, WAKE_S, self.now())
        # GSMECurfew 7: seven wake periods without a word
        self.advance(7 * WAKE_S * 1000 - 1)
        self.assertEqual(self.take(), [])
        self.advance(1)
        got = self.take()
        self.assertEqual(got[0], outcome("ScanRequestAccepted", "GSMEMissedItsCurfew"))
        codes = [c for c, _ in got]
        for _ in range(4 * 7):
            self.advance(WAKE_S * 1000)
            codes += [c for c, _ in self.take()]
        # three searches, one curfew each, all unheard: 8F29 once, and no fourth search
        self.assertEqual(codes.count("8F29"), 1)
        self.assertEqual(codes.count("8F28"), 3)
        self.assertEqual(self.ag.gsme[3], 3)  # failed searches
        # heard again: a new absence starts the searches again
        self.ag.gsme_heard(self.now())
        self.advance(7 * WAKE_S * 1000)
        self.assertEqual(self.take()[0], outcome("ScanRequestAccepted", "GSMEMissedItsCurfew"))

    def test_gsme_heard_in_time_is_not_searched_for(self):
        self.ag.gsme_joined(GSME, WAKE_S, self.now())
        for _ in range(30):
            self.advance(WAKE_S * 1000)
            self.ag.gsme_heard(self.now())
        self.assertEqual(self.take(), [])

    def test_gsme_missing_for_the_last_day(self):
        self.ag.gsme_joined(GSME, WAKE_S, self.now())
        triggers = []
        for _ in range(24 * 6):
            self.advance(10 * MIN_MS)
            triggers += [p["trigger"] for c, p in self.take() if c == "8F28"]
        self.assertEqual(triggers[-1], "GSMEMissingForTheLastDay")
        self.assertEqual(triggers.count("GSMEMissingForTheLastDay"), 1)
        # once per absence
        for _ in range(12):
            self.advance(10 * MIN_MS)
            self.assertNotIn("GSMEMissingForTheLastDay", [p["trigger"] for c, p in self.take() if c == "8F28"])


class Outcomes(Scenario):
    def test_hht_connected(self):
        self.ag.set_busy(agility.HHT, True)
        self.rig.call("scan")
        self.assertEqual(self.take(), [outcome("HHTConnected", "RemotePartyCommand")])

    def test_duty_cycle_usage_is_too_high(self):
        self.rig.call("send", count=500, len=125, device="00-00-00-00-00-00-00-01")
        self.assertNotEqual(self.rig.hub.duty.state, "normal")
        self.rig.drain()
        self.feed(self.ag.gsme_requests_scan(self.now()))
        self.assertEqual(self.take(), [outcome("DutyCycleUsageIsTooHigh", "GSMERequest")])

    def test_joining_is_currently_permitted(self):
        self.ag.set_busy(agility.JOINING, True)
        self.feed(self.ag.gsme_requests_scan(self.now()))
        self.assertEqual(self.take(), [outcome("JoiningIsCurrentlyPermitted", "GSMERequest")])

    def test_gsme_ota_distribution_underway(self):
        self.ag.set_busy(agility.GSME_OTA, True)
        self.rig.call("scan")
        self.assertEqual(self.take(), [outcome("GSMEOTADistributionUnderway", "RemotePartyCommand")])

    def test_too_many_commands_today(self):
        for _ in range(3):
            self.rig.call("scan")
            self.assertEqual(self.take()[0], outcome("ScanRequestAccepted", "RemotePartyCommand"))
        self.rig.call("scan")
        self.assertEqual(self.take(), [outcome("TooManyCommandsToday", "RemotePartyCommand")])
        # a day later the DCC may ask again
        self.rig.clock.advance_ms(24 * 3600 * 1000)
        self.rig.call("scan")
        self.assertEqual(self.take()[0], outcome("ScanRequestAccepted", "RemotePartyCommand"))

    def test_too_many_scans_today(self):
        # (the configuration's own selection is not counted)
        for _ in range(12):
            self.feed(self.ag.gsme_requests_scan(self.now()))
            self.assertEqual(self.take()[0], outcome("ScanRequestAccepted", "GSMERequest"))
        self.feed(self.ag.gsme_requests_scan(self.now()))
        self.assertEqual(self.take(), [outcome("TooManyScansToday", "GSMERequest")])
        # raised once: the same refusal is not repeated
        self.feed(self.ag.gsme_requests_scan(self.now()))
        self.assertEqual(self.take(), [])

    def test_too_many_scans_this_week(self):
        rig = self.rig
        rig.call("config.set", config=config(MaximumSubGHzChannelChangesPerWeek=1))
        rig.drain()
        self.noisy()
        self.advance(100 * 1000)
        self.assertEqual([c for c, _ in self.take()], ["8F28", "8F27", "8F26"])
        self.noisy()
        self.advance(100 * 1000)
        self.assertEqual(self.take(), [outcome("TooManyScansThisWeek", "CHDetectedMessageRetryProblems")])
        self.advance(100 * 1000)
        self.assertEqual(self.take(), [])  # not again every period


class NotChanged(Scenario):
    changes = {"ChannelNoisierThreshold": 2, "ChannelQuieterThreshold": 7}

    def test_no_channel_quieter_by_the_quieter_threshold_raises_8f2b(self):
        op = self.noisy(-96)  # 4 dB over the others: noisier (2), but not 7 dB quieter elsewhere
        self.advance(100 * 1000)
        got = self.take()
        self.assertEqual(
            got, [outcome("ScanRequestAccepted", "CHDetectedMessageRetryProblems"), ("8F27", None), ("8F2B", None)]
        )
        self.assertEqual(self.ag.operating, op)
        self.advance(100 * 1000)
        self.assertEqual(self.take(), [])  # one scan for the episode


class ChannelChangeSequence(Scenario):
    def setUp(self):
        Scenario.setUp(self)
        self.ag.gsme_joined(GSME, WAKE_S, self.now())
        self.old = self.noisy()

    def flags(self):
        a = self.ag.attributes()
        return a["EnergyScanPending"], a["ChannelChangePending"], a["ChannelChange"]

    def test_the_gsme_reads_each_flag(self):
        self.feed(self.ag.gsme_requests_scan(self.now()))
        self.assertEqual(self.take(), [outcome("ScanRequestAccepted", "GSMERequest")])
        self.assertEqual(self.flags(), (True, False, None))  # 1. EnergyScanPending
        self.feed(self.ag.gsme_read("EnergyScanPending", self.now()))  # 2. read: 3. scan
        self.assertEqual(self.take(), [("8F27", None)])
        target = self.ag.seq[1]
        self.assertNotEqual(target, self.old)
        mask = (target[0] << 27) | (1 << (target[1] - PLAN[target[0]][0]))
        self.assertEqual(self.flags(), (False, True, mask))  # 4. ChannelChangePending, ChannelChange
        self.assertEqual(self.ag.operating, self.old)
        self.feed(self.ag.gsme_read("ChannelChange", self.now()))  # 5. read: 6. change
        self.assertEqual(self.take(), [("8F26", {"page": target[0], "channel": target[1], "trigger": "GSMERequest"})])
        self.assertEqual((self.ag.operating, self.flags()), (target, (False, False, None)))

    def test_a_gsme_that_reads_nothing_is_waited_for_one_then_two_wake_periods(self):
        self.rig.call("scan")
        self.assertEqual(self.take(), [outcome("ScanRequestAccepted", "RemotePartyCommand")])
        self.advance(WAKE_S * 1000 - 1)
        self.assertEqual(self.take(), [])
        self.advance(1)
        self.assertEqual(self.take(), [("8F27", None)])
        self.advance(2 * WAKE_S * 1000 - 1)
        self.assertEqual(self.take(), [])
        self.advance(1)
        got = self.take()
        self.assertEqual([c for c, _ in got], ["8F26"])
        self.assertEqual(got[0][1]["trigger"], "RemotePartyCommand")
        self.assertNotEqual(self.ag.operating, self.old)

    def test_requests_during_a_change_wait_for_it(self):
        self.rig.call("scan")
        self.take()
        self.feed(self.ag.gsme_requests_scan(self.now()))
        self.assertEqual(self.take(), [])

    def test_the_regulated_limit_follows_the_channel(self):
        from agent.regulatory import regulated_permille

        self.rig.call("scan")
        self.advance(3 * WAKE_S * 1000)
        op = self.ag.operating
        self.assertEqual(self.rig.hub.duty.regulated, regulated_permille(op[0], op[1]))


if __name__ == "__main__":
    unittest.main()

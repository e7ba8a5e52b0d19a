# Boot never depends on the stored configuration: a record that cannot be restored leaves a hub
# that boots, answers requests, transmits nothing (no operating channel: the state before any
# configuration), says why in status ("config_restore") and raises one agent event "restore"
# upward, not one per boot. A configuration set afterwards is restored again at the next boot.
import unittest

from agent.store import encode
from tests.kits.hubkit import Rig, config


def restore_events(rig):
    return [d for _s, kind, d in rig.hub.outbox.pending() if kind == "restore"]


def configured_then(rig, damage):
    # a configured hub whose configuration record is then replaced by `damage` (raw bytes)
    rc = rig.call("config.set", config=config())[0]
    assert rc == "I0", rc
    assert rig.call("status")[1]["channel"] is not None
    rig.drain()
    rig.hub.hal.storage.write("subghz", damage)
    rig.boot()


class FailedRestore(unittest.TestCase):
    def check_safe(self, rig, word):
        rc, st, _ = rig.call("status")
        self.assertEqual(rc, "I0")
        self.assertFalse(st["configured"])
        self.assertIsNone(st["masks"])
        self.assertIsNone(st["channel"])  # no operating channel
        self.assertIn(word, st["config_restore"])
        self.assertEqual(rig.call("config.get")[:2], ("I0", None))
        self.assertEqual(rig.call("channel")[:2], ("I0", None))
        sent = rig.call("send", count=5, len=20)[1]
        self.assertEqual((sent["sent"], sent["refused"], sent["airtime_us"]), (0, 5, 0))
        self.assertEqual(rig.hub.radio.frames_sent, 0)  # not a frame on the air since the boot
        self.assertEqual(rig.alerts(), [])  # no channel alert either: nothing was configured
        return st

    def test_a_damaged_record_boots_unconfigured_and_says_why_once(self):
        rig = Rig()
        body = bytearray(encode({"m": [0xE0000006, 0xE8000006, 0xF0000006, 0xF8000006]}))
        body[3] ^= 0x40  # fails its CRC
        configured_then(rig, bytes(body))
        st = self.check_safe(rig, "damaged")
        self.assertEqual(st["store_corrupt"], 1)
        events = restore_events(rig)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["item"], "SubGHzConfiguration")
        self.assertIn("damaged", events[0]["why"])
        self.assertEqual(events[0]["DeviceID"], st["eui"])
        for _ in range(2):  # the same failure at the next boots: said in status, not raised again
            rig.boot()
            self.check_safe(rig, "damaged")
            self.assertEqual(len(restore_events(rig)), 1)

    def test_a_record_that_is_not_a_configuration_is_not_applied(self):
        for bad in (
            {"m": [0xE0000002, 0xE8000006, 0xF0000006, 0xF8000006], "p": {}, "seq": 1},  # one channel
            {"m": [0xE8000006, 0xE0000006, 0xF0000006, 0xF8000006], "p": {}, "seq": 1},  # pages swapped
            {"m": [1, 2], "seq": 1},
            [1, 2, 3],
            {"cfg": config(GSMECurfew=1), "seq": 1},  # an earlier version's form, no longer valid
        ):
            rig = Rig()
            configured_then(rig, encode(bad))
            self.check_safe(rig, "not usable")
            self.assertEqual(len(restore_events(rig)), 1, bad)

    def test_parameters_the_hub_computes_with_must_be_there(self):
        rig = Rig()
        rig.call("config.set", config=config())
        rec = rig.hub.store.get("subghz")
        params = dict(rec["p"])
        params["LocalCHNoiseMeasurementPeriodX"] = params.pop("LocalCHNoiseMeasurementPeriod")
        configured_then(rig, encode({"m": rec["m"], "p": params, "seq": rec["seq"]}))
        self.check_safe(rig, "LocalCHNoiseMeasurementPeriod")

    def test_a_configuration_set_after_a_failure_is_in_force_and_restored(self):
        rig = Rig()
        configured_then(rig, b"\x00\x01\x02")
        self.check_safe(rig, "damaged")
        rc, _d, err = rig.call("config.set", config=config())
        self.assertEqual(rc, "I0", err)
        st = rig.call("status")[1]
        self.assertTrue(st["configured"])
        self.assertIsNone(st["config_restore"])
        rig.boot()
        st = rig.call("status")[1]
        self.assertTrue(st["configured"])
        self.assertIsNone(st["config_restore"])
        self.assertIsNotNone(st["channel"])
        self.assertEqual(rig.call("config.get")[1], config())
        self.assertEqual(rig.call("send", count=1, len=20)[1]["sent"], 1)

    def test_running_out_of_memory_while_restoring_is_a_failure_like_any_other(self):
        # the check of the stored form is what runs out (as on a board whose heap is too small)
        from agent import hub as hubmod

        rig = Rig()
        rig.call("config.set", config=config())
        rig.drain()
        real = hubmod.stored_config

        def starved(rec):
            raise MemoryError("memory allocation failed, allocating 640 bytes")

        hubmod.stored_config = starved
        try:
            rig.boot()
        finally:
            hubmod.stored_config = real
        self.check_safe(rig, "out of memory")
        self.assertEqual(len(restore_events(rig)), 1)
        rig.boot()  # memory enough again: restored from the record, which was kept
        st = rig.call("status")[1]
        self.assertTrue(st["configured"])
        self.assertIsNone(st["config_restore"])
        self.assertEqual(rig.call("config.get")[1], config())


if __name__ == "__main__":
    unittest.main()

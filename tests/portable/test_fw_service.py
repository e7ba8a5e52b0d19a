# The firmware service (agent/fw_service.py) on a simulated hub: staging and resume, refusals,
# activation now / later / cancelled, trial confirm and N64, revert, the bootloader's code it
# uses, and a power cut at every write of a whole update.
import hashlib
import sys
import unittest

from agent import boot, fw_common
from agent.fw_activate import parse_utc
from hal.contracts import PowerCut
from tests.kits.fwkit import OTHER_D, ROOT, Device, Image, sign, slot_files


def ok(test, r):
    test.assertEqual(r[0], "I0", r[2])
    return r[1]


class TestStaging(unittest.TestCase):
    def test_send_unpacks_into_the_inactive_slot(self):
        dev = Device()
        img = Image("2.0")
        data = ok(self, dev.send(img))
        self.assertEqual((data["hash"], data["version"], data["slot"]), (img.hash, "2.0", "b"))
        self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))
        st = ok(self, dev.call("fw.status"))
        self.assertEqual(st["slots"]["b"]["version"], "2.0")
        self.assertIsNone(st["staging"])
        self.assertFalse(dev.flash.exists("/slots/stage.img"))
        self.assertEqual(dev.call("hello")[1]["version"], "1.0")  # nothing activated

    def test_resume_after_link_loss_continues_at_the_offset(self):
        dev = Device()
        img = Image("2.0", size=2000)
        dev.send(img, chunk=500, stop_at=2500)
        r = ok(self, dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig))
        self.assertEqual(r["offset"], 2500)
        self.assertFalse(r["ready"])
        ok(self, dev.send(img, chunk=700))
        self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))

    def test_resume_after_reboot_rehashes_the_prefix(self):
        dev = Device()
        img = Image("2.0", size=2000)
        dev.send(img, chunk=333, stop_at=3000)
        dev.boot()
        st = ok(self, dev.call("fw.status"))
        self.assertEqual(st["staging"]["staged"], 3330)
        # a chunk at the persisted offset is taken even before a new begin
        off = 3330
        r = ok(self, dev.call("fw.chunk", offset=off, data=img.content[off : off + 100]))
        self.assertEqual(r["offset"], 3430)
        ok(self, dev.send(img))
        self.assertEqual(slot_files(dev.flash, "b"), dict(img.files))

    def test_begin_again_when_ready_says_so(self):
        dev = Device()
        img = Image("2.0")
        ok(self, dev.send(img))
        r = ok(self, dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig))
        self.assertTrue(r["ready"])
        self.assertEqual(r["slot"], "b")
        first = dev.first
        r = ok(self, dev.call("fw.begin", hash=first.hash, size=len(first.content), sig=first.sig))
        self.assertTrue(r["running"])

    def test_update_from_a_board_without_slots(self):
        from agent import VERSION

        dev = Device(slots=False)
        self.assertIsNone(dev.slot)  # the bootloader runs the code at the root
        self.assertEqual(dev.call("hello")[1]["version"], VERSION)
        img = Image("2.0")
        self.assertEqual(ok(self, dev.send(img))["slot"], "b")
        ok(self, dev.call("fw.activate", hash=img.hash))
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", True))
        dev.run_healthy()
        self.assertEqual(dev.events("N64")[0][1]["FirmwareVersion"], "2.0")
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", False))

    def test_another_image_replaces_a_partial_one(self):
        dev = Device()
        dev.send(Image("2.0", size=2000), stop_at=1000)
        img = Image("3.0")
        r = ok(self, dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig))
        self.assertEqual(r["offset"], 0)
        self.assertEqual(ok(self, dev.send(img))["version"], "3.0")


class TestRefusals(unittest.TestCase):
    def setUp(self):
        self.dev = Device()
        self.img = Image("2.0", size=1500)

    def begin(self, img=None, **kw):
        img = img or self.img
        args = {"hash": img.hash, "size": len(img.content), "sig": img.sig}
        args.update(kw)
        return self.dev.call("fw.begin", **args)

    def nothing_staged(self):
        st = ok(self, self.dev.call("fw.status"))
        self.assertIsNone(st["slots"]["b"])
        self.assertEqual(boot.read_state(self.dev.flash, ROOT), boot.default_state())

    def test_malformed_begin(self):
        for kw in ({"hash": b"x" * 31}, {"hash": "00" * 32}, {"size": -1}, {"size": True}, {"sig": b""}):
            self.assertEqual(self.begin(**kw)[0], "E49", kw)
        self.assertEqual(self.dev.call("fw.begin")[0], "E49")

    def test_oversized(self):
        r = self.begin(size=self.dev.hub.fw().max_image + 1)
        self.assertEqual(r[0], "E49")
        self.assertIn("too large", r[2])

    def test_bad_signature_is_e100_and_an_incident(self):
        r = self.begin(sig=sign(self.img.hash, OTHER_D))
        self.assertEqual(r[0], "E100")
        self.assertIn("signature", r[2])
        inc = self.dev.events("incident")
        self.assertEqual(len(inc), 1)
        self.assertEqual(inc[0][1]["trigger"], "tampered_image")
        self.nothing_staged()

    def test_bad_signature_keeps_a_staging_in_progress(self):
        self.dev.send(self.img, stop_at=1000)
        self.assertEqual(self.begin(Image("3.0"), sig=self.img.sig)[0], "E100")
        r = ok(self, self.begin())
        self.assertEqual(r["offset"], 1024)

    def test_no_trusted_key(self):
        dev = Device(key=False)
        r = dev.send(self.img)
        self.assertEqual(r[0], "E100")
        self.assertIn("no trusted signing key", r[2])

    def test_chunk_without_begin(self):
        r = self.dev.call("fw.chunk", offset=0, data=b"x")
        self.assertEqual(r[0], "E5")
        self.assertEqual(self.dev.call("fw.end")[0], "E5")

    def test_wrong_offset_and_out_of_order(self):
        ok(self, self.begin())
        c = self.img.content
        ok(self, self.dev.call("fw.chunk", offset=0, data=c[:100]))
        for off in (0, 50, 200):
            r = self.dev.call("fw.chunk", offset=off, data=c[off : off + 100])
            self.assertEqual(r[0], "E49")
            self.assertEqual(r[1], {"offset": 100})
        for bad in (b"", b"x" * 4001, "text"):
            self.assertEqual(self.dev.call("fw.chunk", offset=100, data=bad)[0], "E49")
        ok(self, self.dev.send(self.img))  # still fine after all that

    def test_chunk_past_the_announced_size(self):
        ok(self, self.begin())
        c = self.img.content
        self.dev.send(self.img, chunk=10, stop_at=len(c) - 10)
        st = ok(self, self.dev.call("fw.status"))["staging"]
        r = self.dev.call("fw.chunk", offset=st["staged"], data=c[st["staged"] :] + b"extra")
        self.assertEqual(r[0], "E49")

    def test_truncated_end(self):
        self.dev.send(self.img, stop_at=1000)
        r = self.dev.call("fw.end")
        self.assertEqual(r[0], "E49")
        self.assertIn("truncated", r[2])
        self.nothing_staged()

    def test_tampered_payload(self):
        c = bytearray(self.img.content)
        c[-20] ^= 0x40  # the signed hash no longer matches, nor does the manifest's payload hash
        self.img.content = bytes(c)
        r = self.dev.send(self.img)
        self.assertEqual(r[0], "E100")
        self.assertEqual(len(self.dev.events("incident")), 1)
        self.nothing_staged()
        self.assertIsNone(ok(self, self.dev.call("fw.status"))["staging"])

    def test_a_signed_payload_that_breaks_its_manifest_is_refused_at_the_end(self):
        # signed by the trusted key and its header sound: only fw.end, parsing the staged image
        # into the slot, finds that the payload does not match the manifest's sha256
        c = bytearray(self.img.content)
        c[-20] ^= 0x40  # in the last file's data
        self.img.content = bytes(c)
        self.img.hash = hashlib.sha256(self.img.content).digest()
        self.img.sig = sign(self.img.hash)
        self.assertEqual(self.dev.send(self.img, stop_at=1000)[0], "I0")  # past the header: taken
        r = self.dev.send(self.img)
        self.assertEqual(r[0], "E100")
        self.assertIn("sha256", r[2])
        self.assertEqual(len(self.dev.events("incident")), 1)
        self.nothing_staged()
        self.assertFalse(self.dev.flash.exists("/slots/stage.img"))

    def test_a_staged_file_changed_on_flash_is_to_be_sent_again(self):
        ok(self, self.begin())
        c = self.img.content
        ok(self, self.dev.call("fw.chunk", offset=0, data=c[:2000]))
        ok(self, self.dev.call("fw.chunk", offset=2000, data=c[2000:]))  # all of it, no fw.end yet
        f = self.dev.flash.open("/slots/stage.img", "rb")
        staged = bytearray(f.read())
        f.close()
        staged[100] ^= 0x01  # not what was received (and hashed as it came)
        f = self.dev.flash.open("/slots/stage.img", "wb")
        f.write(staged)
        f.close()
        r = self.dev.call("fw.end")
        self.assertEqual(r[0], "E49")
        self.assertIn("send it again", r[2])
        self.assertEqual(self.dev.events("incident"), [])  # a flash fault, not an attack
        self.nothing_staged()

    def test_tampered_manifest(self):
        other = Image("6.6", size=1500)  # a consistent image, but not the one that was signed
        other.hash, other.sig = self.img.hash, self.img.sig
        r = self.dev.send(other)
        self.assertEqual(r[0], "E100")
        self.assertIn("tampered", r[2])
        self.nothing_staged()

    def test_wrong_board_is_e11(self):
        img = Image("2.0", board="pico_rfm69")
        r = self.dev.send(img)
        self.assertEqual(r[0], "E11")
        self.assertIn("pico_rfm69", r[2])
        self.nothing_staged()

    def test_wrong_announced_size(self):
        r = self.dev.call("fw.begin", hash=self.img.hash, size=len(self.img.content) + 5, sig=self.img.sig)
        ok(self, r)
        r = self.dev.call("fw.chunk", offset=0, data=self.img.content[:200])
        self.assertEqual(r[0], "E49")
        self.assertIn("announced", r[2])

    def test_garbage_is_refused_at_once(self):
        ok(self, self.begin())
        r = self.dev.call("fw.chunk", offset=0, data=b"MZ\x90\x00" * 10)
        self.assertEqual(r[0], "E49")
        self.assertIn("magic", r[2])


class TestActivation(unittest.TestCase):
    def setUp(self):
        self.dev = Device()
        self.img = Image("2.0")
        ok(self, self.dev.send(self.img))

    def activate(self, **kw):
        args = {"hash": self.img.hash, "execution": None}
        args.update(kw)
        return self.dev.call("fw.activate", **args)

    def test_immediate_activation_confirm_and_n64(self):
        dev = self.dev
        r = ok(self, self.activate())
        self.assertEqual((r["slot"], r["version"], r["reboot"]), ("b", "2.0", True))
        self.assertTrue(dev.hub.reboot_requested)
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", True))
        self.assertEqual(dev.call("hello")[1]["version"], "2.0")
        dev.hub.tick()
        self.assertEqual(dev.events("N64"), [])  # not healthy for long enough yet
        self.assertTrue(ok(self, dev.call("fw.status"))["trial"])
        dev.run_healthy()
        n64 = dev.events("N64")
        self.assertEqual(len(n64), 1)
        self.assertEqual(n64[0][1]["FirmwareVersion"], "2.0")
        self.assertEqual(n64[0][1]["DeviceID"], "00-DB-12-34-56-78-90-A2")
        self.assertEqual(n64[0][1]["rc"], "I0")
        st = ok(self, dev.call("fw.status"))
        self.assertEqual((st["slot"], st["trial"], st["boot"]["active"]), ("b", False, "b"))
        self.assertEqual(st["last"]["result"], "activated")
        dev.boot()  # stays on the new version, and reports nothing more
        self.assertEqual((dev.slot, dev.trial), ("b", False))
        self.assertEqual(len(dev.events("N64")), 1)
        # the next image goes into the other slot: a
        nxt = Image("3.0")
        self.assertEqual(ok(self, dev.send(nxt))["slot"], "a")

    def test_unknown_hash_is_e5_and_changes_nothing(self):
        before = dict(self.dev.flash.files())
        r = self.activate(hash=b"\x11" * 32)
        self.assertEqual(r[0], "E5")
        self.assertIn("no staged and verified image", r[2])
        self.assertEqual(r[1], {"outcome": "hashMismatch"})  # GBCS's outcome: the image held is another
        self.assertFalse(self.dev.hub.reboot_requested)
        self.assertEqual(self.dev.flash.files(), before)

    def test_unknown_hash_with_no_image_staged_is_no_image_held(self):
        dev = Device()
        r = dev.call("fw.activate", hash=b"\x11" * 32, execution=None)
        self.assertEqual((r[0], r[1]), ("E5", {"outcome": "noImageHeld"}))

    def test_running_hash_is_e5(self):
        r = self.activate(hash=self.dev.first.hash)
        self.assertEqual(r[0], "E5")

    def test_malformed(self):
        for kw in ({"hash": b"1"}, {"execution": "tomorrow"}, {"execution": 1.5}, {"execution": -1}):
            self.assertEqual(self.activate(**kw)[0], "E49", kw)

    def test_future_dated_survives_a_reboot(self):
        dev = self.dev
        at = dev.clock.utc() + 3600
        r = ok(self, self.activate(execution="2026-01-01T01:00:00Z"))
        self.assertEqual(r["at"], at)
        self.assertFalse(dev.hub.reboot_requested)
        dev.boot()
        self.assertEqual(ok(self, dev.call("fw.status"))["activation"]["state"], "scheduled")
        dev.clock.advance_ms(3599 * 1000)
        dev.hub.tick()
        self.assertFalse(dev.hub.reboot_requested)
        dev.clock.advance_ms(1000)
        dev.hub.tick()
        self.assertTrue(dev.hub.reboot_requested)
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", True))
        dev.run_healthy()
        self.assertEqual(len(dev.events("N64")), 1)

    def test_a_due_activation_cut_short_is_started_again(self):
        n = 1
        while True:
            dev = Device()
            ok(self, dev.send(self.img))
            ok(self, dev.call("fw.activate", hash=self.img.hash, execution=dev.clock.utc() + 60))
            dev.clock.advance_ms(60000)
            dev.flash.cut_at(dev.flash.writes + n)
            try:
                dev.hub.tick()
                cut = False
                dev.flash.cut_at(None)  # the tick got through: no cut later
            except PowerCut:
                cut = True
                dev.boot()
                self.assertEqual(dev.slot, "a")
                dev.hub.tick()
            self.assertTrue(dev.hub.reboot_requested)
            dev.boot()
            self.assertEqual((dev.slot, dev.trial), ("b", True))
            dev.run_healthy()
            self.assertEqual(len(dev.events("N64")), 1)
            self.assertEqual(dev.events("firmware"), [])
            if not cut:
                break
            n += 1
        self.assertGreater(n, 4)

    def test_past_time_is_immediate(self):
        ok(self, self.activate(execution=self.dev.clock.utc() - 10))
        self.assertTrue(self.dev.hub.reboot_requested)

    def test_cancel(self):
        dev = self.dev
        self.assertEqual(dev.call("fw.cancel")[0], "E52")
        ok(self, self.activate(execution=dev.clock.utc() + 60))
        self.assertEqual(dev.call("fw.cancel", hash=b"\x00" * 32)[0], "E52")
        self.assertEqual(ok(self, dev.call("fw.cancel", hash=self.img.hash))["hash"], self.img.hash)
        self.assertEqual(dev.call("fw.cancel")[0], "E52")
        dev.clock.advance_ms(120000)
        dev.hub.tick()
        self.assertFalse(dev.hub.reboot_requested)
        self.assertIsNone(ok(self, dev.call("fw.status"))["activation"])

    def test_refused_while_a_trial_runs(self):
        dev = self.dev
        ok(self, self.activate())
        dev.boot()
        r = dev.call("fw.activate", hash=dev.first.hash)
        self.assertEqual(r[0], "E5")
        self.assertIn("trial", r[2])
        r = dev.send(Image("3.0"))
        self.assertEqual(r[0], "E5")

    def test_a_trial_that_never_confirms_is_reverted(self):
        dev = self.dev
        ok(self, self.activate())
        for _ in range(boot.MAX_TRIES):
            dev.boot()  # crashes, hangs or resets before it runs healthy
            self.assertEqual((dev.slot, dev.trial), ("b", True))
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("a", False))
        self.assertEqual(dev.call("hello")[1]["version"], "1.0")
        self.assertEqual(dev.events("N64"), [])
        ev = dev.events("firmware")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0][1]["result"], "reverted")
        self.assertEqual(ev[0][1]["version"], "2.0")
        self.assertEqual(ev[0][1]["running"], "1.0")
        st = ok(self, dev.call("fw.status"))
        self.assertEqual(st["last"]["result"], "reverted")
        self.assertIn("not confirmed", st["last"]["why"])
        dev.boot()
        self.assertEqual(len(dev.events("firmware")), 1)  # reported once
        # the image is still staged: it may be activated again
        ok(self, self.activate())

    def test_reverted_when_the_trial_slot_is_gone(self):
        dev = self.dev
        ok(self, self.activate())
        dev.flash.remove("/slots/b/" + boot.MANIFEST)
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("a", False))
        self.assertIn("not bootable", dev.events("firmware")[0][1]["why"])


class _OlderBootloader:
    # dbchboot as flashed before the bootloader's loop was split from its choice: the whole of an
    # older agent/boot.py, loaded while the agent runs (an update does not replace it)
    def __init__(self):
        for name in ("SLOTS", "KEY", "MANIFEST", "join", "slot_dir", "other", "read_state", "write_json"):
            setattr(self, name, getattr(boot, name))
        for name in ("write_state", "read_manifest", "running", "start_trial", "confirm"):
            setattr(self, name, getattr(boot, name))


class TestBootCode(unittest.TestCase):
    # The bootloader's code the service uses is always the slot's agent.boot, loaded for the moment.
    def tearDown(self):
        sys.modules.pop("dbchboot", None)

    def test_an_update_under_an_older_bootloader(self):
        sys.modules["dbchboot"] = _OlderBootloader()
        self.assertEqual(fw_common.boot_code().__name__, "agent.boot")
        dev = Device()
        img = Image("2.0")
        ok(self, dev.send(img))
        ok(self, dev.call("fw.activate", hash=img.hash, execution=None))
        dev.boot(reads_min=False)
        dev.run_healthy()
        st = ok(self, dev.call("fw.status"))
        self.assertEqual((st["version"], st["boot"]["active"], st["trial"]), ("2.0", "b", False))
        self.assertEqual((st["sec"], st["min"]), (2000000, 2000000))


class TestUtc(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(parse_utc("1970-01-01T00:00:00Z"), 0)
        self.assertEqual(parse_utc("2026-01-01T00:00:00Z"), 1767225600)
        self.assertEqual(parse_utc("2000-03-01T00:00:00Z"), 951868800)
        self.assertEqual(parse_utc("2024-02-29T12:30:15.25Z"), 1709209815)
        self.assertEqual(parse_utc("2026-01-01T01:00:00+01:00"), 1767225600)
        self.assertEqual(parse_utc("2026-01-01T00:00:00"), 1767225600)
        not_iso = "{!r} is not an ISO 8601 UTC time (YYYY-MM-DDThh:mm:ssZ)"
        for bad, why in (
            ("2026-01-01", not_iso),
            ("2026-01-01T00:00:00+0100", not_iso),
            ("2026-01-01T00:00:00.Z", not_iso),
            ("x" * 20, not_iso),
            ("2026-13-01T00:00:00Z", "{!r} is out of range"),
            ("1969-12-31T23:59:59Z", "{!r} is out of range"),
        ):
            with self.assertRaises(ValueError) as cm:
                parse_utc(bad)
            self.assertEqual(str(cm.exception), why.format(bad))


class TestPowerCuts(unittest.TestCase):
    def check_bootable(self, dev, old, new):
        # whatever slot booted is whole: its files are exactly one image's
        self.assertIn(dev.slot, ("a", "b"))
        m = boot.read_manifest(dev.flash, ROOT, dev.slot)
        self.assertIsNotNone(m)
        img = old if m["version"] == old.version else new
        self.assertEqual(m["version"], img.version)
        self.assertEqual(slot_files(dev.flash, dev.slot), dict(img.files))

    def drive(self, dev, img):
        for _ in range(12):
            st = ok(self, dev.call("fw.status"))
            if st["version"] == img.version and not st["trial"]:
                return
            if st["trial"]:
                dev.run_healthy()
                continue
            ok(self, dev.send(img, chunk=400))
            ok(self, dev.call("fw.activate", hash=img.hash, execution=None))
            dev.boot()
        self.fail("the update did not finish")

    def test_power_cut_at_every_write_of_an_update(self):
        old = Image("1.0")
        new = Image("2.0", size=500)
        n = 1
        cuts = 0
        while True:
            dev = Device(first=old)
            dev.flash.cut_at(dev.flash.writes + n)
            try:
                self.drive(dev, new)
                cut = False
            except PowerCut:
                cut = True
                cuts += 1
                dev.boot()
                self.check_bootable(dev, old, new)
                self.drive(dev, new)
            self.check_bootable(dev, old, new)
            self.assertEqual(dev.call("hello")[1]["version"], "2.0")
            self.assertEqual(dev.state()["active"], "b")
            self.assertGreaterEqual(len(dev.events("N64")), 1)  # at least once
            for _k, ev in dev.events("firmware"):
                # only a cut between fw.act and the boot state: the activation never began
                # (and was never answered I0)
                self.assertEqual((ev["result"], ev["why"]), ("failed", "the trial boot never started"))
            if not cut:
                break
            n += 1
        self.assertGreater(cuts, 40)

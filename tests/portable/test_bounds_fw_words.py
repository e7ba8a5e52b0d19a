# The firmware staging's words, each pinned by the rule it keeps: every refusal's error text
# names the thing at fault (the offsets of a misplaced chunk, the sizes of a truncated image,
# the version and counters of a rollback, the hub or image a permission is for) and a security
# incident's detail names the image it is about; the reply data of fw.begin and of a refused
# chunk carry their keys; the manifest fw.end writes into a slot records the image's board,
# hash, size, payload digest, file count and security counter; an image for another board is
# refused at the chunk that completes its header, also after a reboot; a hub's own incident
# thresholds are kept and a kind it has none for is major at its first event.
import hashlib
import unittest

from agent import boot
from agent import fw_image as image
from agent.hub import Hub
from agent.incidents import Incidents
from boards import sim
from hal.compat import hexstr
from hal.fs_storage import FileStorage
from hal.sim.flash import SimFlash
from hal.sim.vclock import VirtualClock
from tests.kits.fwkit import OTHER_D, ROOT, Device, Image, install, permit, public_key, sign
from tests.kits.labmedium import LabMedium


def rc_err(r):
    """A reply's response code and error text."""
    return r[0], r[2]


def incident_details(dev):
    return [d["detail"] for _k, d in dev.events("incident")]


class Forged:
    """An image whose header is sound and whose payload is not: by default its last data byte
    is not what its manifest's sha256 says; end=1 puts a file record where the payload's end
    byte was. Hashed and signed with the trusted key: only the payload check refuses it."""

    def __init__(self, version="2.0", end=None):
        content = bytearray(Image(version).content)
        if end is None:
            content[-2] ^= 0xFF  # the last data byte of the last file (the last byte ends the payload)
        else:
            content[-1] = end
        self.content = bytes(content)
        self.hash = hashlib.sha256(self.content).digest()
        self.sig = sign(self.hash)
        self.version = version


class _Manifest:
    # a Parser sink that keeps nothing: the manifest is what is wanted
    def begin(self, path, n):
        pass

    def data(self, mv):
        pass

    def end(self):
        pass


def manifest_of(img):
    p = image.Parser(sink=_Manifest())
    p.feed(img.content)
    return p.finish()


class TestChunkWords(unittest.TestCase):
    def setUp(self):
        self.dev = Device()
        self.img = Image("2.0")
        r = self.dev.send(self.img, stop_at=256)
        self.assertEqual(r[:2], ("I0", {"offset": 256}))

    def test_a_chunk_at_the_wrong_offset_names_both_offsets(self):
        r = self.dev.call("fw.chunk", offset=5, data=b"x")
        self.assertEqual(r, ("E49", {"offset": 256}, "chunk at offset 5, expected 256"))

    def test_a_chunk_past_the_announced_size_names_the_size_and_its_offset(self):
        size = len(self.img.content)
        r = self.dev.call("fw.chunk", offset=256, data=b"x" * size)
        self.assertEqual(r, ("E49", {"offset": 256}, "chunk runs past the announced size of {} bytes".format(size)))

    def test_fw_end_of_a_truncated_image_names_what_was_received_and_the_size(self):
        size = len(self.img.content)
        r = self.dev.call("fw.end")
        self.assertEqual(r, ("E49", {"offset": 256}, "truncated image: 256 of {} bytes received".format(size)))

    def test_a_chunk_with_no_staging_says_to_send_fw_begin(self):
        r = Device().call("fw.chunk", offset=0, data=b"x")
        self.assertEqual(r, ("E5", None, "no image is being received: send fw.begin first"))


class TestBeginReplies(unittest.TestCase):
    def test_a_new_staging_answers_offset_chunk_and_not_ready(self):
        dev = Device()
        img = Image("2.0")
        r = dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig)
        self.assertEqual(r, ("I0", {"offset": 0, "chunk": dev.hub.fw().max_chunk, "ready": False}, None))

    def test_the_running_image_is_ready_and_running(self):
        dev = Device()
        first = dev.first
        size = len(first.content)
        r = dev.call("fw.begin", hash=first.hash, size=size, sig=first.sig)
        want = {"offset": size, "chunk": dev.hub.fw().max_chunk, "ready": True, "running": True}
        self.assertEqual(r, ("I0", want, None))

    def test_an_image_already_in_a_slot_is_ready_in_that_slot(self):
        dev = Device()
        img = Image("2.0")
        self.assertEqual(dev.send(img)[0], "I0")
        size = len(img.content)
        r = dev.call("fw.begin", hash=img.hash, size=size, sig=img.sig)
        self.assertEqual(r, ("I0", {"offset": size, "chunk": dev.hub.fw().max_chunk, "ready": True, "slot": "b"}, None))


class TestRollbackWords(unittest.TestCase):
    def setUp(self):
        self.dev = Device(first=Image("2.0"))
        self.old = Image("1.0")

    def test_an_older_image_is_refused_naming_its_version_counter_and_the_minimum(self):
        r = self.dev.send(self.old)
        self.assertEqual(
            r,
            (
                "E5",
                {"sec": 1000000, "min": 2000000},
                "image 1.0 has security counter 1000000, below this hub's minimum 2000000: an older image "
                "needs a rollback permission (dbch firmware permit-rollback)",
            ),
        )
        self.assertEqual(
            incident_details(self.dev), ["image 1.0 refused: security counter 1000000 below the minimum 2000000"]
        )

    def test_an_older_image_already_in_a_slot_is_refused_by_its_slot_version(self):
        install(self.dev.flash, "b", self.old)
        self.dev.boot()
        old = self.old
        r = self.dev.call("fw.begin", hash=old.hash, size=len(old.content), sig=old.sig)
        self.assertEqual(rc_err(r)[0], "E5")
        self.assertTrue(
            r[2].startswith("image 1.0 has security counter 1000000, below this hub's minimum 2000000"), r[2]
        )

    def test_an_older_image_already_in_a_slot_is_ready_with_a_permission(self):
        install(self.dev.flash, "b", self.old)
        self.dev.boot()
        old = self.old
        size = len(old.content)
        p = permit(self.dev.hub.eui, old.hash)
        r = self.dev.call("fw.begin", hash=old.hash, size=size, sig=old.sig, permit=p)
        self.assertEqual(
            r, ("I0", {"offset": size, "chunk": self.dev.hub.fw().max_chunk, "ready": True, "slot": "b"}, None)
        )

    def test_a_permission_for_another_hub_names_that_hub(self):
        other = b"\x01\x02\x03\x04\x05\x06\x07\x08"
        r = self.dev.send(self.old, permit=permit(other, self.old.hash))
        why = "the rollback permission is for hub {}, not this one".format(hexstr(other))
        self.assertEqual(rc_err(r), ("E5", why))
        self.assertEqual(incident_details(self.dev), [why])

    def test_a_permission_for_another_image_names_that_image(self):
        other = Image("0.9")
        r = self.dev.send(self.old, permit=permit(self.dev.hub.eui, other.hash))
        why = "the rollback permission is for image {}, not this one".format(hexstr(other.hash))
        self.assertEqual(rc_err(r), ("E5", why))
        self.assertEqual(incident_details(self.dev), [why])

    def test_a_permission_signed_by_another_key_is_a_bad_signature_naming_its_image(self):
        r = self.dev.send(self.old, permit=permit(self.dev.hub.eui, self.old.hash, d=OTHER_D))
        self.assertEqual(rc_err(r), ("E100", "bad signature: the rollback permission is not signed by the trusted key"))
        self.assertEqual(
            incident_details(self.dev),
            ["bad signature on a rollback permission for image {}".format(hexstr(self.old.hash))],
        )


class TestAuthenticationWords(unittest.TestCase):
    def test_a_bad_image_signature_is_an_incident_naming_the_image(self):
        dev = Device()
        img = Image("2.0")
        r = dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=sign(img.hash, OTHER_D))
        self.assertEqual(rc_err(r), ("E100", "bad signature: the image is not signed by the trusted key"))
        self.assertEqual(incident_details(dev), ["bad signature for image {}".format(hexstr(img.hash))])

    def test_no_signing_key_says_how_to_flash_one(self):
        img = Image("2.0")
        r = Device(key=False).call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig)
        self.assertEqual(
            rc_err(r), ("E100", "no trusted signing key on this device (flash it with dbch flash --signing-key)")
        )

    def test_a_damaged_signing_key_says_to_flash_it_again(self):
        dev = Device()
        f = dev.flash.open(boot.join(ROOT, boot.KEY), "wb")
        f.write(b"\x04" + b"\x01" * 64)
        f.close()
        img = Image("2.0")
        r = dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig)
        self.assertEqual(rc_err(r), ("E100", "the trusted signing key on this device is damaged (flash it again)"))

    def test_content_other_than_signed_is_a_tampered_image_naming_the_signed_hash(self):
        dev = Device()
        img = Image("2.0")
        twin = Image("2.0", tag="twin")  # the same length, other bytes
        self.assertEqual(len(twin.content), len(img.content))
        r = dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=img.sig)
        self.assertEqual(r[0], "I0")
        r = dev.call("fw.chunk", offset=0, data=twin.content)
        self.assertEqual(r[0], "I0", r[2])
        r = dev.call("fw.end")
        self.assertEqual(rc_err(r), ("E100", "tampered image: its content does not hash to the signed FirmwareHash"))
        self.assertEqual(
            incident_details(dev), ["image content does not hash to its signed hash {}".format(hexstr(img.hash))]
        )

    def test_a_payload_refused_in_its_chunk_names_the_byte_and_the_image(self):
        dev = Device()
        bad = Forged()
        r = dev.send(bad, chunk=4000)  # header and payload in one chunk
        why = "payload does not match the manifest's sha256"
        self.assertEqual(rc_err(r), ("E100", "image refused at byte 0: " + why))
        self.assertEqual(incident_details(dev), ["image {} refused: {}".format(hexstr(bad.hash), why)])

    def test_a_payload_refused_at_fw_end_names_the_image(self):
        dev = Device()
        bad = Forged()
        r = dev.send(bad, chunk=256)
        why = "payload does not match the manifest's sha256"
        self.assertEqual(rc_err(r), ("E100", "image refused: " + why))
        self.assertEqual(incident_details(dev), ["image {} refused: {}".format(hexstr(bad.hash), why)])

    def test_a_payload_that_ends_inside_a_file_record_is_a_truncated_image_not_an_incident(self):
        dev = Device()
        bad = Forged(end=1)  # a one-byte path announced, and no more bytes
        r = dev.send(bad, chunk=256)
        self.assertEqual(
            rc_err(r), ("E49", "image refused: truncated image: {} bytes, it ends early".format(len(bad.content)))
        )
        self.assertEqual(dev.events("incident"), [])


class TestOtherBoard(unittest.TestCase):
    """An image for another board is refused by the chunk that completes its header."""

    def test_refused_at_the_header_chunk(self):
        dev = Device()
        other = Image("2.0", board="pico_rfm69")
        r = dev.send(other, stop_at=256)
        self.assertEqual(rc_err(r), ("E11", "image refused at byte 0: image is for board 'pico_rfm69', this is 'sim'"))

    def test_refused_at_the_header_chunk_after_a_reboot(self):
        dev = Device()
        other = Image("2.0", board="pico_rfm69")
        r = dev.send(other, chunk=5, stop_at=5)  # begun, its header not in yet
        self.assertEqual(r[:2], ("I0", {"offset": 5}))
        dev.boot()
        r = dev.call("fw.begin", hash=other.hash, size=len(other.content), sig=other.sig)
        self.assertEqual(r[1]["offset"], 5)
        r = dev.call("fw.chunk", offset=5, data=other.content[5:400])
        self.assertEqual(rc_err(r), ("E11", "image refused at byte 5: image is for board 'pico_rfm69', this is 'sim'"))

    def test_refused_at_the_header_chunk_after_a_staging_found_other_on_flash_restarts(self):
        dev = Device()
        other = Image("2.0", board="pico_rfm69")
        r = dev.send(other, chunk=8, stop_at=8)  # its fixed head, not its manifest
        self.assertEqual(r[:2], ("I0", {"offset": 8}))
        f = dev.flash.open("/slots/stage.img", "wb")
        f.write(b"XXXXXXXX")  # not the image's magic: the staging starts again from byte 0
        f.close()
        dev.boot()
        r = dev.call("fw.begin", hash=other.hash, size=len(other.content), sig=other.sig)
        self.assertEqual(r[1]["offset"], 0)
        r = dev.call("fw.chunk", offset=0, data=other.content[:400])
        self.assertEqual(rc_err(r), ("E11", "image refused at byte 0: image is for board 'pico_rfm69', this is 'sim'"))


class TestStateWords(unittest.TestCase):
    def test_an_image_whose_flash_copy_changed_before_fw_end_is_asked_again(self):
        dev = Device()
        img = Image("2.0")
        size = len(img.content)
        r = dev.call("fw.begin", hash=img.hash, size=size, sig=img.sig)
        self.assertEqual(r[0], "I0")
        r = dev.call("fw.chunk", offset=0, data=img.content)  # every byte, no fw.end
        self.assertEqual(r[:2], ("I0", {"offset": size}))
        f = dev.flash.open("/slots/stage.img", "rb")
        data = bytearray(f.read())
        f.close()
        data[-1] ^= 0xFF
        f = dev.flash.open("/slots/stage.img", "wb")
        f.write(data)
        f.close()
        r = dev.call("fw.end")
        self.assertEqual(rc_err(r), ("E49", "image on flash does not match what was received: send it again"))

    def test_fw_end_during_a_trial_names_the_trial_slot(self):
        dev = Device()
        img = Image("2.0")
        self.assertEqual(dev.send(img)[0], "I0")
        self.assertEqual(dev.call("fw.activate", hash=img.hash)[0], "I0")
        dev.boot()
        self.assertEqual((dev.slot, dev.trial), ("b", True))
        r = dev.send(Image("3.0"))
        self.assertEqual(rc_err(r), ("E5", "the trial boot of slot b is not confirmed yet"))

    def test_a_full_flash_is_a_flash_error_and_the_staging_goes_on_once_there_is_room(self):
        dev = Device()
        img = Image("2.0")
        r = dev.send(img, stop_at=256)
        self.assertEqual(r[:2], ("I0", {"offset": 256}))
        dev.flash.capacity = dev.flash.used() + 10
        r = dev.call("fw.chunk", offset=256, data=img.content[256:512])
        self.assertEqual(r[0], "E5")
        self.assertTrue(r[2].startswith("flash error: "), r[2])
        self.assertIn("flash full", r[2])
        dev.flash.capacity = None
        r = dev.send(img)
        self.assertEqual(rc_err(r), ("I0", None))
        self.assertEqual(r[1]["slot"], "b")


class TestSlotManifest(unittest.TestCase):
    def test_the_slot_manifest_records_the_image(self):
        dev = Device()
        img = Image("2.0")
        self.assertEqual(dev.send(img)[0], "I0")
        m = manifest_of(img)
        want = {
            "version": "2.0",
            "board": "sim",
            "hash": hexstr(img.hash),
            "size": len(img.content),
            "sha256": hexstr(m["sha256"]),
            "files": 3,
            "sec": 2000000,
        }
        self.assertEqual(boot.read_manifest(dev.flash, ROOT, "b"), want)


class TestHubThresholds(unittest.TestCase):
    """The hub's own incident recorder counts firmware refusals; a threshold it set for a kind
    is kept, and a kind it has none for is major at its first event."""

    def _bad_signature(self, dev):
        img = Image("2.0")
        r = dev.call("fw.begin", hash=img.hash, size=len(img.content), sig=sign(img.hash, OTHER_D))
        self.assertEqual(r[0], "E100")

    def test_a_threshold_the_hub_set_is_kept(self):
        dev = Device()
        inc = Incidents(thresholds={"tampered_image": 3})
        dev.hub.incidents = inc
        self._bad_signature(dev)
        self.assertEqual(inc.count("tampered_image"), 1)
        self.assertEqual((inc.thresholds["tampered_image"], inc.open), (3, False))

    def test_a_kind_the_hub_has_no_threshold_for_is_major_at_its_first_event(self):
        dev = Device()
        inc = Incidents()
        del inc.thresholds["tampered_image"]
        dev.hub.incidents = inc
        self._bad_signature(dev)
        self.assertEqual((inc.count("tampered_image"), inc.open), (1, True))
        self.assertEqual(inc.thresholds["tampered_image"], 1)


class TestFirmwareRoot(unittest.TestCase):
    """On a board whose firmware root is not the flash's root (storage /flash/hub: root /flash),
    the signing key is read, the image staged and the slot written under that root."""

    R = "/flash"

    def setUp(self):
        fs = self.fs = SimFlash()
        clock = VirtualClock()
        install(fs, "a", Image("1.0"), root=self.R)
        f = fs.open(boot.join(self.R, boot.KEY), "wb")
        f.write(public_key())
        f.close()
        self.clock = clock
        self.assertEqual(self.boot(), ("a", False))

    def boot(self):
        # the bootloader's decision, then the hub: (slot, trial)
        chosen = boot.choose(self.fs, self.R)
        hal = sim.make_hal(flash=self.fs, clock=self.clock, medium=LabMedium(self.clock, seed=1))
        hal.storage = FileStorage(self.R + "/hub", fs=self.fs)
        self.hub = Hub(hal, sim)
        return chosen

    def call(self, op, **args):
        return self.hub.handle({"t": "q", "id": 1, "op": op, "a": args})

    def test_an_update_stays_under_the_firmware_root(self):
        img = Image("2.0")
        size = len(img.content)
        self.assertEqual(rc_err(self.call("fw.begin", hash=img.hash, size=size, sig=img.sig)), ("I0", None))
        self.assertEqual(self.call("fw.chunk", offset=0, data=img.content[:256])[:2], ("I0", {"offset": 256}))
        self.assertEqual(self.fs.size(self.R + "/slots/stage.img"), 256)
        self.assertEqual(self.call("fw.chunk", offset=256, data=img.content[256:])[:2], ("I0", {"offset": size}))
        r = self.call("fw.end")
        self.assertEqual(rc_err(r), ("I0", None))
        self.assertEqual(r[1]["slot"], "b")
        self.assertEqual(boot.read_manifest(self.fs, self.R, "b")["hash"], hexstr(img.hash))
        self.assertEqual([p for p in self.fs.files() if not p.startswith(self.R + "/")], [])
        r = self.call("fw.begin", hash=img.hash, size=size, sig=img.sig)
        self.assertEqual((r[0], r[1]["ready"], r[1].get("slot")), ("I0", True, "b"))
        self.assertEqual(self.call("fw.status")[1]["slots"]["b"]["version"], "2.0")

    def test_fw_end_during_a_trial_reads_the_boot_state_under_the_firmware_root(self):
        img = Image("2.0")
        size = len(img.content)
        self.call("fw.begin", hash=img.hash, size=size, sig=img.sig)
        self.call("fw.chunk", offset=0, data=img.content)
        self.assertEqual(rc_err(self.call("fw.end")), ("I0", None))
        self.assertEqual(rc_err(self.call("fw.activate", hash=img.hash)), ("I0", None))
        self.assertEqual(self.boot(), ("b", True))
        newer = Image("3.0")
        size = len(newer.content)
        self.assertEqual(rc_err(self.call("fw.begin", hash=newer.hash, size=size, sig=newer.sig)), ("I0", None))
        self.assertEqual(self.call("fw.chunk", offset=0, data=newer.content)[0], "I0")
        r = self.call("fw.end")
        self.assertEqual(rc_err(r), ("E5", "the trial boot of slot b is not confirmed yet"))

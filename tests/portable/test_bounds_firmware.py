# The firmware staging's boundaries, each pinned by the rule it keeps: fw.begin takes an image
# of exactly the board's max_image bytes and of exactly 16 bytes (the least an image can be),
# an image whose security counter equals the hub's minimum is not a rollback, each argument's
# length range is inclusive at both ends, and a staging received to its last byte outlives a
# reboot, a staging found longer or other on flash than received starts again from byte 0, a
# rollback permission may come with a later fw.begin of the same staging, and fw.end does not
# unpack into a slot whose activation is scheduled.
import unittest

from agent.boot import read_min
from tests.kits.fwkit import ROOT, Device, Image, permit


def rc_err(r):
    """A reply's response code and error text."""
    return r[0], r[2]


def begin(dev, img, size):
    return dev.call("fw.begin", hash=img.hash, size=size, sig=img.sig)


class TestAnnouncedSize(unittest.TestCase):
    def setUp(self):
        self.dev = Device()
        self.img = Image("2.0")

    def test_an_image_of_exactly_max_image_bytes_may_be_announced(self):
        top = self.dev.hub.fw().max_image
        r = begin(self.dev, self.img, top)
        self.assertEqual(r[0], "I0", r[2])
        self.assertEqual((r[1]["offset"], r[1]["ready"]), (0, False))
        r = begin(Device(), self.img, top + 1)
        self.assertEqual(r[0], "E49")
        self.assertEqual(r[2], "image of {} bytes is too large: this board takes {}".format(top + 1, top))

    def test_sixteen_bytes_may_be_announced_and_fifteen_are_too_few(self):
        r = begin(self.dev, self.img, 16)
        self.assertEqual(r[0], "I0", r[2])
        r = begin(Device(), self.img, 15)
        self.assertEqual(r[0], "E49")
        self.assertEqual(r[2], "image of 15 bytes is too small to be one")


class TestMinimumCounter(unittest.TestCase):
    def test_an_image_whose_counter_equals_the_minimum_is_not_a_rollback(self):
        dev = Device(first=Image("2.0"))
        self.assertEqual(read_min(dev.flash, ROOT), 2000000)
        rebuild = Image("2.0", tag="rebuild")  # the same version, other files: counter 2000000
        r = dev.send(rebuild)
        self.assertEqual(r[0], "I0", r[2])
        self.assertEqual(dev.events("incident"), [])
        st = dev.call("fw.status")[1]
        self.assertEqual(st["slots"]["b"]["version"], "2.0")


class TestArgumentRanges(unittest.TestCase):
    """fw.begin's byte arguments: a length at either end of the range is checked for what it
    says (E100 for a signature that does not verify), one past it is malformed (E49)."""

    def _begin(self, **kw):
        img = Image("2.0")
        args = {"hash": img.hash, "size": len(img.content), "sig": img.sig}
        args.update(kw)
        return Device().call("fw.begin", **args)

    def test_a_signature_of_8_or_72_bytes_is_verified_and_7_or_73_are_malformed(self):
        for n in (8, 72):
            self.assertEqual(
                rc_err(self._begin(sig=b"x" * n)), ("E100", "bad signature: the image is not signed by the trusted key")
            )
        for n in (7, 73):
            self.assertEqual(rc_err(self._begin(sig=b"x" * n)), ("E49", "sig must be 8 to 72 bytes"))

    def test_a_hash_is_exactly_32_bytes(self):
        for n in (31, 33):
            self.assertEqual(rc_err(self._begin(hash=b"x" * n)), ("E49", "hash must be 32 bytes"))

    def test_a_permission_of_16_or_256_bytes_is_read_and_15_or_257_are_malformed(self):
        for n in (16, 256):
            self.assertEqual(rc_err(self._begin(permit=b"x" * n)), ("E49", "not a rollback permission (no DBRB magic)"))
        for n in (15, 257):
            self.assertEqual(rc_err(self._begin(permit=b"x" * n)), ("E49", "permit must be 16 to 256 bytes"))

    def test_a_size_that_is_negative_or_a_bool_is_malformed(self):
        for v in (-1, True):
            self.assertEqual(rc_err(self._begin(size=v)), ("E49", "size must be a non-negative integer"))


class TestResume(unittest.TestCase):
    def _stage_all(self, dev, img):
        # every byte of the image, and no fw.end
        size = len(img.content)
        r = begin(dev, img, size)
        off = r[1]["offset"]
        while off < size:
            r = dev.call("fw.chunk", offset=off, data=img.content[off : off + 256])
            self.assertEqual(r[0], "I0", r[2])
            off = r[1]["offset"]

    def test_a_staging_received_to_its_last_byte_is_kept_across_a_reboot(self):
        dev = Device()
        img = Image("2.0")
        size = len(img.content)
        self._stage_all(dev, img)
        dev.boot()
        r = begin(dev, img, size)
        self.assertEqual(r[0], "I0", r[2])
        self.assertEqual(r[1]["offset"], size)
        r = dev.call("fw.end")
        self.assertEqual(r[0], "I0", r[2])

    def _staged(self, dev):
        f = dev.flash.open("/slots/stage.img", "rb")
        data = bytearray(f.read())
        f.close()
        return data

    def _restage(self, dev, data):
        f = dev.flash.open("/slots/stage.img", "wb")
        f.write(data)
        f.close()

    def test_a_staging_longer_on_flash_than_announced_starts_again_from_byte_0(self):
        dev = Device()
        img = Image("2.0")
        self._stage_all(dev, img)
        self._restage(dev, self._staged(dev) + b"extra")
        dev.boot()
        r = begin(dev, img, len(img.content))
        self.assertEqual(rc_err(r), ("I0", None))
        self.assertEqual(r[1]["offset"], 0)
        self.assertEqual(dev.send(img)[0], "I0")

    def test_a_staged_prefix_found_other_after_a_reboot_is_received_again_and_installs(self):
        dev = Device()
        img = Image("2.0")
        dev.send(img, stop_at=1000)
        staged = self._staged(dev)
        staged[0] ^= 0xFF  # the image's header, changed on flash
        self._restage(dev, staged)
        dev.boot()
        r = begin(dev, img, len(img.content))
        self.assertEqual(rc_err(r), ("I0", None))
        self.assertEqual(r[1]["offset"], 0)
        r = dev.send(img)
        self.assertEqual(rc_err(r), ("I0", None))
        self.assertEqual(r[1]["slot"], "b")


class TestLaterPermission(unittest.TestCase):
    """A rollback permission sent with a later fw.begin of the same staging counts."""

    def setUp(self):
        self.dev = Device(first=Image("2.0"))
        self.old = Image("1.0", size=1500)
        self.permit = permit(self.dev.hub.eui, self.old.hash)
        r = self.dev.send(self.old, chunk=5, stop_at=5)  # begun, its header not in yet
        self.assertEqual(rc_err(r), ("I0", None))

    def test_the_older_image_gets_in(self):
        r = self.dev.send(self.old, permit=self.permit)
        self.assertEqual(rc_err(r), ("I0", None))
        self.assertEqual(r[1]["slot"], "b")

    def test_the_permission_is_kept_across_a_reboot(self):
        old = self.old
        r = self.dev.call("fw.begin", hash=old.hash, size=len(old.content), sig=old.sig, permit=self.permit)
        self.assertEqual(rc_err(r), ("I0", None))
        self.dev.boot()
        r = self.dev.send(old)
        self.assertEqual(rc_err(r), ("I0", None))
        self.assertEqual(r[1]["slot"], "b")


class TestScheduledSlot(unittest.TestCase):
    def test_fw_end_does_not_unpack_into_a_slot_whose_activation_is_scheduled(self):
        dev = Device()
        img = Image("2.0")
        self.assertEqual(dev.send(img)[0], "I0")
        r = dev.call("fw.activate", hash=img.hash, execution=dev.clock.utc() + 3600)
        self.assertEqual(rc_err(r), ("I0", None))
        newer = Image("3.0")
        r = dev.send(newer)
        self.assertEqual(rc_err(r), ("E5", "an activation of slot b is scheduled: cancel it first"))
        self.assertEqual(dev.call("fw.cancel", hash=img.hash)[0], "I0")
        self.assertEqual(dev.send(newer)[0], "I0")


class TestIncidentOnlyForTampering(unittest.TestCase):
    def test_an_image_for_another_board_is_refused_without_a_security_incident(self):
        dev = Device()
        r = dev.send(Image("2.0", board="pico_rfm69"))
        self.assertEqual(r[0], "E11")
        self.assertEqual(dev.events("incident"), [])

# The firmware staging's boundaries, each pinned by the rule it keeps: fw.begin takes an image
# of exactly the board's max_image bytes and of exactly 16 bytes (the least an image can be),
# and an image whose security counter equals the hub's minimum is not a rollback.
import unittest

from fwkit import ROOT, Device, Image

from agent.fwboot import read_min


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

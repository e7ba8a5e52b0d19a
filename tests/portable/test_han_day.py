# A day of a hub with twenty simulated HAN devices (one GSME), on either runtime: they join and
# keep working through flood episodes (an IHD floods for 20 minutes every 6 hours: Limited
# suspends it, 8F20 names it, and it is released as the hour rolls on, 8F21), no one-hour window
# of the hub's own transmissions reaches the regulated limit, and the heap stays flat.
# DBCH_HAN_DAYS=7 runs a week:
#   DBCH_HAN_DAYS=7 micropython tests/upy/run.py test_han_day
import os
import unittest

from boards import sim
from hal.sim.vclock import VirtualClock
from tests.kits.endurance import heap_used
from tests.kits.hubkit import config
from tests.kits.labmedium import LabMedium

try:
    DAYS = int(os.getenv("DBCH_HAN_DAYS") or 1)
except (AttributeError, ValueError):
    DAYS = 1

PAGE_30 = {"LowerBandSubGHzChannels0To26": [], "LowerBandSubGHzChannels27To34": [], "UpperBandSubGHzChannels0To26": []}
KINDS = ["GSME"] + ["ESME"] * 7 + ["IHD"] * 5 + ["PPMID"] * 4 + ["CAD"] * 3
EUIS = ["00-00-00-00-00-00-0D-%02X" % i for i in range(len(KINDS))]
FLOODER = EUIS[8]  # the first IHD
HEAP_SLACK_BYTES = 2048  # MicroPython: bytes; CPython: objects tracked by the GC
HEAP_SLACK_OBJECTS = 300


class HubAirtime(LabMedium):
    """The lab medium's airtime windows, for the hub's own transmissions only."""

    hub_radio = None

    def _logged(self, e):
        if e[5] is self.hub_radio:
            LabMedium._logged(self, e)


_run = []


def run():
    if _run:
        return _run[0]
    clock = VirtualClock()
    medium = HubAirtime(clock, seed=5)
    medium._hourly = [0] * (24 * DAYS + 2)  # its hourly log, sized for the run: the heap shows the hub's
    rig = sim.Rig(clock=clock, medium=medium)
    medium.hub_radio = rig.hub.radio
    rc, _, err = rig.call("config.set", config=config(**PAGE_30))
    assert rc == "I0", err
    for eui, kind in zip(EUIS, KINDS):
        rc, _, err = rig.call("han.add", eui=eui, type=kind)
        assert rc == "I0", err
    seen = {}
    heap = []
    for hour in range(24 * DAYS):
        if hour % 6 == 3:
            rig.call("han.script", eui=FLOODER, behaviour="flood")
        for step in range(6):
            rig.call("clock.advance", ms=600000)
            if hour % 6 == 3 and step == 1:
                rig.call("han.script", eui=FLOODER, behaviour="normal")  # after 20 minutes
        for code, payload in rig.alerts():
            seen[code] = seen.get(code, 0) + 1
            if code == "8F20":
                named = seen.setdefault("named", [])
                if payload not in named:
                    named.append(payload)
        rig.drain()
        if hour == 1 or hour % 24 == 23:  # after the first hours, and at the end of each day
            heap.append(heap_used())
    result = (rig, medium, seen, heap)
    _run.append(result)
    return result


class HanDay(unittest.TestCase):
    def test_every_device_is_joined_and_heard_at_the_end(self):
        rig, _medium, _seen, _heap = run()
        listing = rig.call("han.list")[1]
        rows = {r["eui"]: r for r in listing["devices"]}
        self.assertEqual(sorted(rows), sorted(EUIS))
        for eui, kind in zip(EUIS, KINDS):
            r = rows[eui]
            self.assertTrue(r["joined"] and r["type"] == kind, r)
            self.assertTrue(r["last_heard_s"] <= 600, r)  # the longest period: an ESME's 10 minutes
        for d in listing["simulated"]:
            self.assertTrue(d["joined"], d)

    def test_the_floods_are_suspended_by_eui_and_released(self):
        # each flood takes the hub to Limited, then, as its hour ages out minute by minute, the
        # usage crosses the threshold down and up again with the other devices' traffic: every
        # 8F20 names the flooding IHD, and each is followed by its 8F21
        rig, _medium, seen, _heap = run()
        self.assertGreaterEqual(seen.get("8F20", 0), 4 * DAYS, seen)
        self.assertEqual(seen.get("8F21"), seen.get("8F20"), seen)
        self.assertEqual(seen["named"], [{"DeviceIDToSuspend": FLOODER}])
        self.assertNotIn("8F22", seen)
        self.assertEqual(rig.hub.duty.state, "normal")

    def test_no_hour_of_the_hubs_transmissions_reaches_the_limit(self):
        rig, medium, _seen, _heap = run()
        self.assertGreater(medium.max_window_airtime_us(), rig.hub.duty.regulated_us // 4)  # it was busy
        self.assertLess(medium.max_window_airtime_us(), rig.hub.duty.regulated_us)

    def test_the_heap_is_flat(self):
        _rig, _medium, _seen, heap = run()
        unit_bytes = heap[0] > 100000 and hasattr(__import__("gc"), "mem_alloc")
        slack = HEAP_SLACK_BYTES if unit_bytes else HEAP_SLACK_OBJECTS
        print("han day: {} day(s), heap after gc.collect() at hour 1 and at each day's end: {}".format(DAYS, heap))
        self.assertLessEqual(heap[-1] - heap[0], slack, heap)
        if DAYS > 1:  # week to week: from the first day's end on, flat
            self.assertLessEqual(heap[-1] - heap[1], slack // 2, heap)

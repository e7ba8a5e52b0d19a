# Shared by the hub and server tests: a simulated hub on a flash that survives "reboots", and
# the hub tests' run over every radio kind a simulated board can carry (as a driver's tests run
# over every device kind): a class of HubTests becomes one unittest.TestCase per kind, on both
# runtimes (the MicroPython runner and pytest collect the classes over_radios() adds).
import unittest

from agent.examples import DBCH04_CONFIG
from boards import sim
from boards.simchips import RADIOS
from hal.contracts import Link
from hal.sim.vclock import VirtualClock
from tests.kits.labmedium import LabMedium

TEMPLATE = DBCH04_CONFIG


class Rig(sim.Rig):
    """boards.sim.Rig on the tests' LabMedium (scripted noise, airtime logs)."""

    def __init__(self, seed=1, eui=sim.DEFAULT_EUI, radio=sim.DEFAULT_RADIO):
        clock = VirtualClock()
        sim.Rig.__init__(self, seed, eui, clock=clock, medium=LabMedium(clock, seed=seed), radio=radio)


class HubTests:
    """Tests of a hub on one radio kind (self.radio): a mixin that over_radios() turns into
    one TestCase per kind."""

    radio = None

    def make_rig(self, seed=1, eui=sim.DEFAULT_EUI):
        rig = Rig(seed, eui, radio=self.radio)
        if not hasattr(self, "_rigs"):
            self._rigs = []
        self._rigs.append(rig)
        return rig

    def tearDown(self):
        # the driver kept to its chip's protocol all along (a chip counts every misuse)
        for rig in getattr(self, "_rigs", ()):
            if rig.chip is not None:
                self.assertEqual(rig.chip.violations, [], self.radio)


def over_radios(namespace):
    """For each HubTests class in namespace (a test module's globals()), add NAME_KIND, a
    unittest.TestCase on that kind, for every kind of boards.simchips.RADIOS."""
    for name in list(namespace):
        cls = namespace[name]
        if isinstance(cls, type) and cls is not HubTests and issubclass(cls, HubTests):
            for kind in RADIOS:
                case = name + "_" + kind
                namespace[case] = type(case, (cls, unittest.TestCase), {"radio": kind})


def config(**changes):
    m = dict(TEMPLATE)
    m.update(changes)
    return m


class PipeLink(Link):
    """Both ends of an in-memory serial line: the test writes host bytes, reads agent bytes."""

    def __init__(self):
        self.to_agent = bytearray()
        self.to_host = bytearray()

    def read(self, n):
        data = bytes(self.to_agent[:n])
        self.to_agent = self.to_agent[n:]
        return data

    def write(self, data):
        self.to_host += data

    def wait(self, timeout_ms):
        return bool(self.to_agent)

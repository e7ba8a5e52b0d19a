# Shared by the hub and server tests: a simulated hub on a flash that survives "reboots".
from labmedium import LabMedium

from agent.examples import DBCH04_CONFIG
from boards import sim
from hal.contracts import Link
from hal.sim.vclock import VirtualClock

TEMPLATE = DBCH04_CONFIG


class Rig(sim.Rig):
    """boards.sim.Rig on the tests' LabMedium (scripted noise, airtime logs)."""

    def __init__(self, seed=1, eui=sim.DEFAULT_EUI):
        clock = VirtualClock()
        sim.Rig.__init__(self, seed, eui, clock=clock, medium=LabMedium(clock, seed=seed))


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

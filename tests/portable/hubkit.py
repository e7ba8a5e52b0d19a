# Shared by the hub and server tests: a simulated hub on a flash that survives "reboots".
from agent.examples import DBCH04_CONFIG
from boards import sim
from hal.contracts import Link
from hal.sim.flash import SimFlash
from hal.sim.lab import LabMedium
from hal.sim.vclock import VirtualClock

TEMPLATE = DBCH04_CONFIG


def config(**changes):
    m = dict(TEMPLATE)
    m.update(changes)
    return m


class Rig:
    """A hub on simulated hardware whose flash, clock and medium outlive reboots."""

    def __init__(self, seed=1):
        self.flash = SimFlash()
        self.clock = VirtualClock()
        self.medium = LabMedium(self.clock, seed=seed)
        self.hub = None
        self.boot()

    def hal(self, link=None):
        return sim.make_hal(flash=self.flash, clock=self.clock, medium=self.medium, link=link)

    def boot(self, link=None):
        from agent.hub import Hub

        self.flash.power_on()
        self.hub = Hub(self.hal(link), sim)
        return self.hub

    def call(self, op, **args):
        return self.hub.handle({"t": "q", "id": 1, "op": op, "a": args})

    def alerts(self):
        """Pending N54 alerts as (GBCS hex code, payload), oldest first."""
        out = []
        for _seq, kind, data in self.hub.outbox.pending():
            if kind == "N54":
                out.append((data["DeviceAlertCode"], data.get("payload")))
        return out

    def drain(self):
        for seq, _k, _d in self.hub.outbox.pending():
            self.hub.outbox.ack(seq)


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

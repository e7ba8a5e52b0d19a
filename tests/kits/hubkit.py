# Shared by the hub and server tests: a simulated hub on a flash that survives "reboots".
from agent.examples import DBCH04_CONFIG
from boards.sim import Rig  # noqa: F401  (the tests' simulated hub)
from hal.contracts import Link

TEMPLATE = DBCH04_CONFIG


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

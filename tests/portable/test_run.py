# agent.run's requests of the local link: the triage.* ones only on a board whose image has the
# triage link (its module's TRIAGE_LINK), and no dialing on one that has not.
import unittest

from agent import run
from agent.hub import RC_UNKNOWN_OP
from boards import sim
from tests.kits.hubkit import PipeLink, Rig


class NoNetwork:
    """A board module without a network (as pico_rfm69 and nucleo_wl55jc)."""

    NAME = "no-network"
    TRIAGE_LINK = False


def _request(op):
    return {"t": "q", "id": 1, "op": op, "a": {}}


class TriageLink(unittest.TestCase):
    def test_a_board_with_a_network_offers_the_triage_requests(self):
        hub = Rig().hub
        self.assertTrue(sim.TRIAGE_LINK)
        run._local_handle(hub, PipeLink(), [None])
        for op in ("triage.set", "triage.clear", "triage.status"):
            self.assertIn(op, hub.ops)

    def test_a_board_without_one_neither_offers_them_nor_dials(self):
        hub = Rig().hub
        hub.board = NoNetwork
        dialer = [None]
        handle = run._local_handle(hub, PipeLink(), dialer)
        for op in ("triage.set", "triage.clear", "triage.status"):
            self.assertNotIn(op, hub.ops)
            rc, _data, err = handle(_request(op))
            self.assertEqual(rc, RC_UNKNOWN_OP)
            self.assertIn(op, err)
        self.assertEqual(handle(_request("hello"))[0], "I0")
        # a triage configuration an earlier image stored is left alone: nothing to dial with
        hub.store.put("triage", {"host": "192.0.2.1", "port": 4433})
        run._start_dialer(hub, dialer)
        self.assertIsNone(dialer[0])

# hal.compat.unload forgets a module, in sys.modules and in its package, on MicroPython and
# CPython alike: the next import runs it again, a new module object whose state starts afresh
# (the agent unloads agent.p256, agent.image and the firmware service's parts between uses).
import sys
import unittest

import agent
from hal.compat import unload


class TestUnload(unittest.TestCase):
    def test_an_unloaded_module_is_imported_again_with_its_state_reset(self):
        from agent import p256

        table = p256._generator_table()  # built once per loaded module, then kept
        self.assertIs(p256._g_table, table)
        unload("agent.p256")
        self.assertNotIn("agent.p256", sys.modules)
        self.assertNotIn("p256", agent.__dict__)

        from agent import p256 as again

        self.assertIsNot(again, p256)
        self.assertIs(sys.modules["agent.p256"], again)
        self.assertIs(agent.p256, again)
        self.assertIsNone(again._g_table)  # module state starts again
        self.assertIs(p256._g_table, table)  # what still holds the old module keeps it whole
        self.assertEqual(again._generator_table(), table)
        # new classes too: the old module's exception class is not the new module's
        self.assertIsNot(again.P256Error, p256.P256Error)
        with self.assertRaises(again.P256Error) as cm:
            again.parse_public_key(b"")
        self.assertNotIsInstance(cm.exception, p256.P256Error)

    def test_import_statement_forms_all_load_it_again(self):
        import agent.p256

        first = agent.p256
        unload("agent.p256")
        import agent.p256  # noqa: F811

        self.assertIsNot(agent.p256, first)
        second = agent.p256
        unload("agent.p256")
        from agent.p256 import verify

        self.assertIsNot(sys.modules["agent.p256"], second)
        self.assertIs(sys.modules["agent.p256"].verify, verify)

    def test_a_module_not_loaded_is_left_alone(self):
        unload("agent.p256")
        unload("agent.p256")  # not loaded any more: nothing to do
        unload("agent.no_such_module")
        self.assertNotIn("agent.p256", sys.modules)
        self.assertNotIn("p256", agent.__dict__)
        self.assertIn("agent", sys.modules)  # the package stays


if __name__ == "__main__":
    unittest.main()

# Runs the portable test tier (tests/portable/test_*.py) on the MicroPython unix port:
#   micropython tests/upy/run.py [NAME_FRAGMENT ...]
# Ends with the plain closing line "N passed, N failed, N skipped" and exits 1 on any failure.
import gc
import os
import sys

# sys.path: this folder first (its unittest), then the checkout root, where the tests import
# everything from (agent, hal, boards and the kits as tests.kits.NAME), then tests/portable, from
# where each test file is imported by its name, as pytest imports it.
_HERE = sys.path[0] if sys.path and sys.path[0] else "."
_ROOT = _HERE + "/../.."
_PORTABLE = _ROOT + "/tests/portable"
sys.path.insert(1, _ROOT)
sys.path.insert(2, _PORTABLE)

import unittest  # noqa: E402  (the shim beside this file)

from hal.compat import print_exception  # noqa: E402


def _cases(module):
    for name in dir(module):
        obj = getattr(module, name)
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj is not unittest.TestCase:
            yield name, obj


def main(argv):
    wanted = argv[1:]
    files = sorted(f for f in os.listdir(_PORTABLE) if f.startswith("test_") and f.endswith(".py"))
    passed = failed = skipped = 0
    for fname in files:
        modname = fname[:-3]
        if wanted and not any(w in modname for w in wanted):
            continue
        try:
            module = __import__(modname)
        except Exception as e:  # an import error is a failure of the whole file
            failed += 1
            print("ERROR importing", modname)
            print_exception(e)
            continue
        for cname, cls in _cases(module):
            for tname in sorted(n for n in dir(cls) if n.startswith("test")):
                case = cls()
                label = "{}.{}.{}".format(modname, cname, tname)
                try:
                    case.setUp()
                    try:
                        getattr(case, tname)()
                    finally:
                        case.tearDown()
                    passed += 1
                except unittest.SkipTest as e:
                    skipped += 1
                    print("SKIP", label, "-", e)
                except Exception as e:
                    failed += 1
                    print("FAIL", label)
                    print_exception(e)
                gc.collect()
        del sys.modules[modname]
    print("micropython: {} passed, {} failed, {} skipped".format(passed, failed, skipped))
    return 1 if failed or not passed else 0


sys.exit(main(sys.argv))

# The tests, a package so that what they share is imported by name from the checkout root:
# `from tests.kits.hubkit import Rig` under pytest (CPython) and under tests/upy/run.py (the
# MicroPython unix port), with no sys.path changes in the tests themselves.

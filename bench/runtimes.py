# What a bench script that runs on both CPython and the MicroPython unix port needs before
# anything of the project: import it first (it puts the checkout's root on sys.path; the
# script's own folder is there already, on both runtimes).
#   IS_MPY                      True under MicroPython
#   ROOT                        the checkout's root
#   now_us(), elapsed_us(t0)    a microsecond clock (ticks_us on MicroPython)
import sys

IS_MPY = sys.implementation.name == "micropython"

if IS_MPY:
    ROOT = (sys.path[0] or ".") + "/.."
else:
    import os

    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

try:
    from time import ticks_diff, ticks_us

    def now_us():
        return ticks_us()

    def elapsed_us(t0):
        return ticks_diff(ticks_us(), t0)

except ImportError:
    from time import perf_counter_ns

    def now_us():
        return perf_counter_ns() / 1000

    def elapsed_us(t0):
        return perf_counter_ns() / 1000 - t0

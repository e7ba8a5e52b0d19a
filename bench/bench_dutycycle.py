# Cost of DutyCycle.record() after 1k and after 100k prior records, on CPython and on the
# MicroPython unix port, as a ratio measured in the same run. The ledger is a fixed ring of
# one-minute buckets, so the ratio should stay about 1.0 however long the history.
#
#   python3 bench/bench_dutycycle.py
#
# Plain script, no assertions. The MicroPython figure comes from running this same file under
# `micropython` with --inner.
from runtimes import IS_MPY as _IS_MPY  # first: it puts the checkout on sys.path
from runtimes import elapsed_us as _elapsed_us
from runtimes import now_us as _now_us

# isort: split
from agent.dutycycle import DutyCycle

_STEP_MS = 37  # one record every 37 ms: minutes roll over, buckets expire
_AIRTIME_US = 300  # 0.8 % of the time: the state stays normal in both runs
_DEVICES = (b"\x00\x00\x00\x00\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00\x00\x02", None)
_TIMED = 20000


def per_record_us(prior):
    """Microseconds per record() over _TIMED records that follow `prior` records."""
    dc = DutyCycle()
    t = 0
    for n in range(prior):
        dc.record(t, _AIRTIME_US, _DEVICES[n % 3])
        t += _STEP_MS
    t0 = _now_us()
    for n in range(_TIMED):
        dc.record(t, _AIRTIME_US, _DEVICES[n % 3])
        t += _STEP_MS
    return _elapsed_us(t0) / _TIMED


def measure():
    best_small = best_large = None
    for _ in range(3):
        small = per_record_us(1000)
        large = per_record_us(100000)
        if best_small is None or small < best_small:
            best_small = small
        if best_large is None or large < best_large:
            best_large = large
    return best_small, best_large


def line(runtime, small, large):
    return "{:<12} record() after 1k: {:7.2f} us   after 100k: {:7.2f} us   ratio {:.2f}".format(
        runtime, small, large, large / small
    )


def main():
    small, large = measure()
    if _IS_MPY:
        print(line("micropython", small, large))
        return
    print(line("cpython", small, large))
    import os
    import subprocess

    try:
        out = subprocess.run(
            ["micropython", os.path.abspath(__file__), "--inner"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        print("micropython  not found on PATH")
        return
    text = (out.stdout.strip() or out.stderr.strip()).splitlines()
    print(text[-1] if text else "micropython  no output (exit {})".format(out.returncode))


main()

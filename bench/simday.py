# One simulated day of a hub on simulated hardware; runs under CPython and MicroPython alike.
# Prints "simday <wall seconds> <frames sent> <alerts>". Used by bench/bench_simday.py.
import sys
import time

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")

from agent.examples import DBCH04_CONFIG  # noqa: E402
from agent.hub import Hub  # noqa: E402
from boards import sim  # noqa: E402
from hal.sim.flash import SimFlash  # noqa: E402
from hal.sim.radio import Medium  # noqa: E402
from hal.sim.vclock import VirtualClock  # noqa: E402

CONFIG = dict(DBCH04_CONFIG)
CONFIG["UpperBandSubGHzChannels0To26"] = []


def ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def main():
    clock = VirtualClock()
    medium = Medium(clock, seed=3)
    hub = Hub(sim.make_hal(flash=SimFlash(), clock=clock, medium=medium), sim)
    hub.handle({"t": "q", "id": 1, "op": "config.set", "a": {"config": CONFIG}})
    frame = b"\x55" * 100
    meter = b"\x00\x00\x00\x00\x00\x00\x00\x01"
    t0 = ms()
    sent = 0
    for minute in range(24 * 60):
        # a meter reading every 10 s, and a busy hour in the evening at 10x the allowed rate
        n = 6 if not 18 * 60 <= minute < 19 * 60 else 1200
        for _ in range(n):
            if hub.transmit(frame, device=meter if n > 6 else None, essential=n == 6):
                sent += 1
        clock.advance_ms(60000)
        hub.tick()
        for seq, _k, _d in hub.outbox.pending():
            hub.outbox.ack(seq)
    wall = (ms() - t0) / 1000
    print("simday {:.3f} {} {}".format(wall, sent, hub.outbox.next_seq))


main()

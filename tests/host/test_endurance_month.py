"""A simulated month of the hub's life on CPython (tests/kits/endurance.py says what happens
in it): nothing lost or duplicated, airtime within the limit, the channel budget a rolling week,
and memory that does not grow from week to week.

Memory: tracemalloc traces from the end of week 1 (the hub is warmed up: every record, the
airtime log and the medium's recent ring are at their working size) and counts, at the end of
each later week, what the agent's, the HAL's and the board's code allocated and is still alive.
By the end of week 2 the hub has been rebooted and all its state replaced, so that figure is
its whole working set; weeks 3 and 4 must not hold more. The same weeks are also counted in
GC-tracked objects.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from pathlib import Path

import pytest

from agent.server import WINDOW
from tests.kits.endurance import CHANGES_PER_WEEK, LIMIT_US, Life

ROOT = Path(__file__).resolve().parents[2]

DAYS = 28
# Growth allowed: traced bytes from the end of week 2 to the end of week 4, GC-tracked objects
# from the end of week 1 to the end of week 4.
GROWTH_BYTES = 2048
GROWTH_OBJECTS = 40
# The simulated air (the tests' LabMedium, on hal/sim/radio.py) is the world, not the device: it
# keeps one airtime figure per clock hour by design (an int object per hour on CPython); its
# bounded parts are checked by size below. Only its hal/ part needs leaving out of the traces.
_FILTERS = [tracemalloc.Filter(True, str(ROOT / d / "*")) for d in ("agent", "hal", "boards")]
_FILTERS += [tracemalloc.Filter(False, str(ROOT / "hal" / "sim" / "radio.py"))]


class Tracer:
    def __init__(self):
        self.bytes = []  # (day, bytes allocated since week 1 by the agent and the HAL, alive)
        self.top = []

    def __call__(self, life: Life, day: int) -> None:
        if day == 7:
            tracemalloc.start(1)
            return
        if tracemalloc.is_tracing():
            gc.collect()
            snap = tracemalloc.take_snapshot().filter_traces(_FILTERS)
            self.bytes.append((day, sum(s.size for s in snap.statistics("filename"))))
            self.top = snap.statistics("lineno")[:8]


@pytest.fixture(scope="module")
def month():
    tracer = Tracer()
    t0 = time.monotonic()
    try:
        life = Life(DAYS, on_checkpoint=tracer).run()
    finally:
        tracemalloc.stop()
    life.drain()
    life.seconds = time.monotonic() - t0
    life.tracer = tracer
    return life


def test_a_month_ran(month):
    assert month.world.monotonic_ms() // 86_400_000 == DAYS
    assert month.boots >= 1 + 2 * (DAYS // 7)  # a requested reboot and a power cut each week
    assert month.cuts >= DAYS // 7
    assert month.storm_n >= 9 * 20
    print(f"a simulated month in {month.seconds:.1f} s: {month.requests} requests, {len(month.issued())} alerts")


def test_no_alert_lost_duplicated_or_left_behind(month):
    issued = month.issued()
    assert len(issued) > 200
    assert month.twice() == []
    assert month.refused == 0
    assert month.lost() == []
    assert month.phantom() == []
    assert issued == list(range(issued[0], issued[-1] + 1))
    assert len(month.hub.outbox) == 0 and month.server.inflight == {}
    assert month.duplicates <= month.cuts * WINDOW
    assert month.unanswered == [] and month.internal == []


def test_duty_cycle_within_the_regulated_limit_all_month(month):
    most = month.medium.max_window_airtime_us()
    assert most <= LIMIT_US, f"{most} us in the hour from {month.medium.max_window_start_ms()} ms"
    assert most > LIMIT_US * 3 // 4
    n = month.alerts
    assert (n["8F20"], n["8F22"], n["8F24"]) == (n["8F21"], n["8F23"], n["8F25"])
    assert n["8F24"] > 0
    # the medium's exact airtime log is one hour long whatever the length of the run, and its
    # other logs are rings
    assert len(month.medium._window(3_600_000)) < 200
    assert len(month.medium.recent()) <= 256


def test_channel_budget_is_a_rolling_week_across_reboots(month):
    moved, stayed, forced = month.move_counts()
    wrong = month.budget_violations()
    assert wrong[:5] == [], f"{len(wrong)} alerts against the budget"
    # noise every day: the budget is used up every week, and comes back every week
    assert moved >= CHANGES_PER_WEEK * (DAYS // 7 - 1)
    assert stayed > 0


def test_memory_does_not_grow_from_week_to_week(month):
    traced = month.tracer.bytes
    objects = month.heap_figures()
    print("traced bytes allocated since week 1 and alive, by week end:", traced)
    print("GC-tracked objects by week end:", objects)
    assert [d for d, _ in traced] == [14, 21, 28]
    assert 0 < traced[0][1] < 256 * 1024
    assert traced[-1][1] - traced[0][1] <= GROWTH_BYTES, "\n".join(str(s) for s in month.tracer.top)
    assert objects[-1][1] - objects[0][1] <= GROWTH_OBJECTS, objects


def test_flash_writes_stay_bounded(month):
    # Flash wear: mutating file-system operations per day (a record write is 3: create, write,
    # rename). Kept for the record and bounded so a write on every tick would show.
    writes = month.flash_writes[: month.checkpoints]
    per_day = (writes[-1][1] - writes[0][1]) / (writes[-1][0] - writes[0][0])
    print(f"flash: {per_day:.0f} mutating operations a day")
    assert per_day < 3 * 1440 * 1.5

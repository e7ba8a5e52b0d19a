"""A hub on simulated hardware in this process (the CPython agent behind `dbch agent`, the hub
`dbch triage dial` runs): boards.sim's parts, storage in a directory, and real time that
clock.advance may move forward, as on a virtual board."""

from __future__ import annotations

from pathlib import Path


def fast_forward_clock():
    """Real time that clock.advance may move forward (as on a virtual board)."""
    from hal.mcu import McuClock
    from hal.sim.clock import FastForwardClock

    return FastForwardClock(McuClock())


def make_hal(fs: Path | str, eui, *, link=None, clock=None):
    """boards.sim's Hal with storage in `fs`, on `clock` (default: a fast_forward_clock())."""
    from boards import sim

    clock = clock if clock is not None else fast_forward_clock()
    return sim.make_hal(storage_dir=str(fs), eui=eui, link=link, clock=clock)

"""One job for each of several boards, side by side: a thread each, since a job on a board mostly
waits on its serial line. Used by the commands that take several ports (`dbch flash --port A
--port B`, `dbch selftest --port A,B`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

Done = Callable[[int, Any, "BaseException | None"], None]


def side_by_side(
    jobs: Sequence[Callable[[], Any]], *, names: Sequence[str] | None = None, on_done: Done | None = None
) -> list[tuple[Any, BaseException | None]]:
    """Run every job at once, each in a thread of its own; for each, in order, (its result, None)
    or (None, the exception that ended it): one job that fails stops no other. on_done(index,
    result, error) is called in the job's thread as it ends. Ctrl-C in the caller's thread is
    not held up (the threads are daemons, joined with a timeout)."""
    out: list[tuple[Any, BaseException | None]] = [(None, None)] * len(jobs)

    def run(i: int, job: Callable[[], Any]) -> None:
        try:
            out[i] = (job(), None)
        except Exception as e:  # noqa: BLE001  (what ends one board's job is that board's result)
            out[i] = (None, e)
        if on_done is not None:
            on_done(i, *out[i])

    threads = [
        threading.Thread(target=run, args=(i, job), name=names[i] if names else f"job {i}", daemon=True)
        for i, job in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    return out

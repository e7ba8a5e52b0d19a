"""What the long-running commands (`dbch triage serve`, `dbch ipsec watch`) share: their events
printed as they come, and SIGTERM or Ctrl-C asking them to stop rather than interrupting them."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator


def print_event(
    args: argparse.Namespace, prefix: str, kind: str, data: dict, describe: Callable[[str, dict], str | None]
) -> None:
    """One event: with --json a JSON line on stdout ({"event": kind, ...data}), else
    "PREFIX: text" on stderr, the text describe(kind, data) gives; where it gives None, a Major
    Security Incident's announcement for "incident", else the kind and its data as JSON."""
    if args.json:
        print(json.dumps({"event": kind, **data}, sort_keys=True, default=str), flush=True)
        return
    text = describe(kind, data)
    if text is None and kind == "incident":
        text = (
            f"MAJOR SECURITY INCIDENT #{data['incident']}: {data['trigger']} {data['counts']}"
            " (notify DCC, Panel, SSC: SEC G3.5)"
        )
    elif text is None:
        text = f"{kind} {json.dumps(data, default=str)}"
    print(f"{prefix}: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and Ctrl-C set `stop` (rather than interrupting) while inside."""

    def on_signal(_signum, _frame) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)

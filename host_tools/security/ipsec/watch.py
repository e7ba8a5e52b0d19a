"""The incident recorder: failed IKE authentications from charon's vici events, counted in the
incident state file until stopped, through charon's restarts."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from host_tools.security.ipsec import IpsecError
from host_tools.security.ipsec.auth_failures import AuthFailures
from host_tools.security.ipsec.incidents import IncidentStore
from host_tools.security.ipsec.vici_session import as_text, vici_session

WATCH_EVENTS = ("log", "ike-updown", "ike-update")


def watch(
    socket_path: str | Path,
    store: IncidentStore,
    on_event: Callable[[str, dict], None],
    stop: threading.Event,
    poll: float = 0.5,
    retry: float = 1.0,
) -> int:
    """Record failed IKE authentications from charon's vici events into `store` until `stop`
    is set; the number recorded. on_event(kind, data) hears "ready" (listening), "failure"
    (one recorded, with the counts), "incident" (a Major Security Incident to announce),
    "lost" and "back" (charon went away and returned: the watcher reconnects every `retry`
    seconds). IpsecError if charon cannot be reached at the start."""
    recorded = 0

    def record(failures: list[dict]) -> None:
        nonlocal recorded
        for failure in failures:
            data, due = store.record(failure)
            recorded += 1
            inc = store.recorder(data)
            on_event("failure", {**failure, "totals": inc.totals, "window": inc.window})
            for report in due:
                on_event("incident", report)

    lost = False
    first = True
    while not stop.is_set():
        try:
            session = vici_session(socket_path, timeout=10)
        except IpsecError:
            if first:
                raise
            stop.wait(retry)
            continue
        first = False
        parser = AuthFailures()  # a restarted charon counts its IKE_SAs from 1 again
        ready = False
        try:
            for label, event in session.listen(list(WATCH_EVENTS), timeout=poll):
                if not ready:  # the first answer comes once the registrations are done
                    ready = True
                    if lost:
                        on_event("back", {"socket": str(socket_path)})
                        lost = False
                    else:
                        on_event("ready", {"socket": str(socket_path), **store.summary()})
                    for report in store.flush():
                        on_event("incident", report)
                record(parser.feed(as_text(label), event) if label is not None else [])
                record(parser.due())
                if stop.is_set():
                    break
        except Exception as e:  # charon went away (or restarted): wait for it
            if not stop.is_set() and not lost:
                on_event("lost", {"socket": str(socket_path), "error": str(e)})
                lost = True
        finally:
            with contextlib.suppress(Exception):
                session.transport.close()
        record(parser.due(everything=True))  # what was still waiting for its peer's identity
        if not stop.is_set():
            stop.wait(retry)
    return recorded

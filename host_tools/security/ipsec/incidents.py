"""The IPsec incident recorder's state file: counts of failed IKE authentications and the Major
Security Incident they declare (agent.incidents.Incidents), kept across restarts."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent import incidents
from host_tools.files import write_json
from host_tools.security.ipsec import IpsecError, state_root

STATE_FILE = "incidents.json"
KEEP_EVENTS = 20


class IncidentStore:
    """The IPsec incident recorder's state file: an agent.incidents.Incidents snapshot, its
    thresholds and the last few failed authentications. Every change is a read-modify-write
    under an exclusive flock on `<file>.lock`, written to a temporary file and renamed over
    the old one, so readers never see half a file and two writers never lose a count."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else state_root() / STATE_FILE
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:
            raise IpsecError(f"incident state {self.path} is unreadable ({e}): move it aside to start afresh") from e
        if not isinstance(data, dict):
            raise IpsecError(f"incident state {self.path} is not a JSON object: move it aside to start afresh")
        data.setdefault("incidents", {})
        data.setdefault("thresholds", {})
        data.setdefault("events", [])
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, data: dict) -> None:
        write_json(self.path, data, sync=True)

    @staticmethod
    def recorder(data: dict, notify: Callable[[dict], Any] | None = None) -> incidents.Incidents:
        inc = incidents.Incidents(notify, data.get("thresholds") or None)
        inc.restore(data.get("incidents") or {})
        return inc

    @contextlib.contextmanager
    def _change(self, notify: Callable[[dict], Any] | None) -> Iterator[tuple[dict, incidents.Incidents]]:
        with self._locked():
            data = self.read()
            inc = self.recorder(data, notify)
            yield data, inc
            data["incidents"] = inc.snapshot()
            self._write(data)

    def record(self, failure: dict) -> tuple[dict, list[dict]]:
        """Count one failed authentication (failure["kind"]): the new state, and the Major
        Security Incident reports that became due (to be announced by the caller)."""
        due: list[dict] = []
        with self._change(lambda report: due.append(report)) as (data, inc):
            inc.record(failure["kind"], failure.get("reason"))
            data["events"] = (list(data["events"]) + [failure])[-KEEP_EVENTS:]
        return data, due

    def flush(self) -> list[dict]:
        """An open incident whose announcement is still pending (the recorder stopped before it
        was made) is due now: its report, once."""
        due: list[dict] = []
        with self._change(lambda report: due.append(report)) as (_data, inc):
            inc.flush()
        return due

    def set_thresholds(self, thresholds: dict[str, int]) -> None:
        if not thresholds:
            return
        incidents.Incidents(thresholds=thresholds)  # ValueError if one is not an int >= 1
        with self._change(None) as (data, _inc):
            data["thresholds"] = {**data["thresholds"], **thresholds}

    def resolve(self) -> dict | None:
        """Close the open Major Security Incident (acknowledged and resolved): its report, or
        None if none was open. The next threshold crossing is a new incident."""
        if not self.path.exists():
            return None
        with self._change(None) as (_data, inc):
            if not inc.open:
                return None
            report = inc.report()
            inc.close()
        return report

    def summary(self) -> dict:
        data = self.read()
        inc = self.recorder(data)
        return {
            "state": str(self.path),
            "totals": dict(inc.totals),
            "window": dict(inc.window),
            "thresholds": dict(inc.thresholds),
            "open": inc.open,
            "notified": inc.notified,
            "incidents": inc.number,
            "trigger": inc.trigger,
            "last": list(data["events"])[-5:],
        }

"""DCC Schedules (DUIS SRV 5.1 CreateSchedule, the seed's MP260 amendment of 3.8.43): a
non-device request the DCC answers itself, validated, stored and given a DSPScheduleID.

Validation is host_tools.duis.schedule's (the seed's rules: ScheduleStartDate a valid date in the
future, ScheduleEndDate when given a valid date in the future and >= ScheduleStartDate,
ScheduleExecutionStartTime defaulting to 00:01:00 UTC, the six frequencies with the month-end
rule); the schema has checked the rest (the scheduled service is one the DCC may schedule, the
DeviceID an EUI).

Response codes. The DUIS 5.4 schema lists E050101-E050112 for 5.1, and the seeds give them no
text; this front uses, as its own choice, one per data item the seed's rules judge:
    E050101  ScheduleStartDate    E050102  ScheduleEndDate    E050103  ScheduleExecutionStartTime
and E050105 for a ScheduleFrequency outside the six (the schema's enumeration refuses it first).

The store is a JSON file (default <user data>/dbch/dcc/schedules.json), replaced atomically at
each change: {"next_id": n, "schedules": [{"id", "frequency", "start_date", "end_date",
"execution_time", "device", "service_reference", "service_reference_variant", "request",
"request_id", "created"}]}. DSPScheduleIDs count up from 1 and are never reused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from host_tools.duis.errors import DuisError
from host_tools.duis.requests import DuisRequest
from host_tools.duis.schedule import Schedule, ScheduleError
from host_tools.paths import data_dir

FIELD_CODES = {
    "ScheduleStartDate": "E050101",
    "ScheduleEndDate": "E050102",
    "ScheduleExecutionStartTime": "E050103",
    "ScheduleFrequency": "E050105",
}


class ScheduleStoreError(DuisError):
    """The schedule store cannot be read or written; the message says which file and why."""


def default_path() -> Path:
    return data_dir("dcc") / "schedules.json"


class ScheduleStore:
    """The DCC Schedules created through this front, in one JSON file (thread-safe)."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else default_path()
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"next_id": 1, "schedules": []}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise ScheduleStoreError(f"cannot read the schedule store {self.path}: {e}") from e
        if not isinstance(data, dict) or not isinstance(data.get("schedules"), list):
            raise ScheduleStoreError(f"{self.path} is not a schedule store (move it away to start a new one)")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".schedules.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise ScheduleStoreError(f"cannot write the schedule store {self.path}: {e}") from e

    def schedules(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._load()["schedules"])

    def add(self, entry: dict[str, Any]) -> int:
        """Store a validated schedule; its new DSPScheduleID."""
        with self._lock:
            data = self._load()
            sid = int(data.get("next_id", 1))
            data["schedules"].append({**entry, "id": sid})
            data["next_id"] = sid + 1
            self._save(data)
            return sid


def schedule_of(entry: dict[str, Any], today: str = "0001-01-01") -> Schedule:
    """The Schedule (its run dates) of a stored entry. today: the date its start must follow
    (stored entries were judged when created: by default any date)."""
    return Schedule(
        entry["frequency"], entry["start_date"], entry.get("end_date"), entry["execution_time"], today=today
    )


def create(req: DuisRequest, store: ScheduleStore, now: dt.datetime | None = None) -> tuple[str, int | None, str]:
    """CreateSchedule: (response code, DSPScheduleID or None, message). `now` is the DCC's UTC
    time (default: now): the start date must be after its date."""
    now = now or dt.datetime.now(dt.timezone.utc)
    a = req.args
    try:
        sched = Schedule(
            a.get("ScheduleFrequency"),
            a.get("ScheduleStartDate"),
            a.get("ScheduleEndDate"),
            a.get("ScheduleExecutionStartTime"),
            today=now.date().isoformat(),
        )
    except ScheduleError as e:
        code = FIELD_CODES.get(e.field, "E050101")
        return code, None, f"{code}: {e}"
    entry = {
        "frequency": sched.frequency,
        "start_date": sched.start_date,
        "end_date": sched.end_date,
        "execution_time": sched.execution_time,
        "device": a.get("DeviceID"),
        "service_reference": a.get("DSPScheduledServiceReference"),
        "service_reference_variant": a.get("DSPScheduledServiceReferenceVariant"),
        "request": a.get("ScheduledRequest"),
        "request_id": req.request_id,
        "created": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }
    sid = store.add(entry)
    return "I0", sid, f"I0: DCC Schedule {sid} created: {sched.frequency} from {sched.start_date}"

"""DCC schedule frequencies (DUIS 3.8.43 CreateSchedule, as amended by MP260).

  Daily        every day
  Weekly       once a week, on the ScheduleStartDate's day of the week
  Monthly      once a month, on the start date's day of the month, or on the month's last day
               where that day does not exist (31 Jan -> 28/29 Feb, 31 Mar, 30 Apr, ...: the day
               is always taken from the start date, so it never drifts to the 28th)
  Quarterly, Half-Yearly, Yearly: as Monthly, every 3, 6 and 12 months

ScheduleExecutionStartTime defaults to 00:01:00 (UTC). ScheduleStartDate must be a valid date in
the future; ScheduleEndDate, when given, a valid date in the future and >= ScheduleStartDate.
"In the future" means strictly after `today`, the UTC date the caller passes in. The end date is
inclusive: a run on the end date still happens.

Dates are "YYYY-MM-DD", times "HH:MM:SS" (a trailing "Z" is accepted: every time here is UTC),
run instants "YYYY-MM-DDTHH:MM:SSZ" (host_tools.duis.times reads them all); years 0001-9999, as
xs:date in practice. The calendar is Python's (datetime).
"""

from __future__ import annotations

import calendar
import datetime as dt

from host_tools.duis.errors import DuisError
from host_tools.duis.times import parse_date, parse_time, utc

FREQUENCIES = ("Daily", "Weekly", "Monthly", "Quarterly", "Half-Yearly", "Yearly")
DEFAULT_EXECUTION_TIME = "00:01:00"

# step of each frequency: ("d", days) or ("m", months)
_STEP = {
    "Daily": ("d", 1),
    "Weekly": ("d", 7),
    "Monthly": ("m", 1),
    "Quarterly": ("m", 3),
    "Half-Yearly": ("m", 6),
    "Yearly": ("m", 12),
}


class ScheduleError(DuisError):
    """A CreateSchedule data item is invalid; `field` names it."""

    def __init__(self, field: str, msg: str):
        super().__init__("{}: {}".format(field, msg))
        self.field = field


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by `months`, the day of the month clamped to the target month's last day;
    OverflowError past year 9999."""
    y, m = divmod(day.year * 12 + day.month - 1 + months, 12)
    if not 1 <= y <= 9999:
        raise OverflowError("year {} is out of range".format(y))
    return dt.date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


class Schedule:
    """A validated CreateSchedule recurrence; `today` is the caller's UTC date "YYYY-MM-DD"."""

    def __init__(
        self,
        frequency: str,
        start_date: str,
        end_date: str | None = None,
        execution_time: str | None = None,
        *,
        today: str,
    ):
        today_d = parse_date(today)  # the caller's own date: a DuisError, not a ScheduleError

        if not isinstance(frequency, str) or frequency not in _STEP:
            raise ScheduleError("ScheduleFrequency", "not one of {}: {!r}".format(", ".join(FREQUENCIES), frequency))
        self.frequency = frequency

        try:
            self._start = parse_date(start_date)
        except DuisError as e:
            raise ScheduleError("ScheduleStartDate", str(e)) from e
        if self._start <= today_d:
            raise ScheduleError("ScheduleStartDate", "{} is not after today ({})".format(start_date, today))
        self.start_date = start_date

        self._end = None
        if end_date is not None:
            try:
                end = parse_date(end_date)
            except DuisError as e:
                raise ScheduleError("ScheduleEndDate", str(e)) from e
            if end <= today_d:
                raise ScheduleError("ScheduleEndDate", "{} is not after today ({})".format(end_date, today))
            if end < self._start:
                raise ScheduleError("ScheduleEndDate", "{} is before {}".format(end_date, start_date))
            self._end = end
        self.end_date = end_date

        if execution_time is None:
            execution_time = DEFAULT_EXECUTION_TIME
        try:
            self._time = parse_time(execution_time)
        except DuisError as e:
            raise ScheduleError("ScheduleExecutionStartTime", str(e)) from e
        self.execution_time = execution_time[:8]

        self._kind, self._step = _STEP[frequency]

    def _day(self, k: int) -> dt.date | None:
        """The date of run k (0 = the start date), or None past year 9999."""
        try:
            if self._kind == "d":
                return self._start + dt.timedelta(days=k * self._step)
            return add_months(self._start, k * self._step)
        except OverflowError:
            return None

    def _first_index(self, day: dt.date) -> int:
        """The smallest k whose run date is on or after `day`."""
        if day <= self._start:
            return 0
        if self._kind == "d":
            return ((day - self._start).days + self._step - 1) // self._step
        k = ((day.year - self._start.year) * 12 + day.month - self._start.month) // self._step
        while True:  # at most twice: k is the last run in or before day's month
            run = self._day(k)
            if run is None or run >= day:
                return k
            k += 1

    def _runs_from(self, k: int | None, count: int) -> list[str]:
        out: list[str] = []
        while k is not None and len(out) < count:
            day = self._day(k)
            if day is None or (self._end is not None and day > self._end):
                break
            out.append("{}T{}Z".format(day.isoformat(), self.execution_time))
            k += 1
        return out

    def _index_after(self, after: str) -> int | None:
        """The first run strictly after the instant `after`; None if none can be (year 9999 ends)."""
        if not isinstance(after, str):
            raise DuisError("not a YYYY-MM-DDTHH:MM:SSZ date-time: {!r}".format(after))
        instant = utc(after)
        # a run on after's own day counts only if its time is later than after's
        if self._time > instant.time():
            return self._first_index(instant.date())
        if instant.date() == dt.date.max:
            return None
        return self._first_index(instant.date() + dt.timedelta(days=1))

    def next_run(self, after: str) -> str | None:
        """First run strictly after the UTC instant `after` ("YYYY-MM-DDTHH:MM:SSZ"), or None once
        the schedule has ended."""
        runs = self._runs_from(self._index_after(after), 1)
        return runs[0] if runs else None

    def runs(self, count: int, after: str | None = None) -> list[str]:
        """Up to `count` runs in order: from the first one, or those strictly after `after`."""
        k = 0 if after is None else self._index_after(after)
        return self._runs_from(k, count)

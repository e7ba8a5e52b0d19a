# DCC schedule frequencies (DUIS 3.8.43 CreateSchedule, as amended by MP260).
#
#   Daily        every day
#   Weekly       once a week, on the ScheduleStartDate's day of the week
#   Monthly      once a month, on the start date's day of the month, or on the month's last day
#                where that day does not exist (31 Jan -> 28/29 Feb, 31 Mar, 30 Apr, ...: the day
#                is always taken from the start date, so it never drifts to the 28th)
#   Quarterly, Half-Yearly, Yearly: as Monthly, every 3, 6 and 12 months
#
# ScheduleExecutionStartTime defaults to 00:01:00 (UTC). ScheduleStartDate must be a valid date in
# the future; ScheduleEndDate, when given, a valid date in the future and >= ScheduleStartDate.
# "In the future" means strictly after `today`, the UTC date the caller passes in. The end date is
# inclusive: a run on the end date still happens.
#
# MicroPython has no datetime: civil dates are counted here as days since 0001-01-01 in the
# proleptic Gregorian calendar (day 0 was a Monday). API dates are "YYYY-MM-DD", times
# "HH:MM:SS" (a trailing "Z" is accepted: every time here is UTC), run instants
# "YYYY-MM-DDTHH:MM:SSZ"; (y, m, d) tuples inside. Years 0001-9999, as xs:date in practice.

from hal.compat import const

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

_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DAYS_400Y = const(146097)
_DAYS_100Y = const(36524)
_DAYS_4Y = const(1461)
_UNIX_EPOCH_DAY = const(719162)  # 1970-01-01
_END_OF_TIME = const(3652059)  # 10000-01-01: runs stop before it

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ScheduleError(ValueError):
    """A CreateSchedule data item is invalid; `field` names it."""

    def __init__(self, field, msg):
        super().__init__("{}: {}".format(field, msg))
        self.field = field


# -- civil calendar -------------------------------------------------------------------------------


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def month_days(y, m):
    if m == 2 and is_leap(y):
        return 29
    return _MONTH_DAYS[m - 1]


def day_number(y, m, d):
    """Days since 0001-01-01 (day 0)."""
    p = y - 1
    n = p * 365 + p // 4 - p // 100 + p // 400 + _DAYS_BEFORE_MONTH[m - 1] + d - 1
    if m > 2 and is_leap(y):
        n += 1
    return n


def civil_date(n):
    """(y, m, d) of day number n (the inverse of day_number)."""
    q400, r = divmod(n, _DAYS_400Y)
    q100 = r // _DAYS_100Y
    if q100 == 4:  # the last day of a 400-year cycle (31 Dec of a year divisible by 400)
        q100 = 3
    r -= q100 * _DAYS_100Y
    q4, r = divmod(r, _DAYS_4Y)
    q1 = r // 365
    if q1 == 4:  # 31 Dec of a leap year
        q1 = 3
    r -= q1 * 365
    y = q400 * 400 + q100 * 100 + q4 * 4 + q1 + 1
    m = 1
    while True:
        md = month_days(y, m)
        if r < md:
            return y, m, r + 1
        r -= md
        m += 1


def weekday(y, m, d):
    """0 = Monday .. 6 = Sunday."""
    return day_number(y, m, d) % 7


def add_months(y, m, d, months):
    """(y, m, d) moved by `months`, the day clamped to the target month's last day."""
    k = y * 12 + (m - 1) + months
    ny = k // 12
    nm = k % 12 + 1
    md = month_days(ny, nm)
    return ny, nm, d if d <= md else md


def _digits(s, i, n):
    v = 0
    for k in range(i, i + n):
        c = s[k]
        if c < "0" or c > "9":
            raise ValueError(s)
        v = v * 10 + ord(c) - 48
    return v


def parse_date(s):
    """ "YYYY-MM-DD" -> (y, m, d); ValueError unless it is a real date (years 0001-9999)."""
    if not isinstance(s, str) or len(s) != 10 or s[4] != "-" or s[7] != "-":
        raise ValueError("not a YYYY-MM-DD date: {!r}".format(s))
    y = _digits(s, 0, 4)
    m = _digits(s, 5, 2)
    d = _digits(s, 8, 2)
    if y < 1 or m < 1 or m > 12 or d < 1 or d > month_days(y, m):
        raise ValueError("no such date: {}".format(s))
    return y, m, d


def parse_time(s):
    """ "HH:MM:SS" -> seconds of the day; ValueError otherwise (24:00:00 included)."""
    if isinstance(s, str) and len(s) == 9 and s[8] == "Z":  # UTC said explicitly
        s = s[:8]
    if not isinstance(s, str) or len(s) != 8 or s[2] != ":" or s[5] != ":":
        raise ValueError("not an HH:MM:SS time: {!r}".format(s))
    h = _digits(s, 0, 2)
    mi = _digits(s, 3, 2)
    sec = _digits(s, 6, 2)
    if h > 23 or mi > 59 or sec > 59:
        raise ValueError("no such time: {}".format(s))
    return h * 3600 + mi * 60 + sec


def parse_date_time(s):
    """ "YYYY-MM-DDTHH:MM:SS" with an optional "Z" (UTC) -> (day number, seconds of the day)."""
    if not isinstance(s, str) or len(s) not in (19, 20) or s[10] != "T":
        raise ValueError("not a YYYY-MM-DDTHH:MM:SSZ date-time: {!r}".format(s))
    return day_number(*parse_date(s[:10])), parse_time(s[11:])


def format_date(y, m, d):
    return "{:04d}-{:02d}-{:02d}".format(y, m, d)


def utc_date(seconds):
    """UTC date "YYYY-MM-DD" of a Clock.utc() value (seconds since 1970-01-01)."""
    return format_date(*civil_date(_UNIX_EPOCH_DAY + int(seconds) // 86400))


# -- the schedule ---------------------------------------------------------------------------------


class Schedule:
    """A validated CreateSchedule recurrence; `today` is the caller's UTC date "YYYY-MM-DD"."""

    def __init__(self, frequency, start_date, end_date=None, execution_time=None, *, today):
        today_n = day_number(*parse_date(today))  # the caller's own date: plain ValueError

        if not isinstance(frequency, str) or frequency not in _STEP:
            raise ScheduleError("ScheduleFrequency", "not one of {}: {!r}".format(", ".join(FREQUENCIES), frequency))
        self.frequency = frequency

        try:
            self._start = parse_date(start_date)
        except ValueError as e:
            raise ScheduleError("ScheduleStartDate", str(e))
        start_n = day_number(*self._start)
        if start_n <= today_n:
            raise ScheduleError("ScheduleStartDate", "{} is not after today ({})".format(start_date, today))
        self.start_date = start_date

        self._end_n = None
        if end_date is not None:
            try:
                end = parse_date(end_date)
            except ValueError as e:
                raise ScheduleError("ScheduleEndDate", str(e))
            end_n = day_number(*end)
            if end_n <= today_n:
                raise ScheduleError("ScheduleEndDate", "{} is not after today ({})".format(end_date, today))
            if end_n < start_n:
                raise ScheduleError("ScheduleEndDate", "{} is before {}".format(end_date, start_date))
            self._end_n = end_n
        self.end_date = end_date

        if execution_time is None:
            execution_time = DEFAULT_EXECUTION_TIME
        try:
            self._time_s = parse_time(execution_time)
        except ValueError as e:
            raise ScheduleError("ScheduleExecutionStartTime", str(e))
        self.execution_time = execution_time[:8]

        self._kind, self._step = _STEP[frequency]

    def _day(self, k):
        """Day number of run k (0 = the start date), or None past year 9999."""
        if self._kind == "d":
            n = day_number(*self._start) + k * self._step
            return n if n < _END_OF_TIME else None
        y, m, d = add_months(self._start[0], self._start[1], self._start[2], k * self._step)
        return day_number(y, m, d) if y <= 9999 else None

    def _first_index(self, day_n):
        """Smallest k whose run date is on or after day number day_n."""
        start_n = day_number(*self._start)
        if day_n <= start_n:
            return 0
        if self._kind == "d":
            return (day_n - start_n + self._step - 1) // self._step
        y, m, _ = civil_date(day_n)
        k = ((y - self._start[0]) * 12 + m - self._start[1]) // self._step
        while True:  # at most twice: k is the last run in or before day_n's month
            n = self._day(k)
            if n is None or n >= day_n:
                return k
            k += 1

    def _instant(self, n):
        y, m, d = civil_date(n)
        return "{}T{}Z".format(format_date(y, m, d), self.execution_time)

    def _runs_from(self, k, count):
        out = []
        while len(out) < count:
            n = self._day(k)
            if n is None or (self._end_n is not None and n > self._end_n):
                break
            out.append(self._instant(n))
            k += 1
        return out

    def _index_after(self, after):
        day_n, secs = parse_date_time(after)
        # a run on after's own day counts only if its time is later than after's
        return self._first_index(day_n if self._time_s > secs else day_n + 1)

    def next_run(self, after):
        """First run strictly after the UTC instant `after` ("YYYY-MM-DDTHH:MM:SSZ"), or None once
        the schedule has ended."""
        runs = self._runs_from(self._index_after(after), 1)
        return runs[0] if runs else None

    def runs(self, count, after=None):
        """Up to `count` runs in order: from the first one, or those strictly after `after`."""
        k = 0 if after is None else self._index_after(after)
        return self._runs_from(k, count)

"""Dates and times as DUIS writes them: xs:dateTime in UTC, and the plain xs:date and xs:time of
data items such as a schedule's start date and time. Every DUIS time is UTC; a time given without
a zone is read as UTC. The calendar is Python's (datetime): no date arithmetic is written here."""

from __future__ import annotations

import datetime as dt
import re

from host_tools.duis.errors import DuisError

_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})Z?")


def utc(when: dt.datetime | str | None) -> dt.datetime:
    """`when` (a datetime, xs:dateTime text, or None for now) as an aware datetime in UTC;
    DuisError if it is none of these."""
    if when is None:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if isinstance(when, str):
        m = _DATETIME.fullmatch(when.strip())
        if not m:
            raise DuisError("{!r} is not an xs:dateTime (YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm])".format(when))
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        frac = m.group(7) or ""
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        tz = dt.timezone.utc
        if m.group(8) and m.group(8) != "Z":
            sign = -1 if m.group(8)[0] == "-" else 1
            tz = dt.timezone(sign * dt.timedelta(hours=int(m.group(8)[1:3]), minutes=int(m.group(8)[4:6])))
        try:
            when = dt.datetime(y, mo, d, h, mi, s, micro, tzinfo=tz)
        except ValueError as e:
            raise DuisError("{!r} is not a valid date and time: {}".format(m.group(0), e)) from e
    if not isinstance(when, dt.datetime):
        raise DuisError("expected a datetime or an ISO 8601 string, got {!r}".format(when))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)  # DUIS times are UTC
    return when.astimezone(dt.timezone.utc)


def utc_text(when: dt.datetime | str | None = None) -> str:
    """An xs:dateTime in UTC ('2030-01-15T09:00:00Z'); fractions of a second only when non-zero."""
    t = utc(when)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += ".{:06d}".format(t.microsecond).rstrip("0")
    return text + "Z"


def has_zone(text: str) -> bool:
    """Whether xs:dateTime text says its zone (Z or +hh:mm)."""
    text = text.strip()
    return text.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", text) is not None


def _read(pattern: re.Pattern, text: str, shape: str, kind: str, make):
    m = pattern.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise DuisError("not {}: {!r}".format(shape, text))
    try:
        return make(*(int(g) for g in m.groups()))
    except ValueError as e:
        raise DuisError("no such {}: {}".format(kind, text)) from e


def parse_date(text: str) -> dt.date:
    """ "YYYY-MM-DD" -> date; DuisError unless it is a real date (years 0001-9999)."""
    return _read(_DATE, text, "a YYYY-MM-DD date", "date", dt.date)


def parse_time(text: str) -> dt.time:
    """ "HH:MM:SS", with an optional "Z" (UTC said explicitly) -> time; DuisError otherwise
    (24:00:00 included)."""
    return _read(_TIME, text, "an HH:MM:SS time", "time", dt.time)

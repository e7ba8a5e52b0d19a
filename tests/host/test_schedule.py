"""host_tools.duis.schedule: CreateSchedule recurrences, and the date and time texts they are
given (host_tools.duis.times)."""

import datetime as dt
import unittest

from host_tools.duis.schedule import (
    DEFAULT_EXECUTION_TIME,
    FREQUENCIES,
    Schedule,
    ScheduleError,
    add_months,
)
from host_tools.duis.times import parse_date, parse_time

TODAY = "2026-06-01"


def dates(runs):
    return [r[:10] for r in runs]


class TestCalendar(unittest.TestCase):
    def test_add_months_clamps(self):
        def add(y, m, d, months):
            got = add_months(dt.date(y, m, d), months)
            return got.year, got.month, got.day

        self.assertEqual(add(2027, 1, 31, 1), (2027, 2, 28))
        self.assertEqual(add(2028, 1, 31, 1), (2028, 2, 29))
        self.assertEqual(add(2026, 8, 31, 3), (2026, 11, 30))
        self.assertEqual(add(2026, 11, 30, 3), (2027, 2, 28))
        self.assertEqual(add(2028, 2, 29, 12), (2029, 2, 28))
        self.assertEqual(add(2026, 12, 15, 1), (2027, 1, 15))
        with self.assertRaises(OverflowError):
            add_months(dt.date(9999, 12, 1), 1)

    def test_parse(self):
        self.assertEqual(parse_date("2028-02-29"), dt.date(2028, 2, 29))
        self.assertEqual(parse_time("00:01:00"), dt.time(0, 1))
        self.assertEqual(parse_time("23:59:59"), dt.time(23, 59, 59))
        self.assertEqual(parse_time("23:59:59Z"), dt.time(23, 59, 59))
        for bad in (
            "2026-02-30",
            "2026-13-01",
            "x",
            "2026-00-10",
            "2026-06-00",
            "2100-02-29",
            "2026-6-01",
            "0000-01-01",
            "2026/06/01",
            "2026-06-1a",
            "20260601",
            None,
            20260601,
        ):
            with self.assertRaises(ValueError):
                parse_date(bad)
        for bad in ("24:00:00", "12:60:00", "12:00:60", "1:00:00", "12:00", "12-00-00", "ab:cd:ef", None):
            with self.assertRaises(ValueError):
                parse_time(bad)


class TestFrequencies(unittest.TestCase):
    def test_daily(self):
        s = Schedule("Daily", "2026-06-10", today=TODAY)
        self.assertEqual(s.runs(3), ["2026-06-10T00:01:00Z", "2026-06-11T00:01:00Z", "2026-06-12T00:01:00Z"])
        self.assertEqual(
            dates(Schedule("Daily", "2026-12-30", today=TODAY).runs(4)),
            ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"],
        )

    def test_weekly_keeps_the_start_weekday(self):
        s = Schedule("Weekly", "2026-06-10", today=TODAY)
        got = dates(s.runs(6))
        self.assertEqual(got, ["2026-06-10", "2026-06-17", "2026-06-24", "2026-07-01", "2026-07-08", "2026-07-15"])
        for d in got:
            self.assertEqual(parse_date(d).weekday(), 2)  # Wednesday
        self.assertEqual(s.next_run("2026-06-11T00:00:00Z"), "2026-06-17T00:01:00Z")
        self.assertEqual(s.next_run("2026-06-17T00:00:59Z"), "2026-06-17T00:01:00Z")
        self.assertEqual(s.next_run("2026-06-17T00:01:00Z"), "2026-06-24T00:01:00Z")

    def test_monthly_mid_month(self):
        s = Schedule("Monthly", "2026-06-15", today=TODAY)
        self.assertEqual(
            dates(s.runs(8)),
            [
                "2026-06-15",
                "2026-07-15",
                "2026-08-15",
                "2026-09-15",
                "2026-10-15",
                "2026-11-15",
                "2026-12-15",
                "2027-01-15",
            ],
        )

    def test_monthly_month_end_never_drifts(self):
        s = Schedule("Monthly", "2027-01-31", today=TODAY)
        self.assertEqual(
            dates(s.runs(14)),
            [
                "2027-01-31",
                "2027-02-28",
                "2027-03-31",
                "2027-04-30",
                "2027-05-31",
                "2027-06-30",
                "2027-07-31",
                "2027-08-31",
                "2027-09-30",
                "2027-10-31",
                "2027-11-30",
                "2027-12-31",
                "2028-01-31",
                "2028-02-29",
            ],
        )
        self.assertEqual(s.next_run("2027-02-28T00:01:00Z"), "2027-03-31T00:01:00Z")
        self.assertEqual(s.next_run("2027-03-01T00:00:00Z"), "2027-03-31T00:01:00Z")
        self.assertEqual(s.next_run("2027-03-31T00:01:01Z"), "2027-04-30T00:01:00Z")
        self.assertEqual(dates(s.runs(3, after="2028-02-29T00:01:00Z")), ["2028-03-31", "2028-04-30", "2028-05-31"])

    def test_monthly_from_the_30th(self):
        s = Schedule("Monthly", "2027-01-30", today=TODAY)
        self.assertEqual(dates(s.runs(3)), ["2027-01-30", "2027-02-28", "2027-03-30"])

    def test_quarterly_from_31_august(self):
        s = Schedule("Quarterly", "2026-08-31", today=TODAY)
        self.assertEqual(
            dates(s.runs(7)),
            ["2026-08-31", "2026-11-30", "2027-02-28", "2027-05-31", "2027-08-31", "2027-11-30", "2028-02-29"],
        )
        self.assertEqual(s.next_run("2026-09-01T00:00:00Z"), "2026-11-30T00:01:00Z")
        self.assertEqual(s.next_run("2027-03-15T12:00:00Z"), "2027-05-31T00:01:00Z")

    def test_half_yearly(self):
        s = Schedule("Half-Yearly", "2026-08-31", today=TODAY)
        self.assertEqual(dates(s.runs(5)), ["2026-08-31", "2027-02-28", "2027-08-31", "2028-02-29", "2028-08-31"])

    def test_yearly_from_29_february(self):
        s = Schedule("Yearly", "2028-02-29", today=TODAY)
        self.assertEqual(dates(s.runs(5)), ["2028-02-29", "2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"])
        t = Schedule("Yearly", "2096-02-29", today=TODAY)
        self.assertEqual(dates(t.runs(3, after="2099-06-01T00:00:00Z")), ["2100-02-28", "2101-02-28", "2102-02-28"])
        self.assertEqual(t.next_run("2103-03-01T00:00:00Z"), "2104-02-29T00:01:00Z")

    def test_leap_days_2000_and_2100(self):
        self.assertEqual(
            dates(Schedule("Daily", "2000-02-28", today="1999-12-31").runs(3)),
            ["2000-02-28", "2000-02-29", "2000-03-01"],
        )
        self.assertEqual(
            dates(Schedule("Daily", "2100-02-27", today=TODAY).runs(3)), ["2100-02-27", "2100-02-28", "2100-03-01"]
        )
        self.assertEqual(dates(Schedule("Monthly", "2100-01-29", today=TODAY).runs(2)), ["2100-01-29", "2100-02-28"])
        self.assertEqual(dates(Schedule("Monthly", "2028-01-29", today=TODAY).runs(2)), ["2028-01-29", "2028-02-29"])
        Schedule("Daily", "2028-02-29", today=TODAY)  # a real date
        with self.assertRaises(ScheduleError):
            Schedule("Daily", "2100-02-29", today=TODAY)

    def test_runs_stop_at_the_end_of_year_9999(self):
        s = Schedule("Daily", "9999-12-30", today=TODAY)
        self.assertEqual(dates(s.runs(5)), ["9999-12-30", "9999-12-31"])
        self.assertIsNone(s.next_run("9999-12-31T23:00:00Z"))
        self.assertEqual(dates(Schedule("Monthly", "9999-11-30", today=TODAY).runs(5)), ["9999-11-30", "9999-12-30"])

    def test_after_in_another_zone_is_read_in_utc(self):
        s = Schedule("Daily", "2026-06-10", today=TODAY)
        self.assertEqual(s.next_run("2026-06-11T01:00:30+01:00"), "2026-06-11T00:01:00Z")
        self.assertEqual(s.next_run("2026-06-11T01:01:30+01:00"), "2026-06-12T00:01:00Z")

    def test_end_date_is_inclusive_cut_off(self):
        s = Schedule("Daily", "2026-06-10", "2026-06-12", today=TODAY)
        self.assertEqual(dates(s.runs(10)), ["2026-06-10", "2026-06-11", "2026-06-12"])
        self.assertEqual(s.next_run("2026-06-12T00:00:59Z"), "2026-06-12T00:01:00Z")
        self.assertIsNone(s.next_run("2026-06-12T00:01:00Z"))
        self.assertEqual(s.runs(5, after="2026-06-12T00:01:00Z"), [])
        m = Schedule("Monthly", "2027-01-31", "2027-04-29", today=TODAY)
        self.assertEqual(dates(m.runs(10)), ["2027-01-31", "2027-02-28", "2027-03-31"])
        one = Schedule("Yearly", "2026-07-01", "2026-07-01", today=TODAY)
        self.assertEqual(one.runs(5), ["2026-07-01T00:01:00Z"])

    def test_execution_time(self):
        s = Schedule("Daily", "2026-06-10", today=TODAY)
        self.assertEqual(s.execution_time, DEFAULT_EXECUTION_TIME)
        self.assertEqual(s.execution_time, "00:01:00")
        self.assertEqual(s.next_run("2026-06-09T23:00:00Z"), "2026-06-10T00:01:00Z")
        late = Schedule("Weekly", "2026-06-10", execution_time="23:59:59", today=TODAY)
        self.assertEqual(late.runs(1), ["2026-06-10T23:59:59Z"])
        self.assertEqual(late.next_run("2026-06-10T23:59:58"), "2026-06-10T23:59:59Z")
        self.assertEqual(late.next_run("2026-06-10T23:59:59Z"), "2026-06-17T23:59:59Z")
        self.assertEqual(
            Schedule("Daily", "2026-06-10", None, "06:30:00Z", today=TODAY).runs(1), ["2026-06-10T06:30:00Z"]
        )

    def test_next_run_before_the_start(self):
        s = Schedule("Quarterly", "2026-08-31", today=TODAY)
        self.assertEqual(s.next_run("2026-06-01T10:00:00Z"), "2026-08-31T00:01:00Z")
        self.assertEqual(s.next_run("1990-01-01T00:00:00Z"), "2026-08-31T00:01:00Z")
        self.assertEqual(s.runs(0), [])

    def test_bad_after(self):
        s = Schedule("Daily", "2026-06-10", today=TODAY)
        for bad in (
            "2026-06-10",
            "2026-06-10 00:00:00",
            "2026-06-10T24:00:00Z",
            "2026-06-31T00:00:00Z",
            "2026-06-10T00:00:00+01",
            None,
        ):
            with self.assertRaises(ValueError):
                s.next_run(bad)

    def test_every_frequency_is_known(self):
        self.assertEqual(FREQUENCIES, ("Daily", "Weekly", "Monthly", "Quarterly", "Half-Yearly", "Yearly"))
        for f in FREQUENCIES:
            self.assertEqual(Schedule(f, "2026-06-10", today=TODAY).runs(1), ["2026-06-10T00:01:00Z"])


class TestValidation(unittest.TestCase):
    def _bad(self, field, *args, **kwargs):
        kwargs.setdefault("today", TODAY)
        with self.assertRaises(ValueError) as cm:
            Schedule(*args, **kwargs)
        self.assertIsInstance(cm.exception, ScheduleError)
        self.assertEqual(cm.exception.field, field)
        self.assertIn(field, str(cm.exception))

    def test_unknown_frequency(self):
        for f in ("Fortnightly", "daily", "HalfYearly", "", None, 7):
            self._bad("ScheduleFrequency", f, "2026-06-10")

    def test_invalid_start_date(self):
        for d in ("2026-02-30", "2026-13-01", "x", "", "2026-6-10", "2026-06-10T00:00:00Z", None, 20260610):
            self._bad("ScheduleStartDate", "Daily", d)

    def test_start_not_in_the_future(self):
        self._bad("ScheduleStartDate", "Daily", TODAY)
        self._bad("ScheduleStartDate", "Daily", "2026-05-31")
        self._bad("ScheduleStartDate", "Monthly", "2020-01-31")
        Schedule("Daily", "2026-06-02", today=TODAY)  # tomorrow is in the future

    def test_invalid_end_date(self):
        for d in ("2026-02-30", "2027-13-01", "x", "2026/07/01"):
            self._bad("ScheduleEndDate", "Daily", "2026-06-10", d)

    def test_end_before_start_or_not_in_the_future(self):
        self._bad("ScheduleEndDate", "Daily", "2026-06-10", "2026-06-09")
        self._bad("ScheduleEndDate", "Monthly", "2027-01-31", "2026-12-31")
        self._bad("ScheduleEndDate", "Daily", "2026-06-10", TODAY)
        self._bad("ScheduleEndDate", "Daily", "2026-06-10", "2025-01-01")

    def test_bad_execution_time(self):
        for t in ("24:00:00", "23:60:00", "23:59:60", "1:00:00", "00:01", "00:01:00.000", "noon", 60):
            self._bad("ScheduleExecutionStartTime", "Daily", "2026-06-10", None, t)

    def test_bad_today_is_the_callers_error(self):
        with self.assertRaises(ValueError) as cm:
            Schedule("Daily", "2026-06-10", today="junk")
        self.assertFalse(isinstance(cm.exception, ScheduleError))
        with self.assertRaises(TypeError):
            Schedule("Daily", "2026-06-10")

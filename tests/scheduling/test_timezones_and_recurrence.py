"""Local times to UTC and yearly rules: DST gaps and repeats, 29 February, year ends, bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaign.scheduling.recurrence import LEAP_DAY_NOTE, next_yearly, yearly_note
from campaign.scheduling.timezones import ScheduleError, to_utc


def test_a_local_time_becomes_its_utc_instant() -> None:
    assert to_utc("2027-06-26T09:00", "Europe/Paris") == datetime(2027, 6, 26, 7, tzinfo=UTC)
    assert to_utc("2027-01-15T09:00", "Europe/Paris") == datetime(2027, 1, 15, 8, tzinfo=UTC)


def test_bad_inputs_are_refused_in_plain_words() -> None:
    with pytest.raises(ScheduleError, match="'Europe/Pariss' is not a known time zone"):
        to_utc("2027-06-26T09:00", "Europe/Pariss")
    with pytest.raises(
        ScheduleError,
        match="2027-03-28 02:30 does not exist in Europe/Paris: clocks go from 02:00 to 03:00",
    ):
        to_utc("2027-03-28T02:30", "Europe/Paris")
    with pytest.raises(ScheduleError, match="happens twice in Europe/Paris") as twice:
        to_utc("2027-10-31T02:30", "Europe/Paris")
    assert "00:30 UTC" in str(twice.value) and "01:30 UTC" in str(twice.value)
    with pytest.raises(ScheduleError, match="is in the past"):
        to_utc("2027-06-26T09:00", "Europe/Paris", not_before=datetime(2027, 7, 1, tzinfo=UTC))
    with pytest.raises(ScheduleError, match="not a date and time"):
        to_utc("26/06/2027 9h", "Europe/Paris")


def test_a_half_hour_gap_is_named_with_its_own_times() -> None:
    with pytest.raises(ScheduleError, match="clocks go from 02:00 to 02:30"):
        to_utc("2027-10-03T02:15", "Australia/Lord_Howe")


def test_yearly_26_june_fires_at_9_local_in_summer_and_winter_zones() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    # Paris is on summer time (UTC+2) in June, Sydney on winter time (UTC+10).
    assert next_yearly(start, 6, 26, "09:00", "Europe/Paris") == datetime(
        2027, 6, 26, 7, tzinfo=UTC
    )
    assert next_yearly(start, 6, 26, "09:00", "Australia/Sydney") == datetime(
        2027, 6, 25, 23, tzinfo=UTC
    )
    # 10 December: Paris on winter time (UTC+1), Sydney on summer time (UTC+11).
    assert next_yearly(start, 12, 10, "09:00", "Europe/Paris") == datetime(
        2027, 12, 10, 8, tzinfo=UTC
    )
    assert next_yearly(start, 12, 10, "09:00", "Australia/Sydney") == datetime(
        2027, 12, 9, 22, tzinfo=UTC
    )


def test_29_february_fires_on_the_28th_in_other_years_and_says_so() -> None:
    assert (
        yearly_note(2, 29) == LEAP_DAY_NOTE == "fires on 28 February in years without 29 February"
    )
    assert yearly_note(6, 26) == ""
    fires = []
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(4):
        moment = next_yearly(moment, 2, 29, "10:00", "UTC")
        fires.append(moment.date().isoformat())
    assert fires == ["2026-02-28", "2027-02-28", "2028-02-29", "2029-02-28"]


def test_year_end_in_a_zone_ahead_of_utc() -> None:
    # Tashkent is UTC+5: 31 December 23:30 there is 18:30 UTC the same day, and
    # 1 January 03:00 there is still the previous year in UTC.
    start = datetime(2027, 1, 1, tzinfo=UTC)
    assert next_yearly(start, 12, 31, "23:30", "Asia/Tashkent") == datetime(
        2027, 12, 31, 18, 30, tzinfo=UTC
    )
    after_new_year = next_yearly(start, 1, 1, "03:00", "Asia/Tashkent")
    assert after_new_year == datetime(2027, 12, 31, 22, 0, tzinfo=UTC)
    # Fired, the next one is a year on, never twice in one UTC year's end.
    assert next_yearly(after_new_year, 1, 1, "03:00", "Asia/Tashkent") == datetime(
        2028, 12, 31, 22, 0, tzinfo=UTC
    )


def test_a_yearly_time_in_the_dst_gap_fires_after_the_jump() -> None:
    fired = next_yearly(datetime(2027, 1, 1, tzinfo=UTC), 3, 28, "02:30", "Europe/Paris")
    assert fired.astimezone(UTC) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 CEST


def test_impossible_dates_are_refused() -> None:
    with pytest.raises(ScheduleError, match="April has no day 31"):
        next_yearly(datetime(2027, 1, 1, tzinfo=UTC), 4, 31, "09:00", "UTC")
    with pytest.raises(ScheduleError, match="not a time like 09:00"):
        next_yearly(datetime(2027, 1, 1, tzinfo=UTC), 4, 1, "9am", "UTC")

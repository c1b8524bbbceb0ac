"""When a yearly rule (a month, a day, a local time, a zone) next fires after a given instant."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, time

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from campaign.scheduling.stored_text import labelled
from campaign.scheduling.timezones import ScheduleError, localize, zone_of

LEAP_DAY_NOTE = _l("fires on 28 February in years without 29 February")


def parse_time(value: str) -> time:
    """A local time of day from "HH:MM"."""
    try:
        return datetime.strptime(value.strip(), "%H:%M").time()
    except ValueError:
        raise ScheduleError(
            _l("Time: '%(value)s' is not a time like 09:00", value=value), "time"
        ) from None


def check_month_day(month: int, day: int) -> None:
    """Refuse a date no year has (31 April); 29 February is allowed (see `yearly_note`)."""
    if not 1 <= month <= 12:
        raise ScheduleError(
            _l("Date: month %(month)d does not exist (1 to 12)", month=month), "day"
        )
    longest = 29 if month == 2 else calendar.monthrange(2001, month)[1]
    if not 1 <= day <= longest:
        raise ScheduleError(
            _l(
                "Date: %(month)s has no day %(day)d (1 to %(longest)d)",
                month=labelled(str(month), "month"),
                day=day,
                longest=longest,
            ),
            "day",
        )


def yearly_note(month: int, day: int) -> str | LazyString:
    """What staff should know about when the rule fires ("" when nothing unusual)."""
    return LEAP_DAY_NOTE if (month, day) == (2, 29) else ""


def occurrence_in(year: int, month: int, day: int, at: time, zone: str) -> datetime:
    """The rule's UTC instant in `year`.

    29 February falls back to 28 February in other years. A local time that the zone
    skips that day (daylight-saving gap) fires as many minutes later as the gap is long,
    as a wall clock would; a time shown twice fires at its first showing.
    """
    tz = zone_of(zone)
    if not calendar.isleap(year) and (month, day) == (2, 29):
        day = 28
    naive = datetime(year, month, day, at.hour, at.minute)
    try:
        return localize(naive, tz, ambiguous="first")
    except ScheduleError:
        # fold=0 in a gap reads the time with the offset from before the jump.
        return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def next_yearly(after: datetime, month: int, day: int, at: str | time, zone: str) -> datetime:
    """The first fire strictly after `after` (aware) of the rule, in UTC."""
    check_month_day(month, day)
    at_time = parse_time(at) if isinstance(at, str) else at
    local_year = after.astimezone(zone_of(zone)).year
    # A zone far from UTC can put this year's fire in the previous or next UTC year.
    for year in range(local_year - 1, local_year + 3):
        candidate = occurrence_in(year, month, day, at_time, zone)
        if candidate > after:
            return candidate
    raise AssertionError("a yearly rule fires every year")  # pragma: no cover

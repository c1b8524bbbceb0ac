"""Local date-times in named IANA zones turned into UTC instants, with errors staff can act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# What to do with a local time that a zone's clocks show twice (the hour after they go back).
Ambiguity = Literal["refuse", "first"]


class ScheduleError(ValueError):
    """A schedule cannot be made as asked; the message says why in the user's terms."""


def zone_of(name: str) -> ZoneInfo:
    """The zone called `name` ("Europe/Paris"); ScheduleError naming it if there is none."""
    cleaned = name.strip()
    if not cleaned:
        raise ScheduleError("Time zone: choose one (for example Europe/Paris)")
    try:
        return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"Time zone: {cleaned!r} is not a known time zone (use a name such as Europe/Paris)"
        ) from None


def parse_local(local: str) -> datetime:
    """A naive datetime from "YYYY-MM-DDTHH:MM" (a space instead of the T is accepted)."""
    try:
        return datetime.strptime(local.strip().replace(" ", "T", 1), LOCAL_FORMAT)
    except ValueError:
        raise ScheduleError(
            f"Date and time: {local!r} is not a date and time like 2027-06-26T09:00"
        ) from None


def _shown(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def localize(naive: datetime, zone: ZoneInfo, *, ambiguous: Ambiguity = "refuse") -> datetime:
    """`naive` read as a wall-clock time in `zone`, as an aware UTC datetime.

    A time in the daylight-saving gap is refused. A time shown twice is refused unless
    `ambiguous="first"`, which takes the earlier instant (still summer time).
    """
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    # The round trip through UTC gives back the same wall time only if the time exists.
    round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        before = naive.replace(tzinfo=zone, fold=0).utcoffset() or timedelta(0)
        after = naive.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
        gap = abs(before - after) or timedelta(hours=1)
        start = _gap_start(naive, zone, gap)
        raise ScheduleError(
            f"{_shown(naive)} does not exist in {zone.key}: clocks go from "
            f"{start:%H:%M} to {start + gap:%H:%M}"
        )
    if first.utcoffset() != second.utcoffset() and ambiguous == "refuse":
        earlier, later = first.astimezone(UTC), second.astimezone(UTC)
        raise ScheduleError(
            f"{_shown(naive)} happens twice in {zone.key} (clocks go back that night): at "
            f"{earlier:%H:%M} UTC ({first.tzname()}) and at {later:%H:%M} UTC "
            f"({second.tzname()}); choose a time outside that hour or give it in UTC"
        )
    return first.astimezone(UTC)


def _gap_start(naive: datetime, zone: ZoneInfo, gap: timedelta) -> datetime:
    """The wall-clock minute at which the clocks jumped, for the message."""
    # The last minute before `naive` that exists is the jump's start minus one minute.
    probe = naive.replace(second=0, microsecond=0)
    for _ in range(int(gap.total_seconds() // 60) + 1):
        probe -= timedelta(minutes=1)
        aware = probe.replace(tzinfo=zone)
        if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == probe:
            return probe + timedelta(minutes=1)
    return naive


def to_utc(
    local: str,
    zone: str,
    *,
    not_before: datetime | None = None,
    ambiguous: Ambiguity = "refuse",
) -> datetime:
    """The UTC instant of `local` ("YYYY-MM-DDTHH:MM") in `zone`; ScheduleError if impossible.

    With `not_before` (now, for a send-at), a time not after it is refused as in the past.
    """
    tz = zone_of(zone)
    naive = parse_local(local)
    instant = localize(naive, tz, ambiguous=ambiguous)
    if not_before is not None and instant <= not_before:
        now_local = not_before.astimezone(tz)
        raise ScheduleError(
            f"{_shown(naive)} in {tz.key} is in the past (it is now "
            f"{_shown(now_local.replace(tzinfo=None))} there)"
        )
    return instant


def local_label(instant: datetime, zone: str) -> str:
    """`instant` as "2027-06-26 09:00 Europe/Paris" for staff."""
    tz = zone_of(zone)
    return f"{_shown(instant.astimezone(tz).replace(tzinfo=None))} {tz.key}"

"""Local date-times in named IANA zones turned into UTC instants, with errors staff can act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# What to do with a local time that a zone's clocks show twice (the hour after they go back).
Ambiguity = Literal["refuse", "first"]


class ScheduleError(ValueError):
    """A schedule cannot be made as asked; the message says why in the user's terms.

    `field` names the form field it is about ("zone", "date", "time", "pacing", …; "" when
    the caller knows best). The message is lazy: read in the language of whoever reads it.
    """

    def __init__(self, message: str | LazyString, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def zone_of(name: str) -> ZoneInfo:
    """The zone called `name` ("Europe/Paris"); ScheduleError naming it if there is none."""
    cleaned = name.strip()
    if not cleaned:
        raise ScheduleError(_l("Time zone: choose one (for example Europe/Paris)"), "zone")
    try:
        return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            _l(
                "Time zone: '%(zone)s' is not a known time zone (use a name such as Europe/Paris)",
                zone=cleaned,
            ),
            "zone",
        ) from None


def parse_local(local: str) -> datetime:
    """A naive datetime from "YYYY-MM-DDTHH:MM" (a space instead of the T is accepted)."""
    try:
        return datetime.strptime(local.strip().replace(" ", "T", 1), LOCAL_FORMAT)
    except ValueError:
        raise ScheduleError(
            _l(
                "Date and time: '%(value)s' is not a date and time like 2027-06-26T09:00",
                value=local,
            ),
            "date",
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
            _l(
                "%(moment)s does not exist in %(zone)s: clocks go from %(start)s to %(end)s",
                moment=_shown(naive),
                zone=zone.key,
                start=f"{start:%H:%M}",
                end=f"{start + gap:%H:%M}",
            ),
        )
    if first.utcoffset() != second.utcoffset() and ambiguous == "refuse":
        earlier, later = first.astimezone(UTC), second.astimezone(UTC)
        raise ScheduleError(
            _l(
                "%(moment)s happens twice in %(zone)s (clocks go back that night): at "
                "%(earlier)s UTC (%(first)s) and at %(later)s UTC (%(second)s); choose a time "
                "outside that hour or give it in UTC",
                moment=_shown(naive),
                zone=zone.key,
                earlier=f"{earlier:%H:%M}",
                first=str(first.tzname()),
                later=f"{later:%H:%M}",
                second=str(second.tzname()),
            ),
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
            _l(
                "%(moment)s in %(zone)s is in the past (it is now %(now)s there)",
                moment=_shown(naive),
                zone=tz.key,
                now=_shown(now_local.replace(tzinfo=None)),
            ),
            "date",
        )
    return instant


def local_label(instant: datetime, zone: str) -> str:
    """`instant` as "2027-06-26 09:00 Europe/Paris" for staff."""
    tz = zone_of(zone)
    return f"{_shown(instant.astimezone(tz).replace(tzinfo=None))} {tz.key}"

"""Pacing a launch: each letter's first attempt inside its recipient's office hours, or spread
over a window of days, instead of all at once.

The choice lives in the campaign's send-at schedule rule (`rule["pacing"]`), so no column is
needed; `launch_campaign` asks `first_attempts` for the rows' `next_attempt_at`. Workers only
claim rows whose time has come, and the reconciler queues send jobs for rows as they come due.
"""

from __future__ import annotations

import functools
import importlib.resources
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import force_locale, gettext, ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, Contact
from campaign.models.schedule import Schedule, ScheduleKind
from campaign.scheduling.timezones import ScheduleError, zone_of

OFFICE_HOURS = "office_hours"
WINDOW = "window"
MODES = (OFFICE_HOURS, WINDOW)
OFFICE_START = time(9)
OFFICE_END = time(17)
# A window with less left than this is not worth a rush of letters at closing time: the
# recipients in that zone wait for the next morning instead.
MIN_WINDOW_LEFT = timedelta(hours=1)
MAX_WINDOW_DAYS = 30


def pacing_rule(mode: str, days: int | None = None) -> dict[str, Any] | None:
    """The rule to store for a pacing choice ("" or "none": no pacing); ScheduleError if bad."""
    mode = (mode or "").strip().replace("-", "_")
    if mode in ("", "none"):
        return None
    if mode == OFFICE_HOURS:
        return {"mode": OFFICE_HOURS}
    if mode == WINDOW:
        if days is None or not 1 <= days <= MAX_WINDOW_DAYS:
            raise ScheduleError(
                _l("Days: spread over 1 to %(most)d days", most=MAX_WINDOW_DAYS), "pacing"
            )
        return {"mode": WINDOW, "days": days}
    raise ScheduleError(
        _l("Pacing: '%(mode)s' is not one of none, office_hours, window", mode=mode), "pacing"
    )


def describe(rule: dict[str, Any] | None) -> str:
    """The pacing in words (the interface language), for pages and commands."""
    if not rule:
        return gettext("all at once")
    if rule.get("mode") == OFFICE_HOURS:
        return gettext(
            "in each recipient's office hours (09:00–17:00, Monday to Friday, their own zone: "
            "explicit or from their country, else the schedule's)"
        )
    days = int(rule.get("days", 1))
    return ngettext("spread evenly over %(num)d day", "spread evenly over %(num)d days", days)


def _recorded(rule: dict[str, Any] | None) -> str:
    """The pacing in English, for the audit log (a record, whoever launched)."""
    with force_locale("en"):
        return describe(rule)


def campaign_pacing(campaign: Campaign) -> tuple[dict[str, Any] | None, str]:
    """The pacing rule on the campaign's send-at schedule and that schedule's zone.

    A cancelled send-at (disabled) takes its pacing with it: a launch by hand is then
    all at once, as before pacing existed.
    """
    schedule = db.session.scalar(
        select(Schedule)
        .where(
            Schedule.kind == ScheduleKind.SEND_AT.value,
            Schedule.campaign_id == campaign.id,
            Schedule.is_enabled.is_(True),
        )
        .order_by(Schedule.id.desc())
        .limit(1)
    )
    if schedule is None:
        return None, "UTC"
    pacing = (schedule.rule or {}).get("pacing")
    return (pacing if isinstance(pacing, dict) else None), schedule.timezone or "UTC"


# --- where a recipient is ------------------------------------------------------------------


def _zone_tab() -> str:
    """zone.tab from the system's tz database, else from the tzdata wheel."""
    for root in zoneinfo.TZPATH:
        path = Path(root) / "zone.tab"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return importlib.resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text("utf-8")


@functools.cache
def _country_zones() -> dict[str, list[str]]:
    # The IANA tz database's own country table (what pytz.country_timezones reads).
    zones: dict[str, list[str]] = defaultdict(list)
    for line in _zone_tab().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            zones[fields[0].upper()].append(fields[2])
    return dict(zones)


# zone.tab orders a country's zones geographically (east to west, say), not by where its
# government and most offices are: its first entry for Canada is St John's, for Russia
# Kaliningrad, for Ukraine Simferopol. For the countries whose zones keep different clocks
# and whose first entry is not the capital's, the capital's (or most populous) zone wins.
_MAIN_ZONE = {
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "RU": "Europe/Moscow",
    "UA": "Europe/Kyiv",
}


def country_zone(country: str) -> str | None:
    """The main zone of an ISO 3166 country ("UZ" → Asia/Samarkand, same clock as Tashkent;
    "RU" → Europe/Moscow); None for EU, UN, blank or unknown codes."""
    code = (country or "").strip().upper()
    found = _country_zones().get(code)
    if not found:
        return None
    return _MAIN_ZONE.get(code, found[0])


@functools.cache
def _loads(zone: str) -> bool:
    try:
        zone_of(zone)
    except ScheduleError:
        return False
    return True


def recipient_zone(time_zone: str, country: str) -> str | None:
    """The zone a recipient's office hours are read in: their explicit zone (a mission
    abroad, a country with several clocks), else their country's; None if neither is known.

    The contact form only stores zones that load; one a later tz database dropped falls
    back to the country rather than stopping a launch.
    """
    explicit = (time_zone or "").strip()
    if explicit and _loads(explicit):
        return explicit
    return country_zone(country)


# --- office hours --------------------------------------------------------------------------


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone)


def office_window(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The first weekday 09:00–17:00 span in `zone` from `moment` on, as aware datetimes;
    one already open counts from `moment` if at least MIN_WINDOW_LEFT of it remains."""
    day = moment.astimezone(zone).date()
    for offset in range(8):
        current = day + timedelta(days=offset)
        if current.weekday() >= 5:
            continue
        start, end = _at(current, OFFICE_START, zone), _at(current, OFFICE_END, zone)
        if end - max(start, moment) >= MIN_WINDOW_LEFT:
            return max(start, moment), end
    raise AssertionError("a week always has a weekday")  # pragma: no cover


def _spread(start: datetime, end: datetime, count: int) -> list[datetime]:
    """`count` instants evenly from `start` (inclusive) towards `end` (exclusive)."""
    step = (end - start) / max(count, 1)
    return [start + step * index for index in range(count)]


def first_attempts(
    recipients: Sequence[tuple[int, str | None]],
    rule: dict[str, Any],
    campaign_zone: str,
    launched: datetime,
) -> dict[int, datetime]:
    """Each (contact id, own zone) recipient's first attempt, by contact id, as UTC-aware
    times; a recipient without a zone of their own (None) gets `campaign_zone`."""
    if rule.get("mode") == WINDOW:
        days = int(rule.get("days", 1))
        times = _spread(launched, launched + timedelta(days=days), len(recipients))
        return {contact_id: at for (contact_id, _), at in zip(recipients, times, strict=True)}
    by_zone: dict[str, list[int]] = defaultdict(list)
    for contact_id, own_zone in recipients:
        by_zone[own_zone or campaign_zone].append(contact_id)
    result: dict[int, datetime] = {}
    for zone_name, contact_ids in by_zone.items():
        start, end = office_window(launched, zone_of(zone_name))
        for contact_id, at in zip(contact_ids, _spread(start, end, len(contact_ids)), strict=True):
            result[contact_id] = at.astimezone(launched.tzinfo)
    return result


def pace_rows(campaign: Campaign, rows: list[dict[str, Any]], launched: datetime) -> str:
    """Set the queued rows' `next_attempt_at` by the campaign's pacing; its description."""
    rule, zone = campaign_pacing(campaign)
    if not rule:
        return _recorded(None)
    queued = [row for row in rows if not row["reason"]]  # suppressed rows are never sent
    zones: dict[int, str | None] = {}
    ids = [row["contact_id"] for row in queued]
    for start in range(0, len(ids), 1000):
        for contact_id, time_zone, country in db.session.execute(
            select(Contact.id, Contact.time_zone, Contact.country).where(
                Contact.id.in_(ids[start : start + 1000])
            )
        ):
            zones[contact_id] = recipient_zone(time_zone, country)
    times = first_attempts(
        [(contact_id, zones.get(contact_id)) for contact_id in ids], rule, zone, launched
    )
    for row in queued:
        row["next_attempt_at"] = times[row["contact_id"]]
    return _recorded(rule)

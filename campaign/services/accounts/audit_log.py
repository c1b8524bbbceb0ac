"""Reading the audit log: events filtered by action, actor and day, newest first, by pages.

Recording events is services/accounts/audit.py, which every service imports; reading is only
the audit page's, and it needs the contacts' LIKE escaping (which itself records events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent
from campaign.services.contacts.segments import escape_like
from campaign.services.paging import KeysetPage, newest_first

PER_PAGE = 50


@dataclass(frozen=True)
class AuditFilter:
    """What the log is filtered by; empty values mean "any"."""

    action: str = ""
    actor: str = ""  # part of the actor's e-mail address, any case
    since: date | None = None  # first day shown (UTC)
    until: date | None = None  # last day shown (UTC), included


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def audit_events(
    found: AuditFilter, before: int | None = None, per_page: int = PER_PAGE
) -> KeysetPage[AuditEvent]:
    """The events matching `found`, newest first, those older than event `before` if given.

    Events are appended, so a larger id is a later event: the pages are keyed on the id.
    """
    query = select(AuditEvent)
    if found.action:
        query = query.where(AuditEvent.action == found.action)
    if found.actor:
        pattern = f"%{escape_like(found.actor)}%"
        query = query.where(AuditEvent.actor_email.ilike(pattern, escape="\\"))
    if found.since:
        query = query.where(AuditEvent.at >= _start_of(found.since))
    if found.until:
        query = query.where(AuditEvent.at < _start_of(found.until + timedelta(days=1)))
    return newest_first(query, AuditEvent.id, before, per_page)


def action_codes() -> list[str]:
    """Every kind of event the log holds, for the filter's choices."""
    return list(db.session.scalars(select(AuditEvent.action).distinct().order_by("action")))

"""The audit log page (admins only): newest first, filtered by action, actor and date."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role
from campaign.services.segments import escape_like
from campaign.web.access import allow

bp = Blueprint("audit", __name__, url_prefix="/audit")
PER_PAGE = 50


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw.strip() else None
    except ValueError:
        return None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    action = request.args.get("action", "").strip()[:64]
    actor = request.args.get("actor", "").strip()[:320]
    since = _day(request.args.get("since", ""))
    until = _day(request.args.get("until", ""))
    before_raw = request.args.get("before", "")
    before = int(before_raw) if before_raw.isdigit() and len(before_raw) < 12 else None

    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor_email.ilike(f"%{escape_like(actor)}%", escape="\\"))
    if since:
        query = query.where(AuditEvent.at >= _start_of(since))
    if until:
        query = query.where(AuditEvent.at < _start_of(until + timedelta(days=1)))
    # Events are appended, so a larger id is a later event: keyset on id, newest first.
    if before is not None:
        query = query.where(AuditEvent.id < before)
    events = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(PER_PAGE + 1)))
    more = len(events) > PER_PAGE
    events = events[:PER_PAGE]
    actions = list(db.session.scalars(select(AuditEvent.action).distinct().order_by("action")))
    args = {
        k: v
        for k, v in {
            "action": action,
            "actor": actor,
            "since": since.isoformat() if since else "",
            "until": until.isoformat() if until else "",
        }.items()
        if v
    }
    return render_template(
        "audit/index.html",
        events=events,
        actions=actions,
        args=args,
        next_before=events[-1].id if more and events else None,
        paged=before is not None,
    )

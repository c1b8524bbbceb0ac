"""The audit log page (admins only): newest first, filtered by action, actor and date."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import select

from campaign.extensions import db
from campaign.labels import LABELS, label
from campaign.models import AuditEvent, Role
from campaign.services.contacts.segments import escape_like
from campaign.web.access import allow

bp = Blueprint("audit", __name__, url_prefix="/audit")
PER_PAGE = 50


def event_label(action: str) -> str:
    """An event's readable name; the code itself for an event the table does not know yet."""
    return label(action, "audit_event") if action in LABELS["audit_event"] else action


def target_label(target_type: str) -> str:
    """What an event is about ("Account", "Mailbox"), or the code when it is not known."""
    return (
        label(target_type, "audit_target") if target_type in LABELS["audit_target"] else target_type
    )


def detail_text(detail: object) -> str:
    """An event's details as JSON that reads as written ("Кыргызстан", not "\\u041a…");
    the template escapes it for HTML like any other text."""
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    # Invisible characters a stranger can type into a failed sign-in (U+202E turns the rest
    # of the entry around, U+2028 breaks it) stay visible as escapes, as before.
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in _HIDDEN_CATEGORIES else c for c in text
    )


_HIDDEN_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Cc"})


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
    codes = db.session.scalars(select(AuditEvent.action).distinct().order_by("action"))
    actions = sorted(
        ((code, event_label(code)) for code in codes), key=lambda pair: pair[1].casefold()
    )
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
        event_label=event_label,
        target_label=target_label,
        detail_text=detail_text,
    )

"""The audit log page (admins only): newest first, filtered by action, actor and date."""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from typing import Any

from flask import Blueprint, render_template, request

from campaign.labels import LABELS, label
from campaign.models import Role
from campaign.params import row_id
from campaign.services.accounts import audit_log
from campaign.web.access import allow

bp = Blueprint("audit", __name__, url_prefix="/audit")


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


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    action = request.args.get("action", "").strip()[:64]
    actor = request.args.get("actor", "").strip()[:320]
    since = _day(request.args.get("since", ""))
    until = _day(request.args.get("until", ""))
    found = audit_log.AuditFilter(action, actor, since, until)
    page = audit_log.audit_events(found, before=row_id(request.args.get("before")))
    actions = sorted(
        ((code, event_label(code)) for code in audit_log.action_codes()),
        key=lambda pair: pair[1].casefold(),
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
        events=page.items,
        actions=actions,
        args=args,
        next_before=page.next_before,
        paged=not page.is_first,
        event_label=event_label,
        target_label=target_label,
        detail_text=detail_text,
    )

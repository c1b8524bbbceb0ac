"""The retention page (admins): how long each kind of data is kept; what the last run removed."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from campaign.extensions import db
from campaign.models import Role
from campaign.scheduling.stored_text import read
from campaign.scheduling.timezones import local_label
from campaign.services.privacy import retention
from campaign.web.access import allow, signed_in_user

bp = Blueprint("retention", __name__, url_prefix="/privacy/retention")

# What each period removes, and what it keeps whatever its age.
REMOVES = {
    retention.RetentionKind.INBOUND.value: _l(
        "Replies and unmatched mail, counted from when they arrived or from the newest note "
        "or answer written to them, with those notes and answers. Bounces and auto-replies "
        "lose their content (sender, subject, text) and stay as a bare record, so campaigns' "
        "figures do not change. Kept whatever their age: replies nobody has handled yet, "
        "replies with an answer whose sending is not settled, and replies to letters about "
        "a case not closed by a release or a deportation (detained, charged, sentenced, "
        "missing, deceased or another status). At least 30 days."
    ),
    retention.RetentionKind.TRACKING.value: _l(
        "Who opened or clicked and how: each recorded open and click loses its network "
        "address, browser and time of day (the date stays). The events themselves stay, so "
        "campaigns' figures (opens, clicks, clicks per link) do not change."
    ),
    retention.RetentionKind.AUDIT.value: _l(
        "Entries of the audit log. Each removal is itself recorded as a new entry. At least "
        "90 days, so that nobody can erase the trace of what they just did."
    ),
    retention.RetentionKind.EVIDENCE.value: _l(
        "The stored copy of each letter and answer sent (the exact message). Who was sent "
        "what, when, and the message's SHA-256 fingerprint stay, so counts and the ledger stay "
        "right; copies a pending follow-up still needs are kept. At least 30 days."
    ),
    retention.RetentionKind.IMPORT_FILES.value: _l(
        "Files of rejected rows that contact imports leave to download, and uploaded files "
        "left behind in the instance folder."
    ),
}


def _render(form: dict[str, str], errors: dict[str, str], status: int = 200) -> Any:
    run = retention.last_run()
    schedule = retention.retention_schedule()
    next_run = (
        local_label(schedule.next_run_at, schedule.timezone)
        if schedule is not None and schedule.next_run_at is not None
        else ""
    )
    return (
        render_template(
            "privacy/retention.html",
            kinds=retention.KINDS,
            removes=REMOVES,
            defaults=retention.DEFAULT_DAYS,
            minimums={kind: retention.minimum_days(kind) for kind in retention.KINDS},
            maximum=retention.MAXIMUM_DAYS,
            form=form,
            errors=errors,
            last_run=run,
            last_run_when=local_label(run.ran_at, schedule.timezone) if run and schedule else "",
            last_run_detail=read(run.detail) if run is not None else "",
            next_run=next_run,
        ),
        status,
    )


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    periods = retention.retention_periods()
    return _render({kind: str(days) for kind, days in periods.items()}, {})


@bp.route("/", methods=["POST"])
@allow(Role.ADMIN)
def update() -> Any:
    form = {kind: request.form.get(kind, "") for kind in retention.KINDS}
    try:
        retention.save_periods(form, signed_in_user())
    except retention.RetentionError as refused:
        db.session.rollback()
        return _render(form, refused.errors, 422)
    db.session.commit()
    flash(_("The retention periods are saved; the next daily run applies them."), "success")
    return redirect(url_for("retention.index"))

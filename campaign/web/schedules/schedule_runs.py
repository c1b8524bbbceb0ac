"""The scheduler's record page: every fire, skip and failure, newest first, for staff to read,
and the editors' acknowledgement of the skipped or failed ones
(services/schedules/schedule_runs.py holds the rules)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import ngettext

from campaign.extensions import db
from campaign.labels import choices
from campaign.models import Role
from campaign.services.schedules.schedule_runs import (
    OUTCOMES,
    acknowledge_trouble,
    recent_runs,
    unacknowledged_trouble,
)
from campaign.web.access import allow, may

bp = Blueprint("schedule_runs", __name__)

PAGE_SIZE = 200


@bp.route("/schedules/runs")
@allow(Role.VIEWER)
def index() -> Any:
    outcome = request.args.get("outcome", "")
    if outcome not in OUTCOMES:
        outcome = ""
    return render_template(
        "schedule_runs/index.html",
        rows=recent_runs(outcome, PAGE_SIZE),
        outcome=outcome,
        outcome_words=dict(choices("run_outcome")),
        trouble=unacknowledged_trouble(),
        may_acknowledge=may(Role.EDITOR),
        page_size=PAGE_SIZE,
    )


@bp.route("/schedules/runs/acknowledge", methods=["POST"])
@allow(Role.EDITOR)
def acknowledge() -> Any:
    trouble = acknowledge_trouble()
    db.session.commit()
    flash(
        ngettext(
            "Acknowledged %(num)d skipped or failed fire.",
            "Acknowledged %(num)d skipped or failed fires.",
            trouble.count,
        ),
        "success",
    )
    return redirect(url_for("schedule_runs.index"))

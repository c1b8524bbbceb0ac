"""The restore page (admins): the hold a restored copy is under, and "Resume sending on this
installation" (audited). Services: campaign.services.backups.hold; decision 0087."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from campaign.extensions import db
from campaign.models import Campaign, Role
from campaign.services.backups import hold as holds
from campaign.web.access import allow, signed_in_user

bp = Blueprint("restore_hold", __name__, url_prefix="/privacy/restore")


def _campaigns(ids: list[int]) -> list[Campaign]:
    if not ids:
        return []
    return list(
        db.session.scalars(select(Campaign).where(Campaign.id.in_(ids)).order_by(Campaign.id))
    )


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    hold = holds.restore_hold()
    return render_template(
        "privacy/restore_hold.html",
        hold=hold,
        paused=_campaigns(hold.paused_campaigns) if hold else [],
        unscheduled=_campaigns(hold.unscheduled_campaigns) if hold else [],
        schedules_off=holds.schedules_turned_off(),
    )


@bp.route("/release", methods=["POST"])
@allow(Role.ADMIN)
def release() -> Any:
    if request.form.get("confirm") != "yes":
        flash(
            _(
                "Sending is still held: tick the box to confirm that this copy is the "
                "installation that sends from now on."
            ),
            "error",
        )
        return redirect(url_for("restore_hold.index"))
    try:
        released = holds.release_restore_hold(signed_in_user())
    except holds.HoldNotFinished:
        db.session.commit()
        flash(
            _(
                "Sending is still held: the restore had stopped before pausing the campaigns "
                "and turning off the schedules. That is done now: check the lists below, "
                "then confirm again."
            ),
            "error",
        )
        return redirect(url_for("restore_hold.index"))
    if released:
        db.session.commit()
        flash(
            _(
                "Sending is no longer held. The campaigns the restore paused stay paused "
                "until someone resumes each on its page, and the schedules it turned off "
                "stay off until someone turns each on below."
            ),
            "success",
        )
    else:
        flash(_("This installation is not held: it sends as usual."), "success")
    return redirect(url_for("restore_hold.index"))


@bp.route("/schedules/<int:schedule_id>/on", methods=["POST"])
@allow(Role.ADMIN)
def schedule_on(schedule_id: int) -> Any:
    schedule = holds.turn_schedule_on(schedule_id, signed_in_user())
    if schedule is None:
        flash(_("That schedule is not one the restore turned off, or it is on already."), "error")
    else:
        db.session.commit()
        flash(_("“%(name)s” is on again.", name=schedule.name), "success")
    return redirect(url_for("restore_hold.index"))


@bp.app_template_global("restore_hold_banner")
def restore_hold_banner() -> holds.RestoreHold | None:
    """The hold, for the banner on every staff page (None for strangers or when not held;
    base.html leaves it off the public pages)."""
    if not current_user.is_authenticated:
        return None
    try:
        return holds.restore_hold()
    except SQLAlchemyError:
        # The error page of a broken database must still render: no banner then.
        db.session.rollback()
        return None

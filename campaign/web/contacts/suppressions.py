"""The suppression list: who no campaign may write to, seen and edited by staff."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.labels import label
from campaign.models import Role, Suppression, SuppressionReason
from campaign.params import page_number
from campaign.scheduling import stored_text
from campaign.services.contacts import suppressions as suppression_service
from campaign.web.access import allow, may, signed_in_user

bp = Blueprint("suppressions", __name__, url_prefix="/suppressions")


def _render_index(
    error: str = "", error_field: str = "", form: dict[str, str] | None = None, status: int = 200
) -> Any:
    query = request.args.get("q", "")
    reason = request.args.get("reason", "")
    if reason not in {r.value for r in SuppressionReason}:
        reason = ""
    found = suppression_service.search_suppressions(
        query, reason, page=page_number(request.args.get("page"))
    )
    return (
        render_template(
            "suppressions/index.html",
            found=found,
            read_note=stored_text.read,
            counts=suppression_service.counts_by_reason(),
            reasons=[r.value for r in SuppressionReason],
            filters={"q": query, "reason": reason},
            error=error,
            error_field=error_field,
            form=form or {},
        ),
        status,
    )


# Addresses of people who asked not to be written to are personal data: senders and admins
# only, like the ledger.
@bp.route("/")
@allow(Role.SENDER)
def index() -> Any:
    return _render_index()


@bp.route("/", methods=["POST"])
@allow(Role.SENDER)
def create() -> Any:
    form = {k: request.form.get(k, "") for k in ("email", "note")}
    existing = suppression_service.find_suppression(form["email"])
    try:
        entry = suppression_service.suppress_address(
            form["email"], SuppressionReason.MANUAL, note=form["note"], actor=signed_in_user()
        )
    except suppression_service.SuppressionError as problem:
        db.session.rollback()
        return _render_index(str(problem), problem.field, form, 422)
    db.session.commit()
    if existing is not None:
        flash(
            _(
                "%(email)s was already on the list (%(reason)s).",
                email=entry.email,
                reason=label(entry.reason, "suppression_reason"),
            ),
            "success",
        )
    else:
        flash(_("%(email)s added: no campaign will write to it.", email=entry.email), "success")
    return redirect(url_for("suppressions.index"))


@bp.route("/<int:suppression_id>/remove")
@allow(Role.SENDER)
def confirm_remove(suppression_id: int) -> Any:
    entry = db.get_or_404(Suppression, suppression_id)
    return render_template("suppressions/remove.html", entry=entry, read_note=stored_text.read)


@bp.route("/<int:suppression_id>/remove", methods=["POST"])
@allow(Role.SENDER)
def remove(suppression_id: int) -> Any:
    entry = db.get_or_404(Suppression, suppression_id)
    if entry.reason == SuppressionReason.ERASED.value and not may(Role.ADMIN):
        abort(403)  # an erasure is an administrator's act; so is undoing its guard
    email = entry.email or _("erased on request (address not kept)")
    suppression_service.remove_suppression(entry, actor=signed_in_user())
    db.session.commit()
    flash(
        _(
            "%(email)s removed from the suppression list: campaigns may write to it again.",
            email=email,
        ),
        "success",
    )
    return redirect(url_for("suppressions.index"))

"""Invitations to sign a statement: choose a list or segment, see who was invited and answered."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from campaign.extensions import db
from campaign.models import Role, SignOn, Statement
from campaign.services.contacts.audiences import audience_choices
from campaign.services.sign_on import invitations
from campaign.services.sign_on import pages as sign_on_service
from campaign.services.sign_on.invitations import InvitationError
from campaign.web.access import allow, signed_in_user

bp = Blueprint("sign_on_invitations", __name__)


def _render(
    statement: Statement,
    sign_on: SignOn | None,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Any:
    reminder = sign_on_service.reminder_of(sign_on) if sign_on else None
    return render_template(
        "sign_on/invitations.html",
        statement=statement,
        sign_on=sign_on,
        address=invitations.sign_on_address(sign_on) if sign_on else "",
        closed_reason=sign_on_service.closed_reason(sign_on) if sign_on else "",
        reminder=reminder if reminder is not None and reminder.is_enabled else None,
        reminder_due=sign_on_service.reminder_due(sign_on) if sign_on else None,
        invitees=invitations.invitees(sign_on) if sign_on else [],
        choices=audience_choices(),
        has_admin_page="sign_on_admin.index" in current_app.view_functions,
        form=form or {},
        errors=errors or {},
    ), (422 if errors else 200)


@bp.route("/statements/<int:statement_id>/sign-on/invitations", methods=["GET", "POST"])
@allow(Role.EDITOR)
def index(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    sign_on = sign_on_service.sign_on_of(statement)
    if request.method == "GET":
        return _render(statement, sign_on)
    form = {"audience": request.form.get("audience", "").strip()}
    if sign_on is None:
        message = _("Audience: open the statement's sign-on page before inviting anyone")
        return _render(statement, None, form=form, errors={"audience": message})
    try:
        result = invitations.invite(sign_on, form["audience"], actor=signed_in_user())
    except InvitationError as error:
        db.session.rollback()
        sign_on = sign_on_service.sign_on_of(statement)
        return _render(
            statement, sign_on, form=form, errors={error.field or "audience": str(error)}
        )
    db.session.commit()
    parts = [
        ngettext(
            "%(num)d invited; the invitations are being e-mailed",
            "%(num)d invited; the invitations are being e-mailed",
            result.invited,
        )
    ]
    if result.already:
        parts.append(
            ngettext(
                "%(num)d already invited (not e-mailed again)",
                "%(num)d already invited (not e-mailed again)",
                result.already,
            )
        )
    if result.suppressed:
        parts.append(
            ngettext(
                "%(num)d on the suppression list (not invited)",
                "%(num)d on the suppression list (not invited)",
                result.suppressed,
            )
        )
    flash("; ".join(parts) + ".", "success")
    return redirect(url_for("sign_on_invitations.index", statement_id=statement.id))

"""The editors' sign-on page of a statement: its address, settings, moderation and order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    Role,
    Signatory,
    SignatoryKind,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnOrder,
    Statement,
)
from campaign.params import row_id
from campaign.scheduling.timezones import ScheduleError, to_utc, zone_of
from campaign.services.sending.unsubscribe import public_url
from campaign.services.sign_on import moderation
from campaign.services.sign_on import pages as sign_on_service
from campaign.services.sign_on.moderation import ModerationError
from campaign.services.statements.statements import StatementError
from campaign.web.access import allow, signed_in_user

bp = Blueprint("sign_on_admin", __name__, url_prefix="/statements/<int:statement_id>/sign-on")

# The zones offered first for the deadline; any IANA name may be typed instead.
COMMON_ZONES = (
    "UTC",
    "Europe/Brussels",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Moscow",
    "Asia/Tashkent",
    "Asia/Almaty",
    "Asia/Bishkek",
    "Asia/Dushanbe",
    "Asia/Ashgabat",
    "America/New_York",
)
SETTINGS_FIELDS = (
    "is_open",
    "deadline_date",
    "deadline_time",
    "zone",
    "zone_other",
    "shows_names",
    "ordering",
    "reminder_days",
    "consent_text",
)


def _statement(statement_id: int) -> Statement:
    return db.get_or_404(Statement, statement_id)


def _sign_on(statement: Statement) -> SignOn:
    found = sign_on_service.sign_on_of(statement)
    if found is None:
        abort(404)
    return found


def _signature(sign_on: SignOn, signature_id: int) -> Signature:
    signature = db.session.get(Signature, signature_id)
    if signature is None or signature.sign_on_id != sign_on.id:
        abort(404)
    return signature


def _back(statement: Statement, anchor: str = "") -> Any:
    return redirect(url_for("sign_on_admin.index", statement_id=statement.id) + anchor)


def _office_zone() -> str:
    name = str(current_app.config.get("TIMEZONE") or "UTC")
    try:
        return zone_of(name).key
    except ScheduleError:
        return "UTC"


def _settings_form(sign_on: SignOn) -> dict[str, str]:
    """The settings as the form shows them; the deadline in the office's zone."""
    zone = _office_zone()
    date = time = ""
    if sign_on.deadline is not None:
        local = sign_on.deadline.astimezone(zone_of(zone))
        date, time = local.strftime("%Y-%m-%d"), local.strftime("%H:%M")
    return {
        "is_open": "1" if sign_on.is_open else "",
        "deadline_date": date,
        "deadline_time": time or "18:00",
        "zone": zone,
        "zone_other": "",
        "shows_names": "names" if sign_on.shows_names else "count",
        "ordering": sign_on.ordering,
        "reminder_days": "" if sign_on.reminder_days is None else str(sign_on.reminder_days),
        # The standard wording is shown as the empty field's placeholder, in the editor's
        # language; only words an editor wrote are in the field itself.
        "consent_text": (
            ""
            if sign_on.consent_text.strip() == sign_on_service.DEFAULT_CONSENT
            else sign_on.consent_text
        ),
    }


def _signatures(sign_on: SignOn, status: SignatureStatus) -> list[Signature]:
    return list(
        db.session.scalars(
            select(Signature)
            .where(Signature.sign_on_id == sign_on.id, Signature.status == status.value)
            .order_by(Signature.id)
        )
    )


def _render(
    statement: Statement,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    action_error: str = "",
    status: int = 200,
) -> Any:
    sign_on = sign_on_service.sign_on_of(statement)
    context: dict[str, Any] = {
        "statement": statement,
        "sign_on": sign_on,
        "invitations_url": (
            url_for("sign_on_invitations.index", statement_id=statement.id)
            if "sign_on_invitations.index" in current_app.view_functions
            else ""
        ),
        "action_error": action_error,
    }
    if sign_on is not None:
        by_signatory = {s.signatory_id: s for s in _signatures(sign_on, SignatureStatus.APPROVED)}
        context.update(
            public_address=f"{public_url()}/sign/{sign_on.token}",
            closed_reason=sign_on_service.closed_reason(sign_on),
            form=form or _settings_form(sign_on),
            errors=errors or {},
            zones=COMMON_ZONES,
            counts=sign_on_service.signature_counts(sign_on),
            waiting=_signatures(sign_on, SignatureStatus.CONFIRMED),
            signatories=sign_on_service.ordered_signatories(statement, sign_on.ordering),
            by_signatory=by_signatory,
            is_custom=sign_on.ordering == SignOnOrder.CUSTOM.value,
            groups=moderation.duplicate_groups(sign_on),
            rejected=_signatures(sign_on, SignatureStatus.REJECTED),
            merged=_signatures(sign_on, SignatureStatus.MERGED),
            unconfirmed=_signatures(sign_on, SignatureStatus.UNCONFIRMED),
            standard_consent=_(sign_on_service.DEFAULT_CONSENT),
        )
    return render_template("sign_on/admin/index.html", **context), status


@bp.route("/")
@allow(Role.EDITOR)
def index(statement_id: int) -> Any:
    return _render(_statement(statement_id))


@bp.route("/open", methods=["POST"])
@allow(Role.EDITOR)
def open_page(statement_id: int) -> Any:
    statement = _statement(statement_id)
    sign_on_service.open_sign_on(statement, actor=signed_in_user())
    db.session.commit()
    flash(_("The sign-on page is open. Share its address with the partners you trust."), "success")
    return _back(statement)


def _parse_settings(form: dict[str, str]) -> dict[str, Any]:
    """The settings service's arguments from the form; SignOnError names the field."""
    deadline: datetime | None = None
    date, time = form["deadline_date"].strip(), form["deadline_time"].strip()
    if date:
        zone = form["zone_other"].strip() or form["zone"].strip()
        try:
            zone_of(zone)
        except ScheduleError as error:
            raise sign_on_service.SignOnError(str(error), "zone") from None
        try:
            deadline = to_utc(f"{date}T{time or '23:59'}", zone)
        except ScheduleError as error:
            message = _("Deadline: %(problem)s", problem=str(error))
            raise sign_on_service.SignOnError(message, "deadline") from None
    reminder: int | None = None
    raw = form["reminder_days"].strip()
    if raw:
        if not raw.isdecimal() or len(raw) > 4:
            raise sign_on_service.SignOnError(
                _("Reminder: “%(value)s” is not a number of days", value=raw), "reminder_days"
            )
        reminder = int(raw)
    return {
        "is_open": bool(form["is_open"]),
        "deadline": deadline,
        "shows_names": form["shows_names"] != "count",
        "ordering": form["ordering"],
        "reminder_days": reminder,
        "consent_text": form["consent_text"],
    }


@bp.route("/settings", methods=["POST"])
@allow(Role.EDITOR)
def settings(statement_id: int) -> Any:
    statement = _statement(statement_id)
    sign_on = _sign_on(statement)
    form = {name: request.form.get(name, "") for name in SETTINGS_FIELDS}
    try:
        sign_on_service.update_settings(sign_on, **_parse_settings(form), actor=signed_in_user())
    except sign_on_service.SignOnError as error:
        db.session.rollback()
        field = error.field or "settings"
        return _render(_statement(statement_id), form=form, errors={field: str(error)}, status=422)
    db.session.commit()
    flash(_("Sign-on settings saved."), "success")
    return _back(statement, "#settings")


def _refused(statement_id: int, error: Exception) -> Any:
    db.session.rollback()
    return _render(_statement(statement_id), action_error=str(error), status=422)


@bp.route("/signatures/<int:signature_id>/approve", methods=["POST"])
@allow(Role.EDITOR)
def approve(statement_id: int, signature_id: int) -> Any:
    statement = _statement(statement_id)
    signature = _signature(_sign_on(statement), signature_id)
    try:
        moderation.approve(signature, actor=signed_in_user())
    except (ModerationError, StatementError) as error:
        return _refused(statement_id, error)
    db.session.commit()
    flash(_("Signature approved: it is on the statement's list (a new version)."), "success")
    return _back(statement, "#waiting")


@bp.route("/signatures/<int:signature_id>/reject", methods=["POST"])
@allow(Role.EDITOR)
def reject(statement_id: int, signature_id: int) -> Any:
    statement = _statement(statement_id)
    signature = _signature(_sign_on(statement), signature_id)
    try:
        moderation.reject(signature, actor=signed_in_user())
    except ModerationError as error:
        return _refused(statement_id, error)
    db.session.commit()
    flash(_("Signature rejected."), "success")
    return _back(statement, "#waiting")


def _render_edit(
    statement: Statement,
    signature: Signature,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Any:
    return (
        render_template(
            "sign_on/admin/edit.html",
            statement=statement,
            signature=signature,
            values=values,
            errors=errors,
            labels=moderation.FIELD_LABELS,
            text_fields=tuple(moderation.EDITABLE_LIMITS),
            limits=moderation.EDITABLE_LIMITS,
            kinds=[k.value for k in SignatoryKind],
        ),
        status,
    )


@bp.route("/signatures/<int:signature_id>/edit", methods=["GET", "POST"])
@allow(Role.EDITOR)
def edit(statement_id: int, signature_id: int) -> Any:
    statement = _statement(statement_id)
    signature = _signature(_sign_on(statement), signature_id)
    if request.method == "GET":
        return _render_edit(statement, signature, moderation.signer_fields(signature), {})
    values = {name: request.form.get(name, "") for name in moderation.EDITABLE_FIELDS}
    try:
        changed = moderation.edit(signature, values, actor=signed_in_user())
    except (ModerationError, StatementError) as error:
        db.session.rollback()
        statement = _statement(statement_id)
        signature = _signature(_sign_on(statement), signature_id)
        field = getattr(error, "field", "") or "name"
        return _render_edit(statement, signature, values, {field: str(error)}, 422)
    db.session.commit()
    if changed:
        flash(_("Signature corrected; the signer is e-mailed what changed."), "success")
    else:
        flash(_("No changes."), "success")
    return _back(statement)


@bp.route("/signatures/<int:signature_id>/merge", methods=["POST"])
@allow(Role.EDITOR)
def merge(statement_id: int, signature_id: int) -> Any:
    statement = _statement(statement_id)
    sign_on = _sign_on(statement)
    duplicate = _signature(sign_on, signature_id)
    keep_id = row_id(request.form.get("keep"))
    if keep_id is None:
        abort(400)
    keep = _signature(sign_on, keep_id)
    try:
        moderation.merge(duplicate, keep, actor=signed_in_user())
    except (ModerationError, StatementError) as error:
        return _refused(statement_id, error)
    db.session.commit()
    flash(_("Signatures merged: the duplicate is off the list."), "success")
    return _back(statement, "#duplicates")


@bp.route("/signatories/<int:signatory_id>/move", methods=["POST"])
@allow(Role.EDITOR)
def move(statement_id: int, signatory_id: int) -> Any:
    statement = _statement(statement_id)
    sign_on = _sign_on(statement)
    signatory = db.session.get(Signatory, signatory_id)
    if signatory is None or signatory.statement_id != statement.id:
        abort(404)
    offset = {"up": -1, "down": 1}.get(request.form.get("direction", ""))
    if offset is None:
        abort(400)
    try:
        moderation.move(sign_on, signatory, offset, actor=signed_in_user())
    except ModerationError as error:
        return _refused(statement_id, error)
    db.session.commit()
    return _back(statement, "#approved")

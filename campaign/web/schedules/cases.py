"""Cases: the people the organisation defends, their key dates, anniversaries and campaigns.

Viewers read; editors add and change cases, dates and links to campaigns. The real name of
a person at high risk is for admins only: for everyone else it is not in the page at all
(not even in a hidden field), and an editor's change keeps the stored name.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from campaign.extensions import db
from campaign.labels import choices, label
from campaign.models import Campaign, Case, CaseDate, Role
from campaign.models.calendar import CaseStatus
from campaign.params import page_number, row_id
from campaign.services.schedules import cases as case_service
from campaign.services.schedules.advocacy_calendar import CalendarError, country_name, format_day
from campaign.services.schedules.cases import (
    DEFAULT_ANNIVERSARY_REMINDERS,
    CaseError,
    anniversary_note,
    display_name,
    may_see_real_name,
)
from campaign.web.access import allow, may, signed_in_user
from campaign.web.statements.country_names import country_code

bp = Blueprint("cases", __name__, url_prefix="/cases")


def _form() -> dict[str, str]:
    form = {key: request.form.get(key, "") for key in request.form}
    if form.get("country", "").strip():
        # The datalist gives the code; a name typed without choosing from it finds it too.
        form["country"] = country_code(form["country"])
    return form


def _case(case_id: int) -> Case:
    return db.get_or_404(Case, case_id)


def _case_date(case: Case, date_id: int) -> CaseDate:
    case_date = db.session.get(CaseDate, date_id)
    if case_date is None or case_date.case_id != case.id:
        abort(404)
    return case_date


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CaseError(
            _l("Date: '%(value)s' is not a date like 2019-03-14", value=value.strip()), "on"
        ) from None


def _parse_days(value: str) -> list[int]:
    days = []
    for part in value.replace(";", ",").split(","):
        if part.strip():
            try:
                days.append(int(part.strip()))
            except ValueError:
                raise CaseError(
                    _l(
                        "Reminder: '%(value)s' is not a number of days (write 7, 1)",
                        value=part.strip(),
                    ),
                    "reminder_days",
                ) from None
    return days


def _template_helpers() -> dict[str, Any]:
    return {
        "status_words": dict(choices("case_status")),
        "kind_words": dict(choices("case_date_kind")),
        "country_name": country_name,
        "format_day": format_day,
        "shown_name": lambda case: display_name(case, signed_in_user()),
        "may_edit": may(Role.EDITOR),
        "is_admin": may_see_real_name(signed_in_user()),
    }


# --- list and case page ------------------------------------------------------------------


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    country = request.args.get("country", "").strip()
    country = country_code(country) if country else ""
    status = request.args.get("status", "").strip()
    q = request.args.get("q", "").strip()
    page = page_number(request.args.get("page"))
    found = case_service.list_cases(
        signed_in_user(), country=country, status=status, q=q, page=page
    )
    _audit_reveal(found.cases, "list")
    return render_template(
        "cases/index.html",
        found=found,
        filters={"country": country, "status": status, "q": q},
        **_template_helpers(),
    )


def _render_case(
    case: Case,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    which: str = "",
) -> Any:
    dates = [
        (item, case_service.reminder_days_of(item), anniversary_note(item.on))
        for item in case.dates
    ]
    page = render_template(
        "cases/show.html",
        case=case,
        dates=dates,
        campaigns=case_service.linked_campaigns(case),
        linkable=case_service.linkable_campaigns(case) if may(Role.EDITOR) else [],
        default_reminders=", ".join(str(d) for d in DEFAULT_ANNIVERSARY_REMINDERS),
        today=date.today(),
        errors=errors or {},
        form=form or {},
        which=which,
        **_template_helpers(),
    )
    # Audited on every showing, the one after a refused form too.
    _audit_page_reveals("case")
    return page, (422 if errors else 200)


@bp.route("/<int:case_id>")
@allow(Role.VIEWER)
def show(case_id: int) -> Any:
    return _render_case(_case(case_id))


def _audit_page_reveals(page: str) -> None:
    """The real names this page gave an admin (noted by display_name): audited once."""
    if case_service.record_page_reveals(signed_in_user(), page=page):
        db.session.commit()


def _audit_reveal(shown: list[Case], page: str) -> None:
    """An admin about to read high-risk people's real names: the audit log says who, when."""
    user = signed_in_user()
    if may_see_real_name(user) and any(case.is_high_risk for case in shown):
        case_service.record_reveal(user, shown, page=page)
        db.session.commit()


def _back(case: Case) -> Any:
    return redirect(url_for("cases.show", case_id=case.id))


# --- new and edit ------------------------------------------------------------------------


def _render_form(case: Case | None, form: dict[str, str], errors: dict[str, str]) -> Any:
    # The real-name field is rendered for a new case (its author knows the name), for a
    # case that is not at risk, and for admins; never for anyone else on a high-risk case.
    shows_name = case is None or not case.is_high_risk or may_see_real_name(signed_in_user())
    if not shows_name and case is not None:
        # Read-only for them (only an admin changes it): show the stored one, never a
        # refused value.
        form = {**form, "pseudonym": case.pseudonym}
    page = render_template(
        "cases/form.html",
        case=case,
        form=form,
        errors=errors,
        shows_name=shows_name,
        pseudonym_locked=not shows_name,
        statuses=list(CaseStatus),
        **_template_helpers(),
    )
    _audit_page_reveals("edit")
    return page, (422 if errors else 200)


def _is_checked(form: dict[str, str], key: str) -> bool:
    return form.get(key, "") in ("1", "on", "yes", "true")


@bp.route("/new", methods=["GET", "POST"])
@allow(Role.EDITOR)
def new() -> Any:
    if request.method == "GET":
        return _render_form(None, {"status": CaseStatus.DETAINED.value}, {})
    form = _form()
    try:
        case = case_service.create_case(
            form.get("name", ""),
            form.get("pseudonym", ""),
            is_high_risk=_is_checked(form, "is_high_risk"),
            country=form.get("country", ""),
            status=form.get("status", ""),
            summary=form.get("summary", ""),
            actor=signed_in_user(),
        )
    except CaseError as error:
        db.session.rollback()
        return _render_form(None, form, {error.field or "name": str(error)})
    db.session.commit()
    flash(
        _(
            "Case %(name)s added. Add its key dates below.",
            name=display_name(case, signed_in_user()),
        ),
        "success",
    )
    return _back(case)


def _edit_values(case: Case) -> dict[str, str]:
    values = {
        "pseudonym": case.pseudonym,
        "is_high_risk": "1" if case.is_high_risk else "",
        "country": case.country,
        "status": case.status,
        "summary": case.summary,
    }
    if not case.is_high_risk or may_see_real_name(signed_in_user()):
        values["name"] = case.name
    return values


@bp.route("/<int:case_id>/edit", methods=["GET", "POST"])
@allow(Role.EDITOR)
def edit(case_id: int) -> Any:
    case = _case(case_id)
    if request.method == "GET":
        return _render_form(case, _edit_values(case), {})
    form = _form()
    shows_name = not case.is_high_risk or may_see_real_name(signed_in_user())
    try:
        changed = case_service.update_case(
            case,
            # Not rendered for an editor on a high-risk case: whatever is posted is ignored.
            name=form.get("name", "") if shows_name else None,
            # Read-only for them: a form without it keeps it; a changed one is refused.
            pseudonym=form.get("pseudonym", "" if shows_name else case.pseudonym),
            is_high_risk=_is_checked(form, "is_high_risk"),
            country=form.get("country", ""),
            status=form.get("status", ""),
            summary=form.get("summary", ""),
            actor=signed_in_user(),
        )
    except CaseError as error:
        db.session.rollback()
        if not shows_name:
            form.pop("name", None)
        return _render_form(_case(case_id), form, {error.field or "name": str(error)})
    db.session.commit()
    flash(_("Case saved.") if changed else _("Nothing changed."), "success")
    return _back(case)


# --- key dates ---------------------------------------------------------------------------


def _date_values(form: dict[str, str]) -> dict[str, Any]:
    marked = _is_checked(form, "mark_anniversary")
    return {
        "kind": form.get("kind", ""),
        "on": _parse_date(form.get("on", "")),
        "legal_reference": form.get("legal_reference", ""),
        "source": form.get("source", ""),
        "mark_anniversary": marked,
        "reminder_days": _parse_days(form.get("reminder_days", "")) if marked else [],
    }


@bp.route("/<int:case_id>/dates", methods=["POST"])
@allow(Role.EDITOR)
def add_date(case_id: int) -> Any:
    case = _case(case_id)
    form = _form()
    try:
        values = _date_values(form)
        case_date = case_service.add_case_date(
            case,
            values["kind"],
            values["on"],
            values["legal_reference"],
            values["source"],
            values["mark_anniversary"],
            reminder_days=values["reminder_days"],
            created_by=signed_in_user(),
        )
    except CalendarError as error:
        db.session.rollback()
        errors = {error.field or "on": str(error)}
        return _render_case(_case(case_id), errors=errors, form=form, which="add-date")
    db.session.commit()
    note = anniversary_note(case_date.on) if case_date.is_anniversary_marked else ""
    kind = label(case_date.kind, "case_date_kind")
    when = format_day(case_date.on, with_year=True)
    if note:
        message = _("%(kind)s on %(date)s added (%(note)s).", kind=kind, date=when, note=note)
    else:
        message = _("%(kind)s on %(date)s added.", kind=kind, date=when)
    flash(message, "success")
    return _back(case)


def _render_date_form(
    case: Case, case_date: CaseDate, form: dict[str, str], errors: dict[str, str]
) -> Any:
    page = render_template(
        "cases/date_form.html",
        case=case,
        case_date=case_date,
        form=form,
        errors=errors,
        note=anniversary_note(case_date.on),
        today=date.today(),
        **_template_helpers(),
    )
    _audit_page_reveals("date")
    return page, (422 if errors else 200)


@bp.route("/<int:case_id>/dates/<int:date_id>/edit", methods=["GET", "POST"])
@allow(Role.EDITOR)
def edit_date(case_id: int, date_id: int) -> Any:
    case = _case(case_id)
    case_date = _case_date(case, date_id)
    if request.method == "GET":
        days = case_service.reminder_days_of(case_date)
        form = {
            "kind": case_date.kind,
            "on": case_date.on.isoformat(),
            "legal_reference": case_date.legal_reference,
            "source": case_date.source,
            "mark_anniversary": "1" if case_date.is_anniversary_marked else "",
            "reminder_days": ", ".join(str(d) for d in days)
            if case_date.is_anniversary_marked
            else "",
        }
        return _render_date_form(case, case_date, form, {})
    form = _form()
    try:
        values = _date_values(form)
        case_service.update_case_date(case_date, **values, actor=signed_in_user())
    except CalendarError as error:
        db.session.rollback()
        case = _case(case_id)
        errors = {error.field or "on": str(error)}
        return _render_date_form(case, _case_date(case, date_id), form, errors)
    db.session.commit()
    flash(_("%(kind)s date saved.", kind=label(case_date.kind, "case_date_kind")), "success")
    return _back(case)


@bp.route("/<int:case_id>/dates/<int:date_id>/remove", methods=["POST"])
@allow(Role.EDITOR)
def remove_date(case_id: int, date_id: int) -> Any:
    case = _case(case_id)
    case_date = _case_date(case, date_id)
    kind = label(case_date.kind, "case_date_kind")
    removed = case_service.remove_case_date(case_date, actor=signed_in_user())
    db.session.commit()
    if removed:
        message = ngettext(
            "%(kind)s date removed and its %(num)d reminder.",
            "%(kind)s date removed and its %(num)d reminders.",
            removed,
            kind=kind,
        )
    else:
        message = _("%(kind)s date removed.", kind=kind)
    flash(message, "success")
    return _back(case)


# --- campaigns ---------------------------------------------------------------------------


@bp.route("/<int:case_id>/campaigns", methods=["POST"])
@allow(Role.EDITOR)
def link(case_id: int) -> Any:
    case = _case(case_id)
    form = _form()
    campaign_id = row_id(form.get("campaign_id"))
    campaign = db.session.get(Campaign, campaign_id) if campaign_id else None
    try:
        if campaign is None:
            raise CaseError(_l("Campaign: choose a campaign from the list"), "campaign_id")
        case_service.link_case(campaign, case, actor=signed_in_user())
    except CaseError as error:
        db.session.rollback()
        errors = {"campaign_id": str(error)}
        return _render_case(_case(case_id), errors=errors, form=form, which="link")
    db.session.commit()
    flash(_("Linked to %(name)s: its letters can name this case.", name=campaign.name), "success")
    return _back(case)


@bp.route("/<int:case_id>/campaigns/<int:campaign_id>/unlink", methods=["POST"])
@allow(Role.EDITOR)
def unlink(case_id: int, campaign_id: int) -> Any:
    case = _case(case_id)
    campaign = db.get_or_404(Campaign, campaign_id)
    try:
        unlinked = case_service.unlink_case(campaign, case, actor=signed_in_user())
    except CaseError as error:
        db.session.rollback()
        return _render_case(_case(case_id), errors={"unlink": str(error)}, which="unlink")
    db.session.commit()
    if unlinked:
        flash(_("No longer linked to %(name)s.", name=campaign.name), "success")
    return _back(case)

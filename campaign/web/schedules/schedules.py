"""A campaign's schedule page: send-at, a yearly repeat (on a date or a case date's
anniversary), and follow-up steps (added, edited, removed, re-armed after a skip).

Everything here makes letters go out later without anyone pressing Launch, so it asks for
the role that may launch (SENDER), as campaigns.launch does; viewers may read the page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.extensions import db
from campaign.labels import choices, label
from campaign.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Case,
    CaseDate,
    Role,
    Schedule,
    ScheduleKind,
    Statement,
)
from campaign.params import row_id
from campaign.scheduling.pacing import describe, pacing_rule
from campaign.scheduling.recurrence import yearly_note
from campaign.scheduling.schedules import anniversary_words, create_send_at, create_yearly
from campaign.scheduling.stored_text import day_text
from campaign.scheduling.timezones import ScheduleError, zone_of
from campaign.services.accounts import audit
from campaign.services.schedules.advocacy_calendar import format_day
from campaign.services.schedules.cases import display_name, linked_cases, record_page_reveals
from campaign.services.sending.followups import (
    FollowUpError,
    add_step,
    has_gone_out,
    letters_sent,
    may_rearm,
    rearm_step,
    remove_step,
    step_summary,
    steps_of,
    update_step,
)
from campaign.web.access import allow, may, signed_in_user

bp = Blueprint("schedules", __name__, url_prefix="/campaigns/<int:campaign_id>/schedule")

# The zones an advocacy office in Europe and Central Asia picks most; any IANA name is accepted.
COMMON_ZONES = (
    "UTC",
    "Europe/Brussels",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Zurich",
    "Europe/London",
    "Europe/Moscow",
    "Asia/Tashkent",
    "Asia/Almaty",
    "Asia/Bishkek",
    "Asia/Dushanbe",
    "Asia/Ashgabat",
    "America/New_York",
)
SCHEDULABLE = (CampaignStatus.DRAFT.value, CampaignStatus.SCHEDULED.value)


def _zone_from(form: dict[str, str]) -> str:
    """The free-text zone when given (any IANA name), else the one picked in the list."""
    return form.get("zone_other", "").strip() or form.get("zone", "").strip()


def _schedules(campaign: Campaign, kind: ScheduleKind) -> list[Schedule]:
    return list(
        db.session.scalars(
            select(Schedule)
            .where(
                Schedule.campaign_id == campaign.id,
                Schedule.kind == kind.value,
                Schedule.is_enabled.is_(True),
            )
            .order_by(Schedule.id)
        )
    )


def _local(schedule: Schedule) -> str:
    """When the schedule next fires, in its own zone, in the interface language."""
    if schedule.next_run_at is None:
        return _("not due")
    zone = zone_of(schedule.timezone or "UTC")
    local = schedule.next_run_at.astimezone(zone)
    # A date, not a datetime: it is already the schedule's own day, not the viewer's.
    return _(
        "%(date)s at %(time)s %(zone)s",
        date=format_date(local.date(), "EEEE d MMMM y"),
        time=f"{local:%H:%M}",
        zone=zone.key,
    )


def _anniversary_of(case_date: CaseDate) -> str:
    """The case date in words for this viewer: the real name of a high-risk case for admins."""
    case = db.session.get(Case, case_date.case_id)
    who = display_name(case, signed_in_user()) if case is not None else _("a case")
    return str(anniversary_words(case_date, who))


def _yearly_text(schedule: Schedule) -> str:
    rule = schedule.rule or {}
    month, day = int(rule.get("month", 1)), int(rule.get("day", 1))
    # 2000 is a leap year: 29 February has a name too.
    on = day_text(f"2000-{month:02d}-{day:02d}")
    case_date = db.session.get(CaseDate, schedule.case_date_id) if schedule.case_date_id else None
    if case_date is not None:
        on = f"{_anniversary_of(case_date)} ({on})"
    text = _(
        "Every year on %(on)s at %(time)s %(zone)s",
        on=on,
        time=str(rule.get("time", "")),
        zone=schedule.timezone,
    )
    note = yearly_note(month, day)
    return f"{text} ({note})" if note else text


def _case_date_choices(campaign: Campaign) -> list[tuple[int, str]]:
    """Dates of the campaign's linked cases, then every date marked as an anniversary."""
    linked = [case.id for case in linked_cases(campaign)]
    query = (
        select(CaseDate)
        .where(CaseDate.case_id.in_(linked) | CaseDate.is_anniversary_marked.is_(True))
        .order_by(CaseDate.case_id, CaseDate.on, CaseDate.id)
    )
    viewer = signed_in_user()
    found = []
    for case_date in db.session.scalars(query):
        case = db.session.get(Case, case_date.case_id)
        who = display_name(case, viewer) if case is not None else _("a case")
        text = _(
            "%(kind)s of %(who)s, %(date)s",
            kind=label(case_date.kind, "case_date_kind"),
            who=who,
            date=format_day(case_date.on, with_year=True),
        )
        found.append((case_date.id, text))
    return found


def _step_view(step: CampaignStep) -> dict[str, Any]:
    gone_out = has_gone_out(step)
    return {
        "step": step,
        "summary": step_summary(step),
        "gone_out": gone_out,
        "letters": letters_sent(step) if gone_out else 0,
        "may_rearm": may_rearm(step),
    }


def _render(
    campaign: Campaign,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    which: str = "",
) -> Any:
    steps = steps_of(campaign)
    statements = list(db.session.scalars(select(Statement).order_by(Statement.title, Statement.id)))
    page = render_template(
        "schedules/show.html",
        campaign=campaign,
        send_at=_schedules(campaign, ScheduleKind.SEND_AT),
        yearly=[
            (s, _yearly_text(s), _local(s))
            for s in _schedules(campaign, ScheduleKind.YEARLY_CAMPAIGN)
        ],
        local=_local,
        pacing_text=lambda s: describe((s.rule or {}).get("pacing")),
        steps=[_step_view(step) for step in steps],
        case_dates=_case_date_choices(campaign),
        statements=statements,
        conditions=choices("follow_up_condition"),
        signatory_choices=choices("signatories_from"),
        zones=COMMON_ZONES,
        months=[(int(number), name) for number, name in choices("month")],
        may_send=may(Role.SENDER),
        is_schedulable=campaign.status in SCHEDULABLE,
        errors=errors or {},
        form=form or {},
        which=which,
    )
    # Anniversaries name high-risk people in full for admins: audited once per page.
    if record_page_reveals(signed_in_user(), page="schedule"):
        db.session.commit()
    return page, (422 if errors else 200)


def _campaign(campaign_id: int) -> Campaign:
    return db.get_or_404(Campaign, campaign_id)


def _back(campaign: Campaign) -> Any:
    return redirect(url_for("schedules.show", campaign_id=campaign.id))


@bp.route("/")
@allow(Role.VIEWER)
def show(campaign_id: int) -> Any:
    return _render(_campaign(campaign_id))


def _pacing_days(form: dict[str, str]) -> int | None:
    """The window's days, read only when a window is chosen (the field stays filled otherwise)."""
    if form.get("pacing") != "window":
        return None
    value = form.get("pacing_days", "").strip()
    try:
        return int(value)
    except ValueError:
        raise ScheduleError(
            _l("Days: '%(value)s' is not a number", value=value), "pacing"
        ) from None


@bp.route("/send-at", methods=["POST"])
@allow(Role.SENDER)
def send_at(campaign_id: int) -> Any:
    campaign = _campaign(campaign_id)
    form = {key: request.form.get(key, "") for key in request.form}
    local = f"{form.get('date', '').strip()}T{form.get('time', '').strip()}"
    try:
        pacing = pacing_rule(form.get("pacing", ""), _pacing_days(form))
        schedule = create_send_at(
            campaign, local, _zone_from(form), actor=signed_in_user(), pacing=pacing
        )
    except ScheduleError as error:
        db.session.rollback()
        field = error.field if error.field in ("zone", "time", "pacing") else "date"
        return _render(
            _campaign(campaign_id), errors={field: str(error)}, form=form, which="send-at"
        )
    db.session.commit()
    flash(
        _(
            "Campaign scheduled: it will be launched on %(when)s, letters %(pacing)s.",
            when=_local(schedule),
            pacing=describe(pacing),
        ),
        "success",
    )
    return _back(campaign)


@bp.route("/send-at/cancel", methods=["POST"])
@allow(Role.SENDER)
def cancel_send_at(campaign_id: int) -> Any:
    campaign = _campaign(campaign_id)
    schedules = _schedules(campaign, ScheduleKind.SEND_AT)
    for schedule in schedules:
        schedule.is_enabled = False
        schedule.next_run_at = None
    if campaign.status == CampaignStatus.SCHEDULED.value:
        campaign.status = CampaignStatus.DRAFT.value
    campaign.send_at = None
    if schedules:
        audit.record_event(
            "campaign.unschedule",
            target_type="campaign",
            target_id=campaign.id,
            actor=signed_in_user(),
        )
    db.session.commit()
    flash(_("The scheduled launch is cancelled; the campaign is a draft again."), "success")
    return _back(campaign)


def _date_part(value: str) -> int:
    """The yearly form's day or month as a number; ScheduleError (about the date) if not."""
    try:
        return int(value.strip())
    except ValueError:
        raise ScheduleError(
            _l("Date: '%(value)s' is not a number", value=value.strip()), "day"
        ) from None


@bp.route("/yearly", methods=["POST"])
@allow(Role.SENDER)
def yearly(campaign_id: int) -> Any:
    campaign = _campaign(campaign_id)
    form = {key: request.form.get(key, "") for key in request.form}
    on_case_date = form.get("on") == "case_date"
    try:
        case_date = None
        if on_case_date:
            month = day = 0  # the case date decides
            case_date_id = row_id(form.get("case_date_id", ""))
            case_date = db.session.get(CaseDate, case_date_id) if case_date_id else None
            if case_date is None:
                raise ScheduleError(
                    _l("Case date: choose one of the case dates in the list"), "case_date"
                )
        else:
            month = _date_part(form.get("month", ""))
            day = _date_part(form.get("day", ""))
        schedule = create_yearly(
            campaign,
            month,
            day,
            form.get("time", ""),
            _zone_from(form),
            actor=signed_in_user(),
            case_date=case_date,
        )
    except ScheduleError as error:
        db.session.rollback()
        field = error.field if error.field in ("zone", "time") else ""
        field = field or ("case_date" if on_case_date else "day")
        return _render(
            _campaign(campaign_id), errors={field: str(error)}, form=form, which="yearly"
        )
    db.session.commit()
    flash(
        _("%(yearly)s; next: %(when)s.", yearly=_yearly_text(schedule), when=_local(schedule)),
        "success",
    )
    return _back(campaign)


@bp.route("/yearly/<int:schedule_id>/stop", methods=["POST"])
@allow(Role.SENDER)
def stop_yearly(campaign_id: int, schedule_id: int) -> Any:
    campaign = _campaign(campaign_id)
    schedule = db.session.get(Schedule, schedule_id)
    if (
        schedule is None
        or schedule.campaign_id != campaign.id
        or schedule.kind != ScheduleKind.YEARLY_CAMPAIGN.value
    ):
        abort(404)
    schedule.is_enabled = False
    audit.record_event(
        "schedule.stop", target_type="schedule", target_id=schedule.id, actor=signed_in_user()
    )
    db.session.commit()
    flash(_("The yearly repeat is stopped; campaigns already sent stay as they are."), "success")
    return _back(campaign)


def _step_fields(form: dict[str, str]) -> tuple[Statement | None, int]:
    """The step form's statement (None if gone) and days; FollowUpError if days is not a number."""
    statement_id = row_id(form.get("statement_id", ""))
    statement = db.session.get(Statement, statement_id) if statement_id is not None else None
    days_text = form.get("delay_days", "").strip()
    try:
        return statement, int(days_text)
    except ValueError:
        raise FollowUpError(
            _l("Days: '%(value)s' is not a number of days", value=days_text), "delay_days"
        ) from None


@bp.route("/steps", methods=["POST"])
@allow(Role.SENDER)
def add_follow_up(campaign_id: int) -> Any:
    campaign = _campaign(campaign_id)
    form = {key: request.form.get(key, "") for key in request.form}
    try:
        statement, delay_days = _step_fields(form)
        step = add_step(
            campaign,
            statement,
            delay_days,
            form.get("condition", ""),
            subject=form.get("subject", ""),
            signatories_from=form.get("signatories_from", ""),
            actor=signed_in_user(),
        )
    except FollowUpError as error:
        db.session.rollback()
        field = error.field or "statement"
        return _render(_campaign(campaign_id), errors={field: str(error)}, form=form, which="step")
    db.session.commit()
    flash(
        _(
            "Follow-up %(position)d added: %(summary)s.",
            position=step.position,
            summary=step_summary(step),
        ),
        "success",
    )
    return _back(campaign)


def _step(campaign: Campaign, step_id: int) -> CampaignStep:
    step = db.session.get(CampaignStep, step_id)
    if step is None or step.campaign_id != campaign.id:
        abort(404)
    return step


def _step_refused(campaign_id: int, step_id: int, error: FollowUpError, form: Any = None) -> Any:
    """The page again, the reason next to the step's field (or the step) it concerns."""
    db.session.rollback()
    field = f"step-{step_id}-{error.field or 'step'}"
    return _render(
        _campaign(campaign_id),
        errors={field: str(error)},
        form=form or {},
        which=f"step-{step_id}",
    )


@bp.route("/steps/<int:step_id>/edit", methods=["POST"])
@allow(Role.SENDER)
def edit_follow_up(campaign_id: int, step_id: int) -> Any:
    campaign = _campaign(campaign_id)
    step = _step(campaign, step_id)
    form = {key: request.form.get(key, "") for key in request.form}
    try:
        statement, delay_days = _step_fields(form)
        update_step(
            step,
            statement,
            delay_days,
            form.get("condition", ""),
            subject=form.get("subject", ""),
            signatories_from=form.get("signatories_from", ""),
            actor=signed_in_user(),
        )
    except FollowUpError as error:
        return _step_refused(campaign_id, step_id, error, form)
    db.session.commit()
    flash(
        _(
            "Follow-up %(position)d changed: %(summary)s.",
            position=step.position,
            summary=step_summary(step),
        ),
        "success",
    )
    return _back(campaign)


@bp.route("/steps/<int:step_id>/delete", methods=["POST"])
@allow(Role.SENDER)
def delete_follow_up(campaign_id: int, step_id: int) -> Any:
    campaign = _campaign(campaign_id)
    step = _step(campaign, step_id)
    position = step.position
    try:
        remove_step(step, actor=signed_in_user())
    except FollowUpError as error:
        return _step_refused(campaign_id, step_id, error)
    db.session.commit()
    flash(
        _(
            "Follow-up %(position)d deleted; the steps after it moved up one place.",
            position=position,
        ),
        "success",
    )
    return _back(campaign)


@bp.route("/steps/<int:step_id>/rearm", methods=["POST"])
@allow(Role.SENDER)
def rearm_follow_up(campaign_id: int, step_id: int) -> Any:
    campaign = _campaign(campaign_id)
    step = _step(campaign, step_id)
    try:
        rearm_step(step, actor=signed_in_user())
    except FollowUpError as error:
        return _step_refused(campaign_id, step_id, error)
    db.session.commit()
    flash(
        _(
            "Follow-up %(position)d will be sent at the scheduler's next tick (within a minute "
            "while the workers run).",
            position=step.position,
        ),
        "success",
    )
    return _back(campaign)

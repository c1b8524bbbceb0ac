"""A campaign's schedule page: send-at, a yearly repeat (on a date or a case date's
anniversary), and follow-up steps (added, edited, removed, re-armed after a skip).

Everything here makes letters go out later without anyone pressing Launch, so it asks for
the role that may launch (SENDER), as campaigns.launch does; viewers may read the page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Case,
    CaseDate,
    FollowUpCondition,
    Role,
    Schedule,
    ScheduleKind,
    Statement,
)
from campaign.scheduling.pacing import describe, pacing_rule
from campaign.scheduling.recurrence import yearly_note
from campaign.scheduling.schedules import anniversary_words, create_send_at, create_yearly
from campaign.scheduling.timezones import ScheduleError, zone_of
from campaign.services import audit
from campaign.services.calendar import format_day
from campaign.services.cases import display_name, linked_cases
from campaign.services.followups import (
    CONDITION_WORDS,
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
from campaign.web.access import allow, signed_in_user
from campaign.web.params import row_id

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
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


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
    if schedule.next_run_at is None:
        return "not due"
    zone = zone_of(schedule.timezone or "UTC")
    return schedule.next_run_at.astimezone(zone).strftime("%A %-d %B %Y at %H:%M ") + zone.key


def _anniversary_of(case_date: CaseDate) -> str:
    """The case date in words for this viewer: the real name of a high-risk case for admins."""
    case = db.session.get(Case, case_date.case_id)
    who = display_name(case, signed_in_user()) if case is not None else "a case"
    return anniversary_words(case_date, who)


def _yearly_text(schedule: Schedule) -> str:
    rule = schedule.rule or {}
    month, day = int(rule.get("month", 1)), int(rule.get("day", 1))
    on = f"{day} {MONTHS[month - 1]}"
    case_date = db.session.get(CaseDate, schedule.case_date_id) if schedule.case_date_id else None
    if case_date is not None:
        on = f"{_anniversary_of(case_date)} ({on})"
    text = f"Every year on {on} at {rule.get('time', '')} {schedule.timezone}"
    note = yearly_note(month, day)
    return f"{text} ({note})" if note else text


def _case_date_choices(campaign: Campaign) -> list[tuple[int, str]]:
    """Dates of the campaign's linked cases, then every date marked as an anniversary."""
    linked = [case.id for case in linked_cases(campaign)]
    query = (
        select(CaseDate)
        .where(CaseDate.case_id.in_(linked) | CaseDate.is_anniversary_marked.is_(True))
        .order_by(CaseDate.case_id, CaseDate.on)
    )
    viewer = signed_in_user()
    choices = []
    for case_date in db.session.scalars(query):
        case = db.session.get(Case, case_date.case_id)
        who = display_name(case, viewer) if case is not None else "a case"
        label = (
            f"{case_date.kind.capitalize()} of {who}, {format_day(case_date.on, with_year=True)}"
        )
        choices.append((case_date.id, label))
    return choices


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
    statements = list(db.session.scalars(select(Statement).order_by(Statement.title)))
    conditions = [
        (condition.value, CONDITION_WORDS[condition.value]) for condition in FollowUpCondition
    ]
    return render_template(
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
        conditions=conditions,
        zones=COMMON_ZONES,
        months=list(enumerate(MONTHS, start=1)),
        may_send=bool(current_user.role_enum.includes(Role.SENDER)),
        is_schedulable=campaign.status in SCHEDULABLE,
        errors=errors or {},
        form=form or {},
        which=which,
    ), (422 if errors else 200)


def _campaign(campaign_id: int) -> Campaign:
    return db.get_or_404(Campaign, campaign_id)


def _back(campaign: Campaign) -> Any:
    return redirect(url_for("schedules.show", campaign_id=campaign.id))


@bp.route("/")
@allow(Role.VIEWER)
def show(campaign_id: int) -> Any:
    return _render(_campaign(campaign_id))


def _schedule_field(message: str, default: str) -> str:
    if message.startswith("Time zone"):
        return "zone"
    if message.startswith("Time:"):
        return "time"
    return default


def _pacing_days(form: dict[str, str]) -> int | None:
    """The window's days, read only when a window is chosen (the field stays filled otherwise)."""
    if form.get("pacing") != "window":
        return None
    return _int(form.get("pacing_days", ""), "Days")


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
        message = str(error)
        field = _schedule_field(message, "date")
        if message.startswith(("Days:", "Pacing:")):
            field = "pacing"
        return _render(_campaign(campaign_id), errors={field: message}, form=form, which="send-at")
    db.session.commit()
    flash(
        f"Campaign scheduled: it will be launched on {_local(schedule)}, "
        f"letters {describe(pacing)}.",
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
    flash("The scheduled launch is cancelled; the campaign is a draft again.", "success")
    return _back(campaign)


def _int(value: str, label: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ScheduleError(f"{label}: {value.strip()!r} is not a number") from None


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
                raise ScheduleError("Case date: choose one of the case dates in the list")
        else:
            month = _int(form.get("month", ""), "Date")
            day = _int(form.get("day", ""), "Date")
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
        message = str(error)
        field = _schedule_field(message, "case_date" if on_case_date else "day")
        return _render(_campaign(campaign_id), errors={field: message}, form=form, which="yearly")
    db.session.commit()
    flash(f"{_yearly_text(schedule)}; next: {_local(schedule)}.", "success")
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
    flash("The yearly repeat is stopped; campaigns already sent stay as they are.", "success")
    return _back(campaign)


def _step_fields(form: dict[str, str]) -> tuple[Statement | None, int]:
    """The step form's statement (None if gone) and days; FollowUpError if days is not a number."""
    statement_id = row_id(form.get("statement_id", ""))
    statement = db.session.get(Statement, statement_id) if statement_id is not None else None
    days_text = form.get("delay_days", "").strip()
    try:
        return statement, int(days_text)
    except ValueError:
        raise FollowUpError(f"Days: {days_text!r} is not a number of days", "delay_days") from None


@bp.route("/steps", methods=["POST"])
@allow(Role.SENDER)
def add_follow_up(campaign_id: int) -> Any:
    campaign = _campaign(campaign_id)
    form = {key: request.form.get(key, "") for key in request.form}
    try:
        statement, delay_days = _step_fields(form)
        step = add_step(
            campaign, statement, delay_days, form.get("condition", ""), actor=signed_in_user()
        )
    except FollowUpError as error:
        db.session.rollback()
        field = error.field or "statement"
        return _render(_campaign(campaign_id), errors={field: str(error)}, form=form, which="step")
    db.session.commit()
    flash(f"Follow-up {step.position} added: {step_summary(step)}.", "success")
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
        update_step(step, statement, delay_days, form.get("condition", ""), actor=signed_in_user())
    except FollowUpError as error:
        return _step_refused(campaign_id, step_id, error, form)
    db.session.commit()
    flash(f"Follow-up {step.position} changed: {step_summary(step)}.", "success")
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
    flash(f"Follow-up {position} deleted; the steps after it moved up one place.", "success")
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
        f"Follow-up {step.position} will be sent at the scheduler's next tick (within a minute "
        "while the workers run).",
        "success",
    )
    return _back(campaign)

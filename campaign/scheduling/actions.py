"""What send-at and yearly-campaign schedules do when they fire (registered with the tick)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Case,
    CaseDate,
    Statement,
    User,
    campaign_cases,
)
from campaign.models.schedule import RunOutcome, Schedule, ScheduleKind, ScheduleRun
from campaign.scheduling.recurrence import next_yearly
from campaign.scheduling.stored_text import Text, dump, joined, labelled, lazy_ngettext
from campaign.scheduling.tick import ActionFailed
from campaign.scheduling.timezones import zone_of
from campaign.services.accounts.audit import record_event
from campaign.services.schedules.cases import link_case
from campaign.services.sending import campaigns
from campaign.services.statements import presend

# The pre-send problems a refused scheduled launch records, in words, for the officer.
SHOWN_IN_RECORD = 3


def _launch(campaign: Campaign, now: datetime) -> Text:
    """Launch through the one launch rule (campaigns.check_and_launch), never overriding the
    pre-send check: nobody is there to decide. Raise CampaignError with the reason."""
    try:
        launched = campaigns.check_and_launch(campaign, at=now)
    except campaigns.PresendRefused as refused:
        raise campaigns.CampaignError(_presend_refusal(refused.report)) from None
    if not launched:
        return _l("campaign '%(name)s' was already launched: nothing to do", name=campaign.name)
    counts = campaigns.status_counts(campaign.id)
    return lazy_ngettext(
        "campaign '%(name)s' launched: %(num)d recipient queued",
        "campaign '%(name)s' launched: %(num)d recipients queued",
        counts["queued"],
        name=campaign.name,
    )


def _presend_refusal(report: presend.PresendReport) -> Text:
    """The first problems in words (statement, language, line), kept as messages: the
    officer who reads the run later sees why in their own language."""
    shown = presend.problem_lines(report, errors_only=True)
    return joined(
        " ",
        [
            lazy_ngettext(
                "the pre-send check found letters with errors for %(num)d contact; "
                "fix them, then schedule or launch it again:",
                "the pre-send check found letters with errors for %(num)d contacts; "
                "fix them, then schedule or launch it again:",
                report.contacts_with_errors,
            ),
            joined("; ", list(shown[:SHOWN_IN_RECORD])),
            *(
                [_l("… and %(num)d more", num=len(shown) - SHOWN_IN_RECORD)]
                if len(shown) > SHOWN_IN_RECORD
                else []
            ),
        ],
    )


def _back_to_draft(campaign: Campaign, reason: Text) -> None:
    if campaign.status == CampaignStatus.SCHEDULED.value:
        campaign.status = CampaignStatus.DRAFT.value
    campaign.send_at = None
    campaign.status_reason = dump(reason)


def fire_send_at(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[Text, int | None]:
    campaign = db.session.get(Campaign, schedule.campaign_id)
    if campaign is None:
        raise ActionFailed(_l("its campaign was deleted"))
    if campaign.status not in campaigns.LAUNCHABLE:
        return (
            _l(
                "campaign '%(name)s' is already %(status)s: nothing to do",
                name=campaign.name,
                status=labelled(campaign.status, "campaign_status"),
            ),
            campaign.id,
        )
    try:
        return _launch(campaign, now), campaign.id
    except campaigns.CampaignError as error:
        reason = _l("scheduled launch failed: %(error)s", error=error.message)
        _back_to_draft(campaign, reason)
        raise ActionFailed(reason, campaign.id) from None


def missed_send_at(schedule: Schedule, due_at: datetime, detail: Text) -> None:
    campaign = db.session.get(Campaign, schedule.campaign_id)
    if campaign is not None and campaign.status in campaigns.LAUNCHABLE:
        _back_to_draft(campaign, _l("scheduled launch skipped: %(detail)s", detail=detail))


def yearly_instance_name(template: Campaign, due_at: datetime, zone: str) -> str:
    return f"{template.name} {due_at.astimezone(zone_of(zone)).year}"


def copy_campaign(template: Campaign, name: str) -> Campaign:
    """A draft with the template's audience, statement and sender, pointing back at it."""
    copy = Campaign(
        name=name[:300],
        statement_id=template.statement_id,
        audience=dict(template.audience or {}),
        from_address=template.from_address,
        reply_to=template.reply_to,
        smtp_account_id=template.smtp_account_id,
        is_pdf_attached=template.is_pdf_attached,
        has_list_unsubscribe=template.has_list_unsubscribe,
        is_open_tracking=template.is_open_tracking,
        is_click_tracking=template.is_click_tracking,
        give_up_hours=template.give_up_hours,
        status=CampaignStatus.DRAFT.value,
        template_id=template.id,
        created_by_id=template.created_by_id,
    )
    db.session.add(copy)
    db.session.flush()
    _copy_cases(template, copy)
    _copy_steps(template, copy)
    return copy


def _copy_cases(template: Campaign, copy: Campaign) -> None:
    case_ids = db.session.scalars(
        select(campaign_cases.c.case_id).where(campaign_cases.c.campaign_id == template.id)
    ).all()
    for case_id in case_ids:
        db.session.execute(campaign_cases.insert().values(campaign_id=copy.id, case_id=case_id))


def _copy_steps(template: Campaign, copy: Campaign) -> None:
    """The year's copy follows up as the template does; launching it dates the steps."""
    from campaign.services.sending import followups

    steps = db.session.scalars(
        select(CampaignStep)
        .where(CampaignStep.campaign_id == template.id)
        .order_by(CampaignStep.position)
    ).all()
    for step in steps:
        statement = db.session.get(Statement, step.statement_id) if step.statement_id else None
        try:
            followups.add_step(copy, statement, step.delay_days, step.condition)
        except followups.FollowUpError as error:
            raise ActionFailed(
                _l(
                    "follow-up %(position)d of the template cannot be copied: %(error)s",
                    position=step.position,
                    error=error.message,
                ),
                copy.id,
            ) from None


def _anniversary_case(schedule: Schedule) -> Case:
    case_date = db.session.get(CaseDate, schedule.case_date_id)
    case = db.session.get(Case, case_date.case_id) if case_date is not None else None
    if case is None:
        raise ActionFailed(_l("the case date of this anniversary no longer exists"))
    return case


def _copy_made_this_year(schedule: Schedule, due_at: datetime) -> tuple[int, str] | None:
    """(id, name) of this year's copy made by any repeat of the same campaign on the same
    day — one stopped and made again for another hour, say — or None."""
    zone = zone_of(schedule.timezone)
    year, day = due_at.astimezone(zone).year, (schedule.rule["month"], schedule.rule["day"])
    runs = db.session.execute(
        select(ScheduleRun.campaign_id, ScheduleRun.due_at, Schedule.rule, Campaign.name)
        .join(Schedule, Schedule.id == ScheduleRun.schedule_id)
        .join(Campaign, Campaign.id == ScheduleRun.campaign_id)
        .where(
            Schedule.campaign_id == schedule.campaign_id,
            Schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value,
            # A failed launch keeps its draft copy to fix by hand: it counts as made.
            ScheduleRun.outcome.in_((RunOutcome.FIRED.value, RunOutcome.FAILED.value)),
        )
    )
    for campaign_id, run_due, rule, name in runs:
        if (rule["month"], rule["day"]) == day and run_due.astimezone(zone).year == year:
            return campaign_id, name
    return None


def fire_yearly(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[Text, int | None]:
    template = db.session.get(Campaign, schedule.campaign_id)
    if template is None:
        raise ActionFailed(_l("its template campaign was deleted"))
    made = _copy_made_this_year(schedule, due_at)
    if made is not None:
        return (
            _l("the '%(name)s' copy was already made this year: nothing to do", name=made[1]),
            made[0],
        )
    case = _anniversary_case(schedule) if schedule.case_date_id is not None else None
    copy = copy_campaign(template, yearly_instance_name(template, due_at, schedule.timezone))
    if case is not None:
        # The case whose anniversary it is goes into the year's letters, on the template or not.
        link_case(copy, case)
    try:
        return _launch(copy, now), copy.id
    except campaigns.CampaignError as error:
        copy.status_reason = dump(_l("scheduled launch failed: %(error)s", error=error.message))
        raise ActionFailed(
            _l(
                "%(error)s (the draft '%(name)s' is kept to fix and launch by hand)",
                error=error.message,
                name=copy.name,
            ),
            copy.id,
        ) from None


def yearly_schedule_of(campaign: Campaign) -> Schedule | None:
    """The campaign's yearly rule that comes first (it is a template), or None."""
    return db.session.scalar(
        select(Schedule)
        .where(
            Schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value,
            Schedule.campaign_id == campaign.id,
            Schedule.is_enabled.is_(True),
            Schedule.next_run_at.is_not(None),
        )
        .order_by(Schedule.next_run_at, Schedule.id)
        .limit(1)
    )


def launch_yearly_now(
    template: Campaign,
    schedule: Schedule,
    *,
    actor: User | None = None,
    override: bool = False,
    override_reason: str = "",
    now: datetime | None = None,
) -> Campaign | None:
    """ "Send now" on a yearly campaign: its next copy goes out now instead of on its date.

    The copy is made as `fire_yearly` makes it and launched with the person's confirmation;
    the date's run is recorded (so `_copy_made_this_year` knows it) and the rule moves on to
    the following year, so the tick never sends that year's letters a second time.
    None when another launch took that date first (a double confirm). Raises CampaignError.
    """
    now = now or datetime.now(UTC)
    due_at = schedule.next_run_at
    assert due_at is not None
    # One conditional UPDATE: of two confirms at the same moment only one moves the date.
    moved = db.session.execute(
        update(Schedule)
        .where(Schedule.id == schedule.id, Schedule.next_run_at == due_at)
        .values(next_run_at=next_yearly_run(schedule, due_at))
        .execution_options(synchronize_session=False)
    )
    if int(getattr(moved, "rowcount", 0) or 0) != 1 or _copy_made_this_year(schedule, due_at):
        return None
    db.session.expire(schedule, ["next_run_at"])
    try:
        case = _anniversary_case(schedule) if schedule.case_date_id is not None else None
        copy = copy_campaign(template, yearly_instance_name(template, due_at, schedule.timezone))
    except ActionFailed as failure:
        raise campaigns.CampaignError(failure.detail) from None
    if case is not None:
        link_case(copy, case)
    if not campaigns.check_and_launch(
        copy,
        actor=actor,
        override=override,
        override_reason=override_reason,
        at=now,
    ):
        return None
    db.session.add(
        ScheduleRun(
            schedule_id=schedule.id,
            due_at=due_at,
            ran_at=now,
            outcome=RunOutcome.FIRED.value,
            detail=dump(_l("sent by hand ahead of its date as '%(name)s'", name=copy.name)),
            campaign_id=copy.id,
        )
    )
    record_event(
        "campaign.send_yearly_now",
        target_type="campaign",
        target_id=template.id,
        actor=actor,
        detail={"copy_id": copy.id, "instead_of": due_at.isoformat()},
    )
    db.session.flush()
    return copy


def next_yearly_run(schedule: Schedule, due_at: datetime) -> datetime:
    rule = schedule.rule
    return next_yearly(
        due_at, int(rule["month"]), int(rule["day"]), str(rule["time"]), schedule.timezone
    )

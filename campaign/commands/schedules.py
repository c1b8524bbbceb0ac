"""Scheduling commands: what is scheduled (`schedules`), firing it (`tick`), and making it:
`schedule-send`, `yearly` (on a date or a case date's anniversary) and the follow-up steps
to non-responders (`add-step`, `edit-step`, `remove-step`, `rearm-step`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click
from flask_babel import gettext as _

from campaign.commands import named
from campaign.models.schedule import FollowUpCondition, SignatoriesFrom

if TYPE_CHECKING:
    from flask import Flask


def register(app: Flask) -> None:
    app.cli.add_command(schedules_command)
    app.cli.add_command(tick_command)
    app.cli.add_command(schedule_send_command)
    app.cli.add_command(yearly_command)
    app.cli.add_command(add_step_command)
    app.cli.add_command(edit_step_command)
    app.cli.add_command(remove_step_command)
    app.cli.add_command(rearm_step_command)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.command("schedules")
def schedules_command() -> None:
    """List schedules, one a line: id, kind, name, next run in UTC and in its own zone."""
    from sqlalchemy import select

    from campaign.extensions import db
    from campaign.models.schedule import Schedule
    from campaign.scheduling.timezones import local_label

    rows = db.session.scalars(
        select(Schedule).order_by(Schedule.next_run_at.is_(None), Schedule.next_run_at, Schedule.id)
    ).all()
    if not rows:
        click.echo(_("no schedules"))
        return
    for schedule in rows:
        if schedule.next_run_at is None:
            when = _("no next run")
        else:
            when = _(
                "next %(utc)s (%(local)s)",
                utc=_utc(schedule.next_run_at),
                local=local_label(schedule.next_run_at, schedule.timezone),
            )
        state = "" if schedule.is_enabled else " " + _("[disabled]")
        kind = named(schedule.kind, "schedule_kind")
        click.echo(f"{schedule.id}\t{kind}\t{schedule.name}\t{when}{state}")


def _parse_now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            _("%(value)s is not an ISO 8601 time like 2027-06-26T07:00Z", value=repr(value)),
            param_hint="--now",
        ) from None
    # A time without an offset is taken as UTC, as every time the scheduler keeps.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@click.command("tick")
@click.option("--now", "now_text", help="Run as of this ISO 8601 time (UTC if no offset).")
def tick_command(now_text: str | None) -> None:
    """Run the scheduler once: fire what is due, skip what is too late; print each."""
    from campaign.extensions import db
    from campaign.scheduling.tick import tick

    report = tick(_parse_now(now_text), commit=db.session.commit)
    for line in report.lines:
        outcome = named(line.outcome, "run_outcome")
        kind = named(line.kind, "schedule_kind")
        due = _("due %(when)s", when=_utc(line.due_at))
        click.echo(f"{outcome}\t{kind}\t{line.name}\t{due}\t{line.detail}")
    click.echo(report.summary)


# --- making schedules ------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    """Stop with exit status 2 and nothing written: the request cannot be done as asked."""
    from campaign.extensions import db

    db.session.rollback()
    click.echo(_("Error: %(message)s", message=message), err=True)
    raise click.exceptions.Exit(2)


def _campaign(campaign_id: int) -> Any:
    from campaign.extensions import db
    from campaign.models import Campaign

    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        _fail(_("there is no campaign %(id)s", id=campaign_id))
    return campaign


@click.command("schedule-send")
@click.argument("campaign_id", type=int)
@click.option("--at", "local", required=True, help="Local date and time, e.g. 2027-06-26T09:00.")
@click.option("--tz", "zone", required=True, help="IANA time zone, e.g. Europe/Paris.")
@click.option(
    "--pacing",
    "pacing_mode",
    default="none",
    show_default=True,
    type=click.Choice(["none", "office-hours", "window"]),
    help="First attempts in recipients' office hours, or spread over --days.",
)
@click.option("--days", type=int, help="With --pacing window: days to spread the letters over.")
def schedule_send_command(
    campaign_id: int, local: str, zone: str, pacing_mode: str, days: int | None
) -> None:
    """Launch a draft campaign at a local time in a named zone (replaces an earlier one)."""
    from campaign.extensions import db
    from campaign.scheduling.pacing import describe, pacing_rule
    from campaign.scheduling.schedules import create_send_at
    from campaign.scheduling.timezones import ScheduleError, local_label

    campaign = _campaign(campaign_id)
    try:
        pacing = pacing_rule(pacing_mode, days)
        schedule = create_send_at(campaign, local, zone, pacing=pacing)
    except ScheduleError as error:
        _fail(str(error))
    db.session.commit()
    assert schedule.next_run_at is not None
    when = {
        "id": campaign.id,
        "name": repr(campaign.name),
        "local": local_label(schedule.next_run_at, schedule.timezone),
        "utc": _utc(schedule.next_run_at),
    }
    if pacing:
        click.echo(
            _(
                "campaign %(id)s %(name)s will launch at %(local)s (%(utc)s), letters %(pacing)s",
                pacing=describe(pacing),
                **when,
            )
        )
    else:
        click.echo(_("campaign %(id)s %(name)s will launch at %(local)s (%(utc)s)", **when))


@click.command("yearly")
@click.argument("campaign_id", type=int)
@click.option("--date", "month_day", help="Month and day, e.g. 06-26.")
@click.option(
    "--case-date",
    "case_date_id",
    type=int,
    help="Instead of --date: the anniversary of this case date (its case joins each copy).",
)
@click.option("--time", "at", default="09:00", show_default=True, help="Local time, HH:MM.")
@click.option("--tz", "zone", required=True, help="IANA time zone, e.g. Europe/Paris.")
def yearly_command(
    campaign_id: int, month_day: str | None, case_date_id: int | None, at: str, zone: str
) -> None:
    """Every year on that date, launch a copy of the campaign (named with the year)."""
    from campaign.extensions import db
    from campaign.models import Case, CaseDate
    from campaign.scheduling.recurrence import yearly_note
    from campaign.scheduling.schedules import anniversary_words, create_yearly
    from campaign.scheduling.timezones import ScheduleError, local_label
    from campaign.services.schedules.cases import letter_name

    campaign = _campaign(campaign_id)
    if (month_day is None) == (case_date_id is None):
        _fail(_("give either --date MM-DD or --case-date ID"))
    case_date = None
    if case_date_id is not None:
        case_date = db.session.get(CaseDate, case_date_id)
        if case_date is None:
            _fail(_("--case-date: there is no case date %(id)s", id=case_date_id))
        month, day = case_date.on.month, case_date.on.day
    else:
        assert month_day is not None
        month_text, _dash, day_text = month_day.partition("-")
        if not (month_text.isdigit() and day_text.isdigit()):
            _fail(_("--date: %(value)s is not a month and day like 06-26", value=repr(month_day)))
        month, day = int(month_text), int(day_text)
    try:
        schedule = create_yearly(campaign, month, day, at, zone, case_date=case_date)
    except ScheduleError as error:
        _fail(str(error))
    db.session.commit()
    assert schedule.next_run_at is not None
    note = yearly_note(month, day)
    facts = {
        "id": schedule.id,
        "name": repr(campaign.name),
        "local": local_label(schedule.next_run_at, schedule.timezone),
        "utc": _utc(schedule.next_run_at),
    }
    if case_date is not None:
        case = db.session.get(Case, case_date.case_id)
        anniversary = anniversary_words(case_date, letter_name(case) if case else _("a case"))
        text = _(
            "schedule %(id)s: a copy of %(name)s every year on %(anniversary)s, "
            "first at %(local)s (%(utc)s)",
            anniversary=anniversary,
            **facts,
        )
    else:
        text = _(
            "schedule %(id)s: a copy of %(name)s every year, first at %(local)s (%(utc)s)",
            **facts,
        )
    click.echo(f"{text}; {note}" if note else text)


@click.command("add-step")
@click.argument("campaign_id", type=int)
@click.option("--statement", "statement_id", type=int, required=True, help="Statement id.")
@click.option("--days", type=int, required=True, help="Days after the previous letter.")
@click.option(
    "--condition",
    default="no_reply",
    show_default=True,
    type=click.Choice([condition.value for condition in FollowUpCondition]),
    help="Who gets it among the previous letter's recipients.",
)
@click.option(
    "--subject",
    default="",
    help="The follow-up's subject (merge fields allowed); default: 'Re: ' and the subject "
    "of the first letter each person received.",
)
@click.option(
    "--signatories",
    "signatories_from",
    default=SignatoriesFrom.FIRST_LETTER.value,
    show_default=True,
    type=click.Choice([choice.value for choice in SignatoriesFrom]),
    help="Whose signatures close it: the first letter's as sent, the follow-up statement's, "
    "or none.",
)
def add_step_command(
    campaign_id: int,
    statement_id: int,
    days: int,
    condition: str,
    subject: str,
    signatories_from: str,
) -> None:
    """Add a follow-up step to non-responders; print what it will do."""
    from campaign.extensions import db
    from campaign.models import Statement
    from campaign.services.sending import followups

    campaign = _campaign(campaign_id)
    statement = db.session.get(Statement, statement_id)
    if statement is None:
        _fail(_("%(option)s: there is no statement %(id)s", option="--statement", id=statement_id))
    try:
        step = followups.add_step(
            campaign,
            statement,
            days,
            condition,
            subject=subject,
            signatories_from=signatories_from,
        )
    except followups.FollowUpError as error:
        _fail(str(error))
    db.session.commit()
    click.echo(
        _(
            "follow-up %(position)s: %(summary)s",
            position=step.position,
            summary=followups.step_summary(step),
        )
    )


def _step(campaign_id: int, position: int) -> Any:
    from sqlalchemy import select

    from campaign.extensions import db
    from campaign.models import CampaignStep

    campaign = _campaign(campaign_id)
    step = db.session.scalar(
        select(CampaignStep).where(
            CampaignStep.campaign_id == campaign.id, CampaignStep.position == position
        )
    )
    if step is None:
        _fail(_("campaign %(id)s has no follow-up %(position)s", id=campaign_id, position=position))
    return step


@click.command("edit-step")
@click.argument("campaign_id", type=int)
@click.argument("position", type=int)
@click.option("--statement", "statement_id", type=int, help="Statement id (default: unchanged).")
@click.option("--days", type=int, help="Days after the previous letter (default: unchanged).")
@click.option(
    "--condition",
    type=click.Choice([condition.value for condition in FollowUpCondition]),
    help="Who gets it among the previous letter's recipients (default: unchanged).",
)
@click.option(
    "--subject",
    default=None,
    help="The follow-up's subject; '' for 'Re: ' and the first letter's (default: unchanged).",
)
@click.option(
    "--signatories",
    "signatories_from",
    type=click.Choice([choice.value for choice in SignatoriesFrom]),
    help="Whose signatures close it (default: unchanged).",
)
def edit_step_command(
    campaign_id: int,
    position: int,
    statement_id: int | None,
    days: int | None,
    condition: str | None,
    subject: str | None,
    signatories_from: str | None,
) -> None:
    """Change follow-up POSITION of a campaign, if it has not gone out; print it in words."""
    from campaign.extensions import db
    from campaign.models import Statement
    from campaign.services.sending import followups

    step = _step(campaign_id, position)
    wanted = statement_id if statement_id is not None else step.statement_id
    statement = db.session.get(Statement, wanted) if wanted is not None else None
    if statement_id is not None and statement is None:
        _fail(_("%(option)s: there is no statement %(id)s", option="--statement", id=statement_id))
    try:
        followups.update_step(
            step,
            statement,
            days if days is not None else step.delay_days,
            condition or step.condition,
            subject=subject,
            signatories_from=signatories_from,
        )
    except followups.FollowUpError as error:
        _fail(str(error))
    db.session.commit()
    click.echo(
        _(
            "follow-up %(position)s: %(summary)s",
            position=step.position,
            summary=followups.step_summary(step),
        )
    )


@click.command("remove-step")
@click.argument("campaign_id", type=int)
@click.argument("position", type=int)
def remove_step_command(campaign_id: int, position: int) -> None:
    """Delete follow-up POSITION of a campaign, if it has not gone out; later ones move up."""
    from campaign.extensions import db
    from campaign.services.sending import followups

    step = _step(campaign_id, position)
    try:
        followups.remove_step(step)
    except followups.FollowUpError as error:
        _fail(str(error))
    db.session.commit()
    click.echo(
        _("follow-up %(position)s of campaign %(id)s deleted", position=position, id=campaign_id)
    )


@click.command("rearm-step")
@click.argument("campaign_id", type=int)
@click.argument("position", type=int)
@click.option("--now", "now_text", help="Due at this ISO 8601 time (UTC if no offset).")
def rearm_step_command(campaign_id: int, position: int, now_text: str | None) -> None:
    """Send a follow-up whose fire was skipped or failed at the next tick (once)."""
    from campaign.extensions import db
    from campaign.services.sending import followups

    step = _step(campaign_id, position)
    try:
        schedule = followups.rearm_step(step, now=_parse_now(now_text))
    except followups.FollowUpError as error:
        _fail(str(error))
    db.session.commit()
    assert schedule.next_run_at is not None
    click.echo(
        _(
            "follow-up %(position)s: due again at %(when)s",
            position=position,
            when=_utc(schedule.next_run_at),
        )
    )

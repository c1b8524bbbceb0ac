"""Follow-up steps: N days after the previous letter, a statement to those who have not replied.

A step is a CampaignStep and a Schedule (kind follow_up). "N days after the previous letter"
is counted for each recipient from when their own letter went out: with pacing, a daily
limit, a pause or retries, letters of one step leave over days. So a step fires in sweeps:
its first is due `delay_days` after the launch (step 1) or after the previous step's first
fire; each sweep writes the ledger rows (deliveries.step = position) of those whose letter
is at least N days old, then sets the next sweep for the next person to come due, until
every letter before it has gone out or ended (decision 0021). The ledger's unique
(campaign, contact, step) key and the NOT EXISTS below make a second fire add nobody.

Who gets the letter: recipients of the previous step whose letter was sent, who have not
answered in person at any earlier step (an out-of-office is not an answer), per the step's
condition, and who are not on the suppression list.

A step that has not gone out may be edited or removed; one whose fire was skipped or failed
may be re-armed to go at the next tick (decision 0025).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext, ngettext
from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import aliased

from campaign.extensions import db
from campaign.labels import label
from campaign.letters.letter import LetterSource, match_language
from campaign.letters.sandbox import TemplateRefused, check_template
from campaign.mail import message_id_domain
from campaign.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    Delivery,
    DeliveryStatus,
    FollowUpCondition,
    InboundMessage,
    RunOutcome,
    Schedule,
    ScheduleKind,
    ScheduleRun,
    SignatoriesFrom,
    Statement,
    StatementVersion,
    Suppression,
    User,
)
from campaign.models.inbound import BounceKind, InboundKind
from campaign.scheduling.stored_text import Text, day_text, joined, read
from campaign.scheduling.tick import ActionFailed
from campaign.services.accounts.audit import record_event
from campaign.services.sending.deliveries import (
    enqueue_send_jobs,
    insert_deliveries,
    new_delivery_rows,
)
from campaign.services.statements import presend, statements

# The condition inside a sentence ("recipients who have not replied"); a select shows the
# condition's label (campaign.labels, "follow_up_condition").
CONDITION_WORDS = {
    FollowUpCondition.NO_REPLY.value: _l("who have not replied"),
    FollowUpCondition.NO_REPLY_NO_BOUNCE.value: _l(
        "who have not replied and whose letter did not bounce"
    ),
    FollowUpCondition.OPENED_NO_REPLY.value: _l("who opened the letter but have not replied"),
}
# Letters that leave within this time after a sweep's cut-off go with it: a campaign's
# batch takes minutes to send, and a second sweep an hour later for its tail helps nobody.
SWEEP_SLACK = timedelta(hours=1)
# A follow-up later than a year is a new campaign, not a reminder of this one.
MAX_DELAY_DAYS = 365
# Key of the step's schedule rule holding the statement version frozen when it fired.
FROZEN_VERSION_KEY = "statement_version_id"
# Key of the step's schedule rule holding the time a skipped or failed step was re-armed for.
REARMED_KEY = "rearmed_at"


class FollowUpError(ValueError):
    """A follow-up step cannot be added or changed as asked; `field` names the culprit.

    The message is lazy: read in the language of the page's user, or kept as a message by
    the scheduler's record (stored_text) when a fire fails.
    """

    def __init__(self, message: Text, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# --- adding steps ----------------------------------------------------------------------------


def steps_of(campaign: Campaign) -> list[CampaignStep]:
    return list(
        db.session.scalars(
            select(CampaignStep)
            .where(CampaignStep.campaign_id == campaign.id)
            .order_by(CampaignStep.position)
        )
    )


def schedule_of(step: CampaignStep) -> Schedule | None:
    return db.session.scalar(
        select(Schedule).where(
            Schedule.step_id == step.id, Schedule.kind == ScheduleKind.FOLLOW_UP.value
        )
    )


def _checked(
    campaign: Campaign,
    statement: Statement | None,
    delay_days: int,
    condition: str | FollowUpCondition,
) -> FollowUpCondition:
    """The step's condition, once statement, days and condition are known to be sendable."""
    if campaign.status == CampaignStatus.CANCELLED:
        raise FollowUpError(_l("the campaign is cancelled: it sends no follow-ups"))
    if statement is None or db.session.get(Statement, statement.id) is None:
        raise FollowUpError(
            _l(
                "Statement: the statement no longer exists (it may have been deleted); "
                "choose another"
            ),
            "statement",
        )
    if not statement.texts:
        raise FollowUpError(
            _l("Statement: “%(title)s” has no text to send", title=statement.title), "statement"
        )
    if isinstance(delay_days, bool) or not isinstance(delay_days, int) or delay_days < 1:
        raise FollowUpError(
            _l(
                "Days: a follow-up goes at least 1 day after the previous letter (not %(days)s)",
                days=delay_days,
            ),
            "delay_days",
        )
    if delay_days > MAX_DELAY_DAYS:
        raise FollowUpError(
            _l(
                "Days: a follow-up goes at most %(most)d days after the previous letter "
                "(not %(days)d); for a letter next year, use a yearly campaign",
                most=MAX_DELAY_DAYS,
                days=delay_days,
            ),
            "delay_days",
        )
    try:
        condition = FollowUpCondition(condition)
    except ValueError:
        raise FollowUpError(
            _l("Condition: '%(condition)s' is not a known condition", condition=condition),
            "condition",
        ) from None
    if condition == FollowUpCondition.OPENED_NO_REPLY and not campaign.is_open_tracking:
        raise FollowUpError(
            _l(
                "Condition: “opened but did not reply” needs open tracking, which this "
                "campaign does not use"
            ),
            "condition",
        )
    return condition


# "Re:" prefixes as mail clients write them ("Re: ", "RE:", "re : "), repeated or not.
_REPLY_PREFIX = re.compile(r"^(?:\s*re\s*:\s*)+", re.IGNORECASE)
# A mail header is one line (RFC 5322 limits it to 998 characters).
MAX_STEP_SUBJECT = 998


def reply_subject(subject: str) -> str:
    """ "Re: " + `subject`, never "Re: Re: …"; an empty subject stays empty."""
    rest = _REPLY_PREFIX.sub("", subject).strip()
    return f"Re: {rest}" if rest else ""


def _checked_subject(subject: str) -> str:
    """The step's own subject, cleaned ("" keeps the default "Re: " + the first subject)."""
    subject = (subject or "").strip()
    if not subject:
        return ""
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]", subject):
        raise FollowUpError(
            _l("Subject: a subject must be one line (it becomes a mail header)"), "subject"
        )
    if len(subject) > MAX_STEP_SUBJECT:
        raise FollowUpError(
            _l(
                "Subject: %(length)d characters; the limit is %(limit)d",
                length=len(subject),
                limit=MAX_STEP_SUBJECT,
            ),
            "subject",
        )
    try:
        check_template(subject, allowed_variables=set(statements.TEMPLATE_VARIABLES))
    except TemplateRefused as refused:
        raise FollowUpError(_l("Subject: %(reason)s", reason=str(refused)), "subject") from None
    # Written with a "Re:" of its own: one is enough.
    return reply_subject(subject) if _REPLY_PREFIX.match(subject) else subject


def _checked_signatories(value: str | SignatoriesFrom) -> SignatoriesFrom:
    try:
        return SignatoriesFrom(value or SignatoriesFrom.FIRST_LETTER.value)
    except ValueError:
        raise FollowUpError(
            _l(
                "Signatures: '%(value)s' is not a choice (the first letter's, the follow-up "
                "statement's, or none)",
                value=value,
            ),
            "signatories_from",
        ) from None


def add_step(
    campaign: Campaign,
    statement: Statement | None,
    delay_days: int,
    condition: str | FollowUpCondition,
    *,
    subject: str = "",
    signatories_from: str | SignatoriesFrom = SignatoriesFrom.FIRST_LETTER,
    actor: User | None = None,
) -> CampaignStep:
    """Add the campaign's next follow-up step and its schedule; FollowUpError says what is wrong.

    `subject` "" means "Re: " + the subject of the first letter each person got.
    """
    condition = _checked(campaign, statement, delay_days, condition)
    subject = _checked_subject(subject)
    signed_by = _checked_signatories(signatories_from)
    assert statement is not None
    position = (
        db.session.scalar(
            select(func.max(CampaignStep.position)).where(CampaignStep.campaign_id == campaign.id)
        )
        or 0
    ) + 1
    step = CampaignStep(
        campaign_id=campaign.id,
        position=position,
        statement_id=statement.id,
        delay_days=delay_days,
        condition=condition.value,
        subject=subject,
        signatories_from=signed_by.value,
    )
    db.session.add(step)
    db.session.flush()
    db.session.add(
        Schedule(
            kind=ScheduleKind.FOLLOW_UP.value,
            name=f"{campaign.name}: follow-up {position}",
            campaign_id=campaign.id,
            step_id=step.id,
            rule={"delay_days": delay_days},
            created_by_id=actor.id if actor else None,
        )
    )
    db.session.flush()
    schedule_steps(campaign)
    # Here, not in the page: a step added with `campaign add-step` is recorded too.
    record_event(
        "campaign.step_add",
        target_type="campaign",
        target_id=campaign.id,
        actor=actor,
        detail={"step_id": step.id, "position": position, "delay_days": delay_days},
    )
    return step


def _previous_sent_at(campaign: Campaign, step: CampaignStep) -> datetime | None:
    """When the letter before this step went out (None while it has not)."""
    if step.position == 1:
        return campaign.launched_at
    previous = db.session.scalar(
        select(CampaignStep).where(
            CampaignStep.campaign_id == campaign.id, CampaignStep.position == step.position - 1
        )
    )
    if previous is None:
        return None
    schedule = schedule_of(previous)
    return _first_fire(schedule) if schedule else None


def _first_fire(schedule: Schedule) -> datetime | None:
    """When the step's first sweep was due: the earliest its letters can have gone out
    (its last fire if it was fired outside the tick, with no run recorded)."""
    first = db.session.scalar(
        select(func.min(ScheduleRun.due_at)).where(
            ScheduleRun.schedule_id == schedule.id,
            ScheduleRun.outcome == RunOutcome.FIRED.value,
        )
    )
    return first or schedule.last_fired_at


def _has_run(schedule: Schedule, due_at: datetime) -> bool:
    return (
        db.session.scalar(
            select(ScheduleRun.id).where(
                ScheduleRun.schedule_id == schedule.id, ScheduleRun.due_at == due_at
            )
        )
        is not None
    )


def _due_at(campaign: Campaign, step: CampaignStep, schedule: Schedule) -> datetime | None:
    """When the unfired step is due: its re-armed time, else `delay_days` after the letter
    before it; None while that letter has not gone out, or when the fire at that time was
    already skipped or failed (a run row holds it: only a re-arm sends it now)."""
    rearmed = (schedule.rule or {}).get(REARMED_KEY)
    if rearmed:
        return datetime.fromisoformat(rearmed)
    since = _previous_sent_at(campaign, step)
    if since is None:
        return None
    due = since + timedelta(days=step.delay_days)
    return None if _has_run(schedule, due) else due


def schedule_steps(campaign: Campaign) -> int:
    """Give each step whose previous letter has gone out its due time; return how many changed.

    Called when a step is added, edited or removed, at launch and after each fire. A step
    already fired keeps its record; a step waiting for its predecessor stays without a due
    time, and so does one whose fire was skipped or failed until it is re-armed.
    """
    changed = 0
    for step in steps_of(campaign):
        schedule = schedule_of(step)
        if schedule is None or schedule.last_fired_at is not None:
            continue
        due = _due_at(campaign, step, schedule)
        if schedule.next_run_at != due:
            schedule.next_run_at = due
            changed += 1
    db.session.flush()
    return changed


# --- changing steps --------------------------------------------------------------------------


def letters_sent(step: CampaignStep) -> int:
    """How many ledger rows the step wrote (its letters, whatever became of them)."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.campaign_id == step.campaign_id, Delivery.step == step.position)
        )
        or 0
    )


def has_gone_out(step: CampaignStep) -> bool:
    """True once the step fired (even to nobody) or wrote letters: it is part of the record."""
    schedule = schedule_of(step)
    if schedule is not None:
        if schedule.last_fired_at is not None:
            return True
        fired = db.session.scalar(
            select(ScheduleRun.id).where(
                ScheduleRun.schedule_id == schedule.id,
                ScheduleRun.outcome == RunOutcome.FIRED.value,
            )
        )
        if fired is not None:
            return True
    return letters_sent(step) > 0


def last_run(step: CampaignStep) -> ScheduleRun | None:
    schedule = schedule_of(step)
    if schedule is None:
        return None
    return db.session.scalar(
        select(ScheduleRun)
        .where(ScheduleRun.schedule_id == schedule.id)
        .order_by(ScheduleRun.due_at.desc(), ScheduleRun.id.desc())
        .limit(1)
    )


def may_rearm(step: CampaignStep) -> bool:
    """True for a step whose last fire was skipped or failed and that nothing will send now."""
    schedule = schedule_of(step)
    run = last_run(step)
    if schedule is None or run is None or run.outcome == RunOutcome.FIRED.value:
        return False
    if has_gone_out(step):
        return False
    return schedule.next_run_at is None or _has_run(schedule, schedule.next_run_at)


def _gone_out(doing: str, position: int, sent: int) -> Text:
    # Each sentence whole, for the catalogue (the extractor reads literal calls).
    if doing == "edit":
        return lazy_ngettext(
            "follow-up %(position)d has already gone out (%(num)d letter in the record): it "
            "cannot be edited; add a new follow-up instead",
            "follow-up %(position)d has already gone out (%(num)d letters in the record): it "
            "cannot be edited; add a new follow-up instead",
            sent,
            position=position,
        )
    if doing == "delete":
        return lazy_ngettext(
            "follow-up %(position)d has already gone out (%(num)d letter in the record): it "
            "cannot be deleted; add a new follow-up instead",
            "follow-up %(position)d has already gone out (%(num)d letters in the record): it "
            "cannot be deleted; add a new follow-up instead",
            sent,
            position=position,
        )
    return lazy_ngettext(
        "follow-up %(position)d has already gone out (%(num)d letter in the record): it "
        "cannot be sent again; add a new follow-up instead",
        "follow-up %(position)d has already gone out (%(num)d letters in the record): it "
        "cannot be sent again; add a new follow-up instead",
        sent,
        position=position,
    )


def _refuse_if_gone_out(step: CampaignStep, doing: str) -> None:
    """`doing` is "edit", "delete" or "rearm"."""
    if has_gone_out(step):
        raise FollowUpError(_gone_out(doing, step.position, letters_sent(step)))


def update_step(
    step: CampaignStep,
    statement: Statement | None,
    delay_days: int,
    condition: str | FollowUpCondition,
    *,
    subject: str | None = None,
    signatories_from: str | SignatoriesFrom | None = None,
    actor: User | None = None,
) -> CampaignStep:
    """Change a step that has not gone out, with add_step's checks; re-date it and the rest.

    `subject` and `signatories_from` left None keep the step's own.
    """
    campaign = db.session.get(Campaign, step.campaign_id)
    assert campaign is not None
    _refuse_if_gone_out(step, "edit")
    condition = _checked(campaign, statement, delay_days, condition)
    new_subject = step.subject if subject is None else _checked_subject(subject)
    signed_by = _checked_signatories(
        step.signatories_from if signatories_from is None else signatories_from
    )
    assert statement is not None
    schedule = schedule_of(step)
    if schedule is not None:
        rule = {**(schedule.rule or {}), "delay_days": delay_days}
        if delay_days != step.delay_days:
            # New days are a new date: a pending re-arm ("send it now") no longer applies.
            rule.pop(REARMED_KEY, None)
        schedule.rule = rule  # a new dict: the JSON column notices assignment only
    step.statement_id = statement.id
    step.delay_days = delay_days
    step.condition = condition.value
    step.subject = new_subject
    step.signatories_from = signed_by.value
    db.session.flush()
    schedule_steps(campaign)
    record_event(
        "campaign.step_edit",
        target_type="campaign",
        target_id=campaign.id,
        actor=actor,
        detail={
            "step_id": step.id,
            "position": step.position,
            "statement_id": statement.id,
            "delay_days": delay_days,
            "condition": condition.value,
            "subject": new_subject,
            "signatories_from": signed_by.value,
        },
    )
    return step


def remove_step(step: CampaignStep, *, actor: User | None = None) -> None:
    """Remove a step that has not gone out; later steps move up one place.

    Positions are the ledger's Delivery.step, so only steps without letters are renumbered:
    a step after an unsent one cannot have letters either (its recipients are the previous
    step's). A schedule with skipped or failed runs is kept, disabled and detached, so the
    scheduler record still shows them; one without runs goes with its step.
    """
    campaign = db.session.get(Campaign, step.campaign_id)
    assert campaign is not None
    _refuse_if_gone_out(step, "delete")
    step_id, position = step.id, step.position
    schedule = schedule_of(step)
    if schedule is not None:
        if last_run(step) is not None:
            schedule.step_id = None
            schedule.is_enabled = False
            schedule.next_run_at = None
            schedule.name = f"{campaign.name}: follow-up {position} (removed)"
        else:
            db.session.delete(schedule)
        # Before the step: the database's cascade would otherwise remove it first.
        db.session.flush()
    db.session.delete(step)
    db.session.flush()
    for later in steps_of(campaign):
        if later.position > position:
            later.position -= 1
            # One at a time, in order: (campaign, position) is unique at every flush.
            db.session.flush()
            later_schedule = schedule_of(later)
            if later_schedule is not None:
                later_schedule.name = f"{campaign.name}: follow-up {later.position}"
    db.session.flush()
    schedule_steps(campaign)
    record_event(
        "campaign.step_remove",
        target_type="campaign",
        target_id=campaign.id,
        actor=actor,
        detail={"step_id": step_id, "position": position},
    )


def rearm_step(
    step: CampaignStep, *, now: datetime | None = None, actor: User | None = None
) -> Schedule:
    """Make a skipped or failed step due at `now`, so the next tick sends it once."""
    schedule = schedule_of(step)
    if schedule is None:
        raise FollowUpError(_l("follow-up %(position)d has no schedule", position=step.position))
    _refuse_if_gone_out(step, "rearm")
    if not may_rearm(step):
        raise FollowUpError(
            _l(
                "follow-up %(position)d is not stuck: only a step whose last fire was skipped "
                "or failed can be sent now",
                position=step.position,
            )
        )
    due = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    # A fresh due time: (schedule, due_at) is the claim key of the fire.
    while _has_run(schedule, due):
        due += timedelta(seconds=1)
    schedule.rule = {**(schedule.rule or {}), REARMED_KEY: due.isoformat()}
    schedule.next_run_at = due
    db.session.flush()
    record_event(
        "campaign.step_rearm",
        target_type="campaign",
        target_id=step.campaign_id,
        actor=actor,
        detail={"step_id": step.id, "position": step.position, "due_at": due.isoformat()},
    )
    return schedule


# --- who gets a step -------------------------------------------------------------------------


def _hard_bounce_reported(delivery: Any) -> Any:
    return exists().where(
        InboundMessage.delivery_id == delivery.id,
        InboundMessage.kind == InboundKind.BOUNCE.value,
        InboundMessage.bounce_kind == BounceKind.HARD.value,
    )


def recipients_query(
    step: CampaignStep, *, sent_by: datetime | None = None
) -> Select[int | None, str]:
    """(contact id, address) of the recipients the step would write to now; with `sent_by`,
    only those whose previous letter went out by then (N days before the sweep)."""
    previous = aliased(Delivery)
    earlier = aliased(Delivery)
    already = aliased(Delivery)
    # To the contact's address now: after a merge, the survivor's chosen one (decision 0048),
    # not the address the merged-away record's letter went to.
    query = (
        select(previous.contact_id, Contact.email)
        .join(Contact, Contact.id == previous.contact_id)
        .where(
            previous.campaign_id == step.campaign_id,
            previous.step == step.position - 1,
            previous.sent_at.is_not(None),
            # A person's answer to any earlier letter ends the sequence for them.
            ~exists().where(
                earlier.campaign_id == step.campaign_id,
                earlier.contact_id == previous.contact_id,
                earlier.step < step.position,
                earlier.replied_at.is_not(None),
            ),
            ~exists().where(
                already.campaign_id == step.campaign_id,
                already.contact_id == previous.contact_id,
                already.step == step.position,
            ),
            ~Contact.email_key.in_(select(Suppression.email_key)),
            Contact.deleted_at.is_(None),  # no follow-up to a contact in the trash
        )
        .order_by(previous.contact_id)
    )
    if sent_by is not None:
        query = query.where(previous.sent_at <= sent_by)
    if step.condition == FollowUpCondition.NO_REPLY_NO_BOUNCE:
        query = query.where(
            previous.status != DeliveryStatus.BOUNCED.value, ~_hard_bounce_reported(previous)
        )
    elif step.condition == FollowUpCondition.OPENED_NO_REPLY:
        query = query.where(previous.opened_at.is_not(None))
    return query


def recipient_count(step: CampaignStep) -> int:
    return int(
        db.session.scalar(select(func.count()).select_from(recipients_query(step).subquery())) or 0
    )


def _day(when: datetime) -> str:
    """The UTC day of `when` in the interface language ("3 May", "3 mai")."""
    return day_text(when.astimezone(UTC).date().isoformat())


def step_summary(step: CampaignStep) -> str:
    """The step in words for the campaign page, with today's count of recipients."""
    statement = db.session.get(Statement, step.statement_id) if step.statement_id else None
    title = f"‘{statement.title}’" if statement else _("a statement that has been deleted")
    schedule = schedule_of(step)
    found = CONDITION_WORDS.get(step.condition)
    who = str(found) if found is not None else label(step.condition, "follow_up_condition")
    days = ngettext("%(num)d day", "%(num)d days", step.delay_days)
    if schedule is not None and schedule.last_fired_at is not None:
        sent = letters_sent(step)
        if schedule.next_run_at is not None:
            return ngettext(
                "%(num)d recipient %(who)s was sent %(title)s so far; the others follow "
                "%(days)s after their own letter went out (next on %(day)s)",
                "%(num)d recipients %(who)s were sent %(title)s so far; the others follow "
                "%(days)s after their own letter went out (next on %(day)s)",
                sent,
                who=who,
                title=title,
                days=days,
                day=_day(schedule.next_run_at),
            )
        return ngettext(
            "On %(day)s, %(num)d recipient %(who)s was sent %(title)s",
            "On %(day)s, %(num)d recipients %(who)s were sent %(title)s",
            sent,
            day=_day(schedule.last_fired_at),
            who=who,
            title=title,
        )
    if may_rearm(step):
        run = last_run(step)
        assert run is not None
        return _(
            "Not sent: the fire due on %(day)s was %(outcome)s (%(detail)s); recipients "
            "%(who)s have not received %(title)s",
            day=_day(run.due_at),
            outcome=label(run.outcome, "run_outcome").lower(),
            detail=read(run.detail),
            who=who,
            title=title,
        )
    if schedule is None or schedule.next_run_at is None:
        if step.position == 1:
            return _(
                "%(days)s after the letter goes out, recipients %(who)s will receive %(title)s",
                days=days,
                who=who,
                title=title,
            )
        return _(
            "%(days)s after follow-up %(previous)d goes out, recipients %(who)s will receive "
            "%(title)s",
            days=days,
            previous=step.position - 1,
            who=who,
            title=title,
        )
    return ngettext(
        "On %(day)s, %(num)d recipient %(who)s will receive %(title)s",
        "On %(day)s, %(num)d recipients %(who)s will receive %(title)s",
        recipient_count(step),
        day=_day(schedule.next_run_at),
        who=who,
        title=title,
    )


# --- firing ----------------------------------------------------------------------------------


def _freeze_version(schedule: Schedule, statement: Statement) -> StatementVersion:
    """The statement's current version, kept in the step's schedule rule for the senders."""
    version = statements.latest_version(statement) or statements.record_version(
        statement, "frozen for a follow-up"
    )
    # A new dict: the JSON column notices assignment, not changes inside the dict.
    schedule.rule = {**(schedule.rule or {}), FROZEN_VERSION_KEY: version.id}
    return version


def fire_follow_up(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[Text, int | None]:
    """Write the step's ledger rows and queue them; (what it did in words, campaign id).

    Raises FollowUpError when the step cannot go (the tick records that as a failure).
    """
    step = db.session.get(CampaignStep, schedule.step_id) if schedule.step_id else None
    if step is None:
        raise FollowUpError(_l("the follow-up step no longer exists"))
    campaign = db.session.get(Campaign, step.campaign_id)
    if campaign is None:
        raise FollowUpError(_l("the campaign no longer exists"))
    if campaign.status == CampaignStatus.CANCELLED:
        return _l("nothing sent: the campaign was cancelled"), campaign.id
    if campaign.launched_at is None:
        raise FollowUpError(
            _l("the campaign has not been launched, so there is nobody to follow up")
        )
    statement = db.session.get(Statement, step.statement_id) if step.statement_id else None
    if statement is None:
        raise FollowUpError(
            _l(
                "follow-up %(position)d: its statement was deleted; choose another on the "
                "campaign page",
                position=step.position,
            )
        )
    # The launch's address check, under the settings of the worker that fires the step
    # (outside debug): the step's letters carry the same List-Unsubscribe and Message-IDs.
    problems = presend.this_machines_problems(campaign)
    if problems:
        raise FollowUpError(
            _l(
                "follow-up %(position)d not sent: %(problems)s; fix the settings, then press "
                '"Send this follow-up now"',
                position=step.position,
                problems=joined("; ", list(problems)),
            )
        )
    _freeze_version(schedule, statement)
    # Due: whose letter went out N days ago (or within the slack after that).
    sent_by = now - timedelta(days=step.delay_days) + SWEEP_SLACK
    # The query joins Contact, so every contact id is set; suppressed people are left out.
    contacts = [
        (int(contact_id or 0), email, False)
        for contact_id, email in db.session.execute(recipients_query(step, sent_by=sent_by))
    ]
    rows = new_delivery_rows(campaign, contacts, message_id_domain(campaign.from_address))
    for row in rows:
        row["step"] = step.position
    # In bulk, as the launch writes its rows (COPY on PostgreSQL; decision 0078).
    insert_deliveries(rows)
    schedule.last_fired_at = now
    schedule.next_run_at = _next_sweep(campaign, step, now)
    if rows and campaign.status == CampaignStatus.FINISHED:
        campaign.status = CampaignStatus.SENDING.value
        campaign.finished_at = None
    db.session.flush()
    if rows and campaign.status == CampaignStatus.SENDING:
        enqueue_send_jobs(campaign.id, len(rows))
    schedule_steps(campaign)
    detail: Text = lazy_ngettext(
        "follow-up %(position)d: %(num)d letter queued",
        "follow-up %(position)d: %(num)d letters queued",
        len(rows),
        position=step.position,
    )
    if rows and campaign.status == CampaignStatus.PAUSED:
        detail = _l("%(detail)s (the campaign is paused: they go when it resumes)", detail=detail)
    if schedule.next_run_at is not None:
        detail = lazy_ngettext(
            "%(detail)s; the others as their letters reach %(num)d day",
            "%(detail)s; the others as their letters reach %(num)d days",
            step.delay_days,
            detail=detail,
        )
    return detail, campaign.id


_NOT_GONE_YET = (
    DeliveryStatus.QUEUED.value,
    DeliveryStatus.DEFERRED.value,
    DeliveryStatus.SENDING.value,
    DeliveryStatus.IN_DOUBT.value,
)


def _next_sweep(campaign: Campaign, step: CampaignStep, now: datetime) -> datetime | None:
    """When the next recipient of this step comes due; None when nobody can any more.

    Candidates: the oldest letter before it that went out less than N days ago (due N days
    after it went); letters still waiting to go (at the earliest N days from now); and, for
    step 2 onwards, recipients the previous step has yet to write (N days after its next sweep).
    """
    delay = timedelta(days=step.delay_days)
    sent_by = now - delay + SWEEP_SLACK  # what this sweep took (see fire_follow_up)
    previous = and_(Delivery.campaign_id == campaign.id, Delivery.step == step.position - 1)
    candidates: list[datetime] = []
    oldest_recent = db.session.scalar(
        select(func.min(Delivery.sent_at)).where(previous, Delivery.sent_at > sent_by)
    )
    if oldest_recent is not None:
        candidates.append(oldest_recent + delay - SWEEP_SLACK)
    if campaign.status != CampaignStatus.CANCELLED and db.session.scalar(
        select(exists().where(previous, Delivery.status.in_(_NOT_GONE_YET)))
    ):
        candidates.append(now + delay)
    if step.position > 1:
        before = db.session.scalar(
            select(Schedule.next_run_at)
            .join(CampaignStep, CampaignStep.id == Schedule.step_id)
            .where(
                Schedule.kind == ScheduleKind.FOLLOW_UP.value,
                CampaignStep.campaign_id == campaign.id,
                CampaignStep.position == step.position - 1,
            )
        )
        if before is not None:
            # Its next rows go out no sooner than its sweep, and not before now.
            candidates.append(max(before, now) + delay)
    return min(candidates) if candidates else None


# --- threading, for the senders --------------------------------------------------------------


def step_versions(campaign_id: int) -> dict[int, int | None]:
    """Step position -> the statement version its letters use (frozen at fire, else latest)."""
    found: dict[int, int | None] = {}
    for position, statement_id, rule in db.session.execute(
        select(CampaignStep.position, CampaignStep.statement_id, Schedule.rule)
        .outerjoin(
            Schedule,
            and_(
                Schedule.step_id == CampaignStep.id, Schedule.kind == ScheduleKind.FOLLOW_UP.value
            ),
        )
        .where(CampaignStep.campaign_id == campaign_id)
    ):
        frozen = (rule or {}).get(FROZEN_VERSION_KEY)
        if frozen is None and statement_id is not None:
            frozen = db.session.scalar(
                select(StatementVersion.id)
                .where(StatementVersion.statement_id == statement_id)
                .order_by(StatementVersion.number.desc())
                .limit(1)
            )
        found[position] = frozen
    return found


def thread_headers(earlier_ids: list[str]) -> dict[str, str]:
    """In-Reply-To (the first letter) and References (every earlier letter, oldest first)."""
    if not earlier_ids:
        return {}
    return {"In-Reply-To": earlier_ids[0], "References": " ".join(earlier_ids)}


# --- the tick (campaign/scheduling/registry.py lists it) -------------------------------------


def tick_follow_up(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[Text, int | None]:
    """fire_follow_up for the tick: a step that cannot go is a failed fire, in the step's words."""
    try:
        return fire_follow_up(schedule, due_at, now)
    except FollowUpError as error:
        raise ActionFailed(error.message, schedule.campaign_id) from None


def follow_up_source(
    version: StatementVersion, step: CampaignStep, first: LetterSource
) -> LetterSource:
    """The step's letters as a LetterSource: its statement's text, the subject and the
    signatures the step asks for (`first` is the campaign's frozen version)."""
    snapshot = dict(version.snapshot or {})
    if step.signatories_from == SignatoriesFrom.NONE:
        snapshot["signatories"] = []
    elif step.signatories_from != SignatoriesFrom.STEP_STATEMENT:
        # Those who signed the letter sent, not the statement's list as edited since.
        snapshot["signatories"] = list(first.snapshot.get("signatories") or [])
    texts: dict[str, Any] = {}
    for language, entry in (snapshot.get("texts") or {}).items():
        subject = step.subject
        if not subject:
            # The first letter's subject in this language, merged as it was (the ledger's
            # copy, when there is one, is passed per letter: see ledger_subjects).
            matched = match_language(language, first.languages) or next(iter(first.languages), None)
            subject = reply_subject(first.text(matched)[0]) if matched else entry.get("subject", "")
        texts[language] = {**entry, "subject": subject}
    snapshot["texts"] = texts
    return LetterSource(version.statement_id, version.number, snapshot)


def step_sources(campaign_id: int, first: LetterSource) -> dict[int, LetterSource]:
    """Step position -> the LetterSource its letters are made from (steps whose statement
    version still exists)."""
    steps = {
        step.position: step
        for step in db.session.scalars(
            select(CampaignStep).where(CampaignStep.campaign_id == campaign_id)
        )
    }
    found: dict[int, LetterSource] = {}
    for position, version_id in step_versions(campaign_id).items():
        version = db.session.get(StatementVersion, version_id) if version_id else None
        if version is not None and position in steps:
            found[position] = follow_up_source(version, steps[position], first)
    return found


def _stored_subject(blob: bytes | None) -> str:
    """The Subject of a message kept in the ledger (zlib), read from its head only."""
    if not blob:
        return ""
    try:
        head = zlib.decompressobj().decompress(blob, 64 * 1024)
    except zlib.error:
        return ""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return ""
    headers = BytesHeaderParser(policy=default_policy).parsebytes(head[: end + 4])
    return " ".join(str(headers.get("Subject", "")).split())


def ledger_subjects(campaign_id: int, rows: Iterable[Any]) -> dict[int, str]:
    """Delivery id -> "Re: " + the subject the person's first letter carried, as the ledger
    kept it, for follow-up rows (id, contact_id, step) of steps with the default subject."""
    default_steps = set(
        db.session.scalars(
            select(CampaignStep.position).where(
                CampaignStep.campaign_id == campaign_id, CampaignStep.subject == ""
            )
        )
    )
    wanted = [row for row in rows if row.step in default_steps and row.contact_id]
    if not wanted:
        return {}
    subjects = {
        contact_id: _stored_subject(blob)
        for contact_id, blob in db.session.execute(
            select(Delivery.contact_id, Delivery.message_blob).where(
                Delivery.campaign_id == campaign_id,
                Delivery.step == 0,
                Delivery.contact_id.in_({row.contact_id for row in wanted}),
                Delivery.message_blob.is_not(None),
            )
        )
    }
    return {
        row.id: reply_subject(subjects[row.contact_id])
        for row in wanted
        if subjects.get(row.contact_id)
    }

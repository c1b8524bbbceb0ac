"""Demo schedules: the advocacy calendar, a summit with a reminder, a case, a yearly campaign.

Called by `load_demo` after the statements and lists exist, so it runs once with the rest
of the demo (load_demo stops early when the database has contacts). Dates that must lie
ahead (the summit) are drawn from today's date, dates that must lie behind (the case) are
fixed, so `campaign schedules` always has something coming.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import CalendarEvent, Campaign, Case, Statement, User
from campaign.models.calendar import EventKind
from campaign.models.schedule import FollowUpCondition
from campaign.scheduling.schedules import create_yearly
from campaign.services.contacts.lists import find_list
from campaign.services.schedules import advocacy_calendar as calendar
from campaign.services.schedules import cases
from campaign.services.sending import campaigns, followups
from campaign.services.statements import statements

SUMMIT_NAME = "EU\u2013Central Asia summit"
# The summit is "a few weeks" away whenever the demo is loaded, its reminder a week before.
SUMMIT_STARTS_IN = timedelta(days=21)
SUMMIT_REMINDER_DAYS = 7
YEARLY_CAMPAIGN_NAME = "26 June: justice for torture victims"
YEARLY_STATEMENT_TITLE = "Justice for Torture Victims in Central Asia"
YEARLY_AUDIENCE = "UN special procedures"
FOLLOW_UP_DAYS = 14
# A fictional prisoner; the real name is what only admins see, the pseudonym what letters show.
CASE_NAME = "Jamshid Namunov"
CASE_PSEUDONYM = "Prisoner J."
CASE_ARRESTED_ON = date(2019, 3, 14)
CASE_SENTENCED_ON = date(2019, 11, 5)


@dataclass(frozen=True)
class DemoSchedules:
    builtin_days: int
    event_id: int
    case_id: int
    yearly_campaign_id: int | None


def load_demo_schedules(actor: User | None = None) -> DemoSchedules:
    """Create the demo calendar, case and yearly campaign; flushes only."""
    days = calendar.load_builtin_days()
    event = _summit(actor)
    case = _case(actor)
    campaign = _yearly_campaign(case, actor)
    return DemoSchedules(days, int(event.id), int(case.id), campaign.id if campaign else None)


def _summit(actor: User | None) -> CalendarEvent:
    starts_on = date.today() + SUMMIT_STARTS_IN
    return calendar.add_event(
        SUMMIT_NAME,
        starts_on,
        starts_on + timedelta(days=1),
        place="Samarkand, Uzbekistan",
        countries=("KZ", "KG", "TJ", "TM", "UZ"),
        kind=EventKind.SUMMIT.value,
        reminder_days=(SUMMIT_REMINDER_DAYS,),
        notes="Joint letters to EU leaders go out before the reminder day at the latest.",
        created_by=actor,
    )


def _case(actor: User | None) -> Case:
    case = cases.create_case(
        CASE_NAME,
        pseudonym=CASE_PSEUDONYM,
        is_high_risk=True,
        country="UZ",
        status="sentenced",
        summary=(
            "Fictional demo case: a blogger who wrote about forced labour in the cotton "
            "harvest, arrested after a search of his home and sentenced after a closed trial."
        ),
    )
    cases.add_case_date(
        case,
        "arrest",
        CASE_ARRESTED_ON,
        legal_reference="Criminal Procedure Code of Uzbekistan, art. 221 (detention of a suspect)",
        source="Demo source: statement of the family's lawyer (fictional)",
        mark_anniversary=True,
        created_by=actor,
    )
    cases.add_case_date(
        case,
        "sentence",
        CASE_SENTENCED_ON,
        legal_reference=(
            "Criminal Code of Uzbekistan, art. 159 (attack on the constitutional order); "
            "7 years (fictional)"
        ),
        source="Demo source: court verdict as reported by a partner organisation (fictional)",
        created_by=actor,
    )
    return case


def _follow_up_statement(first: Statement) -> Statement:
    """The follow-up letter, signed by the first letter's signatories: read on its own (its
    statement page, `campaign check`) it is a signed letter too."""
    text = resources.files("campaign.demo.data").joinpath("torture_day_follow_up.md")
    parsed = statements.parse_markdown_file(text.read_text("utf-8"))
    follow_up = statements.create_statement(
        parsed.title, language=parsed.language, subject=parsed.subject, body=parsed.body
    )
    signers = [
        {**statements.signatory_as_dict(s), **statements.translation_inputs(s.translations)}
        for s in first.signatories
    ]
    if signers:
        statements.add_signatories(follow_up, signers)
    return follow_up


def _yearly_campaign(case: Case, actor: User | None) -> Campaign | None:
    """Every 26 June at 09:00 Paris time, with a follow-up to those who have not answered."""
    statement = db.session.scalar(
        select(Statement).where(Statement.title == YEARLY_STATEMENT_TITLE).limit(1)
    )
    audience = find_list(YEARLY_AUDIENCE)
    if statement is None or audience is None:
        return None  # the seed statements changed: nothing sensible to schedule
    campaign = campaigns.create_campaign(
        statement,
        name=YEARLY_CAMPAIGN_NAME,
        audience=campaigns.AudienceSpec((f"list:{audience.id}",)),
    )
    cases.link_case(campaign, case)
    create_yearly(campaign, 6, 26, "09:00", "Europe/Paris", actor=actor)
    followups.add_step(
        campaign,
        _follow_up_statement(statement),
        FOLLOW_UP_DAYS,
        FollowUpCondition.NO_REPLY_NO_BOUNCE,
        actor=actor,
    )
    return campaign

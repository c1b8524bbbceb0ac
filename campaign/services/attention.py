"""What needs the signed-in person now: the start page's groups, and the first-run steps.

Each group counts what waits (replies to handle, signatures to moderate, campaigns sending,
paused or with failures, sends and days coming in the next 30 days, imports with rejected
rows) and names up to three of the oldest or most urgent, each with the page where it is
handled. A person sees only the groups whose pages their role opens. The cost is a few
queries per group whatever the data size: counts are grouped in SQL, the three items are
a LIMIT, and the dated entries come from `calendar_items` (one query per kind of row), so
the schedule rules live in one place.

Links are named, not built: an `Item` carries an endpoint and its arguments, and the page
turns them into addresses (services never import the web layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app, g, has_request_context
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.labels import label
from campaign.models import (
    Campaign,
    CampaignStatus,
    Contact,
    ContactImport,
    Delivery,
    DeliveryStatus,
    InboundKind,
    InboundMessage,
    Role,
    Signature,
    SignatureStatus,
    SignOn,
    SmtpAccount,
    Statement,
    User,
)
from campaign.models.contact_import import ImportStatus
from campaign.services.replies.replies import sender_contacts
from campaign.services.schedules import calendar_items as calendar_source
from campaign.services.schedules.advocacy_calendar import format_day
from campaign.services.sending import ledger

SHOWN = 3  # items named in each group
AHEAD_DAYS = 30  # how far ahead the dated groups look
# A finished campaign's failures stay on the start page this long after it finished.
FAILURES_SHOWN_DAYS = 30
# Rejected rows can be downloaded as long as their file is kept (importing.REJECTS_KEPT_DAYS).
REJECTS_SHOWN_DAYS = 7
# Relay host names that mean "this machine": the development sink by default.
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "[::1]"})

SEND_KINDS = ("send", "follow-up")
DAY_KINDS = ("day", "event", "reminder", "anniversary")
PROBLEM_STATUSES = (
    DeliveryStatus.FAILED.value,
    DeliveryStatus.IN_DOUBT.value,
    DeliveryStatus.BOUNCED.value,
)


@dataclass(frozen=True)
class Link:
    """Where something is handled: an endpoint and its arguments (the page builds the URL)."""

    endpoint: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    label: str
    detail: str
    link: Link
    when: str = ""  # a date or a time as people read it, shown before the label


@dataclass(frozen=True)
class Group:
    key: str  # stable identifier (the section's id on the page)
    title: str
    count: int
    items: list[Item]
    link: Link  # the page listing all of them
    link_text: str


def _now() -> datetime:
    return datetime.now(UTC)


def _local_day(instant: datetime) -> date:
    """The day an instant falls on in the organisation's zone, as staff read their diary."""
    return instant.astimezone(calendar_source.display_zone()).date()


def what_needs_attention(user: User, *, today: date | None = None) -> list[Group]:
    """The groups with something waiting that `user` may open, most pressing first."""
    groups: list[Group | None] = []
    if user.may(Role.EDITOR):
        groups.append(_replies_group())
        groups.append(_signatures_group())
    groups.append(_campaigns_group())
    start = today or datetime.now(calendar_source.display_zone()).date()
    groups.extend(_dated_groups(start, user))
    if user.may(Role.EDITOR):
        groups.append(_imports_group())
    return [group for group in groups if group is not None and group.count]


# --- replies ---------------------------------------------------------------------------------


def _replies_group() -> Group | None:
    waiting = (
        InboundMessage.kind == InboundKind.REPLY.value,
        InboundMessage.handled_at.is_(None),
    )
    count = db.session.scalar(select(func.count()).select_from(InboundMessage).where(*waiting))
    if not count:
        return None
    oldest: list[tuple[InboundMessage, Delivery | None]] = [
        (message, delivery)
        for message, delivery in db.session.execute(
            select(InboundMessage, Delivery)
            .outerjoin(Delivery, Delivery.id == InboundMessage.delivery_id)
            .where(*waiting)
            .order_by(InboundMessage.received_at, InboundMessage.id)
            .limit(SHOWN)
        )
    ]
    # The inbox's own rule (a live contact, by the letter or else by the address).
    senders = sender_contacts(oldest)
    items = []
    for message, _delivery in oldest:
        contact = senders.get(message.id)
        if contact is not None:
            who = contact.display_name
            parts = [label(contact.role_type, "role_type"), contact.organisation]
            detail = ", ".join(part for part in parts if part)
        else:
            who, detail = message.from_address or _("unknown sender"), ""
        subject = message.subject.strip() or _("(no subject)")
        items.append(
            Item(
                label=_("%(who)s: %(subject)s", who=who, subject=subject),
                detail=detail,
                link=Link("replies.show", {"message_id": message.id}),
                when=format_day(_local_day(message.received_at), with_year=True),
            )
        )
    return Group(
        key="replies",
        title=_("Replies waiting to be handled"),
        count=int(count),
        items=items,
        link=Link("replies.index", {"kind": InboundKind.REPLY.value, "state": "open"}),
        link_text=_("Open the replies inbox"),
    )


# --- signatures ------------------------------------------------------------------------------


def _signatures_group() -> Group | None:
    waiting = select(
        SignOn.statement_id,
        func.count(Signature.id).label("waiting"),
        func.min(Signature.created_at).label("oldest"),
    ).join(SignOn, SignOn.id == Signature.sign_on_id)
    per_statement = (
        waiting.where(Signature.status == SignatureStatus.CONFIRMED.value)
        .group_by(SignOn.statement_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Statement, per_statement.c.waiting)
        .join(per_statement, per_statement.c.statement_id == Statement.id)
        .order_by(per_statement.c.oldest, Statement.id)
    ).all()
    if not rows:
        return None
    total = sum(int(waiting_count) for _statement, waiting_count in rows)
    items = [
        Item(
            label=statement.title,
            detail=ngettext(
                "%(num)d signature to approve or reject",
                "%(num)d signatures to approve or reject",
                int(waiting_count),
            ),
            link=Link("sign_on_admin.index", {"statement_id": statement.id}),
        )
        for statement, waiting_count in rows[:SHOWN]
    ]
    first = rows[0][0]
    return Group(
        key="signatures",
        title=_("Signatures awaiting moderation"),
        count=total,
        items=items,
        link=Link("sign_on_admin.index", {"statement_id": first.id}),
        link_text=_("Moderate the sign-on page of “%(title)s”", title=first.title),
    )


# --- campaigns -------------------------------------------------------------------------------


def _campaigns_group() -> Group | None:
    recent = _now() - timedelta(days=FAILURES_SHOWN_DAYS)
    active = (CampaignStatus.SENDING.value, CampaignStatus.PAUSED.value)
    problems = (
        select(
            Delivery.campaign_id,
            Delivery.status,
            func.count(Delivery.id).label("n"),
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            # The letter's deliveries, as the campaign page counts them (ledger figures).
            Delivery.step == ledger.LETTER_STEP,
            Delivery.status.in_(PROBLEM_STATUSES),
            (Campaign.status.in_(active))
            | (
                (Campaign.status == CampaignStatus.FINISHED.value)
                & (Campaign.finished_at >= recent)
            ),
        )
        .group_by(Delivery.campaign_id, Delivery.status)
    )
    with_problems = {campaign_id for campaign_id, _status, _n in db.session.execute(problems)}
    query = select(Campaign).where(Campaign.status.in_(active))
    if with_problems:
        query = select(Campaign).where(Campaign.status.in_(active) | Campaign.id.in_(with_problems))
    campaigns = list(db.session.scalars(query))
    if not campaigns:
        return None
    # Sending first, then paused, then finished with failures; the oldest launch first.
    order = {CampaignStatus.SENDING.value: 0, CampaignStatus.PAUSED.value: 1}
    campaigns.sort(key=lambda c: (order.get(c.status, 2), c.launched_at or c.created_at, c.id))
    items = [
        Item(
            label=campaign.name,
            # The figures the campaign page shows (one grouped query each, three at most).
            detail=_campaign_detail(campaign, ledger.campaign_figures(campaign.id)),
            link=Link("campaigns.show", {"campaign_id": campaign.id}),
        )
        for campaign in campaigns[:SHOWN]
    ]
    return Group(
        key="campaigns",
        title=_("Campaigns sending, paused or with failures"),
        count=len(campaigns),
        items=items,
        link=Link("campaigns.index"),
        link_text=_("All campaigns"),
    )


def _campaign_detail(campaign: Campaign, figures: ledger.Figures) -> str:
    parts = [label(campaign.status, "campaign_status")]
    failed, in_doubt, bounced = figures.failed, figures.in_doubt, figures.bounced
    if failed:
        parts.append(_("%(num)d failed", num=failed))
    if in_doubt:
        parts.append(ngettext("%(num)d in doubt", "%(num)d in doubt", in_doubt))
    if bounced:
        parts.append(ngettext("%(num)d bounced", "%(num)d bounced", bounced))
    return ", ".join(parts)


# --- sends and days coming -------------------------------------------------------------------


def _dated_groups(start: date, viewer: User) -> list[Group | None]:
    end = start + timedelta(days=AHEAD_DAYS)
    already = set(_revealed())
    entries = calendar_source.calendar_items(start, end, viewer)
    sends = [entry for entry in entries if entry.kind in SEND_KINDS]
    days = [entry for entry in entries if entry.kind in DAY_KINDS]
    # calendar_items names every high-risk person of the 30 days for an admin; the page
    # shows three items a group, so only the people in those are audited as revealed.
    shown = {entry.case_id for entry in sends[:SHOWN] + days[:SHOWN]}
    revealed = _revealed()
    for case_id in [case_id for case_id in revealed if case_id not in already]:
        if case_id not in shown:
            del revealed[case_id]
    month = start.strftime("%Y-%m")
    return [
        _dated_group(
            "sends",
            _("Sends and follow-ups in the next 30 days"),
            sends,
            Link("calendar.index", {"view": "list"}),
        ),
        _dated_group(
            "days",
            _("Calendar days and anniversaries in the next 30 days"),
            days,
            Link("calendar.index", {"month": month}),
        ),
    ]


def _revealed() -> dict[int, Any]:
    """The real names given out so far in this request (cases.display_name notes them)."""
    if not has_request_context():
        return {}
    revealed: dict[int, Any] = g.setdefault("revealed_cases", {})
    return revealed


def _dated_group(key: str, title: str, entries: list[Any], link: Link) -> Group | None:
    if not entries:
        return None
    items = [
        Item(
            label=entry.label,
            detail=str(calendar_source.KIND_WORDS[entry.kind]),
            link=_entry_link(entry),
            when=" ".join(part for part in (format_day(entry.on), entry.time) if part),
        )
        for entry in entries[:SHOWN]
    ]
    return Group(
        key=key,
        title=title,
        count=len(entries),
        items=items,
        link=link,
        link_text=_("Open the calendar"),
    )


def _entry_link(entry: calendar_source.Item) -> Link:
    if entry.campaign_id is not None:
        return Link("schedules.show", {"campaign_id": entry.campaign_id})
    if entry.case_id is not None:
        return Link("cases.show", {"case_id": entry.case_id})
    if entry.event_id is not None:
        return Link("calendar.show_event", {"event_id": entry.event_id})
    return Link("calendar.index", {"month": entry.on.strftime("%Y-%m")})


# --- imports ---------------------------------------------------------------------------------


def _imports_group() -> Group | None:
    since = _now() - timedelta(days=REJECTS_SHOWN_DAYS)
    with_rejects = (
        ContactImport.status == ImportStatus.FINISHED.value,
        ContactImport.rejected_count > 0,
        ContactImport.rejects_path != "",
        ContactImport.finished_at >= since,
    )
    count = db.session.scalar(select(func.count()).select_from(ContactImport).where(*with_rejects))
    if not count:
        return None
    latest = db.session.scalars(
        select(ContactImport)
        .where(*with_rejects)
        .order_by(ContactImport.finished_at.desc(), ContactImport.id.desc())
        .limit(SHOWN)
    )
    items = [
        Item(
            label=record.original_filename,
            detail=ngettext("%(num)d row rejected", "%(num)d rows rejected", record.rejected_count),
            link=Link("imports.show", {"import_id": record.id}),
            when=format_day(_local_day(record.finished_at), with_year=True)
            if record.finished_at
            else "",
        )
        for record in latest
    ]
    return Group(
        key="imports",
        title=_("Imports with rejected rows"),
        count=int(count),
        items=items,
        link=items[0].link,
        link_text=_("See the latest import"),
    )


# --- first run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupStep:
    key: str
    title: str
    is_done: bool
    link: Link


def setup_steps() -> list[SetupStep]:
    """The three steps a new installation needs before its first campaign, each ticked when
    done: an SMTP account, contacts, a statement (three small queries)."""
    has_account = (
        db.session.scalar(select(SmtpAccount.id).limit(1)) is not None or _has_default_relay()
    )
    has_contacts = (
        db.session.scalar(select(Contact.id).where(Contact.deleted_at.is_(None)).limit(1))
        is not None
    )
    has_statement = db.session.scalar(select(Statement.id).limit(1)) is not None
    return [
        SetupStep("smtp", _("Add an SMTP account"), has_account, Link("smtp_accounts.new")),
        SetupStep("contacts", _("Import your contacts"), has_contacts, Link("imports.new")),
        SetupStep(
            "statement", _("Write a first statement"), has_statement, Link("statements.create")
        ),
    ]


def _has_default_relay() -> bool:
    """The settings name a relay on another machine (CAMPAIGN_MAIL_SERVER): mail goes out
    without an account on the SMTP page. A relay on this machine is taken for the
    development sink every installation starts with (decision 0045)."""
    return str(current_app.config["MAIL_SERVER"]).strip().lower() not in LOCAL_HOSTS


def steps_to_do(steps: list[SetupStep]) -> list[SetupStep]:
    return [step for step in steps if not step.is_done]


def needs_setup(steps: list[SetupStep]) -> bool:
    return not all(step.is_done for step in steps)

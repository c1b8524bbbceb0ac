"""A campaign's results: the funnel, replies and bounces over time, non-responders, CSV export.

Every figure is an aggregate query over the ledger (`deliveries`) and the inbound mail
matched to it, so the page costs a handful of queries whatever the campaign's size.
Only the letter itself (step 0) is counted: follow-ups (issue 6) go to the same people,
and counting them again would inflate "sent".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from flask_babel import gettext as _
from sqlalchemy import Select, and_, case, exists, func, select

from campaign.extensions import db
from campaign.models import (
    BounceKind,
    Campaign,
    Contact,
    Delivery,
    DeliveryStatus,
    InboundKind,
    InboundMessage,
    utcnow,
)
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.exporting import write_csv
from campaign.services.paging import Page, clamp_page, offset_of
from campaign.services.sending.ledger import campaign_figures
from campaign.tracking.stats import TrackingCounts, tracking_counts

log = logging.getLogger(__name__)

LETTER_STEP = 0
# A campaign younger than this gets its chart per hour: per day it would be one or two bars.
HOURLY_UNTIL = timedelta(days=3)
# A chart of more days than this ends at the last event instead of today.
MAX_DAYS = 92
NON_RESPONDERS_PER_PAGE = 25
# Rows fetched per round trip while writing the CSV; memory stays flat.
EXPORT_BATCH = 1000
BASE_COLUMNS = (
    "name",
    "email",
    "language",
    "status",
    "sent_at",
    "replied_at",
    "auto_replied",
    "bounce",
)
TRACKING_COLUMNS = ("opened_at", "clicked_at")


# --- the funnel ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStage:
    key: str
    label: str
    count: int
    # Of the letters handed to a mail server; 0 when none was.
    percent: float


@dataclass(frozen=True)
class Funnel:
    attempted: int  # letters handed to a mail server: the base of the percentages
    stages: list[FunnelStage]
    is_open_tracking: bool
    is_click_tracking: bool

    def count(self, key: str) -> int:
        return next(stage.count for stage in self.stages if stage.key == key)


def _letters(campaign_id: int) -> Any:
    return and_(Delivery.campaign_id == campaign_id, Delivery.step == LETTER_STEP)


def _sent() -> Any:
    # A hard bounce turns a sent letter's status to "bounced" but leaves its sent_at.
    return Delivery.sent_at.is_not(None)


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _inbound_per_delivery(campaign_id: int) -> Any:
    """Per delivery of the letter: whether it got an auto-reply, and its worst bounce (2 hard)."""
    # An unconfirmed bounce (it names the address but quotes none of our letters) may be
    # forged: it is shown in the inbox for a person to check, and not counted here.
    is_bounce = and_(InboundMessage.kind == InboundKind.BOUNCE.value, ~InboundMessage.is_weak_match)
    return (
        select(
            InboundMessage.delivery_id.label("delivery_id"),
            func.max(case((InboundMessage.kind == InboundKind.AUTO_REPLY.value, 1), else_=0)).label(
                "auto_replied"
            ),
            func.max(
                case(
                    (and_(is_bounce, InboundMessage.bounce_kind == BounceKind.HARD.value), 2),
                    (is_bounce, 1),
                    else_=0,
                )
            ).label("bounce"),
        )
        .join(Delivery, Delivery.id == InboundMessage.delivery_id)
        .where(_letters(campaign_id))
        .group_by(InboundMessage.delivery_id)
        .subquery()
    )


def _hard_bounced(summary: Any) -> Any:
    # The ledger's status is the truth for hard bounces; the inbound row says so too when the
    # bounce was read from a report rather than refused during the SMTP conversation.
    return (Delivery.status == DeliveryStatus.BOUNCED.value) | (
        func.coalesce(summary.c.bounce, 0) == 2
    )


def _soft_bounced(summary: Any) -> Any:
    return ~_hard_bounced(summary) & (func.coalesce(summary.c.bounce, 0) == 1)


def _percent(count: int, sent: int) -> float:
    return round(100.0 * count / sent, 1) if sent else 0.0


def funnel(campaign_id: int) -> Funnel:
    """Sent, delivered, bounced (hard, soft), failed, in doubt, replied, auto-replied, opened
    and clicked; percentages of the letters handed to a mail server (decision 0046)."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(f"no campaign {campaign_id}")
    figures = campaign_figures(campaign_id)
    summary = _inbound_per_delivery(campaign_id)
    row = db.session.execute(
        select(
            _count_if(_soft_bounced(summary) & (Delivery.status == DeliveryStatus.SENT.value)),
            _count_if(Delivery.replied_at.is_not(None)),
            _count_if(func.coalesce(summary.c.auto_replied, 0) == 1),
            _count_if(Delivery.opened_at.is_not(None)),
            _count_if(Delivery.clicked_at.is_not(None)),
        )
        .select_from(Delivery)
        .outerjoin(summary, summary.c.delivery_id == Delivery.id)
        .where(_letters(campaign_id), _sent())
    ).one()
    soft, replied, auto, opened, clicked = (int(value or 0) for value in row)
    # The ledger's statuses, as on the campaign page: a bounce is never "sent" (decision 0046).
    sent, hard = figures.sent, figures.bounced
    figures_shown = [
        ("sent", _("Sent"), sent),
        ("delivered", _("Delivered (no bounce reported)"), sent - soft),
        ("bounced_hard", _("Bounced: hard (address refused for good)"), hard),
        ("bounced_soft", _("Bounced: soft (temporary; may still arrive)"), soft),
        ("replied", _("Replied in person"), replied),
        ("auto_replied", _("Auto-replied (out of office; not a reply)"), auto),
    ]
    # Shown only when there are any, after "sent": they are not part of its funnel.
    if figures.failed:
        figures_shown.insert(1, ("failed", _("Failed (refused, not a bounce)"), figures.failed))
    if figures.in_doubt:
        figures_shown.insert(
            1,
            ("in_doubt", _("In doubt (possibly delivered, not counted as sent)"), figures.in_doubt),
        )
    if campaign.is_open_tracking:
        figures_shown.append(("opened", _("Opened (at least; images are often blocked)"), opened))
    if campaign.is_click_tracking:
        figures_shown.append(("clicked", _("Clicked a link"), clicked))
    base = figures.attempted
    stages = [FunnelStage(key, label, n, _percent(n, base)) for key, label, n in figures_shown]
    return Funnel(base, stages, campaign.is_open_tracking, campaign.is_click_tracking)


def tracking(campaign: Campaign) -> TrackingCounts | None:
    """Opens and clicks (totals, unique, per link) when the campaign counted them, else None."""
    if not (campaign.is_open_tracking or campaign.is_click_tracking):
        return None
    return tracking_counts(campaign.id)


# --- over time -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    start: datetime
    replies: int
    auto_replies: int
    bounces: int
    # Running totals since the launch.
    replies_total: int
    auto_replies_total: int
    bounces_total: int


@dataclass(frozen=True)
class Timeline:
    is_hourly: bool
    buckets: list[Bucket]

    @property
    def peak(self) -> int:
        """The largest number of events in one bucket (the chart's scale)."""
        return max((max(b.replies, b.auto_replies, b.bounces) for b in self.buckets), default=0)


def _bucket_key(column: Any, *, hourly: bool) -> Any:
    """The UTC day or hour of `column` as text ('2026-03-01' / '2026-03-01 14')."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(
            func.timezone("UTC", column), "YYYY-MM-DD HH24" if hourly else "YYYY-MM-DD"
        )
    # SQLite stores the UTC datetime as text; strftime reads it.
    return func.strftime("%Y-%m-%d %H" if hourly else "%Y-%m-%d", column)


def _parse_key(key: str, *, hourly: bool) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d %H" if hourly else "%Y-%m-%d").replace(tzinfo=UTC)


def _counts_per_bucket(query: Select[Any], column: Any, *, hourly: bool) -> dict[str, int]:
    timed = query.subquery()
    key = _bucket_key(timed.c[column], hourly=hourly)
    return {
        str(k): int(n)
        for k, n in db.session.execute(select(key, func.count()).select_from(timed).group_by(key))
    }


def _first_inbound(campaign_id: int, condition: Any) -> Select[Any]:
    """The first matching inbound message per delivery of the letter (one event each)."""
    return (
        select(func.min(InboundMessage.received_at).label("at"))
        .join(Delivery, Delivery.id == InboundMessage.delivery_id)
        .where(_letters(campaign_id), condition)
        .group_by(InboundMessage.delivery_id)
    )


def timeline(campaign_id: int, *, now: datetime | None = None) -> Timeline:
    """Replies, auto-replies and bounces per day (per hour in the first 3 days) since launch."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(f"no campaign {campaign_id}")
    if campaign.launched_at is None:
        return Timeline(False, [])
    now = now or utcnow()
    launched = campaign.launched_at
    hourly = now - launched < HOURLY_UNTIL
    # Each recipient counts once per kind, on the day of their first such message, so the
    # running totals end at the funnel's figures.
    replies = _counts_per_bucket(
        select(Delivery.replied_at.label("at")).where(
            _letters(campaign_id), Delivery.replied_at.is_not(None)
        ),
        "at",
        hourly=hourly,
    )
    autos = _counts_per_bucket(
        _first_inbound(campaign_id, InboundMessage.kind == InboundKind.AUTO_REPLY.value),
        "at",
        hourly=hourly,
    )
    bounces = _counts_per_bucket(
        _first_inbound(campaign_id, InboundMessage.kind == InboundKind.BOUNCE.value),
        "at",
        hourly=hourly,
    )
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    start = (
        launched.replace(minute=0, second=0, microsecond=0)
        if hourly
        else launched.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    # A message dated before the launch (a sender's wrong clock) counts on the first bar.
    per_bucket: dict[datetime, list[int]] = {}
    for index, per_key in enumerate((replies, autos, bounces)):
        for key, count in per_key.items():
            at = max(start, _parse_key(key, hourly=hourly))
            per_bucket.setdefault(at, [0, 0, 0])[index] += count
    last_event = max(per_bucket, default=start)
    end = max(now, last_event)
    if not hourly and (end - start).days >= MAX_DAYS:
        # A letter sent months ago: the days after its last answer would be empty bars.
        end = max(last_event, start + timedelta(days=MAX_DAYS - 1))
    buckets: list[Bucket] = []
    totals = [0, 0, 0]
    at = start
    while at <= end:
        counts = per_bucket.get(at, [0, 0, 0])
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
        buckets.append(Bucket(at, *counts, *totals))
        at += step
    return Timeline(hourly, buckets)


# --- who has not answered --------------------------------------------------------------------


def _auto_replied_clause() -> Any:
    return exists().where(
        InboundMessage.delivery_id == Delivery.id,
        InboundMessage.kind == InboundKind.AUTO_REPLY.value,
    )


def _hard_bounce_reported() -> Any:
    return exists().where(
        InboundMessage.delivery_id == Delivery.id,
        InboundMessage.kind == InboundKind.BOUNCE.value,
        InboundMessage.bounce_kind == BounceKind.HARD.value,
    )


def non_responder_ids_query(campaign_id: int) -> Select[Any]:
    """Ids of the letter's deliveries that were sent, not answered in person, not hard-bounced.

    An out-of-office is not an answer: its recipient stays on the list (and gets follow-ups).
    """
    return select(Delivery.id).where(
        _letters(campaign_id),
        _sent(),
        Delivery.replied_at.is_(None),
        Delivery.status != DeliveryStatus.BOUNCED.value,
        ~_hard_bounce_reported(),
    )


@dataclass(frozen=True)
class NonResponder:
    delivery_id: int
    contact_id: int | None
    name: str
    email: str
    role: str
    organisation: str
    sent_at: datetime | None
    has_auto_replied: bool


class NonResponderPage(Page[NonResponder]):
    """One page of the recipients who have not replied (`total`: on every page)."""


def _name(given: str | None, family: str | None, organisation: str | None) -> str:
    return " ".join(p for p in (given, family) if p) or organisation or ""


def non_responders(
    campaign_id: int, *, page: int = 1, per_page: int = NON_RESPONDERS_PER_PAGE
) -> NonResponderPage:
    """One page of the recipients who have not replied, by name."""
    ids = non_responder_ids_query(campaign_id)
    total = db.session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    page = clamp_page(page, total, per_page)
    query = (
        select(
            Delivery.id,
            Delivery.contact_id,
            Contact.given_name,
            Contact.family_name,
            Contact.organisation,
            Contact.position_title,
            Delivery.email,
            Delivery.sent_at,
            _auto_replied_clause(),
        )
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id.in_(ids))
        .order_by(Contact.family_name, Contact.given_name, Delivery.id)
        .limit(per_page)
        .offset(offset_of(page, per_page))
    )
    rows = [
        NonResponder(
            delivery_id=delivery_id,
            contact_id=contact_id,
            name=_name(given, family, organisation),
            email=email,
            role=title or "",
            organisation=organisation or "",
            sent_at=sent_at,
            has_auto_replied=bool(auto),
        )
        for (
            delivery_id,
            contact_id,
            given,
            family,
            organisation,
            title,
            email,
            sent_at,
            auto,
        ) in db.session.execute(query)
    ]
    return NonResponderPage(rows, page, per_page, total)


# --- CSV -------------------------------------------------------------------------------------


def export_columns(campaign: Campaign) -> tuple[str, ...]:
    """The CSV's header: opens and clicks only when the campaign tracked them."""
    tracked = (("opened_at",) if campaign.is_open_tracking else ()) + (
        ("clicked_at",) if campaign.is_click_tracking else ()
    )
    return BASE_COLUMNS + tracked


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def export_rows(campaign: Campaign, *, only_non_responders: bool = False) -> Iterator[list[str]]:
    """One row of text cells per recipient of the letter (export_columns' order), by name."""
    campaign_id = campaign.id
    columns = export_columns(campaign)
    summary = _inbound_per_delivery(campaign_id)
    bounce = case(
        (_hard_bounced(summary), "hard"),
        (_soft_bounced(summary), "soft"),
        else_="",
    )
    query = (
        select(
            Contact.given_name,
            Contact.family_name,
            Contact.organisation,
            Delivery.email,
            Delivery.language,
            Delivery.status,
            Delivery.sent_at,
            Delivery.replied_at,
            func.coalesce(summary.c.auto_replied, 0),
            bounce,
            Delivery.opened_at,
            Delivery.clicked_at,
        )
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .outerjoin(summary, summary.c.delivery_id == Delivery.id)
        .where(_letters(campaign_id))
        .order_by(Contact.family_name, Contact.given_name, Delivery.id)
    )
    if only_non_responders:
        query = query.where(Delivery.id.in_(non_responder_ids_query(campaign_id)))
    result = db.session.execute(query.execution_options(yield_per=EXPORT_BATCH))
    for (
        given,
        family,
        org,
        email,
        language,
        status,
        sent,
        replied,
        auto,
        kind,
        opened,
        clicked,
    ) in result:
        values = {
            "name": _name(given, family, org),
            "email": email,
            "language": language or "",
            "status": status,
            "sent_at": _iso(sent),
            "replied_at": _iso(replied),
            "auto_replied": "yes" if auto else "no",
            "bounce": kind or "",
            "opened_at": _iso(opened),
            "clicked_at": _iso(clicked),
        }
        yield [values[column] for column in columns]


def export_csv(
    campaign: Campaign, destination: BinaryIO, *, only_non_responders: bool = False
) -> int:
    """Write the recipients' outcomes (or only the non-responders') as CSV; audit; return rows.

    Names and addresses come from outside (imports, the contact form): write_csv gives a
    cell a spreadsheet would run as a formula an apostrophe.
    """
    count = write_csv(
        export_columns(campaign),
        export_rows(campaign, only_non_responders=only_non_responders),
        destination,
    )
    detail: dict[str, Any] = {
        "rows": count,
        "only": "non_responders" if only_non_responders else "all",
    }
    if not only_non_responders:
        # One row per letter: the rows are the figures' total, and the audit log keeps the
        # figures the export was made against (the page's, the dashboard's, the CLI's).
        figures = campaign_figures(campaign.id)
        if count != figures.total:
            log.warning(
                "campaign %s: the export wrote %d rows for %d letters",
                campaign.id,
                count,
                figures.total,
            )
        detail["figures"] = figures.as_dict()
    record_event("campaign.export", target_type="campaign", target_id=campaign.id, detail=detail)
    return count

"""Reading the delivery ledger for staff: progress figures, filtered pages and evidence."""

from __future__ import annotations

import email
import email.policy
import hashlib
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select

from campaign.devmail import header_items, part_text
from campaign.extensions import db
from campaign.labels import label
from campaign.models import Campaign, CampaignStatus, Contact, Delivery, DeliveryStatus
from campaign.scheduling.stored_text import read
from campaign.services.paging import Page, clamp_page, offset_of
from campaign.services.sending.campaigns import is_open

# The letter itself; follow-ups (steps 1, 2 ...) go to the same people and are counted on
# their own (decision 0046): counting them in the letter's figures would inflate "sent".
LETTER_STEP = 0

# The current rate is measured over this window: long enough to smooth a batch's burst,
# short enough to show a pause or a throttle within half a minute.
RATE_WINDOW_SECONDS = 30
PER_PAGE = 50

ENDED = (CampaignStatus.FINISHED, CampaignStatus.CANCELLED)


@dataclass(frozen=True)
class Progress:
    """Where a campaign's sending stands, as the progress view shows it."""

    status: str
    status_reason: str
    counts: dict[str, int]
    total: int
    sent: int
    deferred: int
    failed: int  # refused or given up, never accepted (bounces apart)
    bounced: int
    suppressed: int
    in_doubt: int
    cancelled: int
    queued: int  # not tried yet, or being tried now
    remaining: int
    sent_recently: int  # in the last `window_seconds`
    # RATE_WINDOW_SECONDS, or less when the campaign was launched more recently than that.
    window_seconds: float
    eta_seconds: int | None

    @property
    def processed(self) -> int:
        return self.total - self.remaining

    @property
    def percent(self) -> int:
        return math.floor(100 * self.processed / self.total) if self.total else 100

    @property
    def rate_per_second(self) -> float:
        return self.sent_recently / self.window_seconds

    @property
    def rate_per_minute(self) -> float:
        return self.rate_per_second * 60

    @property
    def is_ended(self) -> bool:
        return self.status in {s.value for s in ENDED}

    def to_json(self) -> dict[str, Any]:
        """The figures for the progress view; the words in the interface language."""
        return {
            "status": self.status,
            "status_label": label(self.status, "campaign_status"),
            "status_reason": read(self.status_reason),
            "is_ended": self.is_ended,
            "counts": self.counts,
            "total": self.total,
            "processed": self.processed,
            "percent": self.percent,
            "sent": self.sent,
            "deferred": self.deferred,
            "failed": self.failed,
            "bounced": self.bounced,
            "suppressed": self.suppressed,
            "in_doubt": self.in_doubt,
            "cancelled": self.cancelled,
            "queued": self.queued,
            "remaining": self.remaining,
            "rate_per_second": round(self.rate_per_second, 2),
            "rate_per_minute": round(self.rate_per_minute, 1),
            "eta_seconds": self.eta_seconds,
            "eta": format_duration(self.eta_seconds),
        }


@dataclass(frozen=True)
class Figures:
    """How a campaign's letter went, in buckets that never overlap and add up to `total`.

    The one count of deliveries that the campaign page, its dashboard, `campaign status`
    and the CSV export all show (decision 0046): each bucket is a set of ledger statuses.
    "Sent" is a letter the mail server accepted and that has not bounced since; a bounce
    (refused during the conversation or reported later) is "bounced", never "sent" nor
    "failed"; a letter whose outcome nobody knows is "in doubt", never "sent".
    """

    counts: dict[str, int]  # per ledger status, every status present

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _of(self, *statuses: DeliveryStatus) -> int:
        return sum(self.counts[s.value] for s in statuses)

    @property
    def sent(self) -> int:
        return self._of(DeliveryStatus.SENT)

    @property
    def bounced(self) -> int:
        return self._of(DeliveryStatus.BOUNCED)

    @property
    def failed(self) -> int:
        return self._of(DeliveryStatus.FAILED)

    @property
    def in_doubt(self) -> int:
        return self._of(DeliveryStatus.IN_DOUBT)

    @property
    def suppressed(self) -> int:
        return self._of(DeliveryStatus.SUPPRESSED)

    @property
    def cancelled(self) -> int:
        return self._of(DeliveryStatus.CANCELLED)

    @property
    def deferred(self) -> int:
        return self._of(DeliveryStatus.DEFERRED)

    @property
    def queued(self) -> int:
        """Not tried yet, or being tried now."""
        return self._of(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)

    @property
    def attempted(self) -> int:
        """Letters handed to a mail server at least once: the base of the rates."""
        return self.sent + self.bounced + self.failed + self.in_doubt

    def as_dict(self) -> dict[str, int]:
        """The buckets by name, in the order every surface lists them."""
        return {
            "sent": self.sent,
            "bounced": self.bounced,
            "failed": self.failed,
            "in_doubt": self.in_doubt,
            "suppressed": self.suppressed,
            "cancelled": self.cancelled,
            "deferred": self.deferred,
            "queued": self.queued,
            "total": self.total,
        }


def figures_of(campaign_ids: Iterable[int]) -> dict[int, Figures]:
    """The figures of each campaign (every id present, zeros when it has no letters yet)."""
    ids = list(dict.fromkeys(campaign_ids))
    found = {i: dict.fromkeys((s.value for s in DeliveryStatus), 0) for i in ids}
    if ids:
        rows = db.session.execute(
            select(Delivery.campaign_id, Delivery.status, func.count())
            .where(Delivery.campaign_id.in_(ids), Delivery.step == LETTER_STEP)
            .group_by(Delivery.campaign_id, Delivery.status)
        )
        for campaign_id, status, count in rows:
            found[campaign_id][status] = int(count)
    return {i: Figures(counts) for i, counts in found.items()}


def campaign_figures(campaign_id: int) -> Figures:
    """Count the campaign's letter (step 0) per ledger status: the figures every page shows."""
    return figures_of([campaign_id])[campaign_id]


def format_duration(seconds: int | None) -> str:
    """Write a duration as "2 h 05 min", "4 min 10 s" or "12 s" (the interface language's
    units); an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds >= 3600:
        return _(
            "%(hours)d h %(minutes)02d min", hours=seconds // 3600, minutes=seconds % 3600 // 60
        )
    if seconds >= 60:
        return _("%(minutes)d min %(seconds)02d s", minutes=seconds // 60, seconds=seconds % 60)
    return _("%(seconds)d s", seconds=seconds)


def campaign_progress(campaign: Campaign, *, now: datetime | None = None) -> Progress:
    """Figures of a campaign's sending, read from the ledger (never from the queue)."""
    now = now or datetime.now(UTC)
    window = float(RATE_WINDOW_SECONDS)
    if campaign.launched_at is not None:
        # Dividing the first seconds' letters by the whole window would understate the pace.
        window = min(window, max(1.0, (now - campaign.launched_at).total_seconds()))
    figures = campaign_figures(campaign.id)
    counts = figures.counts
    # In-doubt rows that will not be tried again (cancelled, given up) are done: they count
    # as "in doubt (possibly delivered)", not as remaining.
    remaining = int(
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.campaign_id == campaign.id, Delivery.step == LETTER_STEP, is_open())
        )
        or 0
    )
    recent = (
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.campaign_id == campaign.id,
                Delivery.step == LETTER_STEP,
                Delivery.status == DeliveryStatus.SENT.value,
                Delivery.sent_at >= now - timedelta(seconds=window),
            )
        )
        or 0
    )
    eta: int | None = None
    if remaining == 0:
        eta = 0
    elif campaign.status == CampaignStatus.SENDING.value and recent:
        eta = math.ceil(remaining * window / recent)
    return Progress(
        status=campaign.status,
        status_reason=campaign.status_reason or "",
        counts=counts,
        total=figures.total,
        sent=figures.sent,
        deferred=figures.deferred,
        failed=figures.failed,
        bounced=figures.bounced,
        suppressed=figures.suppressed,
        in_doubt=figures.in_doubt,
        cancelled=figures.cancelled,
        queued=figures.queued,
        remaining=remaining,
        sent_recently=recent,
        window_seconds=window,
        eta_seconds=eta,
    )


def sent_and_totals(campaign_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(sent, total) letters per campaign (the figures' "sent"), for the list; absent: none."""
    return {
        campaign_id: (figures.sent, figures.total)
        for campaign_id, figures in figures_of(campaign_ids).items()
        if figures.total
    }


# --- the per-recipient ledger ------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRow:
    delivery: Delivery
    contact: Contact | None


@dataclass(frozen=True)
class LedgerPage(Page[LedgerRow]):
    """One page of a campaign's ledger, filtered by status and an address search."""

    status: str
    search: str


def ledger_conditions(campaign_id: int, *, status: str = "", search: str = "") -> list[Any]:
    """Which rows of the ledger a view shows: the campaign's, of one status (all when
    empty), whose address contains `search` (any case)."""
    conditions: list[Any] = [Delivery.campaign_id == campaign_id]
    if status:
        conditions.append(Delivery.status == status)
    if search.strip():
        conditions.append(
            func.lower(Delivery.email).contains(search.strip().lower(), autoescape=True)
        )
    return conditions


def ledger_page(
    campaign_id: int,
    *,
    status: str = "",
    search: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> LedgerPage:
    """A page of the ledger: rows of one status (all when empty) whose address contains `search`.

    An unknown status is treated as no filter; a page past the end shows the last page.
    """
    if status not in {s.value for s in DeliveryStatus}:
        status = ""
    search = search.strip()
    conditions = ledger_conditions(campaign_id, status=status, search=search)
    matching = db.session.scalar(select(func.count()).select_from(Delivery).where(*conditions)) or 0
    page = clamp_page(page, matching, per_page)
    found = db.session.execute(
        select(Delivery, Contact)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(*conditions)
        .order_by(Delivery.id)
        .offset(offset_of(page, per_page))
        .limit(per_page)
    ).all()
    return LedgerPage(
        items=[LedgerRow(delivery, contact) for delivery, contact in found],
        page=page,
        per_page=per_page,
        total=matching,
        status=status,
        search=search,
    )


# --- evidence ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidencePart:
    filename: str
    content_type: str
    size: int


@dataclass
class Evidence:
    """What the ledger holds of the message one recipient was sent."""

    message_id: str
    sha256: str
    raw: bytes | None  # the exact bytes, when they were kept
    # True: the stored bytes hash to sha256; False: they do not; None: nothing to compare.
    is_verified: bool | None
    missing_reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    attachments: list[EvidencePart] = field(default_factory=list)


def _missing_reason(delivery: Delivery) -> str:
    if delivery.message_sha256:
        return _(
            "Only the SHA-256 of the message was kept, not its bytes: the hash proves what "
            "was sent if the message is rebuilt from the frozen statement version."
        )
    if delivery.status == DeliveryStatus.SUPPRESSED.value:
        return _("Nothing was sent: this recipient is suppressed.")
    if delivery.status == DeliveryStatus.IN_DOUBT.value:
        return _(
            "The mail server may have received this message: the connection was lost before "
            "it answered, so nobody knows. Nothing was kept, since no server confirmed it."
        )
    if delivery.status == DeliveryStatus.CANCELLED.value:
        return _("Nothing was sent: this recipient is cancelled.")
    if delivery.status in (DeliveryStatus.FAILED.value, DeliveryStatus.BOUNCED.value):
        return _("Nothing was accepted by the mail server, so no message is kept.")
    return _("Not sent yet: the message is stored once the mail server accepts it.")


def raw_message(delivery: Delivery) -> bytes | None:
    """The exact bytes sent to this recipient, or None when they were not kept."""
    if not delivery.message_blob:
        return None
    try:
        return zlib.decompress(delivery.message_blob)
    except zlib.error:
        return None


def delivery_evidence(delivery: Delivery) -> Evidence:
    """Decode the stored message of one delivery and check it against its SHA-256."""
    raw = raw_message(delivery)
    evidence = Evidence(
        message_id=delivery.message_id,
        sha256=delivery.message_sha256,
        raw=raw,
        is_verified=None,
    )
    if raw is None:
        evidence.missing_reason = (
            _("The stored message could not be decompressed.")
            if delivery.message_blob
            else _missing_reason(delivery)
        )
        return evidence
    if delivery.message_sha256:
        evidence.is_verified = hashlib.sha256(raw).hexdigest() == delivery.message_sha256.lower()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    evidence.headers = header_items(message)
    text_part = message.get_body(preferencelist=("plain",))
    evidence.text = part_text(text_part) if text_part is not None else ""
    evidence.attachments = [
        EvidencePart(
            filename=part.get_filename() or _("(no name)"),
            content_type=part.get_content_type(),
            size=len(part.get_payload(decode=True) or b""),
        )
        for part in message.iter_attachments()
        if isinstance(part, MIMEPart)
    ]
    return evidence

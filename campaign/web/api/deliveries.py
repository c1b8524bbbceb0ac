"""A campaign's ledger through the API: one row per recipient and step, filterable by status.

The rows the deliveries page lists (services/sending/ledger.ledger_conditions), cursor-paged
in id order: address, status, Message-ID, attempts, the server's last answer, replied and
bounced, when sent. Never a letter's body: the evidence stays on the sender's pages.
"""

from datetime import datetime
from typing import Literal

from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from campaign.models import FINAL, Campaign, Delivery, DeliveryStatus
from campaign.services.sending import ledger
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.conventions import PageQuery, found, page

DeliveryStatusCode = Literal[
    "queued",
    "sending",
    "sent",
    "deferred",
    "failed",
    "bounced",
    "suppressed",
    "in_doubt",
    "cancelled",
]


class DeliveryQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: DeliveryStatusCode | None = Field(None, description="Only rows in this status.")
    q: str | None = Field(None, max_length=320, description="Part of the address, any case.")


class LastAnswer(BaseModel):
    code: int | None = Field(description="The SMTP reply code of the last attempt.")
    text: str = Field(description="The server's words, as it answered.")


class DeliveryOut(BaseModel):
    id: int
    contact_id: int | None
    step: int = Field(description="0: the letter; 1 and up: follow-ups.")
    email: str = Field(description="The address at launch.")
    status: DeliveryStatusCode
    reason: str = Field(description="Why a final status other than sent (hard_bounce, ...).")
    message_id: str = Field(description="Fixed at launch; every retry reuses it.")
    attempts: int
    possible_duplicates: int = Field(description="Retries after an unknown outcome.")
    last_answer: LastAnswer
    language: str
    replied: bool
    replied_at: datetime | None
    bounced: bool
    sent_at: datetime | None
    next_attempt_at: datetime | None = Field(
        description="When a worker tries the row next; null once its status is final "
        "(sent, failed, bounced, suppressed, cancelled)."
    )


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


def _row(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        contact_id=delivery.contact_id,
        step=delivery.step,
        email=delivery.email,
        status=delivery.status,  # type: ignore[arg-type]
        reason=delivery.reason,
        message_id=delivery.message_id,
        attempts=delivery.attempts,
        possible_duplicates=delivery.possible_duplicates,
        last_answer=LastAnswer(code=delivery.last_code, text=delivery.last_reply),
        language=delivery.language,
        replied=delivery.replied_at is not None,
        replied_at=delivery.replied_at,
        bounced=delivery.status == DeliveryStatus.BOUNCED.value,
        sent_at=delivery.sent_at,
        next_attempt_at=None if delivery.status in FINAL else delivery.next_attempt_at,
    )


@bp.get("/campaigns/<int:campaign_id>/deliveries")
@operation(
    "campaigns:read",
    query=DeliveryQuery,
    responses={200: DeliveryList},
    tags=("deliveries",),
    errors=(404,),
)
def list_deliveries(campaign_id: int, query: DeliveryQuery) -> DeliveryList:
    """The campaign's ledger, one row per recipient and step, in id order."""
    campaign = found(Campaign, campaign_id, _("There is no campaign with this id."))
    conditions = ledger.ledger_conditions(
        campaign.id, status=query.status or "", search=query.q or ""
    )
    rows, next_cursor = page(
        select(Delivery).where(*conditions),
        Delivery.id,
        purpose=f"deliveries:{campaign.id}",
        limit=query.limit,
        cursor=query.cursor,
    )
    return DeliveryList(items=[_row(d) for d in rows], next_cursor=next_cursor)

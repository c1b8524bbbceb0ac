"""The suppression list over the API (admins): list, add, remove.

Through campaign.services.contacts.suppressions, as the suppressions page: the same address
rules, the same audit events (with the address masked). Adding an address already on the
list changes nothing and answers 200 with the entry as it is.
"""

from datetime import datetime
from typing import Any, Literal, get_args

from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field

from campaign.models import Role, Suppression, SuppressionReason
from campaign.scheduling import stored_text
from campaign.services.contacts import suppressions as suppression_service
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.conventions import PageQuery, found, idempotent, page
from campaign.web.api.problems import invalid

Reason = Literal["unsubscribed", "hard_bounce", "complaint", "manual", "erased"]
assert set(get_args(Reason)) == {r.value for r in SuppressionReason}
# "erased" entries (an address's keyed hash, email "") are made by an erasure only.
AddedReason = Literal["unsubscribed", "hard_bounce", "complaint", "manual"]


class SuppressionOut(BaseModel):
    id: int
    email: str
    reason: Reason
    note: str
    campaign_id: int | None = Field(description="The campaign whose letter bounced, if any.")
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_cursor: str | None


class SuppressionQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    q: str = Field("", max_length=200, description="Part of an address or a note.")
    reason: Reason | None = None


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    reason: AddedReason = "manual"
    note: str = Field("", max_length=suppression_service.MAX_NOTE)


def _out(entry: Suppression) -> SuppressionOut:
    return SuppressionOut(
        id=entry.id,
        email=entry.email,
        reason=entry.reason,  # type: ignore[arg-type]
        note=stored_text.read(entry.note or ""),
        campaign_id=entry.campaign_id,
        created_at=entry.created_at,
    )


@bp.get("/suppressions")
@operation(
    "suppressions:read",
    role=Role.ADMIN,
    query=SuppressionQuery,
    responses={200: SuppressionPage},
    tags=("suppressions",),
)
def list_suppressions(query: SuppressionQuery) -> SuppressionPage:
    """List the addresses no campaign may write to, in id order."""
    rows, next_cursor = page(
        suppression_service.matching_suppressions(query.q, query.reason or ""),
        Suppression.id,
        purpose="suppressions",
        limit=query.limit,
        cursor=query.cursor,
    )
    return SuppressionPage(items=[_out(row) for row in rows], next_cursor=next_cursor)


@bp.post("/suppressions")
@operation(
    "suppressions:write",
    role=Role.ADMIN,
    json=SuppressionIn,
    responses={201: SuppressionOut, 200: SuppressionOut},
    tags=("suppressions",),
    writes=True,
)
@idempotent
def add_suppression(json: SuppressionIn) -> Any:
    """Put an address on the suppression list (200 with the entry if it is already there)."""
    existing = suppression_service.find_suppression(json.email)
    try:
        entry = suppression_service.suppress_address(json.email, json.reason, note=json.note)
    except suppression_service.SuppressionError as error:
        raise invalid(error.field, str(error)) from None
    body = _out(entry).model_dump(mode="json")
    return body, 200 if existing is not None else 201


@bp.delete("/suppressions/<int:suppression_id>")
@operation(
    "suppressions:write",
    role=Role.ADMIN,
    responses={204: None},
    tags=("suppressions",),
    errors=(404,),
    writes=True,
)
def remove_suppression(suppression_id: int) -> Any:
    """Take an address off the list, so campaigns may write to it again."""
    entry = found(Suppression, suppression_id, _("There is no suppression with this id."))
    suppression_service.remove_suppression(entry)
    return "", 204

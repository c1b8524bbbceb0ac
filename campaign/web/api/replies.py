"""Replies through the API: the inbox's list and filters, a message (its HTML sanitised as
the page shows it, never the original), and triage: handled or open again, assigned.

The same services as the replies pages (campaign.services.replies.replies), the same least
role (editor: replies are private correspondence) and the same audit events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from campaign.extensions import db
from campaign.inbound.sanitise import safe_html
from campaign.models import InboundMessage, Role, User
from campaign.params import MAX_ROW_ID
from campaign.services.replies import replies as reply_service
from campaign.services.replies.replies import InboxFilter, ReplyError
from campaign.web.access import signed_in_user
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.conventions import PageQuery, found, page
from campaign.web.api.problems import ApiProblem, invalid

Kind = Literal["reply", "auto_reply", "bounce", "unmatched"]


class ReplyQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    kind: Kind | None = Field(None, description="Only this kind of mail.")
    state: Literal["open", "handled"] | None = Field(None, description="Open or handled only.")
    campaign_id: int | None = Field(
        None, ge=1, le=MAX_ROW_ID, description="Only mail matched to this campaign's letters."
    )
    assigned_to_id: int | None = Field(
        None, ge=1, le=MAX_ROW_ID, description="Only mail assigned to this user."
    )
    q: str | None = Field(None, max_length=200, description="Words in the sender or subject.")


class ReplySummary(BaseModel):
    id: int
    kind: Kind
    from_address: str
    subject: str
    received_at: datetime
    handled: bool
    handled_at: datetime | None
    handled_by_id: int | None
    assigned_to_id: int | None
    delivery_id: int | None = Field(description="The letter it answers or reports on.")
    campaign_id: int | None
    is_weak_match: bool = Field(description="Matched by sender and subject only.")
    is_unverified: bool = Field(description="The sender's domain failed DMARC.")
    bounce_kind: Literal["hard", "soft"] | None


class ReplyList(BaseModel):
    items: list[ReplySummary]
    next_cursor: str | None


class Attachment(BaseModel):
    filename: str
    content_type: str
    size: int


class Note(BaseModel):
    id: int
    author_id: int | None
    text: str
    created_at: datetime


class ReplyDetail(ReplySummary):
    message_id: str
    in_reply_to: str
    headers: dict[str, str] = Field(description="To, Cc and Date as received, when kept.")
    text: str = Field(description="A plain-text excerpt.")
    html: str = Field(
        description="The first HTML part, sanitised exactly as the replies page shows it "
        "(text formatting and links; remote images replaced). Never the original."
    )
    attachments: list[Attachment]
    problems: list[str]
    match_method: str
    notes: list[Note]


class HandledIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handled: StrictBool = Field(description="true: handled; false: open again.")


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: StrictInt | None = Field(
        ge=1,
        le=MAX_ROW_ID,
        description="An active editor or above; null: nobody. Your own id: GET /me "
        "`user_id`; another user's: the number in their address on the users page.",
    )


def _summary_fields(message: InboundMessage) -> dict[str, Any]:
    delivery = message.delivery
    return {
        "id": message.id,
        "kind": message.kind,
        "from_address": message.from_address,
        "subject": message.subject,
        "received_at": message.received_at,
        "handled": message.handled_at is not None,
        "handled_at": message.handled_at,
        "handled_by_id": message.handled_by_id,
        "assigned_to_id": message.assigned_to_id,
        "delivery_id": message.delivery_id,
        "campaign_id": delivery.campaign_id if delivery is not None else None,
        "is_weak_match": message.is_weak_match,
        "is_unverified": message.is_unverified,
        "bounce_kind": message.bounce_kind or None,
    }


def _detail(message: InboundMessage) -> ReplyDetail:
    return ReplyDetail(
        **_summary_fields(message),
        message_id=message.message_id,
        in_reply_to=message.in_reply_to,
        headers=reply_service.original_headers(message),
        text=message.text,
        html=safe_html(message.html),
        attachments=[
            Attachment(
                filename=str(item.get("filename") or ""),
                content_type=str(item.get("content_type") or ""),
                size=int(str(item.get("size") or 0)),
            )
            for item in message.attachments or []
        ],
        problems=[str(problem) for problem in message.problems or []],
        match_method=message.match_method,
        notes=[
            Note(id=note.id, author_id=note.author_id, text=note.text, created_at=note.created_at)
            for note in message.notes
        ],
    )


def _message(message_id: int) -> InboundMessage:
    return found(InboundMessage, message_id, _("There is no such message."))


@bp.get("/replies")
@operation(
    "replies:read",
    role=Role.EDITOR,
    query=ReplyQuery,
    responses={200: ReplyList},
    tags=("replies",),
)
def list_replies(query: ReplyQuery) -> ReplyList:
    """List received mail (replies, auto-replies, bounces, unmatched).

    The replies page's filters; in the order they were stored (by id), a cursor per page."""
    found = InboxFilter(
        kind=query.kind,
        state=query.state,
        campaign_id=query.campaign_id,
        assigned_to_id=query.assigned_to_id,
        search=query.q,
    )
    rows, next_cursor = page(
        reply_service.matching_messages(found),
        InboundMessage.id,
        purpose="replies",
        limit=query.limit,
        cursor=query.cursor,
    )
    return ReplyList(
        items=[ReplySummary(**_summary_fields(message)) for message in rows],
        next_cursor=next_cursor,
    )


@bp.get("/replies/<int:message_id>")
@operation(
    "replies:read", role=Role.EDITOR, responses={200: ReplyDetail}, tags=("replies",), errors=(404,)
)
def read_reply(message_id: int) -> ReplyDetail:
    """Read one received message: headers, excerpt, sanitised HTML, notes."""
    return _detail(_message(message_id))


@bp.post("/replies/<int:message_id>/handled")
@operation(
    "replies:write",
    role=Role.EDITOR,
    json=HandledIn,
    responses={200: ReplySummary},
    tags=("replies",),
    errors=(404,),
    writes=True,
)
def mark_handled(message_id: int, json: HandledIn) -> ReplySummary:
    """Mark a message handled, or open it again (nothing changes if it already was)."""
    message = _message(message_id)
    reply_service.mark_handled(message, signed_in_user(), json.handled)
    return ReplySummary(**_summary_fields(message))


@bp.post("/replies/<int:message_id>/assign")
@operation(
    "replies:write",
    role=Role.EDITOR,
    json=AssignIn,
    responses={200: ReplySummary},
    tags=("replies",),
    errors=(404,),
    writes=True,
)
def assign_reply(message_id: int, json: AssignIn) -> ReplySummary:
    """Assign a message to a colleague who may triage replies (null: to nobody)."""
    message = _message(message_id)
    assignee = None
    if json.user_id is not None:
        assignee = db.session.get(User, json.user_id)
        if assignee is None:
            raise ApiProblem(
                422,
                _("Not assigned: that user no longer exists."),
                errors=[{"field": "user_id", "message": _("No such user.")}],
            )
    try:
        reply_service.assign(message, signed_in_user(), assignee)
    except ReplyError as error:
        raise invalid("user_id", str(error)) from None
    return ReplySummary(**_summary_fields(message))

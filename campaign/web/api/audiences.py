"""Lists and segments over the API: read, list, create, list membership, counts.

Through campaign.services.contacts.lists and .segments, as the audiences page: the same
name rules, the same segment definition format (and its validation), the same audit
events. Counts are of live contacts (the trash is left out), a segment's counted when read.
"""

import re
from datetime import datetime
from typing import Any

from flask import url_for
from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact, ContactList, Role, Segment
from campaign.params import MAX_ROW_ID
from campaign.services.contacts import lists as list_service
from campaign.services.contacts import segments as segment_service
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.contacts import live_contact
from campaign.web.api.conventions import PageQuery, found, idempotent, page
from campaign.web.api.problems import ApiProblem, invalid

MAX_MEMBERS_PER_CALL = 10_000


class ListOut(BaseModel):
    id: int
    name: str
    description: str
    members: int = Field(description="Live contacts on the list (the trash left out).")
    created_at: datetime


class ListPage(BaseModel):
    items: list[ListOut]
    next_cursor: str | None


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=list_service.MAX_NAME, description="Unique, whatever the case.")
    description: str = Field("", max_length=5000)


class MembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_ids: list[StrictInt] = Field(
        min_length=1,
        max_length=MAX_MEMBERS_PER_CALL,
        description="Contacts to add (current members are left as they are); an id of no "
        "live contact refuses the call with 422 naming `contact_ids.N`.",
    )


class MembersAdded(BaseModel):
    added: int = Field(description="How many of the contacts were not members before.")
    members: int


class ListQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")


class SegmentQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")


class SegmentSummary(BaseModel):
    id: int
    name: str
    description: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SegmentOut(SegmentSummary):
    count: int = Field(description="Live contacts the definition finds now.")


class SegmentPage(BaseModel):
    items: list[SegmentSummary]
    next_cursor: str | None


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=segment_service.MAX_NAME)
    description: str = Field("", max_length=5000)
    definition: dict[str, Any] = Field(
        description=(
            'A condition tree: {"all": [...]}, {"any": [...]}, {"not": {...}} or '
            '{"field": "country", "op": "is", "value": "FR"}. Fields: role_type, country, '
            "language, tag, organisation, risk_level, kind, grammatical_gender (values: the "
            "contact fields' codes, see ContactOut). Operators (`op`): `is`, `is_not`, `in` "
            f"(`value` a list of texts, at most {segment_service.MAX_IN_VALUES}), and `contains` "
            f"(organisation only). At most {segment_service.MAX_DEPTH} levels deep. An error "
            "names its place, e.g. `definition.all.0.op`."
        )
    )


def _list_out(contact_list: ContactList, members: int) -> ListOut:
    return ListOut(
        id=contact_list.id,
        name=contact_list.name,
        description=contact_list.description or "",
        members=members,
        created_at=contact_list.created_at,
    )


def _segment_fields(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "name": segment.name,
        "description": segment.description or "",
        "definition": segment.definition,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


_PATH = re.compile(r"definition(?:\.[a-z_]+|\[\d+\])*")


def _definition_path(message: str) -> str:
    """The place a segment error names ("definition.all[0].op"), in the API's dotted form
    (`definition.all.0.op`); `definition` when it names none."""
    found = _PATH.search(message)
    return re.sub(r"\[(\d+)\]", r".\1", found.group(0)) if found else "definition"


def _get_list(list_id: int) -> ContactList:
    return found(ContactList, list_id, _("There is no list with this id."))


def _get_segment(segment_id: int) -> Segment:
    return found(Segment, segment_id, _("There is no segment with this id."))


@bp.get("/lists")
@operation("contacts:read", query=ListQuery, responses={200: ListPage}, tags=("lists",))
def list_lists(query: ListQuery) -> ListPage:
    """List the contact lists, with their member counts."""
    rows, next_cursor = page(
        select(ContactList),
        ContactList.id,
        purpose="lists",
        limit=query.limit,
        cursor=query.cursor,
    )
    counts = list_service.member_counts()
    return ListPage(
        items=[_list_out(row, counts.get(row.id, 0)) for row in rows], next_cursor=next_cursor
    )


@bp.get("/lists/<int:list_id>")
@operation("contacts:read", responses={200: ListOut}, tags=("lists",), errors=(404,))
def get_list(list_id: int) -> ListOut:
    """Read a list and its member count (its members: GET /contacts?list=ID)."""
    contact_list = _get_list(list_id)
    return _list_out(contact_list, list_service.member_count(contact_list))


@bp.post("/lists")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    json=ListIn,
    responses={201: ListOut},
    tags=("lists",),
    writes=True,
)
@idempotent
def create_list(json: ListIn) -> Any:
    """Create an empty list (its name unique, whatever the case)."""
    try:
        contact_list = list_service.create_list(json.name, json.description)
    except list_service.ListError as error:
        raise invalid("name", str(error)) from None
    body = _list_out(contact_list, 0).model_dump(mode="json")
    return body, 201, {"Location": url_for("api.get_list", list_id=contact_list.id)}


@bp.post("/lists/<int:list_id>/members")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    json=MembersIn,
    responses={200: MembersAdded},
    tags=("lists",),
    errors=(404,),
    writes=True,
)
def add_members(list_id: int, json: MembersIn) -> MembersAdded:
    """Add contacts to a list by id (adding a member again changes nothing).

    Every id must be a live contact's: otherwise nothing is added and the 422 names each
    wrong one (`contact_ids.3`)."""
    contact_list = _get_list(list_id)
    in_range = {i for i in json.contact_ids if 1 <= i <= MAX_ROW_ID}
    live: set[int] = set()
    ordered = sorted(in_range)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        live.update(
            db.session.scalars(
                select(Contact.id).where(Contact.id.in_(chunk), Contact.deleted_at.is_(None))
            )
        )
    unknown = [
        {"field": f"contact_ids.{index}", "message": _("There is no contact with this id.")}
        for index, contact_id in enumerate(json.contact_ids)
        if contact_id not in live
    ]
    if unknown:
        raise ApiProblem(422, _("Some fields are not valid."), errors=unknown[:100])
    added = list_service.add_contacts(contact_list, sorted(live))
    return MembersAdded(added=added, members=list_service.member_count(contact_list))


@bp.delete("/lists/<int:list_id>/members/<int:contact_id>")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    responses={204: None},
    tags=("lists",),
    errors=(404,),
    writes=True,
)
def remove_member(list_id: int, contact_id: int) -> Any:
    """Take a contact off a list; 404 when it is not on it."""
    contact_list = _get_list(list_id)
    contact = live_contact(contact_id)
    if not list_service.remove_contacts(contact_list, [contact.id]):
        raise ApiProblem(404, _("This contact is not on this list."))
    return "", 204


@bp.get("/segments")
@operation("contacts:read", query=SegmentQuery, responses={200: SegmentPage}, tags=("segments",))
def list_segments(query: SegmentQuery) -> SegmentPage:
    """List the saved segments (read one to count the contacts it finds)."""
    rows, next_cursor = page(
        select(Segment), Segment.id, purpose="segments", limit=query.limit, cursor=query.cursor
    )
    return SegmentPage(
        items=[SegmentSummary(**_segment_fields(row)) for row in rows], next_cursor=next_cursor
    )


@bp.get("/segments/<int:segment_id>")
@operation("contacts:read", responses={200: SegmentOut}, tags=("segments",), errors=(404,))
def get_segment(segment_id: int) -> SegmentOut:
    """Read a segment and count the live contacts it finds now (its contacts:
    GET /contacts?segment=ID)."""
    segment = _get_segment(segment_id)
    return SegmentOut(
        **_segment_fields(segment), count=segment_service.count_matching(segment.definition)
    )


@bp.post("/segments")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    json=SegmentIn,
    responses={201: SegmentOut},
    tags=("segments",),
    writes=True,
)
@idempotent
def create_segment(json: SegmentIn) -> Any:
    """Save a segment: a name and a definition, checked as on the segment page."""
    try:
        segment_service.validate_definition(json.definition)
    except segment_service.SegmentError as error:
        raise invalid(_definition_path(str(error)), str(error)) from None
    try:
        segment = segment_service.save_segment(json.name, json.definition, json.description)
    except segment_service.SegmentError as error:
        raise invalid("name", str(error)) from None
    body = SegmentOut(
        **_segment_fields(segment), count=segment_service.count_matching(segment.definition)
    ).model_dump(mode="json")
    return body, 201, {"Location": url_for("api.get_segment", segment_id=segment.id)}

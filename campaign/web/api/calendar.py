"""The advocacy calendar's events and the cases, read only, through the API.

A case is named as letters and most pages name it (models.calendar.letter_name): the
pseudonym of a person at high risk, never the real name, whoever's key asks, an admin's too.
The pages show an admin the real name and audit each showing; a key is a program's
credential that outlives the person's attention, so the API gives it no way to ask.
"""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from campaign.models import CalendarEvent, Case, Role
from campaign.models.calendar import CaseDateKind, CaseStatus, EventKind, letter_name
from campaign.services.schedules import cases as case_service
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.conventions import PageQuery, found, page


class EventQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    kind: EventKind | None = Field(None, description="Only events of this kind.")
    builtin: bool | None = Field(
        None, description="true: the built-in yearly days only; false: the organisation's."
    )


class EventOut(BaseModel):
    id: int
    name: str
    kind: EventKind
    is_builtin: bool = Field(description="A yearly day (month and day, no dates).")
    month: int | None
    day: int | None
    starts_on: date | None
    ends_on: date | None
    place: str
    countries: list[str] = Field(description="ISO 3166 alpha-2 codes.")
    notes: str
    created_at: datetime


class EventList(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class CaseQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    country: str | None = Field(
        None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2 code."
    )
    status: CaseStatus | None = None
    q: str | None = Field(
        None,
        max_length=200,
        description="Words in the name; a high-risk person is found by the pseudonym only.",
    )


class CaseDateOut(BaseModel):
    id: int
    kind: CaseDateKind
    on: date
    legal_reference: str
    source: str
    is_anniversary_marked: bool


class CaseOut(BaseModel):
    id: int
    name: str = Field(
        description="The pseudonym of a person at high risk (never the real name), else the name."
    )
    is_high_risk: bool
    country: str
    status: CaseStatus
    summary: str
    dates: list[CaseDateOut]
    created_at: datetime
    updated_at: datetime


class CaseList(BaseModel):
    items: list[CaseOut]
    next_cursor: str | None


def _event(event: CalendarEvent) -> EventOut:
    return EventOut(
        id=event.id,
        name=event.name,
        kind=EventKind(event.kind),
        is_builtin=event.is_builtin,
        month=event.month,
        day=event.day,
        starts_on=event.starts_on,
        ends_on=event.ends_on,
        place=event.place,
        countries=list(event.countries or []),
        notes=event.notes,
        created_at=event.created_at,
    )


def _case(case: Case) -> CaseOut:
    return CaseOut(
        id=case.id,
        # Never case.name for a high-risk person: the name letters use, for every key.
        name=letter_name(case),
        is_high_risk=case.is_high_risk,
        country=case.country,
        status=CaseStatus(case.status),
        summary=case.summary,
        dates=[
            CaseDateOut(
                id=item.id,
                kind=CaseDateKind(item.kind),
                on=item.on,
                legal_reference=item.legal_reference,
                source=item.source,
                is_anniversary_marked=item.is_anniversary_marked,
            )
            for item in case.dates
        ],
        created_at=case.created_at,
        updated_at=case.updated_at,
    )


@bp.get("/calendar/events")
@operation(
    "calendar:read",
    role=Role.VIEWER,
    query=EventQuery,
    responses={200: EventList},
    tags=("calendar",),
)
def list_events(query: EventQuery) -> EventList:
    """List the calendar's events: built-in yearly days and the organisation's own."""
    selected = select(CalendarEvent)
    if query.kind is not None:
        selected = selected.where(CalendarEvent.kind == query.kind)
    if query.builtin is not None:
        selected = selected.where(CalendarEvent.is_builtin.is_(query.builtin))
    rows, next_cursor = page(
        selected,
        CalendarEvent.id,
        purpose="calendar-events",
        limit=query.limit,
        cursor=query.cursor,
    )
    return EventList(items=[_event(event) for event in rows], next_cursor=next_cursor)


@bp.get("/calendar/events/<int:event_id>")
@operation(
    "calendar:read", role=Role.VIEWER, responses={200: EventOut}, tags=("calendar",), errors=(404,)
)
def read_event(event_id: int) -> EventOut:
    """Read one calendar event."""
    return _event(found(CalendarEvent, event_id, _("There is no such event.")))


@bp.get("/cases")
@operation(
    "calendar:read",
    role=Role.VIEWER,
    query=CaseQuery,
    responses={200: CaseList},
    tags=("calendar",),
)
def list_cases(query: CaseQuery) -> CaseList:
    """List the cases (people the organisation defends), high-risk people by pseudonym."""
    selected = case_service.cases_query(
        # No viewer: the words never match a real name the API never gives out.
        None,
        country=query.country or "",
        status=query.status or "",
        q=query.q or "",
    )
    rows, next_cursor = page(
        selected, Case.id, purpose="cases", limit=query.limit, cursor=query.cursor
    )
    return CaseList(items=[_case(case) for case in rows], next_cursor=next_cursor)


@bp.get("/cases/<int:case_id>")
@operation(
    "calendar:read", role=Role.VIEWER, responses={200: CaseOut}, tags=("calendar",), errors=(404,)
)
def read_case(case_id: int) -> CaseOut:
    """Read one case and its key dates (a high-risk person by pseudonym)."""
    return _case(found(Case, case_id, _("There is no such case.")))

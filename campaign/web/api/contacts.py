"""Contacts over the API: list (the contacts page's filters), read, create, update, delete
(to the trash), and a bulk upsert of up to 10,000 contacts with the import's rules.

Every write goes through campaign.services.contacts (`clean_contact_data` and friends), so
the API refuses what the edit form and the import refuse, with the same messages. Field
values are the stored codes and texts; enumerations (kind, role_type, style,
grammatical_gender, risk_level) are codes, and their labels in the interface language are
accepted on input as on the import.
"""

from collections import Counter
from datetime import date, datetime
from typing import Any, Literal

from flask import url_for
from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.models import (
    Contact,
    ContactKind,
    ContactList,
    GrammaticalGender,
    RiskLevel,
    Role,
    RoleType,
    Segment,
    Style,
)
from campaign.params import MAX_ROW_ID
from campaign.services.contacts import contacts as contact_service
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import CONTACT_FIELDS, FIELD_PARSERS, ContactInputError
from campaign.services.contacts.search import MAX_QUERY, ContactFilters, filtered_query
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.conventions import (
    PageQuery,
    etag_of,
    idempotent,
    page,
    require_if_match,
    with_etag,
)
from campaign.web.api.problems import ApiProblem, FieldError
from campaign.web.api.versions import claim

_TEXT = "Text on one line; at most 500 characters (the stored column may allow fewer)."

# The enumerations' codes: what answers hold and what clients should send.
KindCode = Literal["person", "organisation", "mandate"]
GenderCode = Literal["f", "m", "unknown"]
RoleTypeCode = Literal[
    "head_of_state",
    "head_of_gov",
    "minister",
    "ambassador",
    "official",
    "eu_council_president",
    "eu_high_rep",
    "mep",
    "un_sr",
    "un_wg",
    "journalist",
    "ngo",
    "other",
]
StyleCode = Literal["none", "excellency"]
RiskLevelCode = Literal["public", "low", "elevated", "high"]
# Each field's enumeration, checked against the models' by a test.
ENUMS: dict[str, type[Any]] = {
    "kind": ContactKind,
    "grammatical_gender": GrammaticalGender,
    "role_type": RoleType,
    "style": Style,
    "risk_level": RiskLevel,
}


def _code_field(name: str, default: Any, description: str, *, empty: str) -> Any:
    """An enumeration sent as text: the schema lists its codes (and "" for `empty`); the
    contact rules also take a label in the interface language, as the import does, and
    refuse anything else naming each code with its label."""
    codes = [member.value for member in ENUMS[name]]
    return Field(
        default,
        description=f"{description} One of: {', '.join(codes)}; empty: {empty}.",
        json_schema_extra={"enum": ["", *codes]},
    )


class ContactFields(BaseModel):
    """A contact's fields as sent: each one optional, absent ones keep their value (on
    create: the stored default). Values are checked by the same rules as the edit form."""

    model_config = ConfigDict(extra="forbid")

    kind: str = _code_field("kind", "", "What the contact is.", empty="person")
    given_name: str = Field("", description=_TEXT)
    family_name: str = Field("", description=_TEXT)
    patronymic: str = ""
    given_name_alt: str = Field("", description="The given name in another script.")
    family_name_alt: str = ""
    patronymic_alt: str = ""
    grammatical_gender: str = _code_field(
        "grammatical_gender",
        "",
        "For salutations and Russian declension: f (feminine), m (masculine).",
        empty="unknown",
    )
    role_type: str = _code_field(
        "role_type", "", "The role that chooses the salutation.", empty="other"
    )
    style: str = _code_field("style", "", "Excellency or not.", empty="none")
    honorific: str = ""
    position_title: str = ""
    organisation: str = ""
    country: str = Field("", description="Two letters (ISO 3166-1), or EU / UN.")
    location_country: str = Field("", description="Where the office is (two letters).")
    time_zone: str = Field("", description="An IANA zone; empty: from the country.")
    languages: str = Field("", description="BCP 47 tags in order of preference: `ru fr`.")
    email: str = Field("", max_length=320)
    cc_emails: str = Field("", description="Copy addresses separated by spaces.")
    tags: str = Field("", description="Tags separated by spaces or commas.")
    notes: str = ""
    risk_level: str = _code_field("risk_level", "", "How exposed the person is.", empty="public")
    consent_basis: str = ""
    term_ends_on: date | None = None
    last_verified_on: date | None = None
    salutation_override: str = ""
    given_name_en: str = ""
    family_name_en: str = ""
    position_title_en: str = ""
    organisation_en: str = ""
    given_name_fr: str = ""
    family_name_fr: str = ""
    position_title_fr: str = ""
    organisation_fr: str = ""
    given_name_ru: str = ""
    family_name_ru: str = ""
    patronymic_ru: str = ""
    position_title_ru: str = ""
    organisation_ru: str = ""
    name_dative: str = ""
    position_title_dative: str = ""
    dative_confirmed: StrictBool = False

    def given(self, *, every: bool = False) -> dict[str, Any]:
        """The fields the client sent (`every`: all of them, defaults for those left out),
        as the services read them (dates as text)."""
        return {
            name: ("" if value is None else value.isoformat() if isinstance(value, date) else value)
            for name, value in self.model_dump(exclude_unset=not every).items()
        }


class ContactCreate(ContactFields):
    """A new contact: an address, and a name, an organisation or a position title."""

    email: str = Field(max_length=320)


class ContactReplace(ContactCreate):
    """A contact's every field: those left out go back to their defaults, except the role
    and the risk level, which must be sent (a sync lacking the column must not quietly
    lower a high-risk contact to `public`)."""

    role_type: str = _code_field(
        "role_type", ..., "The role that chooses the salutation. Required.", empty="other"
    )
    risk_level: str = _code_field(
        "risk_level", ..., "How exposed the person is. Required.", empty="public"
    )


class ContactPatch(ContactFields):
    """The fields to change; the others keep their values."""


class ContactOut(BaseModel):
    id: int
    kind: KindCode
    given_name: str
    family_name: str
    patronymic: str
    given_name_alt: str
    family_name_alt: str
    patronymic_alt: str
    grammatical_gender: GenderCode
    role_type: RoleTypeCode
    style: StyleCode
    honorific: str
    position_title: str
    organisation: str
    country: str
    location_country: str
    time_zone: str
    languages: str
    email: str
    cc_emails: str
    tags: str
    notes: str
    risk_level: RiskLevelCode
    consent_basis: str
    term_ends_on: date | None
    last_verified_on: date | None
    salutation_override: str
    given_name_en: str
    family_name_en: str
    position_title_en: str
    organisation_en: str
    given_name_fr: str
    family_name_fr: str
    position_title_fr: str
    organisation_fr: str
    given_name_ru: str
    family_name_ru: str
    patronymic_ru: str
    position_title_ru: str
    organisation_ru: str
    name_dative: str
    position_title_dative: str
    dative_confirmed: bool
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ContactQuery(PageQuery):
    """The contacts page's filters; each narrows the list, empty means any."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field("", max_length=MAX_QUERY, description="Words in any name form or script.")
    role_type: str = _code_field(
        "role_type", "", "Contacts with this role (a code or its label).", empty="any"
    )
    country: str = Field("", max_length=MAX_QUERY, description="A code, or a country's name.")
    language: str = Field("", max_length=MAX_QUERY)
    tag: str = Field("", max_length=MAX_QUERY)
    risk_level: str = _code_field(
        "risk_level", "", "Contacts at this risk level (a code or its label).", empty="any"
    )
    list: int | None = Field(
        None, ge=1, le=MAX_ROW_ID, description="Members of this list (an id GET /lists gives)."
    )
    segment: int | None = Field(
        None,
        ge=1,
        le=MAX_ROW_ID,
        description="Contacts this segment finds (an id GET /segments gives).",
    )


class BulkItem(ContactCreate):
    """One contact of a bulk upsert: as a new contact, except that dates and flags may also
    come as text (as in a spreadsheet: "2026-05-31", "yes", "oui"), so that a wrong one is
    that item's error, not the request's."""

    term_ends_on: date | str | None = Field(None, description="YYYY-MM-DD.")  # type: ignore[assignment]
    last_verified_on: date | str | None = Field(None, description="YYYY-MM-DD.")  # type: ignore[assignment]
    dative_confirmed: bool | str = Field(  # type: ignore[assignment]
        False, description="true or false (yes/no, oui/non, да/нет as text)."
    )


class BulkUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BulkItem] = Field(
        max_length=importing.MAX_UPSERT_ITEMS,
        description="Up to 10,000 contacts, matched to existing ones by address.",
    )


class ItemResult(BaseModel):
    index: int = Field(description="The item's position in `items`, from 0.")
    status: Literal["created", "updated", "unchanged", "error"]
    id: int | None
    errors: list[FieldError]


class BulkResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    failed: int
    items: list[ItemResult]


def represent(contact: Contact) -> ContactOut:
    values = {name: getattr(contact, name) for name in CONTACT_FIELDS}
    return ContactOut(
        id=contact.id, created_at=contact.created_at, updated_at=contact.updated_at, **values
    )


def live_contact(contact_id: int) -> Contact:
    """The live contact with this id; 404 when it does not exist or is in the trash."""
    contact = db.session.get(Contact, contact_id)
    if contact is None or contact.deleted_at is not None:
        raise ApiProblem(404, _("There is no contact with this id."))
    return contact


def input_problem(error: ContactInputError, prefix: str = "") -> ApiProblem:
    return ApiProblem(
        422,
        _("Some fields are not valid."),
        errors=[{"field": prefix + e.field, "message": e.message} for e in error.errors],
    )


def _check_filters(query: ContactQuery) -> None:
    """422 naming each filter that cannot find anything: an unknown code, list or segment
    (the page keeps such a filter and shows nobody; a program deserves to hear of it)."""
    errors = []
    for name in ("role_type", "risk_level"):
        value = getattr(query, name).strip()
        if value:
            try:
                FIELD_PARSERS[name](value)
            except ValueError as problem:
                errors.append({"field": name, "message": str(problem)})
    if query.list is not None and db.session.get(ContactList, query.list) is None:
        errors.append({"field": "list", "message": _("There is no list with this id.")})
    if query.segment is not None and db.session.get(Segment, query.segment) is None:
        errors.append({"field": "segment", "message": _("There is no segment with this id.")})
    if errors:
        raise ApiProblem(422, _("Some fields are not valid."), errors=errors)


def _address_taken() -> ApiProblem:
    return ApiProblem(
        409, _("Another request changed these contacts at the same time; send it again.")
    )


@bp.get("/contacts")
@operation("contacts:read", query=ContactQuery, responses={200: ContactPage}, tags=("contacts",))
def list_contacts(query: ContactQuery) -> ContactPage:
    """List contacts, filtered as on the contacts page, in id order.

    An unknown role or risk code, list or segment is a 422 naming the filter."""
    _check_filters(query)
    filters = ContactFilters.from_visitor(query.model_dump())
    rows, next_cursor = page(
        filtered_query(filters),
        Contact.id,
        purpose="contacts",
        limit=query.limit,
        cursor=query.cursor,
    )
    return ContactPage(items=[represent(c) for c in rows], next_cursor=next_cursor)


@bp.get("/contacts/<int:contact_id>")
@operation("contacts:read", responses={200: ContactOut}, tags=("contacts",), errors=(404,))
def get_contact(contact_id: int) -> Any:
    """Read a contact (its ETag is needed to change it)."""
    return with_etag(represent(live_contact(contact_id)))


@bp.post("/contacts")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    json=ContactCreate,
    responses={201: ContactOut},
    tags=("contacts",),
    errors=(409,),
    writes=True,
)
@idempotent
def create_contact(json: ContactCreate) -> Any:
    """Create a contact.

    The same rules as the edit form: an address no live contact has, and a name, an
    organisation or a position title. Fields left out get the stored defaults (role
    `other`, risk `public`, gender `unknown`), as on the import."""
    try:
        with db.session.begin_nested():
            contact = contact_service.create_contact(json.given())
    except ContactInputError as error:
        raise input_problem(error) from None
    except IntegrityError:
        raise _address_taken() from None
    return with_etag(
        represent(contact), 201, location=url_for("api.get_contact", contact_id=contact.id)
    )


def _update(contact_id: int, raw: dict[str, Any]) -> Any:
    contact = live_contact(contact_id)
    require_if_match(etag_of(represent(contact)))
    # Every change to a contact moves its updated_at (the column's onupdate): still the one
    # read means still the contact whose ETag was checked.
    claim(contact, "updated_at")
    try:
        with db.session.begin_nested():
            contact_service.update_contact(contact, raw)
    except ContactInputError as error:
        raise input_problem(error) from None
    except IntegrityError:
        raise _address_taken() from None
    return with_etag(represent(contact))


@bp.patch("/contacts/<int:contact_id>")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    json=ContactPatch,
    responses={200: ContactOut},
    tags=("contacts",),
    errors=(404, 409, 412, 428),
    writes=True,
)
def patch_contact(contact_id: int, json: ContactPatch) -> Any:
    """Change some of a contact's fields (If-Match: the ETag you read)."""
    return _update(contact_id, json.given())


@bp.put("/contacts/<int:contact_id>")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    json=ContactReplace,
    responses={200: ContactOut},
    tags=("contacts",),
    errors=(404, 409, 412, 428),
    writes=True,
)
def put_contact(contact_id: int, json: ContactReplace) -> Any:
    """Replace a contact's fields (If-Match: the ETag you read).

    `role_type` and `risk_level` must be sent (422 naming them otherwise): a PUT never
    lowers a contact's risk level unless told to. Other fields left out are reset to their
    defaults."""
    return _update(contact_id, json.given(every=True))


@bp.delete("/contacts/<int:contact_id>")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    responses={204: None},
    tags=("contacts",),
    errors=(404,),
    writes=True,
)
def delete_contact(contact_id: int) -> Any:
    """Move a contact to the trash (restorable for 30 days from the trash page)."""
    contact_service.delete_contact(live_contact(contact_id))
    return "", 204


@bp.post("/contacts/bulk")
@operation(
    "contacts:write",
    role=Role.EDITOR,
    json=BulkUpsert,
    responses={200: BulkResult},
    tags=("contacts",),
    errors=(409,),
    writes=True,
)
@idempotent
def bulk_upsert(json: BulkUpsert) -> Any:
    """Create or update up to 10,000 contacts, with the import's rules.

    Each item is matched by address: a live contact with it is updated with the fields the
    item sends (`unchanged` when they already hold those values), else a contact is created
    (an address only in the trash makes a new contact, as the import does). Each item is
    checked as an import row is, with the same messages; an invalid item, or a second item
    with an address an earlier one has, is reported with `status: error` and its fields,
    and never stops the others: a wrong code, date ("2026-13-01") or flag ("maybe") too.
    Structurally wrong input (a list or a number where text goes, an unknown field, more
    than 10,000 items) refuses the whole request with 422."""
    items = [item.given() for item in json.items]
    try:
        with db.session.begin_nested():
            outcomes = importing.upsert_contacts(items)
    except IntegrityError:
        raise _address_taken() from None
    results = [
        ItemResult(
            index=o.index,
            status=o.status,  # type: ignore[arg-type]
            id=o.id,
            errors=[FieldError(field=e.field, message=e.message) for e in o.errors],
        )
        for o in outcomes
    ]
    counts = Counter(o.status for o in outcomes)
    return BulkResult(
        created=counts["created"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        failed=counts["error"],
        items=results,
    ).model_dump(mode="json")

"""Contacts: the people, organisations and mandates letters are addressed to."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow
from campaign.models.search_key import (
    KEY_FIELDS,
    PG_SEARCH_INDEX,
    SEARCH_TABLE,
    install_key_maintenance,
    search_key_of,
)


class ContactKind(enum.StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"
    MANDATE = "mandate"


class GrammaticalGender(enum.StrEnum):
    FEMININE = "f"
    MASCULINE = "m"
    UNKNOWN = "unknown"


class RoleType(enum.StrEnum):
    HEAD_OF_STATE = "head_of_state"
    HEAD_OF_GOV = "head_of_gov"
    MINISTER = "minister"
    AMBASSADOR = "ambassador"
    OFFICIAL = "official"
    EU_COUNCIL_PRESIDENT = "eu_council_president"
    EU_HIGH_REP = "eu_high_rep"
    MEP = "mep"
    UN_SR = "un_sr"
    UN_WG = "un_wg"
    JOURNALIST = "journalist"
    NGO = "ngo"
    OTHER = "other"


class Style(enum.StrEnum):
    NONE = "none"
    EXCELLENCY = "excellency"


class RiskLevel(enum.StrEnum):
    PUBLIC = "public"
    LOW = "low"
    ELEVATED = "elevated"
    HIGH = "high"


def schema_compare_filter(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """alembic's `include_object` for comparing the models with a database (autogenerate in
    migrations/env.py, tests/test_migrations.py): the search index each engine has and the
    other has not (FTS5 tables and the queue on SQLite, the GIN index on PostgreSQL; see
    campaign.models.search_key) is not a difference."""

    def include(_obj: Any, name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
        # The FTS5 table, its shadow tables (contacts_search_data, _idx, ...) and the queue.
        if type_ == "table" and name and (name + "_").startswith(SEARCH_TABLE + "_"):
            return False
        if type_ == "index" and name == PG_SEARCH_INDEX:
            # PostgreSQL without a usable pg_trgm has no such index (migration 0021 warns
            # and the search scans): its absence is not a difference either.
            return dialect == "postgresql" and not (_other is None and not _reflected)
        return True

    return include


class Contact(db.Model):  # type: ignore[name-defined]
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default=ContactKind.PERSON.value)
    given_name: Mapped[str] = mapped_column(String(200), default="")
    family_name: Mapped[str] = mapped_column(String(200), default="")
    patronymic: Mapped[str] = mapped_column(String(200), default="")
    # The same name in a second script (Cyrillic or Latin), used by letters in that script.
    given_name_alt: Mapped[str] = mapped_column(String(200), default="")
    family_name_alt: Mapped[str] = mapped_column(String(200), default="")
    patronymic_alt: Mapped[str] = mapped_column(String(200), default="")
    grammatical_gender: Mapped[str] = mapped_column(
        String(10), default=GrammaticalGender.UNKNOWN.value
    )
    role_type: Mapped[str] = mapped_column(String(30), default=RoleType.OTHER.value, index=True)
    style: Mapped[str] = mapped_column(String(20), default=Style.NONE.value)
    honorific: Mapped[str] = mapped_column(String(100), default="")
    position_title: Mapped[str] = mapped_column(String(500), default="")
    organisation: Mapped[str] = mapped_column(String(500), default="", index=True)
    # The country the person represents or belongs to: ISO 3166-1 alpha-2, or EU / UN.
    country: Mapped[str] = mapped_column(String(8), default="", index=True)
    # Where the office is (an embassy in Paris: FR); the address block prints this one.
    location_country: Mapped[str] = mapped_column(String(8), default="", server_default="")
    # The contact's fields in a letter language, used by letters in that language; ""
    # falls back to the default fields above (decision 0031).
    given_name_en: Mapped[str] = mapped_column(String(200), default="", server_default="")
    family_name_en: Mapped[str] = mapped_column(String(200), default="", server_default="")
    position_title_en: Mapped[str] = mapped_column(String(500), default="", server_default="")
    organisation_en: Mapped[str] = mapped_column(String(500), default="", server_default="")
    given_name_fr: Mapped[str] = mapped_column(String(200), default="", server_default="")
    family_name_fr: Mapped[str] = mapped_column(String(200), default="", server_default="")
    position_title_fr: Mapped[str] = mapped_column(String(500), default="", server_default="")
    organisation_fr: Mapped[str] = mapped_column(String(500), default="", server_default="")
    given_name_ru: Mapped[str] = mapped_column(String(200), default="", server_default="")
    family_name_ru: Mapped[str] = mapped_column(String(200), default="", server_default="")
    patronymic_ru: Mapped[str] = mapped_column(String(200), default="", server_default="")
    position_title_ru: Mapped[str] = mapped_column(String(500), default="", server_default="")
    organisation_ru: Mapped[str] = mapped_column(String(500), default="", server_default="")
    # Russian address blocks put the addressee in the dative ("госпоже Д. Намуновой",
    # "Послу Республики Узбекистан …"): suggested by morphology, confirmed by a person.
    name_dative: Mapped[str] = mapped_column(String(300), default="", server_default="")
    position_title_dative: Mapped[str] = mapped_column(String(500), default="", server_default="")
    dative_confirmed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Every name form folded to lower-case ASCII ("Ольга" and "Olga" both give "olga"), so
    # a search in one script finds the other (campaign.models.search_key).
    search_key: Mapped[str] = mapped_column(Text, default="", server_default="")
    # An IANA zone ("Asia/Tashkent") for a recipient whose clock is not their country's
    # (a mission abroad, a country with several zones); "" means "from the country".
    time_zone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # BCP 47 tags in order of preference, separated by single spaces ("ru fr").
    languages: Mapped[str] = mapped_column(String(200), default="")
    # The address as given, normalised by email-validator (IDN domains in Unicode).
    email: Mapped[str] = mapped_column(String(320))
    # Lower-cased form: one contact per address, whatever the case.
    # Unique among live contacts only (see the partial index below): a contact in the trash
    # keeps its address, and a new contact may take that address meanwhile. That partial
    # index is its only one: queries by address say "deleted_at IS NULL" (migration 0023).
    email_key: Mapped[str] = mapped_column(String(320))
    # Secretariat / copy addresses, separated by single spaces.
    cc_emails: Mapped[str] = mapped_column(Text, default="")
    # Lower-case tags separated by single spaces.
    tags: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    risk_level: Mapped[str] = mapped_column(String(20), default=RiskLevel.PUBLIC.value, index=True)
    consent_basis: Mapped[str] = mapped_column(String(200), default="")
    term_ends_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    last_verified_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    salutation_override: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Set when the contact is moved to the trash; the scheduler purges it 30 days later.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # Set on the record a merge put in the trash: the survivor it was merged into, whose
    # history also shows the letters that stayed on this record.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True, index=True
    )

    __table_args__ = (
        Index("ix_contacts_family_given", "family_name", "given_name"),
        Index(
            "uq_contacts_live_email_key",
            "email_key",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # Only the few trashed rows are indexed: an index over every live row's NULL once
        # tempted PostgreSQL's planner away from the address index for live lookups.
        Index(
            "ix_contacts_trashed",
            "deleted_at",
            sqlite_where=text("deleted_at IS NOT NULL"),
            postgresql_where=text("deleted_at IS NOT NULL"),
        ),
        # Free-text search on PostgreSQL: trigrams of the search key serve its LIKE '%word%'
        # (pg_trgm; migration 0021, decision 0070). SQLite's counterpart, an FTS5 trigram
        # table kept by triggers, lives outside the models (search_key.SEARCH_TABLE).
        Index(
            PG_SEARCH_INDEX,
            "search_key",
            postgresql_using="gin",
            postgresql_ops={"search_key": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.given_name, self.family_name) if p)
        return name or self.organisation or self.email

    @property
    def language_list(self) -> list[str]:
        return self.languages.split()

    @property
    def tag_list(self) -> list[str]:
        return self.tags.split()

    @property
    def cc_list(self) -> list[str]:
        return self.cc_emails.split()


install_key_maintenance(Contact)


def refresh_search_keys(session: Any, contact_ids: list[int]) -> None:
    """Recompute the key of these contacts (after a bulk UPDATE changed their names)."""
    if not contact_ids:
        return
    columns = [getattr(Contact, name) for name in KEY_FIELDS]
    for start in range(0, len(contact_ids), 1000):
        chunk = contact_ids[start : start + 1000]
        rows = session.execute(select(Contact.id, *columns).where(Contact.id.in_(chunk))).mappings()
        params = [{"row_id": row["id"], "key": search_key_of(row)} for row in rows]
        if params:
            session.execute(
                update(Contact.__table__)
                .where(Contact.__table__.c.id == bindparam("row_id"))
                .values(search_key=bindparam("key")),
                params,
            )

"""The contacts table query: free-text search, filters, whitelisted sorting, keyset pages.

Pages are keyset ("seek") pages on (sort column(s), id): each page asks for the rows
after (or before) the last row shown, so page 2,000 costs what page 1 costs and a
contact added or deleted meanwhile never makes another one repeat or vanish. The
count shown above the table is exact up to COUNT_LIMIT and "more than" beyond it, so
a broad search over 100,000 contacts does not pay for a full count. See
docs/decisions/0003-contacts-table-and-segments.md for the measurements.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from flask_babel import format_number
from flask_babel import gettext as _
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute

from campaign.extensions import db
from campaign.letters.countries import load_country_names
from campaign.models import Contact, Segment
from campaign.models.search_key import SEARCH_QUEUE, SEARCH_TABLE, fold, search_index_usable
from campaign.params import filter_id, row_id
from campaign.services.contacts.contacts import FIELD_PARSERS
from campaign.services.contacts.lists import member_ids
from campaign.services.contacts.segments import escape_like, has_token, where_clause
from campaign.services.paging import offset_of, page_count

COUNT_LIMIT = 10_000
MAX_QUERY = 200

# Sort key -> columns, most significant first; the id is always appended as tie-breaker.
SORTS: dict[str, tuple[InstrumentedAttribute[Any], ...]] = {
    "name": (Contact.family_name, Contact.given_name),
    "organisation": (Contact.organisation,),
    "country": (Contact.country,),
    "role": (Contact.role_type,),
    "risk": (Contact.risk_level,),
    "email": (Contact.email_key,),
}
DEFAULT_SORT = "name"


@dataclass
class ContactFilters:
    """What the table is filtered by; empty strings / None mean "any"."""

    q: str = ""
    role_type: str = ""
    country: str = ""
    language: str = ""
    tag: str = ""
    risk_level: str = ""
    list_id: int | None = None
    segment_id: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ContactFilters:
        """Read filters from query-string-like data; unknown keys are ignored."""

        def text(name: str) -> str:
            return " ".join(str(args.get(name, "") or "").split())[:MAX_QUERY]

        return cls(
            q=text("q"),
            role_type=text("role_type"),
            country=text("country"),
            language=text("language"),
            tag=text("tag"),
            risk_level=text("risk_level"),
            list_id=filter_id(args.get("list")),
            segment_id=filter_id(args.get("segment")),
        )

    @classmethod
    def from_visitor(cls, args: Mapping[str, Any]) -> ContactFilters:
        """Filters as a person or a program typed them: the page's select sends a country's
        code, but a name in the address (?country=Туркменистан) finds its code too."""
        filters = cls.from_args(args)
        if filters.country:
            filters.country = load_country_names().find(filters.country) or filters.country
        return filters

    def as_args(self) -> dict[str, str]:
        """The non-empty filters as query-string arguments (for links and forms)."""
        names = {"list_id": "list", "segment_id": "segment"}
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in ("", None):
                out[names.get(f.name, f.name)] = str(value)
        return out

    @property
    def is_empty(self) -> bool:
        return not self.as_args()


def _normalised(parser: str, value: str) -> str:
    # Filters use the contact form's rules ("fr" -> "FR", "PT-br" -> "pt-BR"); a value those
    # rules refuse cannot match anything, so it is kept as typed and simply finds nobody.
    try:
        return str(FIELD_PARSERS[parser](value))
    except ValueError:
        return value


# The shortest word the trigram indexes can serve; shorter ones are matched by LIKE alone.
MIN_INDEXED = 3


def _sqlite_search_table() -> bool:
    """Whether this database is SQLite with the FTS5 index of the search key (migration
    0021) and its triggers: without them (a batch migration dropped them) the search scans."""
    if db.session.get_bind().dialect.name != "sqlite":
        return False
    return search_index_usable(db.session.connection())


def _fts_phrases(words: list[str]) -> str:
    """An FTS5 query: each folded word as a quoted string (a substring, for the trigram
    tokenizer), all of them required."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def _search_clause(q: str) -> ColumnElement[bool]:
    # One LIKE per word over the contact's folded search key (campaign.models.search_key):
    # "Olga" finds "Ольга" and back, any case, on SQLite and PostgreSQL alike; the key is
    # ASCII, so SQLite's LIKE folds its case and no variants are needed.
    # The LIKEs are the rule; the indexes only find candidates faster (decision 0070). On
    # PostgreSQL the planner serves them from the pg_trgm GIN index by itself. On SQLite
    # the candidates are the rows whose indexed key holds every word of 3+ characters
    # (FTS5 trigram) and the contacts written since the index was last brought up to date
    # (past its highest rowid, or queued; usually none); the LIKEs then check them. Words
    # of 1-2 characters have no trigram: a query made only of such words scans, as before.
    clauses: list[ColumnElement[bool]] = []
    indexed: list[str] = []
    for word in q.split():
        folded = fold(word)
        if not folded:
            continue
        if "\x00" in folded:
            # No key holds a NUL (PostgreSQL's text cannot), and neither FTS5 nor psycopg
            # takes one in a query: such a word finds nobody.
            return Contact.id.is_(None)
        pattern = f"%{escape_like(folded)}%"
        if len(folded) >= MIN_INDEXED:
            indexed.append(folded)
            clauses.append(Contact.search_key.like(pattern, escape="\\"))
        else:
            # `|| ''` keeps PostgreSQL off the trigram index, which has nothing to look up
            # for this word and would read all of itself (358 ms against a 100 ms scan).
            clauses.append((Contact.search_key + "").like(pattern, escape="\\"))
    if not clauses:
        return Contact.id.is_(None)
    if indexed and _sqlite_search_table():
        matching: Select[Any] = (
            select(literal_column("rowid"))
            .select_from(table(SEARCH_TABLE))
            .where(text(f"{SEARCH_TABLE} MATCH :phrases").bindparams(phrases=_fts_phrases(indexed)))
        )
        queued: Select[Any] = select(literal_column("id")).select_from(table(SEARCH_QUEUE))
        highest = (
            select(literal_column("rowid"))
            .select_from(table(SEARCH_TABLE))
            .order_by(literal_column("rowid").desc())
            .limit(1)
            .scalar_subquery()
        )
        candidates = or_(
            Contact.id.in_(union_all(matching, queued)),
            Contact.id > func.coalesce(highest, 0),
        )
        clauses.insert(0, candidates)
    return and_(*clauses)


def filtered_query(filters: ContactFilters) -> Select[Contact]:
    """Select the contacts passing every filter (unordered)."""
    # A contact in the trash is found only on the trash page.
    query = select(Contact).where(Contact.deleted_at.is_(None))
    if filters.q:
        query = query.where(_search_clause(filters.q))
    if filters.role_type:
        query = query.where(Contact.role_type == _normalised("role_type", filters.role_type))
    if filters.country:
        query = query.where(Contact.country == _normalised("country", filters.country))
    if filters.risk_level:
        query = query.where(Contact.risk_level == _normalised("risk_level", filters.risk_level))
    if filters.language:
        query = query.where(
            has_token(Contact.languages, _normalised("languages", filters.language))
        )
    if filters.tag:
        query = query.where(has_token(Contact.tags, _normalised("tags", filters.tag)))
    if filters.list_id is not None:
        query = query.where(Contact.id.in_(member_ids(filters.list_id)))
    if filters.segment_id is not None:
        segment = db.session.get(Segment, filters.segment_id)
        # A segment that no longer exists selects nobody rather than everybody.
        query = query.where(where_clause(segment.definition) if segment else Contact.id.is_(None))
    return query


# --------------------------------------------------------------------------- pages


@dataclass
class Page:
    contacts: list[Contact]
    total: int
    total_is_exact: bool
    sort: str
    descending: bool
    next_cursor: str | None = None
    prev_cursor: str | None = None
    per_page: int = 50
    extra: dict[str, Any] = field(default_factory=dict)
    number: int = 0  # the page's number when paged by numbers (0: by cursors)
    has_more: bool = False  # rows follow this page (numbered pages)

    @property
    def pages(self) -> int:
        """The pages offered as numbers: all of them when the count is exact; else those
        starting within the counted rows and the next one, which starts at most at the
        first row past the count (so it is never empty). Past it, cursors walk on."""
        if self.total_is_exact:
            return page_count(self.total, self.per_page)
        return self.total // self.per_page + 1

    @property
    def total_label(self) -> str:
        """The count as people read it, in the interface language ("12,345", "12 345")."""
        if self.total_is_exact:
            return str(format_number(self.total))
        return _("more than %(count)s", count=format_number(COUNT_LIMIT))


def _sort_key(contact: Contact, sort: str) -> list[Any]:
    return [getattr(contact, column.key) for column in SORTS[sort]] + [contact.id]


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list[Any] | None:
    """The (sort values..., id) of a cursor, or None if it is not one for this sort."""
    if not cursor or len(cursor) > 4000:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    size = len(SORTS[sort]) + 1
    if not isinstance(values, list) or len(values) != size:
        return None
    if not all(isinstance(v, str) for v in values[:-1]) or type(values[-1]) is not int:
        return None
    # A hand-made cursor with an id past the column's range would break the query (a 500).
    if row_id(str(values[-1])) is None:
        return None
    return values


def _plan_for_the_words(filters: ContactFilters) -> None:
    """On PostgreSQL, plan this transaction's statements for the values they are given.
    psycopg prepares a statement run five times on a connection, and PostgreSQL then plans
    it once for any search word and limit, blind to how rare the word is: a page of a rare
    word cost 60 ms of CPU against 7 ms planned for it (decision 0070)."""
    if filters.q and db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def count_filtered(filters: ContactFilters, limit: int | None = None) -> tuple[int, bool]:
    """(count, exact): counting stops after `limit` rows (COUNT_LIMIT) so a huge match
    stays cheap."""
    _plan_for_the_words(filters)
    limit = COUNT_LIMIT if limit is None else limit
    ids = filtered_query(filters).with_only_columns(Contact.id).limit(limit + 1).subquery()
    total = int(db.session.scalar(select(func.count()).select_from(ids)) or 0)
    return (limit, False) if total > limit else (total, True)


def _order_columns(sort: str, *, searching: bool, dense: bool = False) -> list[ColumnElement[Any]]:
    columns: list[ColumnElement[Any]] = [c.expression for c in SORTS[sort]] + [
        Contact.id.expression
    ]
    if searching and not (dense and db.session.get_bind().dialect.name == "postgresql"):
        # A search finds its rows through the trigram index (or reads every row). Ordering
        # by expressions keeps the database from walking the sort index and fetching each
        # row at random (SQLite: 340 ms against 100 ms for a word found nowhere); the same
        # expressions serve the cursor comparison, so the order and the pages agree.
        # `dense`: more than COUNT_LIMIT rows match. Then a page is found sooner by walking
        # the name index (a quarter of the table matching: ~200 rows read, not 25,000
        # sorted); PostgreSQL is given the plain columns and, estimating how many rows the
        # LIKEs keep, chooses the walk. Not SQLite, which cannot tell when the matches sit
        # at the end of the alphabet (decision 0070).
        return [c + literal("", String) for c in columns[:-1]] + [columns[-1] + 0]
    return columns


def search_page(
    filters: ContactFilters,
    *,
    sort: str = DEFAULT_SORT,
    descending: bool = False,
    after: str = "",
    before: str = "",
    per_page: int = 50,
) -> Page:
    """One page of the contacts table, after or before a cursor (first page without one)."""
    if sort not in SORTS:
        sort = DEFAULT_SORT
    per_page = max(1, min(per_page, 500))
    _plan_for_the_words(filters)
    columns = _order_columns(sort, searching=bool(filters.q))
    key = tuple_(*columns)
    query = filtered_query(filters)

    after_values = decode_cursor(after, sort)
    before_values = decode_cursor(before, sort) if after_values is None else None
    backwards = before_values is not None
    # Walking backwards means reading in the opposite order, then flipping the rows.
    read_descending = descending != backwards
    order = [c.desc() if read_descending else c.asc() for c in columns]
    if after_values is not None:
        bound = tuple_(*after_values)
        query = query.where(key < bound if descending else key > bound)
    elif before_values is not None:
        bound = tuple_(*before_values)
        query = query.where(key > bound if descending else key < bound)
    rows = list(db.session.scalars(query.order_by(*order).limit(per_page + 1)))
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
        if not more:
            # Reached the start: show a full first page rather than a short one.
            return search_page(filters, sort=sort, descending=descending, per_page=per_page)
    if after_values is None and before_values is None and not more:
        # Everything fits on the first page: the rows are the count (saves a second scan).
        total, exact = len(rows), True
    else:
        total, exact = count_filtered(filters)
    page = Page(rows, total, exact, sort, descending, per_page=per_page)
    if rows:
        first, last = _sort_key(rows[0], sort), _sort_key(rows[-1], sort)
        has_next = more if not backwards else True
        has_prev = (after_values is not None) if not backwards else more
        page.next_cursor = encode_cursor(last) if has_next else None
        page.prev_cursor = encode_cursor(first) if has_prev else None
    return page


def numbered_page(
    filters: ContactFilters,
    *,
    sort: str = DEFAULT_SORT,
    descending: bool = False,
    number: int = 1,
    per_page: int = 50,
) -> Page:
    """Page `number` of the contacts table (OFFSET pages, for the numbered pager).

    The count stops at COUNT_LIMIT, and the numbers stop one page past the counted ones (a
    larger `number` shows that page), so no page costs more than an OFFSET of COUNT_LIMIT
    rows. From that last numbered page "Next" is a keyset cursor (`next_cursor`, opened
    by `search_page`): deeper pages cost what page 1 costs (decision 0045).
    """
    if sort not in SORTS:
        sort = DEFAULT_SORT
    per_page = max(1, min(per_page, 500))
    total, exact = count_filtered(filters)
    columns = _order_columns(sort, searching=bool(filters.q), dense=not exact)
    order = [c.desc() if descending else c.asc() for c in columns]
    last = Page([], total, exact, sort, descending, per_page=per_page).pages
    number = min(max(1, number), last)
    query = filtered_query(filters).order_by(*order)
    rows = list(db.session.scalars(query.offset(offset_of(number, per_page)).limit(per_page + 1)))
    page = Page(rows[:per_page], total, exact, sort, descending, per_page=per_page, number=number)
    page.has_more = len(rows) > per_page
    if page.has_more and not exact and number == last:
        page.next_cursor = encode_cursor(_sort_key(rows[per_page - 1], sort))
    return page

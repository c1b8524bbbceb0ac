"""One page of a long list: the items shown and where they sit among all that match.

Shared by every paged list (the replies inbox; the ledger and the non-responders are meant
to move here too). Pages are numbered from 1; a page asked for past the end shows the last
one, and an empty list still has one (empty) page, so "Page 1 of 1" is never "of 0".
A log that only grows (the audit log) pages by key instead: `newest_first`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from campaign.extensions import db

T = TypeVar("T")


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` items fill, at least one."""
    return max(1, math.ceil(total / per_page))


def clamp_page(requested: int, total: int, per_page: int) -> int:
    """The page to show for the one asked for: 1 at least, the last one at most."""
    return min(max(1, requested), page_count(total, per_page))


def offset_of(page: int, per_page: int) -> int:
    """How many items come before `page` (for SQL OFFSET)."""
    return (page - 1) * per_page


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of items; subclass it to carry the filter that found them."""

    items: list[T]
    page: int
    per_page: int
    total: int  # items matching on every page, not only this one

    @property
    def pages(self) -> int:
        return page_count(self.total, self.per_page)

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_number(self) -> int:
        """The position of the first item shown among all (1-based; 0 when none)."""
        return offset_of(self.page, self.per_page) + 1 if self.items else 0

    @property
    def last_number(self) -> int:
        """The position of the last item shown among all (0 when none)."""
        return offset_of(self.page, self.per_page) + len(self.items)


def page_numbers(
    page: int, pages: int, *, around: int = 2, last_known: bool = True
) -> list[int | None]:
    """The page numbers a pager links to: the first, the last, `page` and `around` pages
    either side; None where numbers are left out (shown as an ellipsis).

    `last_known=False` is for a count that stopped early ("more than 10,000"): `pages` is
    then only the pages known to exist, so the last one is not offered as "the last".
    """
    pages = max(1, pages)
    page = min(max(1, page), pages)
    wanted = {1, *range(page - around, page + around + 1)}
    if last_known:
        wanted.add(pages)
    numbers: list[int | None] = []
    previous = 0
    for number in sorted(n for n in wanted if 1 <= n <= pages):
        if number > previous + 1:
            # A gap of a single page shows that page rather than an ellipsis in its place.
            numbers.append(previous + 1 if number == previous + 2 else None)
        numbers.append(number)
        previous = number
    if not last_known and previous < pages:
        numbers.append(None)
    return numbers


@dataclass(frozen=True)
class KeysetPage(Generic[T]):
    """Rows newest first, below a key: the next page is asked for by `next_before`."""

    items: list[T]
    next_before: int | None  # the key that opens the next (older) page; None on the last
    is_first: bool  # no `before` was given


def newest_first(
    query: Select[Any], key: InstrumentedAttribute[int], before: int | None, per_page: int
) -> KeysetPage[Any]:
    """One page of `query`'s rows by descending `key` (an id that only grows), those below
    `before` when given. Keyset paging: a row added meanwhile never shifts the pages."""
    if before is not None:
        query = query.where(key < before)
    rows = list(db.session.scalars(query.order_by(key.desc()).limit(per_page + 1)))
    items = rows[:per_page]
    more = len(rows) > per_page
    next_before = getattr(items[-1], key.key) if more and items else None
    return KeysetPage(items, next_before, before is None)

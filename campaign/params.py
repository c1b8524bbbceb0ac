"""Reading ids and page numbers that arrive as text: bad ones become None, never a server error.

The one parser for every id a browser, a form or a stored key hands over as text, used by the
views and by the services that read query-string-like data (contact filters, audience keys).
It lives below both layers, so web/ and services/ import the same implementation.
"""

from __future__ import annotations

# Ids are INTEGER columns; PostgreSQL refuses to compare one with a number past this, so such a
# number names no row: it is "not found", never a query that fails.
MAX_ROW_ID = 2_147_483_647
# Ids start at 1 on both databases: 0 names no row.
NO_ROW = 0
# A page past the last shows the last one (services/paging.py); this only keeps the number
# small enough for any OFFSET.
MAX_PAGE_NUMBER = 999_999


def _text(raw: object) -> str:
    return "" if raw is None else str(raw).strip()


def row_id(raw: object) -> int | None:
    """The row id `raw` names, or None when no row can have it.

    isdigit() lets "²" through to int(), which then raises; a number past the column's
    range breaks the query instead of finding nothing. Digits only (no sign, no spaces
    inside), at most MAX_ROW_ID.
    """
    text = _text(raw)
    if not text.isdecimal() or len(text) > len(str(MAX_ROW_ID)):
        return None
    number = int(text)
    return number if number <= MAX_ROW_ID else None


def filter_id(raw: object) -> int | None:
    """The id a filter asks for (`?list=3`): None when `raw` is no number at all (no filter),
    NO_ROW when it is a number no row can have, so the filter finds nobody, as for a list
    since deleted, rather than everybody."""
    found = row_id(raw)
    if found is None and _text(raw).isdecimal():
        return NO_ROW
    return found


def page_number(raw: object) -> int:
    """The page a link or form asks for: 1 unless `raw` is a whole number from 1 up."""
    text = _text(raw)
    if not text.isdecimal() or len(text) > len(str(MAX_PAGE_NUMBER)):
        return 1
    return max(1, int(text))

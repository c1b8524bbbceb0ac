"""Reading ids and numbers that browsers send: bad ones become None, never a server error."""

from __future__ import annotations


def row_id(raw: str | None) -> int | None:
    """A row id typed or sent by the browser, or None.

    isdigit() lets "²" through to int(), and a number past the column's range breaks the
    query instead of finding nothing.
    """
    raw = (raw or "").strip()
    return int(raw) if raw.isdecimal() and len(raw) < 10 else None

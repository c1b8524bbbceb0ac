"""The second half of If-Match: make the ETag check and the write one step.

A view reads a row, compares its ETag with If-Match (conventions.require_if_match), then
writes. Two requests sent at once with the same ETag would both pass the comparison and the
later write would silently undo the earlier one. `claim` closes that window: called right
after the comparison and before any other write, it sends an UPDATE that changes nothing
but matches only while the row still holds the values the request read. It is the
transaction's first write, so on SQLite it takes the write lock (the other request waits,
then sees the new values) and on PostgreSQL it locks the row (READ COMMITTED re-checks the
WHERE once the other transaction ends). No row matched: someone changed it since; 412.

(Not a savepoint: Python's sqlite3 sends no BEGIN before SAVEPOINT, so its RELEASE would
commit at once.)
"""

from typing import Any

from sqlalchemy import inspect, update

from campaign.extensions import db
from campaign.web.api.conventions import changed_since_read


def claim(row: Any, *names: str) -> None:
    """Lock `row` for this transaction if its columns `names` (attribute names) still hold
    the values read into it; else answer 412 as a stale If-Match does."""
    mapper = inspect(row).mapper
    table = mapper.local_table
    columns = [mapper.columns[name] for name in names]
    (key,) = mapper.primary_key
    statement = (
        update(table)
        .where(key == inspect(row).identity[0])
        .where(
            *(
                column.is_not_distinct_from(getattr(row, name))
                for column, name in zip(columns, names, strict=True)
            )
        )
        # Each claimed column set to itself: nothing changes (a column with an onupdate,
        # as updated_at, keeps its value when it is one of them).
        .values({column: column for column in columns})
    )
    result = db.session.execute(statement)
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        raise changed_since_read()

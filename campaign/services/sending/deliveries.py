"""Writing the delivery ledger: new rows, the send jobs that work them, the in-doubt rule.

The launch (campaigns.py), the follow-up sweeps (followups.py), the reconciler
(batches.py) and the trash (contacts/trash.py) all write deliveries; the pieces they
share live here, below all of them, so none of them has to import another for it.
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import repeat
from operator import itemgetter
from typing import Any

from flask import current_app
from sqlalchemy import Dialect, Select, case, insert, or_

from campaign.bulk_write import as_sqlalchemy_error, bulk_path, copy_types
from campaign.extensions import db
from campaign.mail import make_message_id
from campaign.models import Campaign, Delivery, DeliveryStatus
from campaign.queue import enqueue_after_commit

SEND_JOB = "workers.jobs.send_batch"
# Launch queues at most this many send jobs at once; the reconciler tops up the rest.
MAX_JOBS_PER_LAUNCH = 500


def read_recipients(query: Select[Any]) -> list[tuple[int, str, bool]]:
    """(contact id, address, is suppressed) of every contact `query` selects, as plain
    tuples: the launch reads its audience once, all rows in one fetch.

    SQLAlchemy runs the query (its compiling, bound values, errors); the rows are fetched
    from the driver's cursor: a Row per contact cost twice the read itself (0.36 of 0.55 s
    of CPU at 100,000 on SQLite, decision 0078). The columns need no result processing:
    integers, text and the truth of an IN.
    """
    db.session.flush()  # as session.execute would: pending changes are read too
    result = db.session.connection().execute(query)
    try:
        found = result.cursor.fetchall()
    finally:
        result.close()
    return [(contact_id, email, bool(is_suppressed)) for contact_id, email, is_suppressed in found]


# Both lists below come out sorted: the rows are written in contact order, and values that
# rise row after row go into their unique indexes at the end instead of anywhere, which
# halves SQLite's cost of the insert (decision 0074). Each value is still as random as
# before; only which contact gets which says their order.


def new_message_ids(domain: str, count: int) -> list[str]:
    """`count` new Message-IDs of make_message_id's form: its time stamp, once, and 96 random
    bits each from one read of the system's random source (secrets, as make_message_id)."""
    shape = make_message_id(domain)  # checks the domain once: `<stamp.random@domain>`
    head, tail = shape[: shape.index(".") + 1], shape[shape.index("@") :]
    digits = secrets.token_bytes(12 * count).hex()
    return [
        f"{head}{random}{tail}"
        for random in sorted(digits[start : start + 24] for start in range(0, 24 * count, 24))
    ]


def new_unsubscribe_tokens(count: int) -> list[str]:
    """`count` tokens as secrets.token_urlsafe(18) makes them (144 random bits, 24 characters),
    from one read of the random source: 18 bytes are exactly 24 base64 characters."""
    text = base64.urlsafe_b64encode(secrets.token_bytes(18 * count)).decode("ascii")
    return sorted(text[start : start + 24] for start in range(0, 24 * count, 24))


def new_delivery_rows(
    campaign: Campaign, contacts: Sequence[tuple[int, str, bool]], domain: str
) -> list[dict[str, Any]]:
    """Ledger rows (step 0; a follow-up sets its own) for (contact id, address, is suppressed).

    Each row gets its Message-ID now (kept through every retry) and its unsubscribe token;
    a suppressed address gets a row too, marked suppressed, so the ledger says why.
    """
    now = datetime.now(UTC)
    queued, suppressed = DeliveryStatus.QUEUED.value, DeliveryStatus.SUPPRESSED.value
    message_ids = new_message_ids(domain, len(contacts))
    tokens = new_unsubscribe_tokens(len(contacts))
    campaign_id = campaign.id  # once: the ORM attribute's getter cost ~0.03 s a 100,000 rows
    return [
        {
            "campaign_id": campaign_id,
            "contact_id": contact_id,
            "step": 0,
            "email": email,
            "status": suppressed if is_suppressed else queued,
            "reason": "suppressed" if is_suppressed else "",
            "message_id": message_id,
            "unsubscribe_token": token,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for (contact_id, email, is_suppressed), message_id, token in zip(
            contacts, message_ids, tokens, strict=True
        )
    ]


def insert_deliveries(rows: Sequence[dict[str, Any]]) -> None:
    """Write ledger rows (all with the same keys) in the session's transaction, in bulk.

    On psycopg 3 (PostgreSQL) by binary COPY, on sqlite3 by one prepared statement run for every
    row; through any other driver by the Core's executemany. The columns a row leaves out
    get their scalar defaults (as the ORM would give them); a left-out column whose default
    is computed (a function, an SQL expression) raises ValueError: the bulk paths would not
    compute it. Values pass through the columns' own bind processing (UTCDateTime's), once
    per distinct value. A failure raises inside the transaction, which the caller rolls
    back: nothing is half-written.
    """
    if not rows:
        return
    table = Delivery.__table__
    left_out = [
        column
        for column in table.columns
        if column.name not in rows[0] and column.default is not None
    ]
    computed = [column.name for column in left_out if not column.default.is_scalar]
    if computed:
        raise ValueError(
            f"insert_deliveries: the rows must give {', '.join(computed)} (a computed default)"
        )
    defaults = {column.name: column.default.arg for column in left_out}
    connection = db.session.connection()
    dialect = connection.dialect
    # By the driver, not the database: COPY is psycopg 3's (cursor.copy), the raw prepared
    # executemany is the standard library's sqlite3.
    path = bulk_path(dialect)
    if path == "core":
        connection.execute(insert(table), [{**defaults, **row} for row in rows])
        return
    names = [*rows[0], *defaults]
    # Column by column (C-level loops), each distinct value bind-processed once (a launch's
    # rows share their times), then zipped into rows; a column without bind processing is
    # read from the rows as zip goes (no list of it: 0.15 → 0.06 s at 100,000 rows).
    by_column: list[Iterable[Any]] = []
    for name in names:
        if name in defaults:
            value = next(iter(_processed(name, dialect, [defaults[name]])))
            by_column.append(repeat(value, len(rows)))
            continue
        by_column.append(_processed(name, dialect, map(itemgetter(name), rows)))
    records = list(zip(*by_column, strict=True))
    # Names from our own table, never from input.
    columns = ", ".join(names)
    if path == "prepared":
        marks = ", ".join("?" for _ in names)
        sql = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"  # noqa: S608
    else:
        # Binary: psycopg then sends ints and times as they are instead of writing each as
        # text (0.65 → 0.10 s of CPU for 100,000 rows), and the server parses no text.
        sql = f"COPY {table.name} ({columns}) FROM STDIN (FORMAT BINARY)"
    driver: Any = connection.connection.driver_connection
    try:
        if path == "prepared":
            cursor = driver.cursor()
            try:
                cursor.executemany(sql, records)
            finally:
                cursor.close()
            return
        with driver.cursor() as cursor:
            types = copy_types(driver, table.name, names)
            with cursor.copy(sql) as copy:
                copy.set_types(types)
                for record in records:
                    copy.write_row(record)
    except dialect.loaded_dbapi.Error as error:
        raise as_sqlalchemy_error(dialect, sql, error) from error


def _processed(name: str, dialect: Dialect, values: Iterable[Any]) -> Iterable[Any]:
    """`values` of column `name` as the database driver takes them (each distinct one once);
    `values` themselves, unread, when the column's type has no bind processing."""
    process = Delivery.__table__.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return values
    values = list(values)
    done = {value: None if value is None else process(value) for value in set(values)}
    return list(map(done.__getitem__, values))


def enqueue_send_jobs(campaign_id: int, deliveries: int) -> int:
    """Queue enough send jobs (after commit) to cover `deliveries` rows; return how many."""
    batch = max(1, int(current_app.config["SEND_BATCH_SIZE"]))
    jobs = min(MAX_JOBS_PER_LAUNCH, math.ceil(deliveries / batch))
    timeout = int(current_app.config["SEND_LEASE_SECONDS"])
    for _ in range(jobs):
        enqueue_after_commit(db.session(), SEND_JOB, campaign_id, job_timeout=timeout)
    return jobs


def may_have_gone() -> Any:
    """SQL: a try of this row may have reached the server (its outcome was never known)."""
    return or_(Delivery.possible_duplicates > 0, Delivery.status == DeliveryStatus.IN_DOUBT.value)


def unless_gone(status: str) -> Any:
    """SQL for a row's new status: `status`, but in_doubt for a row that may have gone.

    Whatever happens to a row later (cancelled, suppressed, refused, given up, handed back),
    "possibly delivered" is never written over: the ledger must not say less than the truth.
    """
    return case((may_have_gone(), DeliveryStatus.IN_DOUBT.value), else_=status)

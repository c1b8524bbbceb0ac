"""A claim reads the campaign's open rows only, never its sent ones nor the whole table, so a
letter costs the same in a 100,000-letter campaign as in a small one (decision 0077); and it
still claims the right rows: not a trashed contact's, but one whose contact was erased."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from campaign.extensions import db
from campaign.models import Contact, DeliveryStatus
from campaign.services.contacts.contacts import delete_contact
from campaign.services.sending import batches as sending
from tests.services.test_sending import _launch, _rows, app_overrides  # noqa: F401


def test_a_claim_finds_its_rows_by_index_and_skips_only_trashed_contacts(app: Any) -> None:
    campaign, rows = _launch(4)
    sent, trashed, erased, plain = rows
    sent.status, sent.next_attempt_at = DeliveryStatus.SENT.value, None
    erased.contact_id = None  # its contact was erased for good: the letter still goes
    contact = db.session.get(Contact, trashed.contact_id)
    assert contact is not None
    delete_contact(contact)
    db.session.commit()

    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        claimed = sending.claim_deliveries(campaign.id, "claim-1", 10)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    db.session.commit()

    assert claimed == [erased.id, plain.id]
    after = {row.id: (row.status, row.reason) for row in _rows(campaign.id)}
    assert after[trashed.id] == (DeliveryStatus.CANCELLED.value, "contact_deleted")
    assert after[sent.id][0] == DeliveryStatus.SENT.value

    if db.engine.dialect.name != "sqlite":
        return  # the query plans checked are SQLite's
    connection = db.session.connection()
    plans = [
        str(line[3])
        for statement, parameters in statements
        if "deliveries" in statement
        for line in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    ]
    on_deliveries = [plan for plan in plans if " deliveries " in f"{plan} "]
    assert on_deliveries
    # No full scan, and no walk over every row of the campaign (campaign_id alone).
    assert [p for p in on_deliveries if p.startswith("SCAN") or p.endswith("(campaign_id=?)")] == []

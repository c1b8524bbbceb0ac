"""A bulk edit stopped (Ctrl-C, a deploy) or killed is taken up again and finished once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import BulkEditStatus, Contact, ContactBulkEdit
from campaign.queue import get_queue
from campaign.services.contacts import bulk_edit as contact_bulk_edit
from campaign.services.contacts.contacts import create_contact
from workers import context, jobs


def _edit(count: int) -> int:
    ids = []
    for n in range(count):
        ids.append(create_contact({"email": f"c{n}@example.org", "family_name": "Doe"}).id)
    edit = contact_bulk_edit.create_bulk_edit({"add_tags": ["summit"]}, ids, "5 selected", None)
    db.session.commit()
    return int(edit.id)


def _bulk_jobs() -> list[list[int]]:
    return [
        list(j.args) for j in get_queue().get_jobs() if j.func_name.endswith("contact_bulk_edit")
    ]


def test_a_stop_between_batches_requeues_the_edit_and_a_rerun_finishes_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contact_bulk_edit, "BATCH", 2)
    edit_id = _edit(5)
    get_queue().empty()
    context.set_app(app)
    monkeypatch.setattr(jobs, "stop_requested", lambda: True)  # Ctrl-C during the first batch
    jobs.apply_contact_bulk_edit(edit_id)
    db.session.expire_all()
    edit = db.session.get(ContactBulkEdit, edit_id)
    assert (edit.status, edit.done) == (BulkEditStatus.QUEUED.value, 2)  # not "running" forever
    assert _bulk_jobs() == [[edit_id]]  # queued again for the next worker

    monkeypatch.setattr(jobs, "stop_requested", lambda: False)
    get_queue().empty()
    jobs.apply_contact_bulk_edit(edit_id)
    jobs.apply_contact_bulk_edit(edit_id)  # a second delivery of the job does nothing
    db.session.expire_all()
    edit = db.session.get(ContactBulkEdit, edit_id)
    assert (edit.status, edit.done, edit.total) == (BulkEditStatus.DONE.value, 5, 5)
    assert {c.tags for c in db.session.scalars(select(Contact))} == {"summit"}
    assert _bulk_jobs() == []


def test_a_killed_edit_is_taken_back_by_the_reconciler(app: Flask) -> None:
    stale_id = _edit(1)
    for edit in db.session.scalars(select(ContactBulkEdit)):
        edit.status = BulkEditStatus.RUNNING.value  # its worker was killed (or is still busy)
    stale = db.session.get(ContactBulkEdit, stale_id)
    stale.updated_at = datetime.now(UTC) - timedelta(minutes=5)
    fresh = contact_bulk_edit.create_bulk_edit(
        {"add_tags": ["x"]}, [stale.contact_ids[0]], "one", None
    )
    fresh.status = BulkEditStatus.RUNNING.value
    fresh.updated_at = datetime.now(UTC)
    db.session.commit()
    fresh_id = fresh.id
    get_queue().empty()
    context.set_app(app)
    jobs.reconcile()
    db.session.expire_all()
    assert db.session.get(ContactBulkEdit, stale_id).status == BulkEditStatus.QUEUED.value
    assert db.session.get(ContactBulkEdit, fresh_id).status == BulkEditStatus.RUNNING.value
    assert _bulk_jobs() == [[stale_id]]
    jobs.apply_contact_bulk_edit(stale_id)
    db.session.expire_all()
    assert db.session.get(ContactBulkEdit, stale_id).status == BulkEditStatus.DONE.value

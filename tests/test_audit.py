"""The audit log only grows: entries cannot be edited or deleted through the application."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent
from campaign.models.audit import AuditLogIsAppendOnly
from campaign.services.accounts.audit import record_event


def test_audit_events_cannot_be_changed_or_deleted(app: Flask) -> None:
    event = record_event("contacts.export", detail={"count": 3})
    db.session.commit()
    event.action = "nothing.happened"
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.delete(db.session.get(AuditEvent, event.id))
        db.session.flush()
    db.session.rollback()
    stored = db.session.scalars(select(AuditEvent.action)).all()
    assert stored == ["contacts.export"]

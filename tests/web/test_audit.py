"""The audit log page: admins only, newest first, filters and pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, User
from campaign.models._types import utcnow
from campaign.services.accounts.audit import record_event
from tests.pages import html_of

Login = Callable[[Role], User]


def test_only_admins_see_the_audit_log(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.SENDER)
    assert client.get("/audit/").status_code == 403


def test_newest_first_with_pages(client: FlaskClient, login: Login, app: Flask) -> None:
    for i in range(60):
        record_event("test.event", target_type="thing", target_id=i)
    db.session.commit()
    login(Role.ADMIN)
    first = html_of(client.get("/audit/?action=test.event"))
    targets = [int(t) for t in re.findall(r"thing (\d+)", first)]
    assert targets == list(range(59, 9, -1))
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older is not None
    second = html_of(client.get(older.group(1).replace("&amp;", "&")))
    assert [int(t) for t in re.findall(r"thing (\d+)", second)] == list(range(9, -1, -1))
    assert 'rel="next"' not in second


def test_filters_by_action_actor_and_date(client: FlaskClient, login: Login, app: Flask) -> None:
    admin = login(Role.ADMIN)
    record_event("contact.delete", target_type="contact", target_id=7, actor=admin)
    old = record_event("contact.delete", target_type="contact", target_id=8)
    db.session.commit()
    # Only for this test: move one event into the past (the model refuses updates).
    db.session.execute(
        AuditEvent.__table__.update()
        .where(AuditEvent.id == old.id)
        .values(at=utcnow() - timedelta(days=10))
    )
    db.session.commit()
    by_actor = html_of(client.get("/audit/?action=contact.delete&actor=ADMIN@"))
    assert "contact #7" in by_actor and "contact #8" not in by_actor
    today = utcnow().date().isoformat()
    recent = html_of(client.get(f"/audit/?action=contact.delete&since={today}"))
    assert "contact #7" in recent and "contact #8" not in recent
    older = html_of(
        client.get(f"/audit/?action=contact.delete&until={(utcnow() - timedelta(days=5)).date()}")
    )
    assert "contact #8" in older and "contact #7" not in older
    assert "login" in html_of(client.get("/audit/?action=login"))
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "login")) is not None


def test_invisible_characters_typed_at_sign_in_stay_visible_in_the_audit_log(
    client: FlaskClient, login: Any
) -> None:
    client.post("/login", data={"email": "x@\u202eevil.example\u2028", "password": "nope"})
    login(Role.ADMIN)
    page = client.get("/audit/").get_data(as_text=True)
    assert "\u202e" not in page and "\u2028" not in page
    assert "\\u202e" in page

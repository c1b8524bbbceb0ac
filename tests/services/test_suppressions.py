"""The suppression list: one entry per address however it is spelt, every change audited."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Suppression
from campaign.services.contacts import suppressions
from campaign.services.contacts.suppressions import SuppressionError


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_suppressing_is_idempotent_across_spellings(app: Flask) -> None:
    first = suppressions.suppress_address("Anna.K@Example.ORG", "unsubscribed", campaign_id=None)
    again = suppressions.suppress_address(" anna.k@example.org ", "manual", note="phone call")
    assert again.id == first.id and again.reason == "unsubscribed"
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 1
    assert suppressions.is_suppressed("ANNA.K@example.org")
    assert not suppressions.is_suppressed("boris@example.org")
    assert not suppressions.is_suppressed("not an address")
    events = _events("suppression.add")
    assert len(events) == 1
    # The audit log keeps enough to recognise the address, not the address itself.
    assert events[0].detail == {
        "email": "An***@example.org",
        "reason": "unsubscribed",
        "campaign_id": None,
    }


def test_bad_input_is_refused_with_the_field_named(app: Flask) -> None:
    with pytest.raises(SuppressionError, match=r"Email: .*not a valid email address") as caught:
        suppressions.suppress_address("anna@", "manual")
    assert caught.value.field == "email"
    with pytest.raises(SuppressionError, match="Email: an email address is required"):
        suppressions.suppress_address("  ", "manual")
    with pytest.raises(SuppressionError, match="Reason: 'angry'") as caught:
        suppressions.suppress_address("anna@example.org", "angry")
    assert caught.value.field == "reason"
    with pytest.raises(SuppressionError, match="Note: at most"):
        suppressions.suppress_address("anna@example.org", "manual", note="x" * 3000)
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_removal_is_audited_and_lets_the_address_be_written_to(app: Flask) -> None:
    entry = suppressions.suppress_address("boris@example.org", "hard_bounce")
    suppressions.remove_suppression(entry)
    assert not suppressions.is_suppressed("boris@example.org")
    (event,) = _events("suppression.remove")
    assert event.detail["reason"] == "hard_bounce"
    assert "boris@example.org" not in str(event.detail)


def test_search_filters_counts_and_pages(app: Flask) -> None:
    for n in range(7):
        suppressions.suppress_address(f"person{n}@example.org", "unsubscribed")
    suppressions.suppress_address("press_office@news.example", "manual", note="asked by phone")
    suppressions.suppress_address("gone@old.example", "hard_bounce")
    counts = suppressions.counts_by_reason()
    assert counts == {
        "unsubscribed": 7,
        "hard_bounce": 1,
        "complaint": 0,
        "manual": 1,
        "erased": 0,
    }

    by_note = suppressions.search_suppressions("PHONE")
    assert [e.email for e in by_note.items] == ["press_office@news.example"]
    # "_" is a literal underscore, not a one-character wildcard.
    assert suppressions.search_suppressions("s_o").total == 1
    assert suppressions.search_suppressions("", "hard_bounce").total == 1
    pages = [suppressions.search_suppressions("person", per_page=3, page=n) for n in (1, 2, 3, 9)]
    assert [p.total for p in pages] == [7, 7, 7, 7]
    assert [len(p.items) for p in pages] == [3, 3, 1, 1]
    assert pages[3].page == 3  # a page past the end shows the last one
    seen = {e.email for p in pages[:3] for e in p.items}
    assert len(seen) == 7

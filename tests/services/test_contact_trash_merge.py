"""The contacts' trash and merging: who sees a trashed contact, what follows a merge."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Contact,
    Delivery,
    DeliveryStatus,
    Suppression,
    list_memberships,
)
from campaign.scheduling import tick
from campaign.services.contacts import lists, segments
from campaign.services.contacts import merge as contact_merge
from campaign.services.contacts import trash as contact_trash
from campaign.services.contacts.contacts import count_contacts, delete_contact
from campaign.services.contacts.exporting import export_contacts
from campaign.services.contacts.search import ContactFilters, filtered_query
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from tests.factories import ContactFactory, StatementFactory

BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\nAnna Example\n"


def _emails(query: Any) -> list[str]:
    return sorted(c.email for c in db.session.scalars(query))


def _everywhere(contact_list: Any) -> dict[str, Any]:
    spec = AudienceSpec((f"list:{contact_list.id}",))
    exported = io.BytesIO()
    export_contacts(
        filtered_query(ContactFilters()).order_by(Contact.id), "csv", exported, description="t"
    )
    return {
        "list count": lists.member_count(contact_list),
        "list counts": lists.member_counts().get(contact_list.id, 0),
        "audience": _emails(campaigns.audience_query(spec)),
        "audience count": campaigns.count_audience(spec).total,
        "search": _emails(filtered_query(ContactFilters.from_args({"q": "doe"}))),
        "segment": segments.count_matching({"field": "tag", "op": "is", "value": "press"}),
        "total": count_contacts(),
        "export": exported.getvalue().decode("utf-8-sig").count("@example.org"),
    }


def test_a_trashed_contact_is_nowhere_and_comes_back_everywhere_once_restored(app: Flask) -> None:
    press = lists.create_list("Press")
    anna = ContactFactory(email="anna@example.org", tags="press")
    bob = ContactFactory(email="bob@example.org", tags="press")
    lists.add_contacts(press, [anna.id, bob.id])
    db.session.commit()
    before = _everywhere(press)
    assert before["audience"] == ["anna@example.org", "bob@example.org"]

    delete_contact(bob)
    db.session.commit()
    trashed = _everywhere(press)
    assert trashed == {
        "list count": 1,
        "list counts": 1,
        "audience": ["anna@example.org"],
        "audience count": 1,
        "search": ["anna@example.org"],
        "segment": 1,
        "total": 1,
        "export": 1,
    }
    # A launch writes no letter to the trashed contact.
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    assert campaigns.launch_campaign(campaign) is True
    db.session.commit()
    recipients = db.session.scalars(
        select(Delivery.email).where(Delivery.campaign_id == campaign.id)
    )
    assert list(recipients) == ["anna@example.org"]

    contact_trash.restore_contact(db.session.get(Contact, bob.id))
    db.session.commit()
    assert _everywhere(press) == before


def test_trash_cancels_letters_not_yet_sent_and_keeps_the_suppression(app: Flask) -> None:
    press = lists.create_list("Press")
    anna = ContactFactory(email="anna@example.org")
    lists.add_contacts(press, [anna.id])
    db.session.add(
        Suppression(email_key="anna@example.org", email="anna@example.org", reason="manual")
    )
    bob = ContactFactory(email="bob@example.org")
    lists.add_contacts(press, [bob.id])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{press.id}",))
    )
    campaigns.launch_campaign(campaign)
    db.session.commit()
    delete_contact(bob)
    delete_contact(db.session.get(Contact, anna.id))
    db.session.commit()
    row = db.session.scalar(select(Delivery).where(Delivery.email == "bob@example.org"))
    assert (row.status, row.reason) == (DeliveryStatus.CANCELLED.value, "contact_deleted")
    assert db.session.scalar(
        select(Suppression.email).where(Suppression.email_key == "anna@example.org")
    )


def test_restoring_a_contact_whose_address_was_reused_is_refused_naming_the_other(
    app: Flask,
) -> None:
    old = ContactFactory(email="press@example.org", given_name="Old")
    delete_contact(old)
    db.session.commit()
    new = ContactFactory(email="Press@example.org", given_name="New")
    db.session.commit()
    with pytest.raises(contact_trash.TrashError) as refused:
        contact_trash.restore_contact(db.session.get(Contact, old.id))
    db.session.rollback()
    assert f"New Doe (#{new.id})" in refused.value.message and "Merge" in refused.value.message
    assert refused.value.other_id == new.id
    old = db.session.get(Contact, old.id)
    assert old.deleted_at is not None
    # The offered way out: merge the trashed record into the live one; it stays in the trash.
    press = lists.create_list("Press")
    lists.add_contacts(press, [new.id])
    db.session.execute(
        list_memberships.insert().values(list_id=lists.create_list("Old list").id,
                                               contact_id=old.id)
    )  # fmt: skip
    contact_merge.merge_contacts(new, old, {"given_name": "other"})
    db.session.commit()
    assert [lst.name for lst in lists.lists_of(new)] == ["Old list", "Press"]
    assert (new.given_name, new.email) == ("Old", "Press@example.org")
    assert db.session.get(Contact, old.id).deleted_at is not None


def test_the_scheduler_purges_after_30_days_and_says_how_many(app: Flask) -> None:
    now = datetime.now(UTC)
    old = ContactFactory(email="old@example.org")
    recent = ContactFactory(email="recent@example.org")
    delete_contact(old)
    delete_contact(recent)
    old.deleted_at = now - timedelta(days=31)
    recent.deleted_at = now - timedelta(days=29)
    db.session.commit()
    old_id, recent_id = old.id, recent.id
    tick.tick(now, commit=db.session.commit)
    db.session.expunge_all()
    assert db.session.get(Contact, old_id) is None
    assert db.session.get(Contact, recent_id) is not None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.purge"))
    assert event is not None and event.detail["count"] == 1


def test_merge_takes_chosen_fields_and_moves_lists_letters_and_tags(app: Flask) -> None:
    press, diplomats = lists.create_list("Press"), lists.create_list("Diplomats")
    keep = ContactFactory(
        email="keep@example.org", given_name="Anna", organisation="", tags="press"
    )
    other = ContactFactory(
        email="other@example.org", given_name="Anne", organisation="Embassy", tags="diplomat"
    )
    lists.add_contacts(press, [keep.id])
    lists.add_contacts(diplomats, [other.id])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY), audience=AudienceSpec((f"list:{diplomats.id}",))
    )
    campaigns.launch_campaign(campaign)
    campaign.status = "finished"
    db.session.commit()
    defaults = contact_merge.default_choices(keep, other)
    assert defaults["organisation"] == "other"  # the non-empty value
    choices = {**defaults, "given_name": "other", "email": "survivor"}
    keep_id, other_id, campaign_id = keep.id, other.id, campaign.id
    contact_merge.merge_contacts(keep, other, choices)
    db.session.commit()
    db.session.expunge_all()
    survivor = db.session.get(Contact, keep_id)
    assert (survivor.given_name, survivor.organisation, survivor.email) == (
        "Anne",
        "Embassy",
        "keep@example.org",
    )
    assert survivor.tag_list == ["press", "diplomat"]
    assert [lst.name for lst in lists.lists_of(survivor)] == ["Diplomats", "Press"]
    letter = db.session.scalar(select(Delivery).where(Delivery.campaign_id == campaign_id))
    assert letter.contact_id == survivor.id
    assert db.session.get(Contact, other_id).deleted_at is not None
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.merge"))
    details = [e.detail for e in events]
    assert {d["survivor_id"] for d in details} == {keep_id}
    assert details[0]["merged_id"] == other_id and "given_name" in details[0]["fields_from_merged"]


def test_merge_refusals_and_the_suppression_that_survives(app: Flask) -> None:
    anna = ContactFactory(email="anna@example.org")
    with pytest.raises(contact_merge.MergeError, match="cannot be merged with itself"):
        contact_merge.check_merge(anna, anna)
    press = lists.create_list("Press")
    busy = ContactFactory(email="busy@example.org", given_name="Busy")
    lists.add_contacts(press, [busy.id])
    campaign = campaigns.create_campaign(
        StatementFactory(body=BODY),
        name="Summit letter",
        audience=AudienceSpec((f"list:{press.id}",)),
    )
    campaigns.launch_campaign(campaign)
    db.session.commit()
    with pytest.raises(contact_merge.MergeError, match="Summit letter") as refused:
        contact_merge.merge_contacts(anna, busy, {})
    assert "Busy Doe" in refused.value.message
    db.session.rollback()
    assert db.session.get(Contact, busy.id).deleted_at is None

    db.session.add(
        Suppression(email_key="gone@example.org", email="gone@example.org", reason="unsubscribed")
    )
    gone = ContactFactory(email="gone@example.org")
    db.session.commit()
    assert contact_merge.check_merge(anna, gone).suppressed == ["gone@example.org"]
    contact_merge.merge_contacts(anna, gone, {"email": "survivor"})
    db.session.commit()
    suppressed = set(db.session.scalars(select(Suppression.email_key)))
    assert {"anna@example.org", "gone@example.org"} <= suppressed


def test_an_import_row_with_a_trashed_address_makes_a_new_live_contact(app: Flask) -> None:
    from campaign.services.contacts.importing import _existing_ids

    old = ContactFactory(email="press@example.org")
    delete_contact(old)
    db.session.commit()
    assert _existing_ids(["press@example.org"]) == {}

"""Contact tools' pages: trash (restore, delete now), merge, bulk edit through its RQ job."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, ContactBulkEdit, Role, User
from campaign.queue import get_queue
from campaign.services.contacts import bulk_edit as contact_bulk_edit
from campaign.services.contacts import lists
from tests.factories import ContactFactory
from tests.pages import html_of
from workers import context, jobs

Login = Callable[[Role], User]


def test_delete_goes_to_the_trash_then_restore_and_delete_now(
    client: FlaskClient, login: Login
) -> None:
    anna = ContactFactory(commit=True, email="anna@example.org", given_name="Anna")
    anna_id = anna.id
    login(Role.EDITOR)
    assert "trash for 30 days" in html_of(client.get(f"/contacts/{anna_id}/delete"))
    moved = html_of(client.post(f"/contacts/{anna_id}/delete", follow_redirects=True))
    assert "Anna Doe is in the trash for 30 days" in moved
    listing = client.get("/contacts/")
    assert listing.status_code == 200 and "No contacts match." in html_of(listing)
    assert "anna@example.org" not in html_of(listing)
    trash = html_of(client.get("/contacts/trash"))
    assert "Anna Doe" in trash and ">30<" in trash
    assert "Delete now" not in trash  # administrators only
    assert client.post(f"/contacts/{anna_id}/purge").status_code == 403

    restored = client.post(f"/contacts/{anna_id}/restore", follow_redirects=True)
    assert "Anna Doe is restored." in html_of(restored)
    assert "anna@example.org" in html_of(client.get("/contacts/"))

    client.post(f"/contacts/{anna_id}/delete")
    client.post("/logout")
    login(Role.ADMIN)
    assert "Delete now" in html_of(client.get("/contacts/trash"))
    client.post(f"/contacts/{anna_id}/purge")
    db.session.expunge_all()
    assert db.session.get(Contact, anna_id) is None


def test_a_refused_restore_names_the_contact_that_took_the_address_and_offers_a_merge(
    client: FlaskClient, login: Login
) -> None:
    login(Role.EDITOR)
    old = ContactFactory(commit=True, email="press@example.org", given_name="Old")
    old_id = old.id
    client.post(f"/contacts/{old_id}/delete")
    new = ContactFactory(commit=True, email="press@example.org", given_name="New")
    page = html_of(client.post(f"/contacts/{old_id}/restore", follow_redirects=True))
    assert f"now belongs to New Doe (#{new.id})" in page
    assert f"/contacts/{new.id}/merge/{old_id}" in page
    db.session.expunge_all()
    assert db.session.get(Contact, old_id).deleted_at is not None


def test_merge_page_chooses_each_field_and_refuses_itself(
    client: FlaskClient, login: Login
) -> None:
    login(Role.EDITOR)
    keep = ContactFactory(
        commit=True, email="keep@example.org", given_name="Anna", organisation="Embassy"
    )
    other = ContactFactory(
        commit=True, email="other@example.org", given_name="Anne", organisation=""
    )
    keep_id, other_id = keep.id, other.id
    itself = client.get(f"/contacts/{keep_id}/merge/{keep_id}", follow_redirects=True)
    assert "cannot be merged with itself" in html_of(itself)
    found = html_of(client.get(f"/contacts/{keep_id}/merge?q=anne"))
    assert f"/contacts/{keep_id}/merge/{other_id}" in found
    page = html_of(client.get(f"/contacts/{keep_id}/merge/{other_id}"))
    assert 'name="given_name" value="other"' in page
    done = client.post(
        f"/contacts/{keep_id}/merge/{other_id}",
        data={"given_name": "other", "organisation": "survivor", "email": "survivor"},
        follow_redirects=True,
    )
    assert "merged into Anne Doe" in html_of(done)
    db.session.expunge_all()
    survivor = db.session.get(Contact, keep_id)
    assert (survivor.given_name, survivor.organisation) == ("Anne", "Embassy")
    assert db.session.get(Contact, other_id).deleted_at is not None


def test_bulk_edit_over_a_filter_goes_through_the_job_with_progress(
    app: Flask, client: FlaskClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    press = lists.create_list("Press")
    db.session.commit()
    press_id = press.id
    ids = [
        ContactFactory(commit=True, email=f"p{i}@example.org", tags="press").id for i in range(7)
    ]
    ContactFactory(commit=True, email="other@example.org", tags="other")
    login(Role.VIEWER)
    assert client.post("/contacts/bulk-edit", data={"scope": "all"}).status_code == 403
    client.post("/logout")
    login(Role.EDITOR)
    response = client.post("/contacts/bulk-edit", data={"scope": "all", "tag": "press"})
    form = html_of(response)
    assert "7 contacts selected" in form
    changes = {
        "scope": "all",
        "tag": "press",
        "add_tags": "summit",
        "remove_tags": "press",
        "set_role_type": "journalist",
        "set_languages": "ru FR",
        "set_risk_level": "low",
        "add_list": str(press_id),
    }
    bad = client.post("/contacts/bulk-edit/review", data={**changes, "set_languages": "??"})
    assert bad.status_code == 422 and "is not a language tag" in html_of(bad)
    review = html_of(client.post("/contacts/bulk-edit/review", data=changes))
    assert "This changes 7 contacts" in review
    assert "Set the languages to ru fr" in review and "Add to the list “Press”" in review
    assert db.session.scalar(select(func.count(ContactBulkEdit.id))) == 0

    queue = get_queue()
    queue.empty()
    monkeypatch.setattr(contact_bulk_edit, "BATCH", 3)  # several batches, each committed
    # The page was shown with 7; an eighth press contact arrived since: asked again.
    late = ContactFactory(commit=True, email="late@example.org", tags="press")
    again = client.post("/contacts/bulk-edit/confirm", data={**changes, "count": "7"})
    assert "changed since you saw it (7 contacts then)" in html_of(again)
    assert "This changes 8 contacts" in html_of(again)
    assert db.session.scalar(select(func.count(ContactBulkEdit.id))) == 0
    ids.append(late.id)
    confirmed = client.post("/contacts/bulk-edit/confirm", data={**changes, "count": "8"})
    match = re.search(r"/contacts/bulk-edits/(\d+)$", confirmed.headers["Location"])
    assert match
    edit_id = int(match.group(1))
    queued = [j.args for j in queue.get_jobs() if j.func_name.endswith("apply_contact_bulk_edit")]
    assert queued == [[edit_id]]
    waiting = html_of(client.get(f"/contacts/bulk-edits/{edit_id}"))
    assert "<progress" in waiting and "bulk-edit-progress.js" in waiting
    assert client.get(f"/contacts/bulk-edits/{edit_id}/progress").get_json()["is_done"] is False

    context.set_app(app)
    jobs.apply_contact_bulk_edit(edit_id)
    state = client.get(f"/contacts/bulk-edits/{edit_id}/progress").get_json()
    assert state["is_done"] and (state["done"], state["total"], state["percent"]) == (8, 8, 100)
    db.session.expunge_all()
    changed = db.session.scalars(select(Contact).where(Contact.id.in_(ids))).all()
    assert {(c.tags, c.role_type, c.languages, c.risk_level) for c in changed} == {
        ("summit", "journalist", "ru fr", "low")
    }
    assert lists.member_count(db.session.get(type(press), press_id)) == 8
    untouched = db.session.scalar(select(Contact).where(Contact.email == "other@example.org"))
    assert untouched.tags == "other"
    audits = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "contact.bulk_edit")
    ).all()
    assert len(audits) == 1 and audits[0].detail["count"] == 8

"""Contact tools after review: words not codes, bad input refused in words, no dead ends."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import (
    Campaign,
    Contact,
    ContactBulkEdit,
    Role,
    Suppression,
    SuppressionReason,
    User,
)
from campaign.services.contacts import lists
from campaign.services.contacts import merge as contact_merge
from campaign.services.contacts import trash as contact_trash
from campaign.services.contacts.contacts import delete_contact
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.factories import ContactFactory
from tests.pages import html_of, visible_text

Login = Callable[[Role], User]
BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\nAnna Example\n"


def test_the_bulk_confirmation_names_the_filters_in_words(
    client: FlaskClient, login: Login
) -> None:
    press = lists.create_list("Press desk")
    db.session.commit()
    anna = ContactFactory(commit=True, email="anna@example.org", role_type="journalist")
    lists.add_contacts(press, [anna.id])
    db.session.commit()
    login(Role.EDITOR)
    form = {"scope": "all", "q": "doe", "role_type": "journalist", "list": str(press.id)}
    review = html_of(client.post("/contacts/bulk-edit/review", data={**form, "add_tags": "x"}))
    assert "Role type: Journalist" in review and "List: “Press desk”" in review
    said = re.search(r'<p id="bulk-count">(.*?)</p>', review, re.S)
    assert said and "role_type" not in said.group(1) and "list=" not in said.group(1)


def test_a_list_number_past_any_row_is_refused_in_words(client: FlaskClient, login: Login) -> None:
    ContactFactory(commit=True, email="anna@example.org")
    login(Role.EDITOR)
    for number in ("99999999999999999999", "²"):
        response = client.post(
            "/contacts/bulk-edit/review", data={"scope": "all", "add_list": number}
        )
        assert response.status_code == 422
        assert "That list no longer exists" in html_of(response)


def test_a_double_submitted_confirmation_makes_one_edit(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    ContactFactory(commit=True, email="anna@example.org", tags="press")
    login(Role.EDITOR)
    changes = {"scope": "all", "tag": "press", "add_tags": "summit"}
    review = html_of(client.post("/contacts/bulk-edit/review", data=changes))
    token = re.search(r'name="token" value="([^"]+)"', review)
    assert token
    sent = {**changes, "count": "1", "token": token.group(1)}
    first = client.post("/contacts/bulk-edit/confirm", data=sent)
    second = client.post("/contacts/bulk-edit/confirm", data=sent)
    assert first.headers["Location"] == second.headers["Location"]
    assert db.session.scalar(select(func.count(ContactBulkEdit.id))) == 1


def test_a_failed_bulk_edit_says_so_in_words_not_the_exception(
    client: FlaskClient, login: Login
) -> None:
    anna = ContactFactory(commit=True, email="anna@example.org")
    edit = ContactBulkEdit(
        changes={"add_tags": ["x"]},
        contact_ids=[anna.id],
        selection_label="1",
        status="failed",
        total=1,
        done=0,
        error="OperationalError: (psycopg.OperationalError) server closed the connection",
    )
    db.session.add(edit)
    db.session.commit()
    login(Role.EDITOR)
    page = html_of(client.get(f"/contacts/bulk-edits/{edit.id}"))
    assert "OperationalError" not in page
    assert "stopped on an error" in page and "0 of 1 contact changed" in page


def test_a_trashed_contact_cannot_be_edited_or_put_on_a_list(
    client: FlaskClient, login: Login
) -> None:
    press = lists.create_list("Press")
    anna = ContactFactory(commit=True, email="anna@example.org", given_name="Anna")
    delete_contact(anna)
    db.session.commit()
    login(Role.EDITOR)
    response = client.get(f"/contacts/{anna.id}")
    assert response.status_code == 200
    page = html_of(response)
    assert f"<h1>{anna.display_name}</h1>" in page
    assert f"/contacts/{anna.id}/lists" not in page and f"/contacts/{anna.id}/edit" not in page
    refused = client.get(f"/contacts/{anna.id}/edit", follow_redirects=True)
    assert "Anna Doe is in the trash: restore it before changing it." in html_of(refused)
    added = client.post(
        f"/contacts/{anna.id}/lists", data={"list_id": str(press.id)}, follow_redirects=True
    )
    assert "restore it before changing it" in html_of(added) and "Added to" not in html_of(added)


def test_the_merge_page_from_the_trash_offers_no_swap(client: FlaskClient, login: Login) -> None:
    old = ContactFactory(commit=True, email="press@example.org", given_name="Old")
    old_id = old.id
    delete_contact(old)
    db.session.commit()
    new = ContactFactory(commit=True, email="press@example.org", given_name="New")
    login(Role.EDITOR)
    response = client.get(f"/contacts/{new.id}/merge/{old_id}")
    assert response.status_code == 200
    page = html_of(response)
    assert "<h1>Merge two contacts</h1>" in page
    assert "Keep the other one instead" not in page
    live = ContactFactory(commit=True, email="other@example.org")
    assert "Keep the other one instead" in html_of(
        client.get(f"/contacts/{new.id}/merge/{live.id}")
    )


def test_a_merge_refused_for_a_paused_campaign_says_paused(app: Flask) -> None:
    press = lists.create_list("Press")
    anna, bob = (
        ContactFactory(commit=True, email="anna@example.org"),
        ContactFactory(commit=True, email="bob@example.org"),
    )
    lists.add_contacts(press, [anna.id])
    statement = statements.create_statement("J", language="en", subject="S", body=BODY)
    campaign = campaigns.create_campaign(
        statement, audience=AudienceSpec((f"list:{press.id}",)), name="Spring"
    )
    campaigns.launch_campaign(campaign)
    db.session.commit()
    campaigns.pause_campaign(db.session.get(Campaign, campaign.id))  # type: ignore[arg-type]
    db.session.commit()
    with pytest.raises(contact_merge.MergeError) as refused:
        contact_merge.check_merge(anna, bob)
    assert "(Paused)" in refused.value.message and "sending now" not in refused.value.message


def test_the_suppression_kept_on_a_merge_is_read_in_the_readers_language(
    client: FlaskClient, login: Login
) -> None:
    anna, other = (
        ContactFactory(commit=True, email="anna@example.org"),
        ContactFactory(commit=True, email="anna.old@example.org"),
    )
    suppress_address("anna.old@example.org", SuppressionReason.UNSUBSCRIBED)
    db.session.commit()
    contact_merge.merge_contacts(anna, other, {})
    db.session.commit()
    note = db.session.scalar(
        select(Suppression.note).where(Suppression.email_key == "anna@example.org")
    )
    assert note and note.startswith('{"msg"')  # its message, not English words
    admin = login(Role.ADMIN)
    page = html_of(client.get("/suppressions/"))
    assert f"kept on merging contacts #{anna.id} and #{other.id}" in page
    # Not the stored JSON; searched in what a reader sees, as the page's random CSRF token may
    # hold the letters "msg".
    assert "msg" not in visible_text(page)
    admin.language = "fr"
    db.session.commit()
    page = html_of(client.get("/suppressions/"))
    assert f"conservée à la fusion des contacts n° {anna.id} et n° {other.id}" in page


def test_two_trashed_contacts_sharing_an_address_both_point_to_its_holder(
    client: FlaskClient, login: Login
) -> None:
    first = ContactFactory(commit=True, email="press@example.org", given_name="First")
    delete_contact(first)
    db.session.commit()
    second = ContactFactory(commit=True, email="press@example.org", given_name="Second")
    delete_contact(second)
    db.session.commit()
    holder = ContactFactory(commit=True, email="press@example.org", given_name="Holder")
    login(Role.EDITOR)
    page = html_of(client.get("/contacts/trash"))
    assert page.count(f"/contacts/{holder.id}/merge/") == 2


def test_the_trash_is_paged_past_its_first_page(
    client: FlaskClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contact_trash, "TRASH_PAGE", 2)
    for n in range(5):
        delete_contact(ContactFactory(commit=True, email=f"p{n}@example.org"))
    db.session.commit()
    login(Role.EDITOR)
    first = html_of(client.get("/contacts/trash"))
    assert first.count('id="trashed-') == 2 and "5 items" in first
    last = html_of(client.get("/contacts/trash?page=3"))
    assert last.count('id="trashed-') == 1


def test_a_restore_racing_a_new_contact_is_refused_in_words(
    client: FlaskClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = ContactFactory(commit=True, email="press@example.org", given_name="Old")
    old_id = old.id
    delete_contact(old)
    db.session.commit()
    ContactFactory(commit=True, email="press@example.org", given_name="New")
    # The new contact arrives between the restore's check and its write.
    monkeypatch.setattr(contact_trash, "address_holder", lambda contact: None)
    login(Role.EDITOR)
    page = client.post(f"/contacts/{old_id}/restore", follow_redirects=True)
    assert page.status_code == 200
    assert "another contact took its address press@example.org" in html_of(page)
    db.session.expunge_all()
    assert db.session.get(Contact, old_id).deleted_at is not None  # type: ignore[union-attr]


def test_the_editors_sample_readers_leave_out_the_trash(app: Flask) -> None:
    from campaign.services.statements.previews import sample_recipients

    statement = statements.create_statement("J", language="en", subject="S", body=BODY)
    anna, bob = (
        ContactFactory(commit=True, email="anna@example.org"),
        ContactFactory(commit=True, email="bob@example.org"),
    )
    delete_contact(bob)
    db.session.commit()
    assert [c.id for c in sample_recipients(statement)] == [anna.id]

"""The erasure page (administrators only, the address typed again) and `campaign erase`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Contact, Role, Suppression
from campaign.services.contacts.contacts import create_contact
from campaign.services.privacy import erased_addresses, erasure
from tests.conftest import TEST_PASSWORD, make_user
from tests.factories import CampaignFactory
from tests.pages import csrf_token, element_text, html_of, text_of

EMAIL = "olga.petrova@example.org"
CAMPAIGN = Path(sys.executable).parent / "campaign"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def olga() -> Contact:
    contact = create_contact({"email": EMAIL, "given_name": "Olga", "family_name": "Petrova"})
    db.session.commit()
    return contact


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.SENDER])
def test_only_administrators_may_erase(client: FlaskClient, login, role: Role) -> None:  # type: ignore[no-untyped-def]
    contact = olga()
    login(role)

    assert client.get("/privacy/erase/").status_code == 403
    assert client.get(f"/privacy/erase/contacts/{contact.id}").status_code == 403
    assert client.post("/privacy/erase/", data={"email": EMAIL}).status_code == 403
    form = {"email": EMAIL, "confirm_email": EMAIL}
    assert client.post("/privacy/erase/confirm", data=form).status_code == 403
    assert "erase-person" not in html_of(client.get(f"/contacts/{contact.id}"))
    assert db.session.scalar(select(func.count(Contact.id))) == 1


def test_an_administrator_erases_a_contact_after_typing_the_address(
    client: FlaskClient,
    login,  # type: ignore[no-untyped-def]
) -> None:
    contact_id = olga().id
    login(Role.ADMIN)
    assert "/privacy/erase/contacts/" in html_of(client.get(f"/contacts/{contact_id}"))

    page = client.get(f"/privacy/erase/contacts/{contact_id}")
    assert page.status_code == 200
    assert "1 contact record" in element_text(html_of(page), "erase-summary")
    assert "are not rewritten" in element_text(html_of(page), "not-rewritten")

    wrong = {"email": EMAIL, "confirm_email": "olga@example.org", "contact_id": str(contact_id)}
    refused = client.post("/privacy/erase/confirm", data=wrong)
    assert refused.status_code == 422
    assert "type the address exactly as shown" in text_of(refused)
    assert db.session.get(Contact, contact_id) is not None

    right = {**wrong, "confirm_email": EMAIL.upper()}
    done = client.post("/privacy/erase/confirm", data=right, follow_redirects=True)
    assert done.status_code == 200
    assert "The person was erased" in text_of(done)
    db.session.expunge_all()
    assert db.session.get(Contact, contact_id) is None
    assert EMAIL not in html_of(client.get("/contacts/?q=Petrova"))
    assert client.get(f"/contacts/{contact_id}").status_code == 404
    listed = text_of(client.get("/suppressions/"))
    assert "erased on request (address not kept)" in listed
    assert EMAIL not in listed
    # And the contact form no longer takes the address.
    fields = {"email": EMAIL, "family_name": "Petrova", "role_type": "other"}
    again = client.post("/contacts/new", data={**fields, "risk_level": "public"})
    assert again.status_code == 422
    assert "erased on request" in text_of(again)


def test_the_page_refuses_while_a_campaign_to_them_is_sending(
    client: FlaskClient,
    login,  # type: ignore[no-untyped-def]
) -> None:
    contact = olga()
    CampaignFactory(name="Urgent appeal", recipients=[contact], launched=True, commit=True)
    login(Role.ADMIN)

    page = client.get(f"/privacy/erase/contacts/{contact.id}")
    assert "Urgent appeal" in element_text(html_of(page), "erase-refused")
    assert "erase-confirm" not in html_of(page)
    posted = client.post("/privacy/erase/confirm", data={"email": EMAIL, "confirm_email": EMAIL})
    assert posted.status_code == 409
    assert "pause it or wait until it has finished" in text_of(posted)
    assert db.session.get(Contact, contact.id) is not None


def test_an_address_nothing_is_stored_about_can_still_be_kept_from_mail(
    client: FlaskClient,
    login,  # type: ignore[no-untyped-def]
) -> None:
    login(Role.ADMIN)
    bad = client.post("/privacy/erase/", data={"email": "not an address"})
    assert bad.status_code == 422
    assert "is not an email address" in element_text(html_of(bad), "e-email")

    looked_up = client.post("/privacy/erase/", data={"email": "nobody@example.org"})
    assert "Nothing is stored about this address" in element_text(
        html_of(looked_up), "nothing-stored"
    )
    form = {"email": "nobody@example.org", "confirm_email": "nobody@example.org"}
    done = client.post("/privacy/erase/confirm", data=form, follow_redirects=True)
    assert "Nothing was stored about this address" in text_of(done)
    assert erased_addresses.is_erased("nobody@example.org")


@pytest.mark.parametrize("csrf_enabled", [True])
def test_erasing_needs_the_csrf_token(client: FlaskClient, app: Flask) -> None:
    contact_id = olga().id
    admin = make_user(Role.ADMIN)
    client.post(
        "/login",
        data={
            "email": admin.email,
            "password": TEST_PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    form = {"email": EMAIL, "confirm_email": EMAIL, "contact_id": str(contact_id)}
    assert client.post("/privacy/erase/confirm", data=form).status_code == 400
    assert db.session.get(Contact, contact_id) is not None

    token = csrf_token(client, f"/privacy/erase/contacts/{contact_id}")
    done = client.post("/privacy/erase/confirm", data={**form, "csrf_token": token})
    assert done.status_code == 302
    db.session.expunge_all()
    assert db.session.get(Contact, contact_id) is None


def _run_campaign(app: Flask, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as `campaign` runs it, in this process (the console script's own start is
    tested once, in tests/backups/test_backup_cli.py and tests/commands/test_cli_help.py)."""
    result = app.test_cli_runner().invoke(
        args=list(args), env={"LANG": "C.UTF-8", "LANGUAGE": None, "LC_ALL": None}
    )
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


# The command's service is the page's (tested on both engines): the command on one.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_campaign_erase_asks_for_yes_then_erases(app: Flask) -> None:
    olga()
    db.session.close()

    asked = _run_campaign(app, "erase", EMAIL)
    assert asked.returncode == 1
    assert "contact records: 1" in asked.stdout
    assert "run the command again with --yes" in asked.stderr
    assert db.session.scalar(select(func.count(Contact.id))) == 1

    done = _run_campaign(app, "erase", EMAIL, "--yes")
    assert done.returncode == 0, done.stderr
    assert "Erased." in done.stdout and "are not rewritten" in done.stdout
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Contact.id))) == 0
    entry = db.session.scalar(select(Suppression))
    assert entry is not None and entry.reason == "erased" and entry.email == ""
    assert erased_addresses.is_erased(EMAIL)

    again = _run_campaign(app, "erase", EMAIL.upper())
    assert again.returncode == 0
    assert "erased before" in again.stdout

    bad = _run_campaign(app, "erase", "no-at-sign", "--yes")
    assert bad.returncode == 1
    assert "is not an email address" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_api_cannot_find_nor_re_create_an_erased_person(client: FlaskClient) -> None:
    from tests.api.helpers import bearer, new_key

    contact_id = olga().id
    erasure.erase_person(EMAIL)
    db.session.commit()
    token, _ = new_key(Role.EDITOR)
    headers = bearer(token)

    assert client.get(f"/api/v1/contacts/{contact_id}", headers=headers).status_code == 404
    listed = client.get("/api/v1/contacts?q=Petrova", headers=headers).get_json()
    assert listed["items"] == []
    created = client.post(
        "/api/v1/contacts", json={"email": EMAIL, "family_name": "Petrova"}, headers=headers
    )
    assert created.status_code == 422
    assert [e["field"] for e in created.get_json()["errors"]] == ["email"]
    assert "erased on request" in created.get_json()["errors"][0]["message"]
    bulk = client.post(
        "/api/v1/contacts/bulk",
        json={"items": [{"email": EMAIL.upper(), "family_name": "Petrova"}]},
        headers=headers,
    )
    assert "erased on request" in json.dumps(bulk.get_json())
    assert db.session.scalar(select(func.count(Contact.id))) == 0


def test_only_an_administrator_takes_an_erased_entry_off_the_list(
    client: FlaskClient,
    login,  # type: ignore[no-untyped-def]
) -> None:
    erasure.erase_person(EMAIL)
    db.session.commit()
    entry_id = db.session.scalar(select(Suppression.id))
    login(Role.SENDER)
    page = text_of(client.get(f"/suppressions/{entry_id}/remove"))
    assert "erased on request and asked never to be written to" in page
    assert client.post(f"/suppressions/{entry_id}/remove").status_code == 403
    assert erased_addresses.is_erased(EMAIL)

    client.post("/logout")
    login(Role.ADMIN)
    removed = client.post(f"/suppressions/{entry_id}/remove", follow_redirects=True)
    assert "erased on request (address not kept) removed" in text_of(removed)
    assert not erased_addresses.is_erased(EMAIL)


def test_a_second_confirmation_records_nothing_new(
    client: FlaskClient,
    login,  # type: ignore[no-untyped-def]
) -> None:
    from campaign.models import AuditEvent

    olga()
    login(Role.ADMIN)
    form = {"email": EMAIL, "confirm_email": EMAIL}
    client.post("/privacy/erase/confirm", data=form)
    # The same form sent twice (a reload, a double click).
    again = client.post("/privacy/erase/confirm", data=form, follow_redirects=True)

    assert "This address was erased before" in text_of(again)
    erasures = select(func.count(AuditEvent.id)).where(AuditEvent.action == "person.erase")
    assert db.session.scalar(erasures) == 1


def test_the_page_counts_merged_records_and_explains_a_damaged_key_file(
    client: FlaskClient,
    app: Flask,
    login,  # type: ignore[no-untyped-def]
) -> None:
    from campaign.services.contacts.merge import merge_contacts

    contact = olga()
    other = create_contact({"email": "o.p@mail.example.net", "family_name": "Petrova"})
    db.session.commit()
    merge_contacts(contact, other, {})
    db.session.commit()
    login(Role.ADMIN)

    page = html_of(client.get(f"/privacy/erase/contacts/{contact.id}"))
    assert "1 record merged into theirs, with another address" in element_text(page, "erase-merged")

    erasure.erase_person("someone-else@example.org")
    db.session.commit()
    (Path(app.config["INSTANCE_PATH"]) / "erasure_key").write_text("damaged\n")
    for answer in (
        client.get(f"/privacy/erase/contacts/{contact.id}"),
        client.post("/privacy/erase/", data={"email": EMAIL}),
        client.post("/privacy/erase/confirm", data={"email": EMAIL, "confirm_email": EMAIL}),
    ):
        assert answer.status_code == 503
        assert "erasure_key file is damaged" in element_text(html_of(answer), "erase-error")
    assert db.session.get(Contact, contact.id) is not None


# In-process (the console script's own run is the test above): the address from stdin.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_campaign_erase_reads_the_address_from_stdin_and_explains_a_damaged_key(
    app: Flask,
) -> None:
    olga()
    runner = app.test_cli_runner()

    done = runner.invoke(args=["erase", "-", "--yes"], input=f"{EMAIL}\n")
    assert done.exit_code == 0, done.output
    assert "Erased." in done.output and EMAIL not in done.output
    assert erased_addresses.is_erased(EMAIL)

    (Path(app.config["INSTANCE_PATH"]) / "erasure_key").write_text("damaged\n")
    broken = runner.invoke(args=["erase", "other@example.org", "--yes"])
    assert broken.exit_code == 1
    assert "erasure_key file is damaged" in broken.output
    assert broken.exc_info is None or broken.exc_info[0] is SystemExit

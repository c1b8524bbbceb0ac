"""SMTP accounts page (admins): add, edit, delete; the password is never shown or logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, Role, SmtpAccount, User
from campaign.services.sending import smtp_accounts
from campaign.services.sending.campaigns import AudienceSpec, create_campaign
from campaign.services.statements import statements
from tests.pages import html_of

Login = Callable[[Role], User]
SECRET = "Tr0ub4dor&3-relay-secret"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "MAIL_PASSWORD": "env-default-password-xyz", "MAIL_USERNAME": "env"}


def _form(**changes: str) -> dict[str, str]:
    form = {
        "name": "Office 365",
        "host": "smtp.office365.com",
        "port": "587",
        "security": "starttls",
        "username": "office@rights.example",
        "password": SECRET,
        "per_second": "",
        "per_minute": "30",
        "per_day": "10000",
        "max_connections": "2",
    }
    form.update(changes)
    return form


def test_only_admins_manage_accounts(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.SENDER)
    assert client.get("/smtp-accounts/").status_code == 403
    assert client.post("/smtp-accounts/new", data=_form()).status_code == 403
    assert db.session.scalar(select(SmtpAccount)) is None


def test_admin_adds_and_edits_an_account_without_ever_seeing_the_password(
    client: FlaskClient, login: Login, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    login(Role.ADMIN)
    with caplog.at_level(logging.DEBUG):
        response = client.post("/smtp-accounts/new", data=_form())
        assert response.status_code == 302
        account = db.session.scalars(select(SmtpAccount)).one()
        assert SECRET not in account.password_encrypted
        assert smtp_accounts.settings_for(account).password == SECRET
        assert (account.per_second, account.per_minute, account.per_day) == (0, 30, 10000)

        pages = [
            client.get("/smtp-accounts/"),
            client.get(f"/smtp-accounts/{account.id}/edit"),
            # A refused form is shown again without the password typed into it.
            client.post(f"/smtp-accounts/{account.id}/edit", data=_form(port="99999")),
        ]
        # Leaving the password empty keeps the stored one.
        kept = client.post(
            f"/smtp-accounts/{account.id}/edit", data=_form(password="", name="M365")
        )
        assert kept.status_code == 302
    db.session.refresh(account)
    assert account.name == "M365"
    assert smtp_accounts.settings_for(account).password == SECRET
    assert pages[2].status_code == 422 and "Port: 99999 is not a port number" in html_of(pages[2])
    for page in pages:
        text = html_of(page)
        assert SECRET not in text and "env-default-password-xyz" not in text
    assert "smtp.office365.com:587" in html_of(pages[0]) and "password stored" in html_of(pages[0])
    assert 'name="password" type="password" value=""' in html_of(pages[1])
    assert SECRET not in caplog.text
    events = list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_type == "smtp_account")
            .order_by(AuditEvent.id)
        )
    )
    assert [e.action for e in events] == ["smtp_account.create", "smtp_account.update"]
    assert [e.detail["password_changed"] for e in events] == [True, False]
    assert all(SECRET not in str(e.detail) for e in events)
    assert repr(smtp_accounts.settings_for(account)).count(SECRET) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": " "}, "Name: an account needs a name"),
        ({"name": "Default"}, "Name: “default” is the account from the CAMPAIGN_MAIL_* settings"),
        ({"host": ""}, "Host: the SMTP server&#39;s name is required"),
        ({"host": "smtp example.org"}, "Host: &#39;smtp example.org&#39; is not a server name"),
        ({"port": "0"}, "Port: 0 is not a port number"),
        ({"port": "abc"}, "Port: &#39;abc&#39; is not a port number"),
        ({"security": "tls"}, "Security: choose none, starttls or ssl"),
        ({"per_minute": "-5"}, "Per minute: &#39;-5&#39; is not a whole number"),
        ({"max_connections": "2.5"}, "Connections: &#39;2.5&#39; is not a whole number"),
        # isdigit() is true for superscripts, which int() refuses.
        ({"port": "²"}, "Port: &#39;²&#39; is not a port number"),
        ({"per_day": "²"}, "Per day: &#39;²&#39; is not a whole number"),
    ],
)
def test_bad_fields_are_named(
    client: FlaskClient, login: Login, app: Flask, changes: dict[str, str], message: str
) -> None:
    login(Role.ADMIN)
    response = client.post("/smtp-accounts/new", data=_form(**changes))
    assert response.status_code == 422
    assert message in html_of(response)
    assert SECRET not in html_of(response)
    assert db.session.scalar(select(SmtpAccount)) is None


def test_duplicate_name_is_refused(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    client.post("/smtp-accounts/new", data=_form())
    again = client.post("/smtp-accounts/new", data=_form(name="office 365"))
    assert again.status_code == 422
    assert "an account called &#39;Office 365&#39; exists already" in html_of(again)


def test_delete_is_refused_while_a_campaign_uses_the_account(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    client.post("/smtp-accounts/new", data=_form())
    client.post("/smtp-accounts/new", data=_form(name="Spare", password=""))
    used = smtp_accounts.find_account("Office 365")
    spare = smtp_accounts.find_account("Spare")
    assert used is not None and spare is not None
    statement = statements.create_statement("Letter", language="en", subject="S", body="Hi")
    create_campaign(statement, name="Spring appeal", audience=AudienceSpec(), smtp_account=used)
    db.session.commit()

    question = html_of(client.get(f"/smtp-accounts/{used.id}/delete"))
    assert "cannot be deleted" in question and "Spring appeal" in question
    refused = client.post(f"/smtp-accounts/{used.id}/delete", follow_redirects=True)
    assert "Not deleted: the account &#39;Office 365&#39; is used by campaign" in html_of(refused)
    assert db.session.get(SmtpAccount, used.id) is not None

    spare_id = spare.id
    done = client.post(f"/smtp-accounts/{spare_id}/delete", follow_redirects=True)
    assert "SMTP account Spare deleted." in html_of(done)
    assert db.session.get(SmtpAccount, spare_id) is None
    assert db.session.scalar(select(Campaign.smtp_account_id)) == used.id

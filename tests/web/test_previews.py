"""The preview page: a recipient's letter in every part, its PDF, and a test to oneself."""

from __future__ import annotations

import mailbox
from email import message_from_bytes, policy
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign.devmail import DevmailSink, list_messages
from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import letter_tests
from campaign.services.statements import statements
from tests import servers

BODY = {
    "en": (
        "{{ salutation }}\n\nWe write about the trial.[^1]\n\n[^1]: Article 159.\n\n{{ closing }}\n"
    ),
    "fr": "{{ salutation }}\n\nNous vous écrivons au sujet du procès.\n\n{{ closing }}\n",
    "ru": "{{ salutation }}\n\nМы пишем Вам о процессе.\n\n{{ closing }}\n",
}


@pytest.fixture
def mail_port() -> int:
    return servers.free_port()


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], mail_port: int) -> dict[str, Any]:
    return {**app_overrides, "MAIL_SERVER": "localhost", "MAIL_PORT": mail_port}


@pytest.fixture
def letter(app: Flask) -> dict[str, Any]:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY["en"]
    )
    statements.set_text(statement, language="fr", subject="Avant le sommet", body=BODY["fr"])
    statements.set_text(statement, language="ru", subject="Перед саммитом", body=BODY["ru"])
    people = {
        "en": create_contact(
            {
                "given_name": "Amara",
                "family_name": "Sample",
                "role_type": "un_sr",
                "grammatical_gender": "f",
                "languages": "en",
                "email": "sr@example.org",
            }
        ),
        "fr": create_contact(
            {
                "given_name": "Claire",
                "family_name": "Exemple",
                "role_type": "minister",
                "grammatical_gender": "f",
                "languages": "fr",
                "email": "claire@example.org",
            }
        ),
        "ru": create_contact(
            {
                "given_name": "Berdi",
                "family_name": "Misalov",
                "role_type": "ambassador",
                "grammatical_gender": "m",
                "languages": "ru",
                "email": "mission@example.org",
            }
        ),
    }
    audience = lists.create_list("Summit")
    lists.add_contacts(audience, [c.id for c in people.values()])
    db.session.commit()
    return {"statement": statement, "people": people, "list": audience}


def _url(letter: dict[str, Any], who: str, part: str = "") -> str:
    contact = letter["people"][who]
    return (
        f"/statements/{letter['statement'].id}/preview/{part}"
        f"?audience=list:{letter['list'].id}&contact={contact.id}"
    )


@pytest.mark.parametrize(
    ("who", "name", "salutation", "subject"),
    [
        ("en", "English", "Dear Special Rapporteur,", "Ahead of the summit"),
        ("fr", "French", "Madame la Ministre,", "Avant le sommet"),
        ("ru", "Russian", "Уважаемый господин Посол!", "Перед саммитом"),
    ],
)
def test_each_recipient_gets_the_letter_in_their_language(
    client: FlaskClient,
    login: Any,
    letter: dict[str, Any],
    who: str,
    name: str,
    salutation: str,
    subject: str,
) -> None:
    login(Role.EDITOR)
    page = client.get(_url(letter, who)).get_data(as_text=True)
    assert f'<strong id="preview-language" data-language="{who}">{name}</strong>' in page
    assert salutation in page and subject in page
    html = client.get(_url(letter, who, "html"))
    assert salutation in html.get_data(as_text=True)
    assert "sandbox" in html.headers["Content-Security-Policy"]


def test_the_language_can_be_switched(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    page = client.get(_url(letter, "en") + "&lang=fr").get_data(as_text=True)
    assert '<strong id="preview-language" data-language="fr">French</strong>' in page
    assert "Avant le sommet" in page


def test_the_pdf_and_the_message_download(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    pdf = client.get(_url(letter, "ru", "letter.pdf"))
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    disposition = pdf.headers["Content-Disposition"]
    assert "attachment" in disposition
    # The Russian title and the date, as RFC 6266 / 5987 allow in an HTTP header (ASCII only).
    disposition.encode("ascii")
    encoded = disposition.split("filename*=UTF-8''")[1]
    assert unquote(encoded).startswith("Перед саммитом – 20")
    assert pdf.headers["Cache-Control"] == "no-store"
    raw = client.get(_url(letter, "fr", "message.eml")).data
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "claire@example.org"
    assert parsed["Subject"] == "Avant le sommet"


def test_a_test_letter_goes_to_the_signed_in_user_only(
    app: Flask, client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    config = app.config["CAMPAIGN_CONFIG"]
    url = f"/statements/{letter['statement'].id}/preview/send-test"
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        user = login(Role.EDITOR)
        contact = letter["people"]["en"]
        response = client.post(url, data={"contact": contact.id, "lang": ""})
        assert response.status_code == 302
        stored = list_messages(config.devmail_path)
        assert len(stored) == 1
        assert stored[0].subject == "[Test] Ahead of the summit"
        # The envelope: delivered to the member of staff only, never to the contact.
        [received] = mailbox.Maildir(config.devmail_path, create=False)
        assert received.get_all("Delivered-To") == [user.email]
        # As a campaign's test letter: the colleague in To (a reply-all must not reach the
        # contact), the contact named in X-Test-For, and the same hourly limit.
        assert received["To"] == user.email
        assert contact.email in received["X-Test-For"]
        for _ in range(letter_tests.TESTS_PER_HOUR - 1):
            client.post(url, data={"contact": contact.id, "lang": ""})
        limited = client.post(url, data={"contact": contact.id, "lang": ""}, follow_redirects=True)
        assert "in the last hour" in limited.get_data(as_text=True)
        assert len(list_messages(config.devmail_path)) == letter_tests.TESTS_PER_HOUR


def test_viewers_cannot_preview(client: FlaskClient, login: Any, letter: dict[str, Any]) -> None:
    login(Role.VIEWER)
    assert client.get(_url(letter, "en")).status_code == 403


def test_an_odd_contact_id_in_the_address_is_not_a_server_error(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.ADMIN)
    base = f"/statements/{letter['statement'].id}/preview/?audience=list:{letter['list'].id}"
    for odd in ("²", "99999999999999999999", "-1", "1e3"):
        response = client.get(f"{base}&contact={odd}")
        assert response.status_code < 500, odd

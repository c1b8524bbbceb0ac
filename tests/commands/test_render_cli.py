"""`campaign render STATEMENT_ID CONTACT_EMAIL [--lang L]`: the message exactly as sent."""

from __future__ import annotations

import email
import email.policy
from typing import Any

from flask import Flask

from campaign.extensions import db
from campaign.models import Contact
from campaign.services.contacts.contacts import create_contact
from tests.factories import StatementFactory

BODY_EN = "{{ salutation }}\n\nWe write about {{ contact.organisation }}.[^1]\n\n[^1]: Art. 1.\n"
BODY_FR = "{{ salutation }}\n\nNous écrivons au sujet de la « liberté ».\n\n{{ closing }}\n"
BODY_RU = "{{ salutation }}\n\nМы пишем вам о свободе слова.\n\n{{ closing }}\n"
# The statement in English, French and Russian: `StatementFactory(**TRILINGUAL)`.
TRILINGUAL: dict[str, Any] = {
    "subject": "Free the defenders",
    "body": BODY_EN,
    "translations": {
        "fr": ("Libérez les défenseurs", BODY_FR),
        "ru": ("Свободу правозащитникам", BODY_RU),
    },
}


def _render(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["render", *args])


def _parse(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_render_prints_the_whole_message_as_sent(app: Flask) -> None:
    statement_id = StatementFactory(**TRILINGUAL).id
    create_contact(
        {
            "email": "marie@example.org",
            "given_name": "Marie",
            "family_name": "Dupont",
            "organisation": "Amnesty <Paris>",
            "languages": "fr en",
        }
    )
    create_contact(
        {
            "email": "ivan@example.org",
            "given_name": "Иван",
            "family_name": "Петров",
            "languages": "ru",
        }
    )
    db.session.commit()

    result = _render(app, str(statement_id), "marie@example.org")
    assert result.exit_code == 0, result.stderr
    data = result.stdout_bytes
    assert b"\n" not in data.replace(b"\r\n", b""), "CRLF line ends, as SMTP gets them"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    message = _parse(data)
    assert message["To"].addresses[0].addr_spec == "marie@example.org"
    assert message["To"].addresses[0].display_name == "Marie Dupont"
    assert message["Subject"] == "Libérez les défenseurs"  # her first language
    assert message["Content-Language"] == "fr"
    assert message["Message-ID"].endswith("@example.org>")  # MAIL_DEFAULT_SENDER's domain
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    # French typography: no-break spaces inside the guillemets, in both parts.
    quoted = "«\u00a0liberté\u00a0»"
    assert quoted in text.get_content() and quoted in html.get_content()

    english = _parse(
        _render(app, str(statement_id), "marie@example.org", "--lang", "en").stdout_bytes
    )
    assert english["Subject"] == "Free the defenders"
    html_en = english.get_body(("html",))
    assert html_en is not None and "Amnesty &lt;Paris&gt;" in html_en.get_content()

    russian = _parse(_render(app, str(statement_id), "IVAN@example.org").stdout_bytes)
    assert russian["Subject"] == "Свободу правозащитникам"
    assert russian["To"].addresses[0].display_name == "Иван Петров"
    assert russian["Content-Language"] == "ru"


def test_render_explains_what_does_not_exist(app: Flask) -> None:
    statement_id = StatementFactory(**TRILINGUAL).id
    create_contact({"email": "a@example.org", "given_name": "A", "family_name": "B"})
    db.session.commit()

    missing_statement = _render(app, "999", "a@example.org")
    assert missing_statement.exit_code == 2
    assert "no statement 999" in missing_statement.stderr
    assert missing_statement.stdout_bytes == b""

    missing_contact = _render(app, str(statement_id), "nobody@example.org")
    assert missing_contact.exit_code == 2
    assert "nobody@example.org" in missing_contact.stderr

    missing_language = _render(app, str(statement_id), "a@example.org", "--lang", "de")
    assert missing_language.exit_code == 2
    assert "'de'" in missing_language.stderr and "en, fr, ru" in missing_language.stderr


def test_render_refuses_a_letter_with_a_line_break_in_a_header(app: Flask) -> None:
    statement_id = StatementFactory(**TRILINGUAL).id
    db.session.add(
        Contact(
            email="eve@example.org",
            email_key="eve@example.org",
            given_name="Eve",
            family_name="Evil\r\nBcc: x@evil.test",
            languages="en",
        )
    )
    db.session.commit()
    result = _render(app, str(statement_id), "eve@example.org")
    assert result.exit_code == 1
    assert result.stdout_bytes == b""
    assert "header_injection" in result.stderr

"""Statements, previews, the pre-send check and the salutation rules in the reader's own
language: Russian and French headings, buttons, flashes, template errors and labels, never
a raw code (statuses, signatory kinds, severities, role types, genders, rule kinds)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from tests.conftest import sign_in
from tests.factories import StatementFactory
from tests.i18n.pages import assert_no_codes, page_text, user_in

NBSP = "\u00a0"
BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n"
# A statement with one signatory: `StatementFactory(**AHEAD, commit=True)`.
AHEAD: dict[str, Any] = {
    "subject": "Ahead of the summit",
    "body": BODY,
    "signatories": [{"name": "Free Law", "kind": "organisation"}],
}


def _audience() -> str:
    """A list with a French minister whose letter falls back to English (a warning) and a
    contact without an address (an error)."""
    people = [
        create_contact(
            {
                "given_name": "Claire",
                "family_name": "Exemple",
                "role_type": "minister",
                "grammatical_gender": "f",
                "languages": "fr",
                "email": "claire@example.org",
            }
        ),
        create_contact(
            {
                "given_name": "Ivan",
                "family_name": "Sample",
                "role_type": "journalist",
                "grammatical_gender": "m",
                "languages": "en",
                "email": "ivan@example.org",
            }
        ),
    ]
    audience = lists.create_list("Summit")
    lists.add_contacts(audience, [person.id for person in people])
    db.session.commit()
    return f"list:{audience.id}"


# --- Russian ------------------------------------------------------------------------------


def test_statement_pages_in_russian(client: FlaskClient, app: Flask) -> None:
    statement = StatementFactory(**AHEAD, commit=True)
    sign_in(client, user_in(Role.EDITOR, "ru"))

    index = page_text(client, "/statements/")
    assert "<h1>Заявления</h1>" in index and "Новое заявление" in index
    assert_no_codes(index, "draft")

    show = page_text(client, f"/statements/{statement.id}")
    assert "Предпросмотр писем" in show and "Проверить перед отправкой" in show
    assert "Добавить подписанта" in show and "Организация" in show
    assert "Удалить это заявление и все его версии?" in show  # the confirmation
    assert_no_codes(show, "draft", "final", "organisation", "individual", "full", "withheld")

    flashed = page_text(
        client, f"/statements/{statement.id}/status", method="POST", data={"status": "final"}
    )
    assert "Заявлению присвоен статус «" in flashed
    assert_no_codes(flashed, "final")

    # A template the sandbox refuses: the reason in Russian, the line kept.
    refused = page_text(
        client,
        f"/statements/{statement.id}/texts/en",
        method="POST",
        data={"subject": "S", "body": "Hello\n\n{{ config }}\n"},
    )
    assert "Текст (en) нельзя сохранить: Строка 3:" in refused
    assert "относится к веб-приложению" in refused

    versions = page_text(client, f"/statements/{statement.id}/versions")
    assert "<h1>История версий</h1>" in versions


def test_preview_and_check_in_russian(client: FlaskClient, app: Flask) -> None:
    statement = StatementFactory(**AHEAD, commit=True)
    audience = _audience()
    sign_in(client, user_in(Role.EDITOR, "ru"))

    check = page_text(client, f"/statements/{statement.id}/check/?audience={audience}")
    assert "<h1>Проверка перед отправкой</h1>" in check
    assert "Ошибки не дают поставить письмо в очередь:" in check
    assert "Предупреждение" in check  # the severity, as a label
    assert "у заявления нет ни одного из языков контакта (французский)" in check  # the problem
    assert 'data-code="language_fallback"' in check  # the code stays, as an identifier
    assert_no_codes(check, "warning", "error", "language_fallback")

    preview = page_text(client, f"/statements/{statement.id}/preview/?audience={audience}")
    assert "<h1>Предпросмотр</h1>" in preview and "Скачать PDF" in preview
    assert "Письмо для" in preview and 'data-language="en">английский</strong>' in preview
    assert_no_codes(preview, "warning", "error")


def test_salutation_rules_in_russian(client: FlaskClient, app: Flask) -> None:
    sign_in(client, user_in(Role.ADMIN, "ru"))
    page = page_text(client, "/salutations/")
    assert "<h1>Обращения и заключительные формулы</h1>" in page
    assert "Сохранить настройки" in page
    assert "Французское обращение к женщине-послу" in page
    # Rule tables: kinds, role types, genders and styles as labels.
    assert "Заключительная формула" in page
    assert_no_codes(
        page, "salutation", "closing", "ambassador", "head_of_gov", "un_sr", "f", "m", "*"
    )

    refused = page_text(
        client,
        "/salutations/rules",
        method="POST",
        data={"language": "de-AT", "role": "minister", "gender": "f", "text": "Hallo,"},
    )
    assert "Правило не сохранено:" in refused
    assert "язык: правила ведутся по языкам" in refused


# --- French -------------------------------------------------------------------------------


def test_statement_pages_and_flashes_in_french(client: FlaskClient, app: Flask) -> None:
    statement = StatementFactory(**AHEAD, commit=True)
    sign_in(client, user_in(Role.EDITOR, "fr"))

    index = page_text(client, "/statements/")
    assert "<h1>Déclarations</h1>" in index and "Nouvelle déclaration" in index
    assert_no_codes(index, "draft")

    flashed = page_text(
        client,
        "/statements/new",
        method="POST",
        data={"title": "Lettre", "language": "fr", "subject": "Objet", "body": BODY},
    )
    assert "Déclaration «\u00a0Lettre\u00a0» créée comme brouillon." in flashed

    added = page_text(
        client,
        f"/statements/{statement.id}/signatories/paste",
        method="POST",
        data={"lines": "One\nTwo\n", "kind": "organisation"},
    )
    assert "2 signataires ajoutés." in added

    bad = page_text(
        client,
        f"/statements/{statement.id}/signatories/paste",
        method="POST",
        data={"lines": "A, B, C, D\n", "kind": "organisation"},
    )
    assert f"Rien n’a été ajouté. Corrigez cette ligne et collez de nouveau{NBSP}:" in bad
    assert f"Ligne 1{NBSP}: 4 parties séparées par des virgules" in bad


def test_check_and_salutations_in_french(client: FlaskClient, app: Flask) -> None:
    statement = StatementFactory(**AHEAD, commit=True)
    audience = _audience()
    sign_in(client, user_in(Role.ADMIN, "fr"))

    check = page_text(client, f"/statements/{statement.id}/check/?audience={audience}")
    assert "<h1>Vérification avant envoi</h1>" in check
    assert "Avertissement" in check and "Destinataires vérifiés" in check
    assert_no_codes(check, "warning", "error")

    page = page_text(client, "/salutations/?lang=fr")
    assert "<h1>Formules d’appel et de politesse</h1>" in page
    assert "Formule de politesse" in page and "Formule d’appel" in page
    assert_no_codes(page, "salutation", "closing", "ambassador", "minister", "f", "m", "*")

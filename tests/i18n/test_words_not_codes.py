"""The preview and the pre-send check in Russian and French name each letter problem and
each letter language in words ("Не рабочий язык ООН", "anglais"), never by its code
(`un_language`, `en`): the codes stay only in data- attributes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.labels import LABELS
from campaign.models import Contact, Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements
from tests.i18n.pages import page_text, text_nodes

NBSP = "\u00a0"
BODY = {
    "en": "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n",
    "ru": "{{ salutation }}\n\nМы пишем Вам о процессе.\n\n{{ closing }}\n",
}
PROBLEM_CODES = tuple(LABELS["problem"])
LANGUAGE_TAGS = ("en", "ru", "fr")


@pytest.fixture
def letter(app: Flask) -> dict[str, Any]:
    """An English and Russian statement and three readers, each with a warning:
    a UN rapporteur written to in Russian with only a Latin name (un_language,
    foreign_script), a French minister whose letter falls back to English
    (language_fallback), an ambassador without the office's country (no_office_country)."""
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY["en"]
    )
    statements.set_text(statement, language="ru", subject="Перед саммитом", body=BODY["ru"])
    people = {
        "rapporteur": create_contact(
            {
                "given_name": "Amara",
                "family_name": "Sample",
                "role_type": "un_sr",
                "grammatical_gender": "f",
                "languages": "ru",
                "email": "sr@example.org",
            }
        ),
        "minister": create_contact(
            {
                "given_name": "Claire",
                "family_name": "Exemple",
                "role_type": "minister",
                "grammatical_gender": "f",
                "languages": "fr",
                "email": "claire@example.org",
            }
        ),
        "ambassador": create_contact(
            {
                "given_name": "Jane",
                "family_name": "Doe",
                "role_type": "ambassador",
                "grammatical_gender": "f",
                "languages": "en",
                "country": "GB",
                "email": "embassy@example.org",
            }
        ),
    }
    audience = lists.create_list("Summit")
    lists.add_contacts(audience, [person.id for person in people.values()])
    db.session.commit()
    return {"statement": statement, "people": people, "audience": f"list:{audience.id}"}


def _as(client: FlaskClient, login: Any, language: str) -> None:
    user = login(Role.EDITOR)
    user.language = language
    db.session.commit()


def _no_codes(html: str) -> None:
    """No problem code and no bare language tag is shown as text, nor inside a text."""
    shown = text_nodes(html)
    leaked = [code for code in PROBLEM_CODES if any(code in node for node in shown)]
    leaked += [tag for tag in LANGUAGE_TAGS if tag in shown]
    leaked += [node for node in shown if re.search(r"\((?:en|fr|ru)\)", node)]
    assert not leaked, f"codes shown as text: {leaked}"


def _check(client: FlaskClient, letter: dict[str, Any]) -> str:
    statement_id = letter["statement"].id
    return page_text(client, f"/statements/{statement_id}/check/?audience={letter['audience']}")


def _preview(client: FlaskClient, letter: dict[str, Any], who: str) -> str:
    statement_id = letter["statement"].id
    contact: Contact = letter["people"][who]
    return page_text(
        client,
        f"/statements/{statement_id}/preview/?audience={letter['audience']}&contact={contact.id}",
    )


def _codes_of_rows(html: str) -> set[str]:
    return set(re.findall(r'<tr class="problem-\w+" data-code="(\w+)"', html))


def test_the_check_and_the_preview_in_russian(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    _as(client, login, "ru")

    check = _check(client, letter)
    assert {"un_language", "foreign_script", "language_fallback", "no_office_country"} <= (
        _codes_of_rows(check)
    )
    shown = text_nodes(check)
    # Each problem by its name, the column headed "Проблема", not "Код".
    for name in (
        "Не рабочий язык ООН",
        "Написано другим алфавитом",
        "Не на языке контакта",
        "Не указана страна пребывания",
    ):
        assert name in shown, name
    assert "Проблема" in shown and "Код" not in shown
    # The languages used, named and counted; the select offers names too.
    assert "английский: 2, русский: 1" in shown
    assert re.search(r'<option value="ru"\s*>русский</option>', check)
    # The messages name the languages: the fallback, the script, the UN working languages.
    assert (
        "у заявления нет ни одного из языков контакта (французский); письмо уйдёт на первом "
        "языке заявления (английский)" in check
    )
    assert "написано не алфавитом языка письма (русский)" in check
    assert "язык письма специальной процедуре ООН — русский" in check
    assert "Список: Summit" in shown  # the audience chooser
    _no_codes(check)

    preview = _preview(client, letter, "rapporteur")
    assert "<strong>Предупреждение</strong> (Не рабочий язык ООН):" in preview
    assert 'data-code="un_language"' in preview
    assert re.search(r'id="preview-language" data-language="ru">русский</strong>', preview)
    assert "Письмо для" in preview and "язык: " in preview
    # The Content-Language header, named.
    assert re.search(r"<dt>Язык содержимого</dt><dd>русский</dd>", preview)
    _no_codes(preview)


def test_the_check_and_the_preview_in_french(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    _as(client, login, "fr")

    check = _check(client, letter)
    shown = text_nodes(check)
    for name in (
        "Pas une langue de travail de l’ONU",
        "Écrit dans un autre alphabet",
        "Pas dans la langue du contact",
        "Pays du poste manquant",
    ):
        assert name in shown, name
    assert "Problème" in shown and "Code" not in shown
    # French names, in lower case, and French typography before the colon.
    assert f"anglais{NBSP}: 2, russe{NBSP}: 1" in check
    assert f"Liste{NBSP}: Summit" in check
    assert "la lettre part dans la première langue de la déclaration (anglais)" in check
    _no_codes(check)

    preview = _preview(client, letter, "minister")
    assert re.search(
        r'Lettre en <strong id="preview-language" data-language="en">anglais</strong> pour',
        preview,
    )
    assert f"</strong> (Pas dans la langue du contact){NBSP}:" in preview
    assert re.search(r"<dd>anglais</dd>", preview)  # Content-Language
    assert re.search(r'<option value="en"\s*>anglais</option>', preview)
    _no_codes(preview)


def test_numbers_audiences_and_import_reasons_follow_the_interface_language(app: Flask) -> None:
    from flask_babel import force_locale

    from campaign.i18n import language_name, local_percent
    from campaign.services.contacts.audiences import audience_choices
    from campaign.services.contacts.importing import RowResult

    lists.create_list("Press")
    db.session.commit()
    rates = "{{ 0|decimalformat('#,##0.00') }} {{ 12.5|percent(1) }}"
    row = RowResult(line=2, cells=[], problems=[("Pays", "« XX » ?"), ("E-mail", "vide")])
    with app.test_request_context():
        assert app.jinja_env.from_string(rates).render() == "0.00 12.5%"
        assert language_name("en") == "English" and language_name("xx-unknown!") == "xx-unknown!"
        with force_locale("fr"):
            assert app.jinja_env.from_string(rates).render() == f"0,00 12,5{NBSP}%"
            assert local_percent(25) == f"25,0{NBSP}%"
            assert language_name("en") == "anglais" and language_name("ru") == "russe"
            assert [label for _key, label in audience_choices()] == [f"Liste{NBSP}: Press"]
            assert row.reason == f"Pays{NBSP}: « XX » ?{NBSP}; E-mail{NBSP}: vide"
        with force_locale("ru"):
            assert app.jinja_env.from_string(rates).render() == f"0,00 12,5{NBSP}%"
            assert language_name("fr") == "французский"
            assert [label for _key, label in audience_choices()] == ["Список: Press"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (1, "Первая строка, проверенная так же, как её проверит импорт."),
        (2, "Начало файла: 2 строки, проверенные так же, как их проверит импорт."),
    ],
)
def test_the_import_preview_counts_its_rows_in_russian(
    client: FlaskClient, login: Any, rows: int, expected: str
) -> None:
    import io

    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    _as(client, login, "ru")
    lines = [f"Person{n},person{n}@example.org" for n in range(rows)]
    content = "\n".join(["Name,E-mail", *lines]).encode()
    values = MultiDict({"file": FileStorage(io.BytesIO(content), filename="contacts.csv")})
    boundary, body = encode_multipart(values)
    uploaded = client.post(
        "/imports/", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    found = re.search(r"/imports/(\d+)/", uploaded.headers["Location"])
    assert found, uploaded.headers["Location"]
    import_id = found.group(1)
    client.post(
        f"/imports/{import_id}/mapping",
        data={"map-0": "family_name", "map-1": "email", "on_duplicate": "skip"},
    )
    page = page_text(client, f"/imports/{import_id}/preview")
    assert expected in page
    assert "Первая 1 строка" not in page

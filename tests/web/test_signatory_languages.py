"""A signatory's name, role and organisation per letter language, entered on the statement pages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.signatories import signatory_block
from campaign.models import Role, Signatory, Signature, SignatureStatus, Statement, User
from campaign.services.sign_on import moderation as sign_on_moderation
from campaign.services.sign_on import pages as sign_on
from campaign.services.statements import statements
from tests.pages import html_of

Login = Callable[[Role], User]
BODY = "{{ salutation }}\n\nWe write about the trial.\n"
RU_NAME = "Международное партнёрство за права человека"
RU_ROLE = "правозащитник"


@pytest.fixture
def statement(app: Flask) -> Statement:
    created = statements.create_statement(
        "Joint letter on torture", language="en", subject="Ahead of the summit", body=BODY
    )
    db.session.commit()
    return created


def _lines(statement: Statement, language: str) -> tuple[str, ...]:
    """The signatory block a letter in `language` prints, from the newest version."""
    db.session.expire_all()
    version = statements.latest_version(statement)
    assert version is not None
    return signatory_block(version.snapshot["signatories"], language).lines


def _signer() -> Signatory:
    return db.session.scalars(select(Signatory)).one()


def _edit_form(client: FlaskClient, url: str) -> dict[str, str]:
    """What the edit form sends when saved untouched: every input as the page fills it."""
    from html.parser import HTMLParser

    class Inputs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.values: dict[str, str] = {}
            self._select = ""

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            name = found.get("name") or ""
            if tag == "input" and name and name != "csrf_token":
                self.values[name] = found.get("value") or ""
            elif tag == "select":
                self._select = name
            elif tag == "option" and self._select and "selected" in found:
                self.values[self._select] = found.get("value") or ""

    page = client.get(url)
    assert page.status_code == 200
    parser = Inputs()
    parser.feed(html_of(page))
    return parser.values


def test_an_editor_gives_a_russian_name_and_role_and_the_russian_letter_prints_them(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    shown = html_of(client.get(f"/statements/{statement.id}"))
    assert "In other languages" in shown and 'name="role_ru"' in shown
    assert "Name in Russian" in shown and "the country table names it" in shown
    response = client.post(
        f"/statements/{statement.id}/signatories",
        data={
            "kind": "individual",
            "name": "Jane Doe",
            "role": "lawyer",
            "country": "Kazakhstan",
            "publish_as": "full",
            "name_ru": "Джейн  Доу",
            "role_ru": RU_ROLE,
            "name_fr": "",
            "role_fr": "",
        },
    )
    assert response.status_code == 302, html_of(response)[-3000:]
    assert _signer().translations == {"ru": {"name": "Джейн Доу", "role": RU_ROLE}}
    ru, en = _lines(statement, "ru"), _lines(statement, "en")
    assert ru[0].startswith(f"Джейн Доу, {RU_ROLE}, ") and "Jane Doe" not in ru[0]
    assert en == ("Jane Doe, lawyer, Kazakhstan",)


def test_saving_the_edit_form_untouched_keeps_the_forms_and_emptying_one_removes_it(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    statements.add_signatory(
        statement,
        {
            "kind": "organisation",
            "name": "International Partnership for Human Rights",
            "acronym": "IPHR",
            "country": "Belgium",
            "name_ru": RU_NAME,
            "name_fr": "Partenariat international pour les droits humains",
        },
    )
    db.session.commit()
    signer = _signer()
    url = f"/statements/{statement.id}/signatories/{signer.id}/edit"
    form = _edit_form(client, url)
    assert form["name_ru"] == RU_NAME and form["role_ru"] == "" and form["name_en"] == ""

    response = client.post(url, data=form, follow_redirects=True)
    assert "No changes." in html_of(response)
    stored = _signer().translations
    assert stored["ru"] == {"name": RU_NAME} and set(stored) == {"ru", "fr"}
    assert _lines(statement, "ru") == (f"{RU_NAME} (IPHR), Бельгия",)

    response = client.post(url, data={**form, "name_fr": "  "})
    assert response.status_code == 302
    assert _signer().translations == {"ru": {"name": RU_NAME}}
    assert _lines(statement, "fr") == (
        "International Partnership for Human Rights (IPHR), Belgique",
    )
    assert _lines(statement, "ru") == (f"{RU_NAME} (IPHR), Бельгия",)


def test_a_form_without_the_language_inputs_keeps_the_stored_forms(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    statements.add_signatory(
        statement, {"kind": "individual", "name": "Jane Doe", "role_ru": RU_ROLE}
    )
    db.session.commit()
    signer = _signer()
    response = client.post(
        f"/statements/{statement.id}/signatories/{signer.id}/edit",
        data={"kind": "individual", "name": "Jane Doe", "role": "lawyer", "publish_as": "full"},
    )
    assert response.status_code == 302
    assert _signer().role == "lawyer" and _signer().translations == {"ru": {"role": RU_ROLE}}


def test_correcting_an_approved_signature_keeps_the_signers_other_languages(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    page = sign_on.open_sign_on(statement)
    signature = Signature(
        sign_on_id=page.id,
        kind="organisation",
        name="Human Rights Center",
        publish_as="full",
        email="office@example.org",
        email_key=sign_on.email_key("office@example.org"),
        name_key=sign_on.name_key("Human Rights Center"),
        language="en",
        status=SignatureStatus.CONFIRMED.value,
    )
    db.session.add(signature)
    db.session.commit()
    signer = sign_on_moderation.approve(signature)
    db.session.commit()
    login(Role.EDITOR)
    url = f"/statements/{statement.id}/signatories/{signer.id}/edit"
    response = client.post(url, data={**_edit_form(client, url), "name_ru": "Правозащитный центр"})
    assert response.status_code == 302
    # The signer's own correction reaches the signatory; the editors' Russian form stays.
    sign_on_moderation.edit(
        signature,
        {**sign_on_moderation.signer_fields(signature), "name": "Human Rights Centre"},
    )
    db.session.commit()
    assert _signer().name == "Human Rights Centre"
    assert _signer().translations == {"ru": {"name": "Правозащитный центр"}}
    assert _lines(statement, "ru") == ("Правозащитный центр",)


def test_a_role_over_300_characters_in_french_is_refused_naming_the_field(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    too_long = "avocate " * 40
    response = client.post(
        f"/statements/{statement.id}/signatories",
        data={"kind": "individual", "name": "Jane Doe", "role_fr": too_long},
    )
    page = html_of(response)
    assert response.status_code == 422
    assert "Role in French is longer than 300 characters." in page
    assert 'aria-invalid="true"' in page and too_long.strip() in page  # kept to correct
    assert db.session.scalars(select(Signatory)).all() == []

    statements.add_signatory(statement, {"kind": "individual", "name": "Jane Doe"})
    db.session.commit()
    signer = _signer()
    url = f"/statements/{statement.id}/signatories/{signer.id}/edit"
    response = client.post(url, data={**_edit_form(client, url), "role_fr": too_long})
    page = html_of(response)
    assert response.status_code == 422 and "Role in French is longer than" in page
    assert '<details class="panel hint signatory-languages" open>' in page
    assert _signer().translations == {}


def test_a_withheld_signer_prints_one_line_in_every_language(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    response = client.post(
        f"/statements/{statement.id}/signatories",
        data={
            "kind": "individual",
            "name": "Ivan Ivanov",
            "publish_as": "withheld",
            "name_ru": "Иван Иванов",
            "role_ru": "адвокат",
            "organisation_fr": "Barreau de Tachkent",
        },
    )
    assert response.status_code == 302
    assert _lines(statement, "ru") == ("Имя не раскрывается по соображениям безопасности",)
    assert _lines(statement, "fr") == ("Nom non divulgué pour des raisons de sécurité",)
    client.get("/statements/")  # clears the flashed messages
    response = client.get(f"/statements/{statement.id}/versions/2")
    assert response.status_code == 200
    history = html_of(response)
    assert "<h1>Version 2: " in history
    for secret in ("Иван Иванов", "адвокат", "Barreau de Tachkent"):
        assert secret not in history

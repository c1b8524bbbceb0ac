"""The contacts area in the reader's own language: the contacts table and page, the edit
form and its errors, lists and segments, the import wizard and its rejected rows, in
Russian and French, never a raw code."""

from __future__ import annotations

import io
import re
from html import unescape
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from campaign.extensions import db
from campaign.models import Contact, Role
from campaign.services.contacts.contacts import create_contact
from tests.conftest import sign_in
from tests.i18n.pages import assert_no_codes, page_text, text_nodes, user_in
from workers import context, jobs

NBSP = "\u00a0"
BAD_ROWS = (
    "First name,Last name,E-mail,Country\n"
    "Anna,Muster,anna@example.org,DE\n"
    "Bob,Bad,a@b@c.org,FR\n"
    "Carl,Probe,carl@example.org,France\n"
    "Dora,Beispiel,ANNA@example.org,DE\n"
)


def _ambassador() -> Contact:
    contact = create_contact(
        {
            "given_name": "Dilnoza",
            "family_name": "Namunova",
            "grammatical_gender": "f",
            "role_type": "ambassador",
            "style": "excellency",
            "organisation": "Embassy of Uzbekistan in France",
            "country": "UZ",
            "languages": "ru fr",
            "email": "amb.uz@example.org",
            "term_ends_on": "2027-03-31",
        }
    )
    db.session.commit()
    return contact


def _upload(client: FlaskClient, content: bytes, name: str = "contacts.csv") -> Any:
    values = MultiDict({"file": FileStorage(io.BytesIO(content), filename=name)})
    boundary, body = encode_multipart(values)
    return client.post(
        "/imports/", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


# --- Russian ------------------------------------------------------------------------------


def test_contacts_table_in_russian_shows_labels_not_codes(client: FlaskClient, app: Flask) -> None:
    _ambassador()
    sign_in(client, user_in(Role.EDITOR, "ru"))

    page = page_text(client, "/contacts/")

    assert "<h1>Контакты</h1>" in page
    assert "Новый контакт" in page  # a button
    assert "1 контакт." in " ".join(text_nodes(page))
    assert ">Посол</option>" in page  # the role filter offers labels
    assert "<td>Посол</td>" in page
    assert ">Публичный</span>" in page  # the risk level
    assert_no_codes(page, "ambassador", "public", "mep", "head_of_gov", "un_sr")

    filtered = page_text(client, "/contacts/?role_type=un_wg")
    assert "Подходящих контактов нет." in filtered
    assert "соответствуют этим фильтрам" in filtered or "соответствует этим фильтрам" in filtered


def test_contact_page_in_russian_labels_every_coded_field(client: FlaskClient, app: Flask) -> None:
    contact = _ambassador()
    sign_in(client, user_in(Role.EDITOR, "ru"))

    page = page_text(client, f"/contacts/{contact.id}")

    assert ">Изменить</a>" in page and ">Удалить</a>" in page
    assert "<dt>Тип роли</dt>" in page and "<dd>Посол</dd>" in page
    assert "<dd>Превосходительство</dd>" in page and "<dd>Женский</dd>" in page
    assert "<dd>русский (ru), французский (fr)</dd>" in page
    assert "2027" in page and "2027-03-31</time>" not in page  # a date in words
    assert "Контакт создан" in page  # the history, not "contact.create"
    assert "Письма и ответы" in page
    assert_no_codes(page, "ambassador", "excellency", "f", "person", "public", "contact.create")


def test_contact_form_in_russian_explains_errors_and_says_saved(
    client: FlaskClient, app: Flask
) -> None:
    sign_in(client, user_in(Role.EDITOR, "ru"))

    form = page_text(client, "/contacts/new")
    assert "Создать контакт" in form
    assert ">Посол</option>" in form and ">Женский</option>" in form
    assert_no_codes(form, "ambassador", "excellency", "unknown", "mandate")

    refused = client.post(
        "/contacts/new", data={"family_name": "Петрова", "email": "a@b@c.org", "country": "France"}
    )
    assert refused.status_code == 422
    text = unescape(refused.get_data(as_text=True))
    # The two bad fields, and the role and risk level nobody chose (decision 0047).
    assert "Контакт не сохранён. Исправьте 4 поля:" in text
    assert "'France' — не код страны из таблицы стран" in text
    assert "недействительный адрес электронной почты" in text

    saved = page_text(
        client,
        "/contacts/new",
        method="POST",
        data={
            "family_name": "Петрова",
            "email": "petrova@example.org",
            "role_type": "Посол",
            "risk_level": "public",
        },
    )
    assert "Контакт Петрова создан." in saved  # the flash message
    assert "<dd>Посол</dd>" in saved  # the label typed in Russian was understood


# --- French -------------------------------------------------------------------------------


def test_lists_and_segments_in_french(client: FlaskClient, app: Flask) -> None:
    _ambassador()
    sign_in(client, user_in(Role.EDITOR, "fr"))

    page = page_text(client, "/audiences/")
    assert "<h1>Listes et segments</h1>" in page
    assert "Créer la liste" in page  # a button

    created = page_text(client, "/audiences/lists", method="POST", data={"name": "Presse"})
    assert "Liste Presse créée." in created
    again = page_text(client, "/audiences/lists", method="POST", data={"name": "presse"})
    assert f"Une liste nommée «{NBSP}presse{NBSP}» existe déjà." in again

    form = page_text(client, "/audiences/segments/new")
    assert "Enregistrer le segment" in form
    assert '<option value="Ambassadeur">' in form  # the value choices are labels
    count = client.post(
        "/audiences/segments/count",
        data={"match": "all", "g0-match": "all", "g0-c0-field": "role_type",
              "g0-c0-op": "is", "g0-c0-value": "Ambassadeur"},
    )  # fmt: skip
    body = count.get_json()
    assert body["count"] == 1
    assert body["summary"] == "type de rôle est Ambassadeur"
    assert body["message"] == f"1 contact correspond maintenant{NBSP}: {body['summary']}"


def test_import_wizard_in_french_names_file_line_and_column(
    client: FlaskClient, app: Flask
) -> None:
    sign_in(client, user_in(Role.EDITOR, "fr"))

    page = page_text(client, "/imports/")
    assert "<h1>Importer des contacts</h1>" in page and "Téléverser" in page

    wrong = client.post(
        "/imports/",
        data=MultiDict({"file": FileStorage(io.BytesIO(b"x"), filename="notes.pdf")}),
        content_type="multipart/form-data",
    )
    assert wrong.status_code == 400
    assert "notes.pdf" + NBSP + ": seuls les fichiers CSV" in unescape(wrong.get_data(as_text=True))

    uploaded = _upload(client, BAD_ROWS.encode("cp1252"))
    match = re.search(r"/imports/(\d+)/", uploaded.headers["Location"])
    assert match
    import_id = int(match.group(1))
    mapping = page_text(client, f"/imports/{import_id}/mapping")
    assert "Les colonnes ont été associées d’après leur nom" in mapping
    assert "— ignorer cette colonne —" in mapping
    client.post(
        f"/imports/{import_id}/mapping",
        data={"map-0": "given_name", "map-1": "family_name", "map-2": "email",
              "map-3": "country", "on_duplicate": "skip"},
    )  # fmt: skip
    preview = page_text(client, f"/imports/{import_id}/preview")
    assert "Rien n’a encore été enregistré." in preview
    assert "'France' n’est pas un code de pays connu de la table des pays" in preview
    assert "figure déjà à la ligne 2 de ce fichier" in preview

    client.post(f"/imports/{import_id}/start")
    context.set_app(app)
    jobs.import_contacts(import_id)  # the worker writes in the language of who started it

    done = page_text(client, f"/imports/{import_id}")
    assert f"importés{NBSP}: 1, mis à jour{NBSP}: 0, ignorés{NBSP}: 0, rejetés{NBSP}: 3" in done
    rejects = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", done)
    assert [(line, column) for line, column, _reason in rejects] == [
        ("3", "E-mail"),
        ("4", "Country"),
        ("5", ""),
    ]
    assert "n’est pas une adresse e-mail valide" in rejects[0][2]
    download = client.get(f"/imports/{import_id}/rejects.csv")
    text = download.get_data().decode("utf-8-sig")
    download.close()
    assert text.splitlines()[0] == "ligne,colonne,motif,First name,Last name,E-mail,Country"

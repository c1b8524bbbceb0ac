"""The statement page gives each file its letter language; the campaign form chooses files."""

from __future__ import annotations

import html
import io
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from campaign.extensions import db
from campaign.models import Campaign, Role, StatementAttachment
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements

BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n"
PDF = b"%PDF-1.7\n" + b"x" * 100


def _upload(client: FlaskClient, url: str, language: str) -> Any:
    builder = EnvironBuilder(
        path=url,
        method="POST",
        data={"file": (io.BytesIO(PDF), "annexe.pdf"), "language": language},
    )
    environ = builder.get_environ()
    try:
        return client.open(environ)
    finally:
        environ["wsgi.input"].close()
        builder.close()


def test_files_get_a_language_and_a_campaign_chooses_them(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Release", body=BODY
    )
    statements.set_text(statement, language="fr", subject="Libérez", body=BODY)
    press = lists.create_list("Press")
    lists.add_contacts(press, [create_contact({"email": "a@example.org", "family_name": "A"}).id])
    db.session.commit()
    login(Role.EDITOR)
    url = f"/statements/{statement.id}/attachments"

    refused = _upload(client, url, "de")
    assert refused.status_code == 422
    assert "no text in de" in html.unescape(refused.get_data(as_text=True))
    assert _upload(client, url, "fr").status_code == 302
    annex = db.session.query(StatementAttachment).one()
    assert annex.language == "fr"
    page = html.unescape(client.get(f"/statements/{statement.id}").get_data(as_text=True))
    assert "Sent with letters in" in page and "every language" in page

    changed = client.post(f"{url}/{annex.id}/language", data={"language": ""})
    assert changed.status_code == 302
    db.session.refresh(annex)
    assert annex.language == ""

    form = {
        "name": "Letter",
        "statement_id": str(statement.id),
        "include": [f"list:{press.id}"],
        "from_address": "Office <office@example.org>",
        "has_list_unsubscribe": "1",
        "attached_file_ids": [str(annex.id)],
    }
    page = html.unescape(client.get(f"/campaigns/new?statement={statement.id}").get_data(True))
    assert "Statement files to attach" in page and "annexe.pdf" in page
    assert client.post("/campaigns/new", data=form).status_code == 302
    campaign = db.session.query(Campaign).one()
    assert campaign.attached_file_ids == [annex.id]
    bad = client.post(
        f"/campaigns/{campaign.id}/edit", data={**form, "attached_file_ids": ["9999"]}
    )
    assert bad.status_code == 422
    assert "not a file of the campaign's statement" in html.unescape(bad.get_data(as_text=True))

    # Chosen by a campaign still to send: the file cannot be deleted.
    refused = client.post(f"{url}/{annex.id}/delete")
    assert refused.status_code == 422
    assert "attaches it" in html.unescape(refused.get_data(as_text=True))
    assert db.session.get(StatementAttachment, annex.id) is not None

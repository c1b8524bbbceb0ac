"""Statement pages: create, texts per language, refusals, versions, signatories, attachments."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import EnvironBuilder

from campaign.extensions import db
from campaign.models import AuditEvent, Role, Signatory, Statement, StatementAttachment, User
from campaign.services.statements import statements
from tests.pages import html_of

Login = Callable[[Role], User]
BODY = "{{ salutation }}\n\nWe write about the trial.[^1]\n\n[^1]: Article 159.\n"


@pytest.fixture
def statement(app: Flask) -> Statement:
    created = statements.create_statement(
        "Joint letter on torture", language="en", subject="Ahead of the summit", body=BODY
    )
    db.session.commit()
    return created


def test_viewer_sees_the_list_and_the_statement_but_no_forms(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.VIEWER)
    page = html_of(client.get("/statements/"))
    assert "Joint letter on torture" in page and "draft" in page and "New statement" not in page
    shown = html_of(client.get(f"/statements/{statement.id}"))
    assert "Ahead of the summit" in shown and "<textarea" not in shown
    assert client.post(f"/statements/{statement.id}/title", data={"title": "X"}).status_code == 403
    assert client.get("/statements/new").status_code == 403


def test_editor_creates_a_statement_and_adds_a_language(client: FlaskClient, login: Login) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/statements/new",
        data={"title": "Letter", "language": "en", "subject": "Subject", "body": BODY},
    )
    assert response.status_code == 302
    created = db.session.scalars(select(Statement)).one()
    response = client.post(
        f"/statements/{created.id}/languages",
        data={"language": "fr", "subject": "Objet", "body": "{{ salutation }}\n\nTexte."},
    )
    assert response.status_code == 302
    page = html_of(client.get(f"/statements/{created.id}?lang=fr"))
    assert "Objet" in page and 'aria-current="page" data-language="fr">French<' in page
    client.post(f"/statements/{created.id}/status", data={"status": "final"})
    db.session.refresh(created)
    assert created.status == "final" and created.languages == ["en", "fr"]


def test_a_refused_template_shows_its_line_keeps_the_text_and_stores_nothing(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    typed = "Dear friends,\n\n{{ config }}\n"
    response = client.post(
        f"/statements/{statement.id}/texts/en", data={"subject": "New subject", "body": typed}
    )
    page = html_of(response)
    assert response.status_code == 422
    assert "Line 3" in page and "config" in page
    assert "Dear friends," in page and "New subject" in page  # what was typed is kept
    db.session.refresh(statement)
    assert statement.text_for("en").subject == "Ahead of the summit"  # type: ignore[union-attr]
    assert len(statement.versions) == 1

    response = client.post(
        f"/statements/{statement.id}/texts/en", data={"subject": "{% if %}", "body": BODY}
    )
    assert response.status_code == 422 and 'id="e-text-subject"' in html_of(response)


def test_a_refused_new_statement_is_not_created(client: FlaskClient, login: Login) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/statements/new",
        data={"title": "Bad", "language": "en", "subject": "S", "body": "{{ ''.__class__ }}"},
    )
    assert response.status_code == 422 and "cannot be saved" in html_of(response)
    assert db.session.scalars(select(Statement)).all() == []


def test_signatories_are_added_edited_moved_and_removed(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    base = f"/statements/{statement.id}/signatories"
    for name in ("First Org", "Second Org"):
        response = client.post(base, data={"kind": "organisation", "name": name, "country": "KZ"})
        assert response.status_code == 302, html_of(response)[-3000:]
    first, second = statement.signatories
    client.post(f"{base}/{second.id}/move", data={"direction": "up"})
    db.session.refresh(statement)
    assert [s.name for s in statement.signatories] == ["Second Org", "First Org"]
    response = client.post(
        f"{base}/{first.id}/edit",
        data={"kind": "organisation", "name": "First Org", "acronym": "FO", "publish_as": "full"},
    )
    assert response.status_code == 302
    client.post(f"{base}/{second.id}/delete")
    db.session.refresh(statement)
    assert [(s.name, s.acronym, s.position) for s in statement.signatories] == [
        ("First Org", "FO", 0)
    ]
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "statement.signatory.delete" in actions
    summaries = [v.change_summary for v in statement.versions]
    assert "signatory removed: Second Org" in summaries


def test_paste_adds_many_and_a_bad_line_is_named_and_adds_nothing(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    url = f"/statements/{statement.id}/signatories/paste"
    lines = (
        "Association for Human Rights in Central Asia (AHRCA), Uzbekistan, "
        "based in exile in France\n"
        "International Partnership for Human Rights (IPHR), Belgium\n"
        "Too, many, parts, here\n"
    )
    response = client.post(url, data={"lines": lines, "kind": "organisation"})
    page = html_of(response)
    assert response.status_code == 422 and "Line 3" in page and "Nothing was added" in page
    db.session.refresh(statement)
    assert statement.signatories == []

    good = lines.rsplit("Too", 1)[0] + "\nIndividuals:\n"
    response = client.post(url, data={"lines": good, "kind": "organisation"})
    assert response.status_code == 302
    response = client.post(
        url, data={"lines": "Jane Doe, lawyer, Free Law, Kazakhstan", "kind": "individual"}
    )
    db.session.refresh(statement)
    rows = [(s.name, s.acronym, s.country, s.exile_country, s.role) for s in statement.signatories]
    assert rows == [
        ("Association for Human Rights in Central Asia", "AHRCA", "Uzbekistan", "France", ""),
        ("International Partnership for Human Rights", "IPHR", "Belgium", "", ""),
        ("Jane Doe", "", "Kazakhstan", "", "lawyer"),
    ]


def test_withheld_names_never_appear_in_the_version_history(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    login(Role.EDITOR)
    base = f"/statements/{statement.id}/signatories"
    client.post(base, data={"kind": "individual", "name": "Secret Person", "publish_as": "full"})
    signer = db.session.scalars(select(Signatory)).one()
    # Published first, then withheld: the early version must not give the name away either.
    client.post(
        f"{base}/{signer.id}/edit",
        data={"kind": "individual", "name": "Secret Person", "publish_as": "withheld"},
    )
    client.post(base, data={"kind": "individual", "name": "Hidden Two", "publish_as": "withheld"})
    client.get("/statements/")  # shows (and clears) the flashed messages of the changes
    history = html_of(client.get(f"/statements/{statement.id}/versions"))
    assert "Secret Person" not in history and "Hidden Two" not in history
    assert "name withheld" in history
    for number in range(1, 5):
        response = client.get(f"/statements/{statement.id}/versions/{number}")
        assert response.status_code == 200
        page = html_of(response)
        assert f"<h1>Version {number}: " in page
        assert "Secret Person" not in page and "Hidden Two" not in page


def test_a_withheld_signer_is_hidden_whole_and_under_every_former_name(
    app: Flask, client: FlaskClient, login: Login, statement: Statement
) -> None:
    from tests.conftest import make_user, sign_in

    login(Role.EDITOR)
    base = f"/statements/{statement.id}/signatories"
    client.post(
        base, data={"kind": "organisation", "name": "Annapurna Rights", "publish_as": "full"}
    )
    client.post(
        base,
        data={
            "kind": "individual",
            "name": "Ivan Ivanov",
            "publish_as": "full",
            "role": "defence lawyer",
            "organisation": "Tiny Bar Association",
        },
    )
    signer = db.session.scalars(select(Signatory).where(Signatory.name == "Ivan Ivanov")).one()
    # Renamed to initials at the moment of being withheld: the old name must vanish too.
    client.post(
        f"{base}/{signer.id}/edit",
        data={
            "kind": "individual",
            "name": "I. I.",
            "publish_as": "withheld",
            "role": "defence lawyer",
            "organisation": "Tiny Bar Association",
        },
    )
    client.post(base, data={"kind": "individual", "name": "Anna", "publish_as": "withheld"})
    client.get("/statements/")  # clears the flashed messages
    client.post("/logout")
    sign_in(client, make_user(Role.VIEWER))
    pages = [
        html_of(client.get(f"/statements/{statement.id}")),
        html_of(client.get(f"/statements/{statement.id}/versions")),
    ]
    pages += [html_of(client.get(f"/statements/{statement.id}/versions/{n}")) for n in range(1, 6)]
    for page in pages:
        for secret in ("Ivan Ivanov", "I. I.", "Tiny Bar Association", "defence lawyer"):
            assert secret not in page
    assert "Annapurna Rights" in pages[0] and "Annapurna Rights" in pages[-1]


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def test_attachments_are_checked_stored_downloaded_and_deleted(
    client: FlaskClient, login: Login, statement: Statement, app: Flask
) -> None:
    login(Role.EDITOR)
    url = f"/statements/{statement.id}/attachments"
    pdf = b"%PDF-1.7\n" + b"x" * 100

    def upload(data: bytes, name: str) -> Any:
        # Built here so the spooled request body (a temporary file when large) gets closed.
        builder = EnvironBuilder(path=url, method="POST", data={"file": (io.BytesIO(data), name)})
        environ = builder.get_environ()
        try:
            return client.open(environ)
        finally:
            environ["wsgi.input"].close()
            builder.close()

    refused = upload(b"MZ\x90\x00 not a pdf", "report.pdf")
    assert refused.status_code == 422 and "Only PDF and Word" in html_of(refused)
    too_big = upload(b"%PDF-" + b"0" * (statements.ATTACHMENT_MAX_BYTES + 1), "big.pdf")
    assert too_big.status_code == 422 and "larger than 10 MB" in html_of(too_big)
    fake_docx = upload(b"PK\x03\x04 broken zip", "x.docx")
    assert fake_docx.status_code == 422
    assert db.session.scalars(select(StatementAttachment)).all() == []

    assert upload(pdf, "../../etc/Report.pdf").status_code == 302
    assert upload(_docx(), "letter.docx").status_code == 302
    first, second = db.session.scalars(
        select(StatementAttachment).order_by(StatementAttachment.id)
    ).all()
    assert (first.filename, second.filename) == ("Report.pdf", "letter.docx")
    stored = statements.attachment_file(first)
    assert stored.is_file() and str(stored).startswith(app.instance_path)

    download = client.get(f"{url}/{first.id}")
    assert download.status_code == 200 and download.data == pdf
    assert download.headers["Content-Type"] == "application/pdf"
    download.close()

    assert client.post(f"{url}/{first.id}/delete").status_code == 302
    assert not stored.exists()
    assert db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "statement.attachment.delete")
    )
    summaries = [v.change_summary for v in statement.versions]
    assert "attachment removed: Report.pdf" in summaries


def test_viewer_downloads_but_cannot_attach_or_delete(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    attachment = statements.add_attachment(statement, "a.pdf", io.BytesIO(b"%PDF-1.4 data"))
    db.session.commit()
    login(Role.VIEWER)
    url = f"/statements/{statement.id}/attachments/{attachment.id}"
    download = client.get(url)
    assert download.data == b"%PDF-1.4 data"
    download.close()
    assert client.post(f"{url}/delete").status_code == 403
    shown = client.get(f"/statements/{statement.id}")
    assert shown.status_code == 200 and f'href="{url}"' in html_of(shown)  # download offered
    assert "Delete a.pdf" not in html_of(shown)


def test_an_editor_deletes_an_unused_statement_but_not_one_a_campaign_uses(
    client: FlaskClient, login: Login, statement: Statement
) -> None:
    from campaign.services.contacts import lists
    from campaign.services.sending import campaigns

    login(Role.EDITOR)
    used = statements.create_statement("Used", language="en", subject="S", body=BODY)
    contact_list = lists.create_list("Press")
    campaigns.create_campaign(used, audience=campaigns.AudienceSpec((f"list:{contact_list.id}",)))
    db.session.commit()

    refused = client.post(f"/statements/{used.id}/delete", follow_redirects=True)
    assert "cannot be deleted: campaigns use it" in html_of(refused)
    assert db.session.get(Statement, used.id) is not None

    statement_id = statement.id
    deleted = client.post(f"/statements/{statement_id}/delete", follow_redirects=True)
    assert "Statement deleted." in html_of(deleted)
    db.session.expunge_all()
    assert db.session.get(Statement, statement_id) is None
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "statement.delete"))

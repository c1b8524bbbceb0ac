"""The development SMTP sink: real SMTP in, Maildir files, safe reading and pages."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_mail import Message

from campaign.devmail import DevmailError, DevmailSink, html_to_text, list_messages, read_message
from campaign.extensions import mail
from campaign.models import Role
from tests import servers


@pytest.fixture
def mail_port() -> int:
    return servers.free_port()


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: these tests are about mail files, not about the database."""
    target = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def app_overrides(app_overrides: dict[str, object], mail_port: int) -> dict[str, object]:
    return {**app_overrides, "MAIL_SERVER": "localhost", "MAIL_PORT": mail_port}


@pytest.fixture
def sink(app: Flask) -> Iterator[DevmailSink]:
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT) as running:
        yield running


def _send(port: int, subject: str, *, html: str | None = None, text: str | None = "Hello.") -> None:
    message = EmailMessage()
    message["From"] = "Campaign <campaign@example.org>"
    message["To"] = "Рафаэль Пример <sr-hrd@example.org>"
    message["Subject"] = subject
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message, to_addrs=["sr-hrd@example.org", "bcc@example.org"])


def test_mail_sent_with_smtplib_and_flask_mail_is_stored_and_listed_newest_first(
    app: Flask, sink: DevmailSink
) -> None:
    _send(sink.port, "Первое письмо: appeal")
    message = Message(
        subject="Second: follow-up",
        recipients=["amb.uz@example.org"],
        body="Your Excellency,\n\nA follow-up.",
    )
    message.attach("appeal.pdf", "application/pdf", b"%PDF-1.4 fake")
    mail.send(message)

    listed = list_messages(sink.directory)
    assert [m.subject for m in listed] == ["Second: follow-up", "Первое письмо: appeal"]
    assert listed[0].recipients == "amb.uz@example.org"
    assert listed[0].sender == "Campaign <campaign@example.org>"  # MAIL_DEFAULT_SENDER
    assert listed[1].recipients == "Рафаэль Пример <sr-hrd@example.org>"
    assert all(m.size > 0 for m in listed)

    stored = read_message(sink.directory, listed[0].key)
    assert stored is not None
    assert "A follow-up." in stored.text
    assert [(a.filename, a.content_type, a.size) for a in stored.attachments] == [
        ("appeal.pdf", "application/pdf", 13)
    ]
    # The envelope is kept: a Bcc recipient is visible even though no header names it.
    first = read_message(sink.directory, listed[1].key)
    assert first is not None
    assert ("Delivered-To", "bcc@example.org") in first.headers


def test_an_html_only_message_is_read_as_text_never_as_markup(sink: DevmailSink) -> None:
    _send(
        sink.port,
        "HTML only",
        text=None,
        html="<p>Dear <b>Rapporteur</b>,</p><script>alert(1)</script><style>p{}</style>"
        "<p>Text &amp; more</p>",
    )
    (summary,) = list_messages(sink.directory)
    stored = read_message(sink.directory, summary.key)
    assert stored is not None
    assert stored.text_from_html
    assert stored.text == "Dear Rapporteur,\n\nText & more"
    assert html_to_text("<div>a<br>b</div>") == "a\nb"


def test_keys_that_name_no_stored_message_find_nothing(sink: DevmailSink) -> None:
    _send(sink.port, "Something")
    for key in ["../../etc/passwd", "..", "", "new", "*", "nonexistent.key"]:
        assert read_message(sink.directory, key) is None


def test_the_sink_listens_on_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(DevmailError, match="loopback only"):
        DevmailSink(tmp_path, "0.0.0.0", 8025)  # noqa: S104


def test_a_taken_port_gives_a_clear_message(tmp_path: Path, sink: DevmailSink) -> None:
    with pytest.raises(DevmailError, match="CAMPAIGN_MAIL_PORT"):
        DevmailSink(tmp_path / "other", "localhost", sink.port).start()


def test_the_mailbox_pages_list_show_and_download_without_rendering_html(
    client: FlaskClient, login: object, sink: DevmailSink
) -> None:
    _send(
        sink.port,
        "Appeal <i>now</i>",
        html="<p>Hello</p><script>alert('x')</script>",
        text="Plain text body",
    )
    login(Role.SENDER)  # type: ignore[operator]

    listing = client.get("/devmail/")
    assert listing.status_code == 200
    page = listing.get_data(as_text=True)
    assert "Appeal &lt;i&gt;now&lt;/i&gt;" in page
    key = list_messages(sink.directory)[0].key
    assert f"/devmail/{key}" in page

    shown = client.get(f"/devmail/{key}").get_data(as_text=True)
    assert "Plain text body" in shown
    assert "&lt;script&gt;alert(" in shown  # the HTML source, escaped
    assert "<script>alert(" not in shown

    raw = client.get(f"/devmail/{key}/raw")
    assert raw.status_code == 200
    assert raw.headers["Content-Disposition"] == f'attachment; filename="{key}.eml"'
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    assert b"Subject: Appeal <i>now</i>" in raw.data

    assert client.get("/devmail/no-such-message").status_code == 404
    assert client.get("/devmail/..%2F..%2Fcampaign.sqlite3/raw").status_code == 404


def test_the_mailbox_needs_a_signed_in_user(client: FlaskClient) -> None:
    response = client.get("/devmail/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_below_sender_the_mailbox_and_its_links_are_refused(
    client: FlaskClient, login: object, sink: DevmailSink, role: Role
) -> None:
    """It holds confirmation and password-reset links: reading it would let a viewer
    confirm a signature or take over another account."""
    _send(sink.port, "Reset your password", text="https://campaign.example.org/reset/secret")
    key = list_messages(sink.directory)[0].key
    login(role)  # type: ignore[operator]
    for path in ("/devmail/", f"/devmail/{key}", f"/devmail/{key}/raw"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"/reset/secret" not in response.data
    home = client.get("/")
    assert home.status_code == 200 and "<h1>Start</h1>" in home.get_data(as_text=True)
    assert "/devmail/" not in home.get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.SENDER, Role.ADMIN])
def test_senders_and_admins_see_the_mailbox_in_the_menu(
    client: FlaskClient, login: object, role: Role
) -> None:
    login(role)  # type: ignore[operator]
    assert 'href="/devmail/"' in client.get("/").get_data(as_text=True)


def test_the_html_part_is_served_sandboxed_and_attachments_download_safely(
    client: FlaskClient, login: object, sink: DevmailSink
) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "Files"
    message.set_content("Plain text")
    message.add_alternative("<p style='color:red'>Hello</p><script>x()</script>", subtype="html")
    message.add_attachment(
        b"%PDF-1.4 letter", maintype="application", subtype="pdf", filename="Lettre à l’ONU.pdf"
    )
    message.add_attachment(
        b"<script>alert(1)</script>", maintype="text", subtype="html", filename="../../evil.html"
    )
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
        smtp.send_message(message)
    login(Role.SENDER)  # type: ignore[operator]
    key = list_messages(sink.directory)[0].key

    shown = client.get(f"/devmail/{key}").get_data(as_text=True)
    assert f'src="/devmail/{key}/html"' in shown and 'sandbox=""' in shown
    assert "Lettre à l’ONU.pdf" in shown and "application/pdf" in shown
    assert f"/devmail/{key}/attachments/0" in shown and f"/devmail/{key}/attachments/1" in shown

    html = client.get(f"/devmail/{key}/html")
    assert html.status_code == 200 and html.mimetype == "text/html"
    assert "<p style='color:red'>Hello</p>" in html.get_data(as_text=True)  # as sent
    policy = html.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy and "script-src" not in policy
    assert html.headers["Content-Disposition"] == "inline"
    assert html.headers["X-Frame-Options"] == "SAMEORIGIN"

    pdf = client.get(f"/devmail/{key}/attachments/0")
    assert pdf.status_code == 200 and pdf.data == b"%PDF-1.4 letter"
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert (
        "filename*=UTF-8''Lettre%20%C3%A0%20l%E2%80%99ONU.pdf" in pdf.headers["Content-Disposition"]
    )
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"

    evil = client.get(f"/devmail/{key}/attachments/1")
    assert evil.mimetype == "application/octet-stream"  # never rendered as a page
    assert "/" not in evil.headers["Content-Disposition"].split("filename=")[1]
    assert evil.headers["Content-Disposition"] == "attachment; filename=_.._evil.html"

    assert client.get(f"/devmail/{key}/attachments/2").status_code == 404
    assert client.get("/devmail/no-such-message/html").status_code == 404


def test_a_download_name_keeps_no_invisible_format_character() -> None:
    from campaign.devmail import safe_download_name

    # A right-to-left override makes "report\u202egpj.exe" read as "reportexe.jpg".
    assert safe_download_name("report\u202egpj.exe") == "reportgpj.exe"
    assert safe_download_name("a\u200bb\u2066c\u2069.pdf") == "abc.pdf"
    assert "/" not in safe_download_name("../../etc/passwd")
    assert safe_download_name("\u202e") == "attachment"

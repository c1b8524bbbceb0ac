"""Mailboxes page (admins): add, edit, enable, delete, poll now; passwords never shown."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, ImapMailbox, InboundMessage, Role, User
from campaign.models._types import utcnow
from campaign.queue import get_redis
from campaign.secret_box import decrypt_secret, encrypt_secret
from campaign.services.replies.mailboxes import poll_lock_key
from campaign.web.replies import mailboxes as mailboxes_page
from tests import servers
from tests.inbound.helpers import delivery, letter_id, sent_campaign
from tests.pages import html_of

Login = Callable[[Role], User]
SECRET = "imap-Secret-42&more"


def _form(**changes: str) -> dict[str, str]:
    form = {
        "name": "Replies",
        "host": "imap.example.org",
        "port": "993",
        "security": "ssl",
        "username": "replies@example.org",
        "password": SECRET,
        "folder": "INBOX",
        "processed_folder": "Processed",
    }
    form.update(changes)
    return form


def _mailbox(name: str = "Replies") -> ImapMailbox:
    db.session.expire_all()
    found = db.session.scalar(select(ImapMailbox).where(ImapMailbox.name == name))
    assert found is not None
    return found


def _actions() -> list[str]:
    query = select(AuditEvent.action).where(AuditEvent.target_type == "imap_mailbox")
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def test_only_admins_see_mailboxes(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.SENDER)

    assert client.get("/mailboxes/").status_code == 403
    assert client.post("/mailboxes/new", data=_form()).status_code == 403
    assert db.session.scalar(select(ImapMailbox)) is None
    home = client.get("/")
    assert home.status_code == 200 and "<h1>Start</h1>" in html_of(home)
    assert "/mailboxes/" not in html_of(home)


def test_admin_adds_a_mailbox_and_the_password_is_never_shown(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    assert 'href="/mailboxes/"' in html_of(client.get("/"))

    response = client.post("/mailboxes/new", data=_form(), follow_redirects=True)

    page = html_of(response)
    assert "Mailbox Replies added" in page
    assert "imap.example.org:993" in page and "INBOX → Processed" in page
    mailbox = _mailbox()
    assert decrypt_secret(mailbox.password_encrypted) == SECRET
    assert SECRET not in page
    edit = client.get(f"/mailboxes/{mailbox.id}/edit")
    assert edit.status_code == 200 and f"<h1>Edit mailbox {mailbox.name}</h1>" in html_of(edit)
    assert SECRET not in html_of(edit)
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "mailbox.create")
    ).one()
    assert SECRET not in str(event.detail)
    assert event.detail["password_changed"] is True


def test_a_refused_form_says_why_and_keeps_what_was_typed(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)

    response = client.post("/mailboxes/new", data=_form(processed_folder="INBOX"))

    assert response.status_code == 422
    page = html_of(response)
    assert "The processed folder must differ from the folder watched." in page
    assert 'value="imap.example.org"' in page
    assert SECRET not in page
    assert client.post("/mailboxes/new", data=_form(port="http")).status_code == 422
    assert db.session.scalar(select(ImapMailbox)) is None


def test_editing_keeps_a_blank_password_and_a_new_folder_resets_the_checkpoint(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    client.post("/mailboxes/new", data=_form())
    mailbox = _mailbox()
    mailbox.uidvalidity, mailbox.last_uid = 77, 1200
    db.session.commit()

    client.post(f"/mailboxes/{mailbox.id}/edit", data=_form(password="", port="1993"))

    mailbox = _mailbox()
    assert decrypt_secret(mailbox.password_encrypted) == SECRET
    assert (mailbox.port, mailbox.uidvalidity, mailbox.last_uid) == (1993, 77, 1200)

    response = client.post(
        f"/mailboxes/{mailbox.id}/edit",
        data=_form(password="new-secret", folder="Replies"),
        follow_redirects=True,
    )

    assert "that folder is read from its start" in html_of(response)
    mailbox = _mailbox()
    assert decrypt_secret(mailbox.password_encrypted) == "new-secret"
    assert (mailbox.folder, mailbox.uidvalidity, mailbox.last_uid) == ("Replies", 0, 0)


def test_disable_enable_and_delete(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    client.post("/mailboxes/new", data=_form())
    mailbox_id = _mailbox().id

    client.post(f"/mailboxes/{mailbox_id}/enabled", data={"enabled": "0"})
    assert _mailbox().is_enabled is False
    assert "not polled" in html_of(client.get("/mailboxes/"))
    client.post(f"/mailboxes/{mailbox_id}/enabled", data={"enabled": "1"})
    assert _mailbox().is_enabled is True

    assert "stays in the replies inbox" in html_of(client.get(f"/mailboxes/{mailbox_id}/delete"))
    client.post(f"/mailboxes/{mailbox_id}/delete")

    assert db.session.scalar(select(ImapMailbox)) is None
    assert _actions() == [
        "mailbox.create",
        "mailbox.disable",
        "mailbox.enable",
        "mailbox.delete",
    ]


def test_a_failing_mailbox_raises_a_visible_alert(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    client.post("/mailboxes/new", data=_form())
    mailbox = _mailbox()
    mailbox.failures = 2
    mailbox.last_error = "imap.example.org:993 refused the connection"
    mailbox.next_poll_at = utcnow() + timedelta(minutes=2)
    db.session.commit()

    page = html_of(client.get("/mailboxes/"))
    assert 'role="alert"' not in page
    assert "backing off" in page

    mailbox.failures = 3
    db.session.commit()
    page = html_of(client.get("/mailboxes/"))

    assert "Replies has failed 3 polls in a row" in page
    assert "refused the connection" in page


def _reply(to_address: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Ambassador <{to_address}>"
    message["To"] = "office@hro.example.org"
    message["Subject"] = "Re: Release the defenders"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@embassy.example>"
    message["In-Reply-To"] = letter_id(to_address)
    message.set_content("We have read your letter.")
    return bytes(message)


def test_poll_now_reads_the_mailbox_and_says_what_it_did(
    client: FlaskClient, login: Login, app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent = sent_campaign()
    login(Role.ADMIN)
    user = f"web{uuid.uuid4().hex[:8]}"
    imap_server.add_user(user, f"{user}-pw")
    imap_server.deliver(user, _reply("ana@example.org"))
    form = _form(
        name=user,
        host=imap_server.host,
        port=str(imap_server.port),
        security="none",
        username=user,
        password=f"{user}-pw",
    )
    client.post("/mailboxes/new", data=form)
    mailbox_id = _mailbox(user).id

    response = client.post(f"/mailboxes/{mailbox_id}/poll", follow_redirects=True)

    assert f"Polled {user}: 1 fetched, 1 new" in html_of(response)
    assert delivery(sent["ana@example.org"]).replied_at is not None
    assert db.session.scalar(select(InboundMessage.source)) == f"imap:{mailbox_id}"
    assert _actions()[-1] == "mailbox.poll"


def test_poll_now_reports_a_failure(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    port = servers.free_port()  # nothing listens there
    client.post("/mailboxes/new", data=_form(host="127.0.0.1", port=str(port), security="none"))
    mailbox_id = _mailbox().id

    response = client.post(f"/mailboxes/{mailbox_id}/poll", follow_redirects=True)

    assert "Poll failed:" in html_of(response)
    mailbox = _mailbox()
    assert mailbox.failures == 1 and mailbox.last_error


def test_poll_now_with_an_unreadable_password_asks_for_it_again(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    client.post("/mailboxes/new", data=_form())
    mailbox = _mailbox()
    kept = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "the-key-before-it-was-changed"
    mailbox.password_encrypted = encrypt_secret("lost-password")
    app.config["SECRET_KEY"] = kept
    db.session.commit()

    response = client.post(f"/mailboxes/{mailbox.id}/poll", follow_redirects=True)

    assert response.status_code == 200
    assert "the stored password cannot be read" in html_of(response)
    assert _mailbox().failures == 1


def test_an_edit_is_checked_like_a_new_mailbox(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    client.post("/mailboxes/new", data=_form())
    client.post("/mailboxes/new", data=_form(name="Press"))
    press = _mailbox("Press")

    taken = client.post(f"/mailboxes/{press.id}/edit", data=_form(name="Replies"))
    same_folder = client.post(f"/mailboxes/{press.id}/edit", data=_form(processed_folder="INBOX"))

    assert taken.status_code == 422 and "exists already" in html_of(taken)
    assert same_folder.status_code == 422
    assert "must differ from the folder watched" in html_of(same_folder)
    assert (_mailbox("Press").name, _mailbox("Press").processed_folder) == ("Press", "Processed")


def test_a_clear_text_login_is_refused_unless_the_server_is_this_machine(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)

    remote = client.post("/mailboxes/new", data=_form(security="none", port="143"))

    assert remote.status_code == 422
    assert "sends the password in clear" in html_of(remote)
    assert db.session.scalar(select(ImapMailbox)) is None
    for host in ("127.0.0.1", "localhost", "::1"):
        client.post("/mailboxes/new", data=_form(name=host, host=host, security="none"))
        assert _mailbox(host).security == "none"
    local = _mailbox("localhost")
    moved = client.post(
        f"/mailboxes/{local.id}/edit",
        data=_form(name="localhost", host="imap.example.org", security="none"),
    )
    assert moved.status_code == 422 and "in clear" in html_of(moved)
    assert _mailbox("localhost").host == "localhost"


def _dovecot_mailbox(client: FlaskClient, server: servers.DovecotServer) -> ImapMailbox:
    user = f"web{uuid.uuid4().hex[:8]}"
    server.add_user(user, f"{user}-pw")
    form = _form(
        name=user,
        host=server.host,
        port=str(server.port),
        security="none",
        username=user,
        password=f"{user}-pw",
    )
    client.post("/mailboxes/new", data=form)
    return _mailbox(user)


def test_poll_now_leaves_a_mailbox_alone_while_a_worker_polls_it(
    client: FlaskClient, login: Login, app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent = sent_campaign()
    login(Role.ADMIN)
    mailbox = _dovecot_mailbox(client, imap_server)
    imap_server.deliver(mailbox.username, _reply("ana@example.org"))
    key = poll_lock_key(mailbox.id)
    get_redis().set(key, "a worker's token", ex=60)

    busy = client.post(f"/mailboxes/{mailbox.id}/poll", follow_redirects=True)

    assert f"A poll of {mailbox.name} is already running" in html_of(busy)
    assert db.session.scalar(select(InboundMessage)) is None
    assert _mailbox(mailbox.name).failures == 0
    get_redis().delete(key)
    done = client.post(f"/mailboxes/{mailbox.id}/poll", follow_redirects=True)
    assert f"Polled {mailbox.name}: 1 fetched, 1 new" in html_of(done)
    assert delivery(sent["ana@example.org"]).replied_at is not None


def test_poll_now_gives_up_on_a_silent_server_at_the_page_timeout(
    client: FlaskClient, login: Login, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(Role.ADMIN)
    monkeypatch.setattr(mailboxes_page, "PAGE_TIMEOUT_SECONDS", 0.5)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets
        port = silent.getsockname()[1]
        client.post("/mailboxes/new", data=_form(host="127.0.0.1", port=str(port)))
        mailbox_id = _mailbox().id

        response = client.post(f"/mailboxes/{mailbox_id}/poll", follow_redirects=True)

    assert f"no answer from 127.0.0.1:{port} within 0.5 s" in html_of(response)
    assert _mailbox().failures == 1


def test_poll_now_stops_at_its_time_budget_and_leaves_the_rest_to_the_workers(
    client: FlaskClient,
    login: Login,
    app: Flask,
    imap_server: servers.DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent_campaign()
    login(Role.ADMIN)
    mailbox = _dovecot_mailbox(client, imap_server)
    imap_server.deliver(mailbox.username, _reply("ana@example.org"))
    monkeypatch.setattr(mailboxes_page, "PAGE_BUDGET_SECONDS", 0)

    response = client.post(f"/mailboxes/{mailbox.id}/poll", follow_redirects=True)

    assert "0 fetched" in html_of(response)
    assert "More messages wait: the workers read them next." in html_of(response)
    assert db.session.scalar(select(InboundMessage)) is None
    assert _mailbox(mailbox.name).failures == 0

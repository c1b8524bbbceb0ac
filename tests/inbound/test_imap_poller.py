"""The IMAP poller against a real Dovecot: threading, no double handling, outages."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from email.message import EmailMessage

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.inbound.parsing import MAX_BYTES
from campaign.models import Delivery, ImapMailbox, InboundMessage, Role
from campaign.models._types import utcnow
from campaign.queue import get_redis
from campaign.secret_box import encrypt_secret
from campaign.services.replies import mailbox_admin, mailboxes
from campaign.services.replies.mailbox_admin import MailboxSettings
from tests import servers
from tests.conftest import make_user
from tests.inbound.helpers import delivery, letter_id, sent_campaign


def _reply(to_address: str, text: str = "We have read your letter.") -> bytes:
    message = EmailMessage()
    message["From"] = f"Ambassador <{to_address}>"
    message["To"] = "office@hro.example.org"
    message["Subject"] = "Re: Release the defenders"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@embassy.example>"
    message["In-Reply-To"] = letter_id(to_address)
    message.set_content(text)
    return bytes(message)


def _mailbox(server: servers.DovecotServer, processed_folder: str = "Processed") -> ImapMailbox:
    user = f"replies{uuid.uuid4().hex[:8]}"
    server.add_user(user, f"{user}-secret")
    mailbox = mailboxes.add_mailbox(
        f"Replies {user[-8:]}",  # not the login: logs must name the mailbox, not the login
        host=server.host,
        port=server.port,
        security="none",
        username=user,
        password=f"{user}-secret",
        processed_folder=processed_folder,
    )
    db.session.commit()
    return mailbox


def _poll(mailbox: ImapMailbox) -> mailboxes.PollReport:
    return mailboxes.poll_mailbox(mailbox, commit=db.session.commit)


def _stored() -> int:
    return db.session.scalar(select(func.count()).select_from(InboundMessage)) or 0


def _folder_count(server: servers.DovecotServer, user: str, folder: str) -> int:
    client = server.connect(user)
    try:
        if not client.folder_exists(folder):
            return 0
        client.select_folder(folder, readonly=True)
        return len(client.search("ALL"))
    finally:
        client.logout()


def test_replies_are_threaded_to_their_deliveries_and_moved(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent = sent_campaign()
    box = _mailbox(imap_server)
    for address in ("ana@example.org", "ben@example.net"):
        imap_server.deliver(box.username, _reply(address))

    report = _poll(box)

    assert (report.fetched, report.new, report.errors) == (2, 2, [])
    assert delivery(sent["ana@example.org"]).replied_at is not None
    assert delivery(sent["ben@example.net"]).replied_at is not None
    assert delivery(sent["chen@example.com"]).replied_at is None
    threaded = [row or 0 for row in db.session.scalars(select(InboundMessage.delivery_id))]
    assert sorted(threaded) == sorted([sent["ana@example.org"], sent["ben@example.net"]])
    assert _folder_count(imap_server, box.username, "INBOX") == 0
    assert _folder_count(imap_server, box.username, "Processed") == 2


def test_polling_twice_handles_nothing_twice(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent_campaign()
    box = _mailbox(imap_server, processed_folder="")
    imap_server.deliver(box.username, _reply("ana@example.org"))
    assert _poll(box).new == 1

    imap_server.deliver(box.username, _reply("dana@example.org"))
    second = _poll(box)

    assert (second.fetched, second.new) == (1, 1)
    assert _poll(box).fetched == 0
    assert _stored() == 2
    # Left in place when no processed folder is set.
    assert _folder_count(imap_server, box.username, "INBOX") == 2


def test_a_poll_killed_before_the_move_handles_nothing_twice_next_time(
    app: Flask, imap_server: servers.DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = sent_campaign()
    box = _mailbox(imap_server)
    imap_server.deliver(box.username, _reply("ana@example.org"))
    imap_server.deliver(box.username, _reply("ben@example.net"))

    def killed(*_args: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(mailboxes, "_move", killed)
    with pytest.raises(SystemExit):
        _poll(box)
    db.session.rollback()
    assert _stored() == 1
    monkeypatch.undo()

    report = _poll(box)

    assert (report.new, report.errors) == (1, [])
    assert _stored() == 2
    assert delivery(sent["ben@example.net"]).replied_at is not None
    # The first message, left in INBOX by the crash, stays there but is not handled again.
    assert _poll(box).new == 0
    assert _stored() == 2


def test_a_uidvalidity_change_rereads_the_folder_without_duplicates(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent_campaign()
    box = _mailbox(imap_server, processed_folder="")
    imap_server.deliver(box.username, _reply("ana@example.org"))
    imap_server.deliver(box.username, _reply("ben@example.net"))
    assert _poll(box).new == 2

    imap_server.change_uidvalidity(box.username)
    imap_server.deliver(box.username, _reply("chen@example.com"))
    report = _poll(box)

    assert (report.fetched, report.new, report.errors) == (3, 1, [])
    assert _stored() == 3
    db.session.refresh(box)
    assert box.last_uid == 3


def test_a_message_over_the_size_cap_is_recorded_from_its_headers_and_flagged(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent = sent_campaign()
    box = _mailbox(imap_server)
    imap_server.deliver(box.username, _reply("eve@example.org"))
    huge = _reply("eve@example.org", ("y" * 76 + "\n") * (MAX_BYTES // 77 + 10))

    imap_server.deliver(box.username, huge)
    report = _poll(box)

    assert (report.fetched, report.new, report.skipped_large, report.errors) == (2, 2, 1, [])
    flagged = db.session.scalars(
        select(InboundMessage).where(InboundMessage.raw_size > MAX_BYTES)
    ).one()
    assert any("only its headers" in problem for problem in flagged.problems)
    assert flagged.delivery_id == sent["eve@example.org"]


def test_the_server_down_backs_off_alerts_and_loses_nothing(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    server = servers.start_dovecot()
    try:
        sent = sent_campaign()
        box = _mailbox(server)
        server.deliver(box.username, _reply("ana@example.org"))
        server.halt()

        with caplog.at_level(logging.INFO, logger="campaign.services.replies.mailboxes"):
            reports = [_poll(box) for _ in range(3)]

        assert all(report.errors and report.new == 0 for report in reports)
        db.session.refresh(box)
        assert box.failures == 3
        assert "cannot connect to" in box.last_error
        assert f"{box.username}-secret" not in box.last_error
        assert box.next_poll_at is not None and box.last_polled_at is not None
        assert (box.next_poll_at - box.last_polled_at).total_seconds() == 4 * 60
        assert box not in mailboxes.due_mailboxes()
        assert any("ALERT" in r.message and r.levelno == logging.WARNING for r in caplog.records)

        server = servers.start_dovecot(directory=server.directory, port=server.port)
        report = _poll(box)

        assert (report.new, report.errors) == (1, [])
        assert delivery(sent["ana@example.org"]).replied_at is not None
        db.session.refresh(box)
        assert (box.failures, box.last_error, box.next_poll_at) == (0, "", None)
    finally:
        server.stop()


def test_backoff_doubles_up_to_fifteen_minutes() -> None:
    minutes = [mailboxes.backoff(n).total_seconds() / 60 for n in range(1, 8)]
    assert minutes == [1, 2, 4, 8, 15, 15, 15]


def test_a_wrong_password_is_reported_and_logged_without_the_password_or_login(
    app: Flask, imap_server: servers.DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    box = _mailbox(imap_server)
    box.password_encrypted = encrypt_secret("not-the-password")
    db.session.commit()

    with caplog.at_level(logging.INFO):
        reports = [_poll(box) for _ in range(3)]

    assert reports[0].errors
    assert "refused the login" in reports[0].errors[0]
    assert "not-the-password" not in box.last_error
    assert box.failures == 3
    alert = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alert) == 1 and f"mailbox {box.id} ({box.name})" in alert[0]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert box.username not in logged
    assert "not-the-password" not in logged


def test_poll_inbox_prints_what_each_mailbox_did(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent_campaign()
    box = _mailbox(imap_server)
    imap_server.deliver(box.username, _reply("ana@example.org"))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["poll-inbox", "--mailbox", box.name])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{box.name}: fetched 1, new 1, skipped 0"
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 8


def test_add_mailbox_stores_the_password_encrypted(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            "add-mailbox",
            "replies",
            "--host",
            "imap.example.org",
            "--user",
            "office",
            "--password-stdin",
            "--security",
            "starttls",
            "--port",
            "143",
        ],
        input="s3cret\n",
    )

    assert result.exit_code == 0, result.output
    stored = mailboxes.find_mailbox("replies")
    assert stored is not None
    assert (stored.host, stored.port, stored.security, stored.folder) == (
        "imap.example.org",
        143,
        "starttls",
        "INBOX",
    )
    assert "s3cret" not in stored.password_encrypted
    again = app.test_cli_runner().invoke(
        args=["add-mailbox", "replies", "--host", "h", "--user", "u"]
    )
    assert again.exit_code != 0
    assert "exists already" in again.output


def test_the_periodic_job_polls_only_the_mailboxes_that_are_due(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    from workers import jobs
    from workers.context import set_app

    set_app(app)
    sent_campaign()
    due = _mailbox(imap_server)
    waiting = _mailbox(imap_server)
    waiting.next_poll_at = utcnow() + timedelta(minutes=5)
    db.session.commit()
    imap_server.deliver(due.username, _reply("ana@example.org"))
    imap_server.deliver(waiting.username, _reply("ben@example.net"))

    jobs.poll_inboxes()

    db.session.expire_all()
    sources = db.session.scalars(select(InboundMessage.source)).all()
    assert sources == [f"imap:{due.id}"]


def _unreadable_secret(app: Flask) -> str:
    """A password encrypted under another SECRET_KEY: what a key change leaves behind."""
    kept = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "the-key-before-it-was-changed"
    try:
        return encrypt_secret("lost-password")
    finally:
        app.config["SECRET_KEY"] = kept


def test_an_unreadable_stored_password_backs_off_and_asks_for_it_again(
    app: Flask, imap_server: servers.DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    box = _mailbox(imap_server)
    box.password_encrypted = _unreadable_secret(app)
    db.session.commit()

    with caplog.at_level(logging.INFO, logger="campaign.services.replies.mailboxes"):
        reports = [_poll(box) for _ in range(3)]

    assert all(len(report.errors) == 1 for report in reports)
    assert "stored password cannot be read" in reports[0].errors[0]
    assert "enter it again" in reports[0].errors[0]
    db.session.refresh(box)
    assert box.failures == 3 and "cannot be read" in box.last_error
    assert box not in mailboxes.due_mailboxes()
    assert any("ALERT" in r.message for r in caplog.records)


def test_a_message_that_cannot_be_recorded_backs_off_and_is_read_again_later(
    app: Flask, imap_server: servers.DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = sent_campaign()
    box = _mailbox(imap_server)
    imap_server.deliver(box.username, _reply("ana@example.org"))

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ValueError("a refusal quoting private text")

    monkeypatch.setattr(mailboxes, "record_inbound", broken)
    report = _poll(box)

    assert report.errors and report.new == 0
    db.session.refresh(box)
    assert box.failures == 1 and box.next_poll_at is not None
    assert "unexpected ValueError" in box.last_error
    assert "private text" not in box.last_error
    assert _folder_count(imap_server, box.username, "INBOX") == 1
    monkeypatch.undo()

    assert (_poll(box).new, _stored()) == (1, 1)
    assert delivery(sent["ana@example.org"]).replied_at is not None


def test_the_periodic_job_polls_the_other_mailboxes_when_one_breaks(
    app: Flask,
    imap_server: servers.DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from workers import jobs
    from workers.context import set_app

    set_app(app)
    sent = sent_campaign()
    first, second = sorted([_mailbox(imap_server), _mailbox(imap_server)], key=lambda m: m.name)
    imap_server.deliver(first.username, _reply("ana@example.org"))
    imap_server.deliver(second.username, _reply("ben@example.net"))
    real_connect = mailboxes.connect

    def connect(mailbox: ImapMailbox, **kwargs: float) -> object:
        if mailbox.name == first.name:
            raise RuntimeError(f"bug while connecting as {mailbox.username}")
        return real_connect(mailbox, **kwargs)

    monkeypatch.setattr(mailboxes, "connect", connect)
    with caplog.at_level(logging.INFO, logger="workers.jobs"):
        jobs.poll_inboxes()

    db.session.expire_all()
    assert delivery(sent["ben@example.net"]).replied_at is not None
    assert delivery(sent["ana@example.org"]).replied_at is None
    failure = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failure) == 1
    assert f"mailbox {first.id} failed with RuntimeError" in failure[0]
    assert first.username not in failure[0]


def test_a_renamed_mailbox_read_again_records_nothing_twice(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent_campaign()
    box = _mailbox(imap_server, processed_folder="")
    imap_server.deliver(box.username, _reply("ana@example.org"))
    assert _poll(box).new == 1
    settings = MailboxSettings(
        name="Replies (renamed)",
        host=box.host,
        port=box.port,
        security=box.security,
        username=box.username,
        password="",
        folder=box.folder,
        processed_folder=box.processed_folder,
    )
    mailbox_admin.update_mailbox(box, settings, actor=make_user(Role.ADMIN))
    db.session.commit()

    imap_server.change_uidvalidity(box.username)
    report = _poll(box)

    assert (report.fetched, report.new, report.errors) == (1, 0, [])
    assert _stored() == 1


def test_a_reply_reaching_two_mailboxes_is_recorded_once(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    sent = sent_campaign()
    office, press = _mailbox(imap_server), _mailbox(imap_server)
    reply = _reply("ana@example.org")
    imap_server.deliver(office.username, reply)
    imap_server.deliver(press.username, reply)

    assert _poll(office).new == 1
    assert (_poll(press).fetched, _stored()) == (1, 1)
    assert delivery(sent["ana@example.org"]).replied_at is not None
    assert db.session.scalar(select(InboundMessage.source)) == f"imap:{office.id}"


def test_add_mailbox_refuses_a_clear_text_login_to_another_machine(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            *("add-mailbox", "replies", "--host", "imap.example.org", "--user", "office"),
            *("--security", "none", "--port", "143", "--password-stdin"),
        ],
        input="s3cret\n",
    )

    assert result.exit_code != 0
    assert "Security: “None (plain text)” sends the password in clear" in result.output
    assert mailboxes.find_mailbox("replies") is None


def test_a_stored_clear_text_mailbox_on_another_machine_is_never_logged_into(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    box = _mailbox(imap_server)
    box.host = "localhost.example.org"  # saved before the form refused it
    db.session.commit()

    report = _poll(box)

    assert report.errors and "in clear" in report.errors[0]
    assert box.failures == 1


def test_a_mailbox_another_poller_holds_is_left_alone(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    from workers import jobs
    from workers.context import set_app

    set_app(app)
    sent_campaign()
    box = _mailbox(imap_server)
    imap_server.deliver(box.username, _reply("ana@example.org"))
    get_redis().set(mailboxes.poll_lock_key(box.id), "another poller", ex=60)

    jobs.poll_inboxes()
    result = app.test_cli_runner().invoke(args=["poll-inbox", "--mailbox", box.name])

    assert result.output.strip() == f"{box.name}: a poll is already running; nothing done"
    assert _stored() == 0
    assert _folder_count(imap_server, box.username, "INBOX") == 1
    db.session.refresh(box)
    assert box.failures == 0

"""Replies answered in place (issue 15, item 7): names in the inbox, bulk triage, the next
open reply, and answers sent through the campaign's SMTP account, threaded and kept."""

from __future__ import annotations

import email
import email.policy
import hashlib
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    AnswerStatus,
    AuditEvent,
    Contact,
    Delivery,
    InboundMessage,
    ReplyAnswer,
    Role,
    User,
)
from campaign.models._types import utcnow
from campaign.services.replies.intake import record_inbound
from tests.conftest import make_user, sign_in
from tests.fault_smtp import FaultSmtpServer
from tests.inbound.helpers import corpus, sent_campaign

Login = Callable[[Role], User]

# A reply deep in a thread: its References name our letter and an earlier message.
THREADED = (
    b"From: Ana Lima <ana@example.org>\r\n"
    b"To: Human Rights Office <office@hro.example.org>\r\n"
    b"Subject: RE: Re: Release the defenders\r\n"
    b"Date: Tue, 4 Mar 2025 10:00:00 +0000\r\n"
    b"Message-ID: <second.ana@mail.example.org>\r\n"
    b"In-Reply-To: <earlier.ana@mail.example.org>\r\n"
    b"References: <letter.ana@hro.example.org> <earlier.ana@mail.example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"We will raise it again.\r\n"
)


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # a stall here tests the overall deadline, never this one
    }


def _record(raw: bytes) -> InboundMessage:
    message = record_inbound(raw).message
    db.session.commit()
    return message


def _fresh(model: Any, row_id: int) -> Any:
    db.session.expire_all()
    return db.session.get(model, row_id)


def _events(action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(db.session.scalars(query))


def _answer(client: FlaskClient, message_id: int, **form: str) -> Any:
    data = {
        "to": "ana@example.org",
        "subject": "Re: Release the defenders",
        "body": "Thank you, we will follow up.\n\n> quoted",
        "seen": "0",
        **form,
    }
    return client.post(f"/replies/{message_id}/answer", data=data)


# --- the inbox ------------------------------------------------------------------------------


def test_the_inbox_names_contacts_with_role_and_organisation(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    sent_campaign()
    ana = db.session.scalar(select(Contact).where(Contact.email_key == "ana@example.org"))
    assert ana is not None
    ana.given_name, ana.family_name = "Ana", "Lima"
    ana.role_type, ana.organisation = "ambassador", "Embassy of Brazil"
    # The unmatched question comes from an address a live contact has; a trashed contact
    # with another stranger's address is not named.
    from campaign.services.contacts.contacts import create_contact

    create_contact({"email": "someone@unknown.example", "family_name": "Else", "role_type": "ngo"})
    db.session.commit()
    _record(corpus("reply_in_reply_to.eml"))
    _record(corpus("reply_unmatched.eml"))
    login(Role.EDITOR)

    page = client.get("/replies/").get_data(as_text=True)

    assert "Ana Lima" in page
    assert "Ambassador" in page and "Embassy of Brazil" in page
    assert "Else" in page and "NGO" in page

    trashed = db.session.scalar(
        select(Contact).where(Contact.email_key == "someone@unknown.example")
    )
    assert trashed is not None
    trashed.deleted_at = utcnow()
    db.session.commit()
    page = client.get("/replies/").get_data(as_text=True)
    assert "someone@unknown.example" in page
    assert ">Else<" not in page


def test_bulk_mark_handled_and_assign_one_post_one_audit_event(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    sent_campaign()
    ids = [
        _record(corpus(name)).id
        for name in ("reply_in_reply_to.eml", "reply_unmatched.eml", "ooo_fr.eml")
    ]
    colleague = make_user(Role.EDITOR, "colleague@example.org")
    login(Role.EDITOR)

    response = client.post(
        "/replies/bulk", data={"ids": [str(ids[0]), str(ids[1])], "action": "handled"}
    )
    assert response.status_code == 302
    assert "2 messages marked handled." in client.get("/replies/").get_data(as_text=True)
    assert _fresh(InboundMessage, ids[0]).handled_at is not None
    assert _fresh(InboundMessage, ids[1]).handled_at is not None
    assert _fresh(InboundMessage, ids[2]).handled_at is None
    [event] = _events("inbound.bulk_handled")
    assert event.detail["count"] == 2

    client.post(
        "/replies/bulk",
        data={"ids": [str(i) for i in ids], "action": "assign", "user_id": str(colleague.id)},
    )
    assert {_fresh(InboundMessage, i).assigned_to_id for i in ids} == {colleague.id}
    [event] = _events("inbound.bulk_assigned")
    assert event.detail["count"] == 3

    # Nothing ticked: said in words, nothing changed.
    client.post("/replies/bulk", data={"action": "handled"})
    assert "No message was selected." in client.get("/replies/").get_data(as_text=True)


def test_handling_one_reply_opens_the_next_oldest_then_the_inbox(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    sent_campaign()
    first = _record(corpus("reply_in_reply_to.eml"))  # 3 March
    second = _record(THREADED)  # 4 March
    login(Role.EDITOR)

    response = client.post(f"/replies/{second.id}/handled", data={"handled": "1", "kind": "reply"})
    assert response.headers["Location"].startswith(f"/replies/{first.id}?")
    assert "kind=reply" in response.headers["Location"]

    response = client.post(f"/replies/{first.id}/handled", data={"handled": "1", "kind": "reply"})
    assert response.headers["Location"].startswith("/replies/?")
    assert "Nothing else is waiting here." in client.get("/replies/").get_data(as_text=True)


# --- answers ----------------------------------------------------------------------------------


def test_answer_subject_gets_one_re() -> None:
    from campaign.services.replies.answers import answer_subject

    assert answer_subject("Release the defenders") == "Re: Release the defenders"
    assert answer_subject("RE: Re: Release") == "Re: Release"
    assert answer_subject("Отв: Освободите") == "Re: Освободите"
    assert answer_subject("Re[2]: AW: x") == "Re: x"


def test_an_answer_goes_out_threaded_is_kept_and_shows_on_the_contact(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(THREADED)
    login(Role.EDITOR)

    form = client.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert 'value="Re: Release the defenders"' in form  # "RE: Re:" not doubled
    assert "&gt; We will raise it again." in form  # the original quoted below

    response = _answer(client, reply.id)
    assert response.status_code == 302

    [received] = fault_smtp.messages
    parsed = email.message_from_bytes(received.raw, policy=email.policy.default)
    assert parsed["Subject"] == "Re: Release the defenders"
    assert parsed["In-Reply-To"] == "<second.ana@mail.example.org>"
    assert parsed["References"].split() == [
        "<letter.ana@hro.example.org>",
        "<earlier.ana@mail.example.org>",
        "<second.ana@mail.example.org>",
    ]
    assert parsed["From"] == "Human Rights Office <office@hro.example.org>"
    assert parsed["Message-ID"].endswith("@hro.example.org>")
    assert parsed.get_content_type() == "text/plain"
    assert parsed["Content-Type"].params.get("format") == "flowed"
    assert received.rcpt_tos == ("ana@example.org",)
    assert b"\r\n" in received.raw and b"\n" not in received.raw.replace(b"\r\n", b"")

    answer = db.session.scalar(select(ReplyAnswer))
    assert answer is not None
    assert answer.status == AnswerStatus.SENT
    assert answer.message_id == parsed["Message-ID"]
    sent_bytes = zlib.decompress(answer.message_blob or b"")
    assert answer.message_sha256 == hashlib.sha256(sent_bytes).hexdigest()
    assert _fresh(InboundMessage, reply.id).handled_at is not None

    page = client.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert "Answer sent to ana@example.org." in page
    assert answer.message_id.replace("<", "&lt;").replace(">", "&gt;") in page
    download = client.get(f"/replies/{reply.id}/answers/{answer.id}.eml")
    assert download.status_code == 200
    assert download.data == sent_bytes
    assert download.headers["Content-Disposition"].startswith("attachment;")

    [event] = _events("inbound.answered")
    assert "follow up" not in str(event.detail) and "Release" not in str(event.detail)

    contact = db.session.scalar(select(Contact).where(Contact.email_key == "ana@example.org"))
    assert contact is not None and answer.contact_id == contact.id
    contact_page = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert "answered by editor@example.org" in contact_page


def test_a_refused_recipient_is_failed_in_words_and_the_reply_stays_open(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.EDITOR)
    fault_smtp.fail(550, "5.1.1 No such user here", stage="rcpt")

    _answer(client, reply.id)

    answer = db.session.scalar(select(ReplyAnswer))
    assert answer is not None
    assert answer.status == AnswerStatus.FAILED
    assert answer.error == "recipient: 550 5.1.1 No such user here"
    assert answer.message_blob is None
    assert fault_smtp.messages == []
    assert _fresh(InboundMessage, reply.id).handled_at is None
    page = client.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert "Not sent: the mail server refused the recipient ana@example.org" in page


def test_a_connection_lost_after_the_data_is_in_doubt_never_failed(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.EDITOR)
    fault_smtp.drop(stage="after_dot")

    _answer(client, reply.id)

    answer = db.session.scalar(select(ReplyAnswer))
    assert answer is not None
    assert answer.status == AnswerStatus.IN_DOUBT
    assert len(fault_smtp.messages) == 1  # it did arrive: "failed" would have been a lie
    assert answer.message_blob is not None
    assert "may have been delivered" in client.get(f"/replies/{reply.id}").get_data(as_text=True)


def test_two_staff_answering_at_once_both_send_and_the_second_is_told(
    client: FlaskClient, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    first, second = make_user(Role.EDITOR, "first@example.org"), make_user(Role.EDITOR)
    other = app.test_client()
    sign_in(client, first)
    sign_in(other, second)
    # Both loaded the page before either answered: both forms say "seen: none".
    _answer(client, reply.id)
    response = _answer(other, reply.id)

    assert response.status_code == 302
    assert len(fault_smtp.messages) == 2
    statuses = [a.status for a in db.session.scalars(select(ReplyAnswer))]
    assert statuses == [AnswerStatus.SENT, AnswerStatus.SENT]
    page = other.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert "first@example.org answered this reply" in page
    assert "ago" in page


def test_bad_answers_are_refused_in_words_and_nothing_is_stored(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    bounce = _record(corpus("postfix_dsn.eml"))
    unmatched = _record(corpus("reply_unmatched.eml"))
    login(Role.EDITOR)

    empty = _answer(client, reply.id, body="  \n")
    assert empty.status_code == 400
    assert "Not sent: The answer is empty." in empty.get_data(as_text=True)
    two = _answer(client, reply.id, to="a@example.org, b@example.org", body="Typed text")
    assert two.status_code == 400
    assert "is not one e-mail address" in two.get_data(as_text=True)
    assert "Typed text" in two.get_data(as_text=True)  # what was typed comes back
    assert _answer(client, bounce.id).status_code == 400
    no_account = _answer(client, unmatched.id, to="someone@unknown.example")
    assert "Choose the SMTP account" in no_account.get_data(as_text=True)

    assert db.session.scalars(select(ReplyAnswer)).all() == []
    assert fault_smtp.messages == []

    # An unmatched message is answered through the account chosen, from the default sender.
    sent = _answer(client, unmatched.id, to="someone@unknown.example", account="default")
    assert sent.status_code == 302
    [received] = fault_smtp.messages
    assert received.rcpt_tos == ("someone@unknown.example",)
    assert b"In-Reply-To: <question.1@unknown.example>" in received.raw


# --- review fixes ---------------------------------------------------------------------------


def test_an_editor_answers_only_the_sender_a_sender_may_write_elsewhere(
    client: FlaskClient, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    sign_in(client, make_user(Role.EDITOR))

    response = _answer(client, reply.id, to="someone.else@example.net")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "editors may answer only to the sender of the message (ana@example.org)" in page
    assert "needs the sender role" in page
    assert fault_smtp.messages == [] and db.session.scalars(select(ReplyAnswer)).all() == []
    # The sender's own address, written differently, is the sender's.
    assert _answer(client, reply.id, to="Ana <ANA@example.org>").status_code == 302

    other = app.test_client()
    sign_in(other, make_user(Role.SENDER, "sender@example.org"))
    assert _answer(other, reply.id, to="someone.else@example.net", again="1").status_code == 302
    assert [m.rcpt_tos for m in fault_smtp.messages][-1] == ("someone.else@example.net",)


def test_one_overall_deadline_for_the_conversation_not_one_per_step(
    client: FlaskClient,
    login: Login,
    app: Flask,
    fault_smtp: FaultSmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from campaign.services.replies import answers as reply_answers

    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.EDITOR)
    # Each step answers within the per-step timeout, but the whole takes longer than allowed.
    monkeypatch.setattr(reply_answers, "SEND_TIMEOUT_SECONDS", 1.5)
    fault_smtp.stall(1.0, stage="connect")
    fault_smtp.stall(1.0, stage="mail")

    _answer(client, reply.id)

    answer = _fresh(ReplyAnswer, db.session.scalar(select(ReplyAnswer.id)))
    assert answer.status == AnswerStatus.FAILED
    assert fault_smtp.messages == []
    page = client.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert "took too long, before the message was handed over: it was not sent" in page


def test_an_answer_stuck_in_sending_is_shown_in_doubt(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    from datetime import timedelta

    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    author = login(Role.EDITOR)
    db.session.add(
        ReplyAnswer(
            inbound_id=reply.id,
            author_id=author.id,
            to_address="ana@example.org",
            subject="Re: x",
            body_text="cut off",
            message_id="<stuck.1@hro.example.org>",
            status=AnswerStatus.SENDING.value,
            created_at=utcnow() - timedelta(minutes=20),
        )
    )
    db.session.commit()

    page = client.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert "answer-in_doubt" in page
    assert "never finished" in page and "It may have been delivered" in page


def test_a_second_click_is_not_sent_without_an_explicit_confirmation(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.EDITOR)

    assert _answer(client, reply.id, seen="0").status_code == 302
    again = _answer(client, reply.id, seen="0")  # the same form, submitted twice

    assert again.status_code == 409
    page = again.get_data(as_text=True)
    assert "you already sent an answer to this message at" in page
    assert 'name="again"' in page and 'name="seen" value="0"' in page
    assert len(fault_smtp.messages) == 1

    assert _answer(client, reply.id, seen="0", again="1").status_code == 302
    assert len(fault_smtp.messages) == 2


def test_a_damaged_seen_field_is_refused_before_anything_is_sent(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.EDITOR)

    response = _answer(client, reply.id, seen="9" * 30)

    assert response.status_code == 400
    assert "the form is damaged" in response.get_data(as_text=True)
    assert fault_smtp.messages == []
    assert db.session.scalars(select(ReplyAnswer)).all() == []


def test_the_audit_and_handled_are_committed_with_the_outcome(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    from campaign.services.replies.answers import send_answer

    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    user = make_user(Role.EDITOR)
    with app.test_request_context():
        sent = send_answer(
            reply,
            user,
            to="ana@example.org",
            subject="Re: x",
            body="Thanks.",
            commit=db.session.commit,
        )
        answer_id = sent.answer.id
        db.session.rollback()  # whatever the caller does next is lost; the outcome is not

    assert _fresh(ReplyAnswer, answer_id).status == AnswerStatus.SENT
    assert len(_events("inbound.answered")) == 1
    assert _fresh(InboundMessage, reply.id).handled_at is not None


@pytest.mark.parametrize(
    "to",
    [
        "ana@example.org; other@example.net",
        "ana@example.org\r\nBcc: other@example.net",
        "ana@example.org\nother@example.net",
        "ana@@example.org",
    ],
)
def test_only_one_plain_address_is_taken_as_to(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer, to: str
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.ADMIN)

    response = _answer(client, reply.id, to=to)

    assert response.status_code == 400
    assert "Not sent: “" in response.get_data(as_text=True)
    assert fault_smtp.messages == [] and db.session.scalars(select(ReplyAnswer)).all() == []


def test_failed_answers_do_not_count_as_answered(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.EDITOR)
    fault_smtp.fail(550, "5.1.1 No such user here", stage="rcpt")
    _answer(client, reply.id)

    response = client.get(f"/replies/{reply.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="reply-subject"' in page
    assert 'id="answered-before"' not in page


def test_bulk_is_capped_at_a_page_and_assigning_needs_a_choice(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    from campaign.services.replies.replies import PER_PAGE

    sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    login(Role.EDITOR)

    client.post(
        "/replies/bulk",
        data={
            "ids": [str(reply.id)] + [str(i) for i in range(10**6, 10**6 + PER_PAGE)],
            "action": "handled",
        },
    )
    page = client.get("/replies/").get_data(as_text=True)
    assert f"at most {PER_PAGE} messages (one page) can be changed at once" in page
    assert _fresh(InboundMessage, reply.id).handled_at is None
    assert "choose…" in page

    client.post("/replies/bulk", data={"ids": [str(reply.id)], "action": "assign", "user_id": ""})
    page = client.get("/replies/").get_data(as_text=True)
    assert "choose whom to assign the messages to" in page
    assert "assigned to nobody" not in page
    assert _events("inbound.bulk_assigned") == []


def test_errors_are_stored_neutral_and_the_quote_is_in_the_readers_language(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    deliveries = sent_campaign()
    reply = _record(corpus("reply_in_reply_to.eml"))
    letter = db.session.get(Delivery, deliveries["ana@example.org"])
    assert letter is not None
    letter.language = "fr"  # the letter Ana answers was in French
    db.session.commit()
    user = login(Role.EDITOR)
    user.language = "ru"
    db.session.commit()
    fault_smtp.fail(550, "5.1.1 No such user here", stage="rcpt")

    form = client.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert "Le 3 mars 2025, ana@example.org a écrit" in form  # French for Ana, not Russian
    _answer(client, reply.id)

    answer = db.session.scalar(select(ReplyAnswer))
    assert answer is not None
    assert answer.error == "recipient: 550 5.1.1 No such user here"
    user = _fresh(User, user.id)
    user.language = "en"
    db.session.commit()
    page = client.get(f"/replies/{reply.id}").get_data(as_text=True)
    assert "the mail server refused the recipient ana@example.org" in page

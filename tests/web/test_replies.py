"""The replies inbox pages: filters, triage actions, roles, uploads and the framed HTML."""

from __future__ import annotations

import io
import mailbox
import re
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.inbound.sanitise import FRAME_CSP
from campaign.models import AuditEvent, Campaign, InboundMessage, Role, User
from campaign.services.replies.intake import record_inbound
from tests.conftest import TEST_PASSWORD, make_user
from tests.inbound.helpers import corpus, delivery, sent_campaign
from tests.pages import csrf_token

Login = Callable[[Role], User]
HOSTILE_HTML = corpus("reply_hostile_html.eml").split(b"\n\n", 1)[1].decode()


def _record(name: str) -> InboundMessage:
    message = record_inbound(corpus(name)).message
    db.session.commit()
    return message


def _inbox_ids(client: FlaskClient, query: str = "") -> list[int]:
    response = client.get(f"/replies/{query}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="inbox-title"' in page  # the inbox, even when it lists nobody
    return [int(found) for found in re.findall(r'<tr class="inbound-[^"]*" data-id="(\d+)"', page)]


def _message(message_id: int) -> InboundMessage:
    db.session.expire_all()
    found = db.session.get(InboundMessage, message_id)
    assert found is not None
    return found


def _actions(target_id: int) -> list[str]:
    query = select(AuditEvent.action).where(
        AuditEvent.target_type == "inbound_message", AuditEvent.target_id == str(target_id)
    )
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


@pytest.fixture
def mail(app: Flask) -> dict[str, int]:
    """A sent campaign and one message of each kind: name → inbound id."""
    sent_campaign()
    names = {
        "reply": "reply_in_reply_to.eml",
        "weak": "reply_rewritten_headers.eml",
        "auto": "ooo_fr.eml",
        "bounce": "postfix_dsn.eml",
        "unmatched": "reply_unmatched.eml",
    }
    return {key: _record(name).id for key, name in names.items()}


# --- roles -------------------------------------------------------------------------------


def test_a_viewer_cannot_read_replies(
    client: FlaskClient, login: Login, mail: dict[str, int]
) -> None:
    login(Role.VIEWER)
    reply = mail["reply"]

    for url in ("/replies/", f"/replies/{reply}", f"/replies/{reply}/html", "/replies/upload"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/replies/{reply}/handled", data={"handled": "1"}).status_code == 403
    assert _message(reply).handled_at is None
    home = client.get("/")
    assert home.status_code == 200 and "<h1>Start</h1>" in home.get_data(as_text=True)
    assert "/replies/" not in home.get_data(as_text=True)


def test_only_an_admin_downloads_the_original(client: FlaskClient, app: Flask) -> None:
    sent_campaign()
    raw = corpus("reply_in_reply_to.eml")
    message = _record("reply_in_reply_to.eml")
    message.raw_blob = zlib.compress(raw)
    db.session.commit()
    editor, admin = make_user(Role.EDITOR), make_user(Role.ADMIN)

    from tests.conftest import sign_in

    sign_in(client, editor)
    assert client.get(f"/replies/{message.id}/original").status_code == 403
    shown = client.get(f"/replies/{message.id}")
    assert shown.status_code == 200 and 'id="reply-subject"' in shown.get_data(as_text=True)
    assert "download-original" not in shown.get_data(as_text=True)
    client.post("/logout")
    sign_in(client, admin)
    response = client.get(f"/replies/{message.id}/original")

    assert response.status_code == 200
    assert response.data == raw
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "inbound.download" in _actions(message.id)


def test_a_stored_original_that_does_not_decompress_is_reported_not_served(
    client: FlaskClient, login: Login, mail: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    login(Role.ADMIN)
    reply = _message(mail["reply"])
    reply.raw_blob = b"not zlib at all"
    db.session.commit()

    page = client.get(f"/replies/{reply.id}")
    download = client.get(f"/replies/{reply.id}/original")

    assert page.status_code == 200  # the message is still readable from its columns
    assert download.status_code == 404
    # The one reader of stored originals says which row is damaged, for the admin's log.
    assert f"inbound message {reply.id}: stored original does not decompress" in caplog.text
    assert "inbound.download" not in _actions(reply.id)


def test_a_large_original_is_not_inflated_to_show_its_headers(
    client: FlaskClient, login: Login, mail: dict[str, int]
) -> None:
    login(Role.EDITOR)
    reply = _message(mail["reply"])
    head = b"To: Ana <ana@example.org>\r\nCc: desk@example.org\r\nSubject: big\r\n\r\n"
    size = 25 * 1024 * 1024
    reply.raw_blob = zlib.compress(head + b"x" * size)  # a 25 MB attachment, say
    db.session.commit()

    tracemalloc.start()
    try:
        page = client.get(f"/replies/{reply.id}").get_data(as_text=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    headers = page.split('id="reply-headers"', 1)[1].split("</dl>", 1)[0]
    assert "ana@example.org" in headers and "desk@example.org" in headers
    # Showing three headers must not hold the whole original in memory.
    assert peak < size // 4


# --- the inbox and its filters -----------------------------------------------------------


def test_tabs_count_each_kind_and_filter_to_one(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    login(Role.EDITOR)

    page = client.get("/replies/").get_data(as_text=True)

    for label, count in [
        ("All", 5),
        ("Human replies", 2),
        ("Auto-replies", 1),
        ("Bounces", 1),
        ("Unmatched", 1),
    ]:
        assert f">{label} ({count})</a>" in page
    assert sorted(_inbox_ids(client)) == sorted(mail.values())
    assert sorted(_inbox_ids(client, "?kind=reply")) == sorted([mail["reply"], mail["weak"]])
    assert _inbox_ids(client, "?kind=unmatched") == [mail["unmatched"]]
    assert _inbox_ids(client, "?kind=bounce") == [mail["bounce"]]
    # An unknown kind is no filter, not an error.
    assert len(_inbox_ids(client, "?kind=nonsense")) == 5


def test_weak_match_and_unverified_are_flagged(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    login(Role.EDITOR)
    reply = _message(mail["reply"])
    reply.is_unverified = True
    reply.dmarc = "fail"
    db.session.commit()

    inbox = client.get("/replies/").get_data(as_text=True)
    weak_page = client.get(f"/replies/{mail['weak']}").get_data(as_text=True)
    unverified_page = client.get(f"/replies/{mail['reply']}").get_data(as_text=True)

    assert inbox.count(">weak match</span>") == 1
    assert inbox.count(">unverified</span>") == 1
    assert "Weak match — confirm." in weak_page
    assert "Unverified sender (DMARC failed)." in unverified_page
    assert "Unverified sender" not in weak_page


def test_search_by_sender_or_subject(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    login(Role.EDITOR)

    assert _inbox_ids(client, "?q=SOMEONE@unknown") == [mail["unmatched"]]
    assert _inbox_ids(client, "?q=question+about") == [mail["unmatched"]]
    assert _inbox_ids(client, "?q=100%25") == []  # a LIKE wildcard is a plain character


def test_a_campaign_inbox_shows_its_name_and_only_its_mail(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    login(Role.EDITOR)
    campaign = db.session.scalars(select(Campaign)).one()

    page = client.get(f"/replies/?campaign={campaign.id}").get_data(as_text=True)

    assert f"Replies to {campaign.name}" in page
    ids = _inbox_ids(client, f"?campaign={campaign.id}")
    assert mail["unmatched"] not in ids
    assert sorted(ids) == sorted([mail["reply"], mail["weak"], mail["auto"], mail["bounce"]])
    assert client.get("/replies/?campaign=999").status_code == 404


def test_the_inbox_pages_through_many_messages(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    login(Role.EDITOR)
    for number in range(55):
        raw = (
            f"From: sender{number}@example.net\r\nSubject: Note {number}\r\n"
            f"Message-ID: <n{number}@example.net>\r\n\r\nHello\r\n"
        ).encode()
        record_inbound(raw)
    db.session.commit()

    first = _inbox_ids(client)
    second_page = client.get("/replies/?page=2").get_data(as_text=True)

    assert len(first) == 50
    assert "Page 2 of 2" in second_page
    assert "55 messages, 51–55 shown." in second_page
    assert len(_inbox_ids(client, "?page=2")) == 5
    assert not set(first) & set(_inbox_ids(client, "?page=2"))
    # A page past the end shows the last one; nonsense shows the first.
    assert "Page 2 of 2" in client.get("/replies/?page=99").get_data(as_text=True)
    assert _inbox_ids(client, "?page=0") == first
    assert _inbox_ids(client, "?page=x") == first


# --- triage ------------------------------------------------------------------------------


def test_mark_handled_moves_it_between_open_and_handled(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    editor = login(Role.EDITOR)
    reply = mail["reply"]

    response = client.post(f"/replies/{reply}/handled", data={"handled": "1"})

    assert response.status_code == 302
    assert _message(reply).handled_by_id == editor.id
    assert _inbox_ids(client, "?state=handled") == [reply]
    assert reply not in _inbox_ids(client, "?state=open")
    assert "✓" in client.get("/replies/?state=handled").get_data(as_text=True)

    client.post(f"/replies/{reply}/handled", data={"handled": "0"})

    assert _message(reply).handled_at is None
    assert reply in _inbox_ids(client, "?state=open")
    assert _actions(reply) == ["inbound.handled", "inbound.reopened"]


def test_assign_to_a_colleague_and_filter_mine(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    me = login(Role.EDITOR)
    colleague = make_user(Role.SENDER, "colleague@example.org")
    viewer = make_user(Role.VIEWER, "viewer@example.org")

    client.post(f"/replies/{mail['reply']}/assign", data={"user_id": str(me.id)})
    client.post(f"/replies/{mail['weak']}/assign", data={"user_id": str(colleague.id)})
    refused = client.post(
        f"/replies/{mail['auto']}/assign", data={"user_id": str(viewer.id)}, follow_redirects=True
    )

    assert _inbox_ids(client, "?mine=1") == [mail["reply"]]
    assert _message(mail["weak"]).assigned_to_id == colleague.id
    assert "cannot triage replies" in refused.get_data(as_text=True)
    assert _message(mail["auto"]).assigned_to_id is None
    page = client.get(f"/replies/{mail['reply']}").get_data(as_text=True)
    assert "colleague@example.org" in page  # offered in the list
    assert "viewer@example.org" not in page

    client.post(f"/replies/{mail['reply']}/assign", data={"user_id": ""})
    assert _message(mail["reply"]).assigned_to_id is None
    assert _actions(mail["reply"]) == ["inbound.assigned", "inbound.assigned"]


def test_notes_show_author_and_refuse_empty_or_overlong_text(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    login(Role.EDITOR)
    reply = mail["reply"]

    client.post(f"/replies/{reply}/notes", data={"text": "Called the embassy."})
    empty = client.post(f"/replies/{reply}/notes", data={"text": "   "}, follow_redirects=True)
    long = client.post(f"/replies/{reply}/notes", data={"text": "x" * 5001}, follow_redirects=True)

    assert "The note is empty." in empty.get_data(as_text=True)
    assert "5,000 at most" in long.get_data(as_text=True)
    page = client.get(f"/replies/{reply}").get_data(as_text=True)
    assert "Called the embassy." in page
    assert "editor@example.org, " in page
    assert [note.text for note in _message(reply).notes] == ["Called the embassy."]
    assert _actions(reply) == ["inbound.note"]


def test_an_unmatched_message_is_attached_to_a_delivery(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    sent = sent_campaign()
    login(Role.EDITOR)
    unmatched = _record("reply_unmatched.eml").id
    campaign = db.session.scalars(select(Campaign)).one()
    page = client.get(f"/replies/{unmatched}").get_data(as_text=True)
    assert 'id="attach-form"' in page

    wrong = client.post(
        f"/replies/{unmatched}/attach",
        data={"campaign_id": str(campaign.id), "email": "nobody@example.org"},
        follow_redirects=True,
    )
    assert "did not write to nobody@example.org" in wrong.get_data(as_text=True)

    client.post(
        f"/replies/{unmatched}/attach",
        data={"campaign_id": str(campaign.id), "email": "DANA@example.org"},
    )

    message = _message(unmatched)
    assert (message.kind, message.match_method, message.is_weak_match) == ("reply", "manual", False)
    assert message.delivery_id == sent["dana@example.org"]
    assert delivery(sent["dana@example.org"]).replied_at == message.received_at
    assert _inbox_ids(client, "?kind=unmatched") == []
    assert unmatched in _inbox_ids(client, f"?campaign={campaign.id}&kind=reply")
    assert _actions(unmatched) == ["inbound.attached"]


def test_a_weak_match_moved_elsewhere_unmarks_the_first_delivery(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    sent = sent_campaign()
    login(Role.EDITOR)
    weak = _record("reply_rewritten_headers.eml")
    # A weak match is not counted as an answer until a person confirms it.
    assert delivery(sent["chen@example.com"]).replied_at is None
    campaign = db.session.scalars(select(Campaign)).one()

    client.post(
        f"/replies/{weak.id}/attach",
        data={"campaign_id": str(campaign.id), "email": "eve@example.org"},
    )

    assert delivery(sent["chen@example.com"]).replied_at is None
    assert delivery(sent["eve@example.org"]).replied_at is not None
    assert _message(weak.id).is_weak_match is False


def test_an_unmatched_auto_reply_is_attached_without_marking_the_letter_answered(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    # Recorded before the campaign exists, so nothing can match it.
    auto = _record("ooo_de.eml")
    assert (auto.kind, auto.delivery_id) == ("auto_reply", None)
    sent = sent_campaign()
    login(Role.EDITOR)
    campaign = db.session.scalars(select(Campaign)).one()
    assert 'id="attach-form"' in client.get(f"/replies/{auto.id}").get_data(as_text=True)

    done = client.post(
        f"/replies/{auto.id}/attach",
        data={"campaign_id": str(campaign.id), "email": "eve@example.org"},
        follow_redirects=True,
    )

    assert "Attached to the letter" in done.get_data(as_text=True)
    message = _message(auto.id)
    assert (message.kind, message.delivery_id) == ("auto_reply", sent["eve@example.org"])
    assert message.match_method == "manual"
    # An out-of-office is not an answer: the letter still waits for one.
    assert delivery(sent["eve@example.org"]).replied_at is None
    assert auto.id in _inbox_ids(client, f"?campaign={campaign.id}&kind=auto_reply")


def test_a_strong_match_cannot_be_attached_elsewhere(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    sent = sent_campaign()
    login(Role.EDITOR)
    reply = _record("reply_in_reply_to.eml")  # In-Reply-To names the letter to ana
    campaign = db.session.scalars(select(Campaign)).one()
    shown = client.get(f"/replies/{reply.id}")
    assert shown.status_code == 200 and 'id="reply-subject"' in shown.get_data(as_text=True)
    assert 'id="attach-form"' not in shown.get_data(as_text=True)

    # A hand-made POST, as the page offers no form for it.
    refused = client.post(
        f"/replies/{reply.id}/attach",
        data={"campaign_id": str(campaign.id), "email": "dana@example.org"},
        follow_redirects=True,
    )

    assert "already matched to its letter by its own headers" in refused.get_data(as_text=True)
    assert _message(reply.id).delivery_id == sent["ana@example.org"]
    assert _message(reply.id).match_method == "in_reply_to"
    assert delivery(sent["dana@example.org"]).replied_at is None
    assert delivery(sent["ana@example.org"]).replied_at is not None
    assert _actions(reply.id) == []


def test_the_letter_it_answers_is_shown_beside_it(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    sent = sent_campaign()
    login(Role.EDITOR)
    letter = (
        b"From: office@hro.example.org\r\nTo: ana@example.org\r\n"
        b"Subject: Release the defenders\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Your Excellency, we write about the defenders.\r\n"
    )
    delivery(sent["ana@example.org"]).message_blob = zlib.compress(letter)
    db.session.commit()
    reply = _record("reply_in_reply_to.eml")

    page = client.get(f"/replies/{reply.id}").get_data(as_text=True)

    aside = page.split('id="letter-heading"', 1)[1]
    assert "Your Excellency, we write about the defenders." in aside
    assert "ana@example.org" in aside


def test_the_audit_log_keeps_ids_not_the_correspondence(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    sent = sent_campaign()
    login(Role.EDITOR)
    colleague = make_user(Role.EDITOR, "colleague@example.org")
    campaign = db.session.scalars(select(Campaign)).one()
    unmatched = _record("reply_unmatched.eml")
    sender, subject = unmatched.from_address, unmatched.subject
    url = f"/replies/{unmatched.id}"

    client.post(f"{url}/notes", data={"text": "Called the minister's private line."})
    client.post(f"{url}/assign", data={"user_id": str(colleague.id)})
    to_dana = {"campaign_id": str(campaign.id), "email": "dana@example.org"}
    client.post(f"{url}/attach", data=to_dana)
    client.post(f"{url}/handled", data={"handled": "1"})
    _upload(client, ("Re Release the defenders.eml", corpus("ooo_fr.eml")))

    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("inbound.%")))
    details = {event.action: event.detail for event in events}
    written = repr(details).lower()
    for private in (sender, subject, "minister", "colleague@example.org", "dana@", "release"):
        assert private.lower() not in written, private
    note = _message(unmatched.id).notes[0]
    assert details["inbound.note"] == {"delivery_id": None, "note_id": note.id}
    assert details["inbound.assigned"]["assignee_id"] == colleague.id
    assert details["inbound.attached"]["delivery_id"] == sent["dana@example.org"]
    assert details["inbound.handled"] == {"delivery_id": sent["dana@example.org"]}
    assert details["inbound.upload"]["messages"] == 1


# --- the sanitised HTML ------------------------------------------------------------------


def test_the_html_is_framed_sandboxed_and_served_with_a_strict_policy(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    sent_campaign()
    login(Role.EDITOR)
    message = _record("reply_hostile_html.eml")
    message.html = HOSTILE_HTML
    db.session.commit()

    page = client.get(f"/replies/{message.id}").get_data(as_text=True)
    framed = client.get(f"/replies/{message.id}/html")

    frame_tag = re.search(r"<iframe[^>]*>", page)
    assert frame_tag is not None
    assert 'sandbox=""' in frame_tag.group()
    assert 'referrerpolicy="no-referrer"' in frame_tag.group()
    assert f'src="/replies/{message.id}/html"' in frame_tag.group()
    assert framed.headers["Content-Security-Policy"] == f"{FRAME_CSP}; sandbox"
    assert framed.headers["X-Frame-Options"] == "SAMEORIGIN"
    body = framed.get_data(as_text=True).lower()
    assert "please see" in body
    for gone in ("<script", "javascript:", "<form", "http-equiv", "<base", "tracker.example"):
        assert gone not in body, gone
    assert "[remote image blocked]" in body
    # Every other page keeps the app's own policy: never framed at all.
    assert client.get("/replies/").headers["X-Frame-Options"] == "DENY"


def test_attachments_are_listed_not_offered(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    login(Role.EDITOR)
    reply = _message(mail["reply"])
    reply.attachments = [
        {"filename": "invoice.pdf.exe", "content_type": "application/octet-stream", "size": 2048}
    ]
    db.session.commit()

    page = client.get(f"/replies/{reply.id}").get_data(as_text=True)

    assert "invoice.pdf.exe" in page and "2048 bytes" in page
    assert "invoice.pdf.exe</a>" not in page


# --- forms and CSRF ----------------------------------------------------------------------


def test_every_form_carries_a_csrf_token_and_a_post_without_one_is_refused(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
    app: Flask,
) -> None:
    login(Role.ADMIN)
    for url in (f"/replies/{mail['unmatched']}", f"/replies/{mail['weak']}", "/replies/upload"):
        page = client.get(url).get_data(as_text=True)
        posts = re.findall(r'<form method="post"[^>]*>(.*?)</form>', page, re.S)
        assert posts, url
        assert all('name="csrf_token"' in form for form in posts), url

    app.config["WTF_CSRF_ENABLED"] = True
    refused = client.post(f"/replies/{mail['reply']}/handled", data={"handled": "1"})

    assert refused.status_code == 400
    assert _message(mail["reply"]).handled_at is None


# --- uploads -----------------------------------------------------------------------------


def _upload(client: FlaskClient, *files: tuple[str, bytes]) -> str:
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    response = client.post("/replies/upload", data=data, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_uploading_an_eml_records_it_and_a_second_time_is_a_duplicate(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    sent = sent_campaign()
    login(Role.EDITOR)

    first = _upload(client, ("answer.eml", corpus("reply_in_reply_to.eml")))
    again = _upload(client, ("answer.eml", corpus("reply_in_reply_to.eml")))

    assert "1 message: 1 new, 0 already recorded, 0 not recorded." in first
    assert "<td>Reply</td>" in first and "ana@example.org" in first
    assert "duplicate: already recorded" in again
    assert delivery(sent["ana@example.org"]).replied_at is not None
    assert len(db.session.scalars(select(InboundMessage)).all()) == 1


def test_uploading_an_mbox_records_each_message(
    client: FlaskClient,
    login: Login,
    app: Flask,
    tmp_path: Path,
) -> None:
    sent_campaign()
    login(Role.EDITOR)
    path = tmp_path / "export.mbox"
    box = mailbox.mbox(path)
    for name in ("ooo_de.eml", "gmail_failure.eml", "reply_unmatched.eml"):
        box.add(corpus(name))
    box.close()

    page = _upload(client, ("export.mbox", path.read_bytes()), ("x.eml", b""))

    assert "4 messages: 4 new, 0 already recorded, 0 not recorded." in page
    for label in ("export.mbox #1", "export.mbox #2", "export.mbox #3", "x.eml"):
        assert label in page
    kinds = sorted(m.kind for m in db.session.scalars(select(InboundMessage)))
    assert kinds == ["auto_reply", "bounce", "unmatched", "unmatched"]
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "inbound.upload").order_by(AuditEvent.id)
    )
    assert [event.detail["messages"] for event in events] == [3, 1]


def test_an_upload_over_the_cap_is_refused_with_the_reason(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    login(Role.EDITOR)
    app.config["INBOUND_UPLOAD_MAX_MB"] = 1
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"x" * (1024 * 1024 + 10)
    # Encoded by hand: werkzeug's own encoder spools a large body to a temporary file that
    # nobody closes when the app (rightly) refuses it unread.
    body = (
        b"--cap\r\n"
        b'Content-Disposition: form-data; name="files"; filename="big.eml"\r\n'
        b"Content-Type: message/rfc822\r\n\r\n" + big + b"\r\n--cap--\r\n"
    )

    response = client.post(
        "/replies/upload", data=body, content_type="multipart/form-data; boundary=cap"
    )

    assert response.status_code == 413
    assert "larger than the 1 MB accepted at once" in response.get_data(as_text=True)
    assert db.session.scalars(select(InboundMessage)).all() == []


class CountingStream(io.BytesIO):
    """A request body that remembers how much of it the app read."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


def _sign_in_with_token(client: FlaskClient, role: Role) -> None:
    user = make_user(role)
    token = csrf_token(client, "/login")
    data = {"email": user.email, "password": TEST_PASSWORD, "csrf_token": token}
    assert client.post("/login", data=data).status_code == 302


def _multipart(name: str, content: bytes, token: str | None) -> bytes:
    # Encoded by hand: werkzeug's own encoder spools a large body to a temporary file that
    # nobody closes when the app (rightly) refuses it unread.
    field = (
        b'--cap\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        + token.encode()
        + b"\r\n"
        if token
        else b""
    )
    return (
        field + b"--cap\r\n"
        b'Content-Disposition: form-data; name="files"; filename="' + name.encode() + b'"\r\n'
        b"Content-Type: message/rfc822\r\n\r\n" + content + b"\r\n--cap--\r\n"
    )


@pytest.mark.parametrize("csrf_enabled", [True])
def test_with_csrf_on_an_oversized_upload_is_refused_before_its_body_is_read(
    client: FlaskClient, app: Flask
) -> None:
    _sign_in_with_token(client, Role.EDITOR)
    app.config["INBOUND_UPLOAD_MAX_MB"] = 1
    token = csrf_token(client, "/replies/upload")
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"x" * (2 * 1024 * 1024)
    body = CountingStream(_multipart("big.eml", big, token))

    response = client.post(
        "/replies/upload",
        input_stream=body,
        content_length=len(body.getvalue()),
        content_type="multipart/form-data; boundary=cap",
    )

    assert response.status_code == 413
    assert "larger than the 1 MB accepted at once" in response.get_data(as_text=True)
    # Not a byte of the 2 MB was parsed (CSRF checking used to read it all first).
    assert body.bytes_read == 0
    assert db.session.scalars(select(InboundMessage)).all() == []


@pytest.mark.parametrize("csrf_enabled", [True])
def test_an_upload_sent_without_a_length_is_refused_unread(client: FlaskClient, app: Flask) -> None:
    _sign_in_with_token(client, Role.EDITOR)
    app.config["INBOUND_UPLOAD_MAX_MB"] = 1
    token = csrf_token(client, "/replies/upload")
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"x" * (3 * 1024 * 1024)
    body = CountingStream(_multipart("big.eml", big, token))

    # As a server passes on a chunked request: no Content-Length, the stream ends itself.
    response = client.post(
        "/replies/upload",
        input_stream=body,
        content_type="multipart/form-data; boundary=cap",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 411
    assert "did not say how large it is" in response.get_data(as_text=True)
    assert body.bytes_read == 0
    assert db.session.scalars(select(InboundMessage)).all() == []


@pytest.mark.parametrize("csrf_enabled", [True])
def test_with_csrf_on_an_upload_needs_its_token(client: FlaskClient, app: Flask) -> None:
    sent_campaign()
    _sign_in_with_token(client, Role.EDITOR)
    token = csrf_token(client, "/replies/upload")
    answer = corpus("reply_in_reply_to.eml")

    def post(token: str | None) -> Any:
        return client.post(
            "/replies/upload",
            data=_multipart("answer.eml", answer, token),
            content_type="multipart/form-data; boundary=cap",
        )

    refused = post(None)
    assert refused.status_code == 400
    assert "Reload the page" in refused.get_data(as_text=True)
    assert db.session.scalars(select(InboundMessage)).all() == []

    accepted = post(token)
    assert accepted.status_code == 200
    assert "1 message: 1 new" in accepted.get_data(as_text=True)
    assert len(db.session.scalars(select(InboundMessage)).all()) == 1


def test_an_upload_without_files_says_so(
    client: FlaskClient,
    login: Login,
    app: Flask,
) -> None:
    login(Role.EDITOR)

    response = client.post("/replies/upload", data={}, content_type="multipart/form-data")

    assert response.status_code == 400
    assert "Choose one or more .eml or mbox files." in response.get_data(as_text=True)


# --- the menu ----------------------------------------------------------------------------


def test_the_menu_counts_open_human_replies(
    client: FlaskClient,
    login: Login,
    mail: dict[str, int],
) -> None:
    login(Role.EDITOR)

    page = client.get("/replies/").get_data(as_text=True)
    assert re.search(r'id="open-replies-count"[^>]*>2</span>', page)

    client.post(f"/replies/{mail['reply']}/handled", data={"handled": "1"})
    client.post(f"/replies/{mail['weak']}/handled", data={"handled": "1"})

    inbox = client.get("/replies/")
    assert inbox.status_code == 200
    page = inbox.get_data(as_text=True)
    assert '<h1 id="inbox-title">Replies</h1>' in page
    assert "open-replies-count" not in page
    assert "/mailboxes/" not in page

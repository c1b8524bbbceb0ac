"""The replies inbox in Chromium: a hostile HTML reply is read without any outside request."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, expect
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact, Role
from campaign.services.replies.intake import record_inbound
from tests.browser.conftest import LiveServer
from tests.inbound.helpers import corpus, sent_campaign


def _prepare(live_server: LiveServer) -> None:
    with live_server.app.app_context():
        sent_campaign()
        # A human reply whose HTML has a script, a tracking pixel, a meta refresh, a <base>,
        # a javascript: link and a form; an auto-reply and a bounce beside it.
        for name in ("reply_hostile_html.eml", "ooo_fr.eml", "postfix_dsn.eml"):
            record_inbound(corpus(name))
        db.session.commit()
        db.session.remove()


def test_a_hostile_reply_is_read_triaged_and_filed_as_handled(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    _prepare(live_server)
    page = signed_in_page(Role.EDITOR)
    app_origin = urlsplit(live_server.url).netloc

    page.get_by_role("link", name="Replies").first.click()
    expect(page.get_by_role("heading", name="Replies")).to_be_visible()
    expect(page.locator("#inbox tbody tr")).to_have_count(3)
    page.get_by_role("link", name="Human replies (1)").click()
    expect(page.locator("#inbox tbody tr")).to_have_count(1)
    expect(page.locator("#inbox")).not_to_contain_text("Absence")

    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    page.get_by_role("link", name="Re: Release the defenders").click()
    frame = page.frame_locator("#reply-html")
    expect(frame.get_by_text("Please see")).to_be_visible()
    expect(frame.get_by_text("[remote image blocked]")).to_be_visible()
    page.wait_for_load_state("networkidle")

    hosts = {urlsplit(request.url).netloc for request in requests}
    assert hosts == {app_origin}, [request.url for request in requests]
    assert not any("tracker.example" in r.url or "evil.example" in r.url for r in requests)
    # The page did not navigate away (meta refresh) and the framed page has no form.
    assert page.url.startswith(f"{live_server.url}/replies/")
    expect(frame.locator("form, script, base, meta[http-equiv]")).to_have_count(0)

    page.get_by_label("Add a note").fill("Forwarded to the legal team.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#reply-notes")).to_contain_text("Forwarded to the legal team.")
    expect(page.locator("#reply-notes")).to_contain_text("editor@example.org")
    # Handled, and no other human reply is open: back to the inbox, told so.
    page.locator("#mark-handled").click()
    expect(page.get_by_text("Marked handled.")).to_be_visible()
    expect(page.get_by_text("Nothing else is waiting here.")).to_be_visible()
    page.get_by_label("State").select_option("open")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_label("State")).to_have_value("open")  # the open inbox, shown
    expect(page.locator("#inbox")).not_to_contain_text("Re: Release the defenders")
    page.get_by_label("State").select_option("handled")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#inbox tbody tr")).to_have_count(1)
    expect(page.locator("#inbox")).to_contain_text("Re: Release the defenders")


def test_uploads_from_the_form_with_csrf_on_and_over_the_cap(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        sent_campaign()
        db.session.remove()
    live_server.app.config["INBOUND_UPLOAD_MAX_MB"] = 1
    page = signed_in_page(Role.EDITOR)
    page.goto(f"{live_server.url}/replies/upload")

    page.get_by_label("Files").set_input_files(
        {"name": "answer.eml", "mimeType": "message/rfc822", "buffer": corpus("ooo_fr.eml")}
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-summary")).to_have_text(
        "1 message: 1 new, 0 already recorded, 0 not recorded."
    )

    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"x" * (2 * 1024 * 1024)
    page.get_by_label("Files").set_input_files(
        {"name": "big.eml", "mimeType": "message/rfc822", "buffer": big}
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-error")).to_contain_text("larger than the 1 MB accepted at once")


def test_a_reply_is_answered_in_place_and_shows_in_the_thread_and_on_the_contact(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        sent_campaign()
        contact = db.session.scalar(select(Contact).where(Contact.email_key == "ana@example.org"))
        assert contact is not None
        contact.given_name, contact.family_name = "Ana", "Lima"
        contact.role_type, contact.organisation = "ambassador", "Embassy of Brazil"
        record_inbound(corpus("reply_in_reply_to.eml"))
        record_inbound(corpus("reply_unmatched.eml"))
        db.session.commit()
        contact_id = contact.id
        db.session.remove()
    page = signed_in_page(Role.EDITOR)

    page.goto(f"{live_server.url}/replies/")
    row = page.locator("#inbox tbody tr", has_text="Ana Lima")
    expect(row).to_contain_text("Ambassador · Embassy of Brazil")
    row.get_by_role("link", name="Re: Release the defenders").click()

    expect(page.get_by_label("Subject", exact=True)).to_have_value("Re: Release the defenders")
    expect(page.get_by_label("To", exact=True)).to_have_value("ana@example.org")
    body = page.get_by_label("Message (plain text)")
    expect(body).to_have_value(re.compile(r"> Thank you for your letter\."))
    body.press("Control+Home")
    body.type("Dear Ms Lima, thank you: we will send the list of names.")
    page.get_by_role("button", name="Send answer").click()

    expect(page.get_by_text("Answer sent to ana@example.org.")).to_be_visible()
    page_url = page.url
    answer = page.locator("#answer-list li").first
    expect(answer).to_contain_text("Sent")
    expect(answer).to_contain_text("we will send the list of names")
    expect(answer.locator(".answer-message-id")).to_contain_text("@hro.example.org>")
    expect(page.locator("#handled-badge")).to_be_visible()
    with page.expect_download() as download_info:
        answer.get_by_role("link", name="Download the message as sent (.eml)").click()
    sent = Path(download_info.value.path()).read_bytes()
    assert b"In-Reply-To: <CAF+reply.ana.1@mail.example.org>" in sent

    page.goto(f"{live_server.url}/contacts/{contact_id}")
    expect(page.locator("#correspondence")).to_contain_text("answered by editor@example.org")

    # On a phone the inbox and the answered reply fit the screen (tables scroll in a box).
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/replies/", page_url):
        page.goto(path if path.startswith("http") else f"{live_server.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path

    # An unmatched reply, read in Russian: the account choice (long option text) fits too.
    with live_server.app.app_context():
        from campaign.models import InboundMessage, User

        unmatched = db.session.scalar(
            select(InboundMessage.id).where(InboundMessage.delivery_id.is_(None))
        )
        editor = db.session.scalar(select(User).where(User.email == "editor@example.org"))
        assert editor is not None and unmatched is not None
        editor.language = "ru"
        db.session.commit()
        db.session.remove()
    page.goto(f"{live_server.url}/replies/{unmatched}")
    expect(page.locator("#answer-account")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

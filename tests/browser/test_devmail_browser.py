"""A message sent to the development SMTP sink shows up in the dev mailbox page and opens."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from playwright.sync_api import Page, expect

from campaign.models import Role
from tests.browser.conftest import LiveServer


def test_a_message_sent_with_smtplib_is_listed_and_opens(
    live_server: LiveServer, signed_in_page: Callable[..., Page]
) -> None:
    message = EmailMessage()
    message["From"] = "Campaign <campaign@example.org>"
    message["To"] = "Dilnoza Namunova <amb.uz@example.org>"
    message["Subject"] = "Urgent appeal: release of detained lawyers"
    message.set_content("Your Excellency,\n\nWe write to you about the detained lawyers.\n")
    message.add_alternative(
        "<p>Your Excellency,</p><b>HTML</b><p id='ran'>script did not run</p>"
        "<script>document.getElementById('ran').textContent='pwned'</script>",
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4 letter", maintype="application", subtype="pdf", filename="Appeal.pdf"
    )
    with smtplib.SMTP("127.0.0.1", live_server.mail_port, timeout=10) as smtp:
        smtp.send_message(message)

    page = signed_in_page(Role.SENDER)  # the dev mailbox holds sign-in links: senders up
    page.get_by_role("link", name="Dev mailbox").click()
    expect(page.get_by_role("heading", name="Dev mailbox")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Urgent appeal")
    expect(row).to_contain_text("amb.uz@example.org")

    row.get_by_role("link", name="Urgent appeal: release of detained lawyers").click()
    expect(page.get_by_role("heading", name="Urgent appeal")).to_be_visible()
    expect(page.locator("pre").first).to_contain_text("We write to you about the detained lawyers.")
    # The HTML part is rendered in a sandboxed frame: bold is bold, its script never ran.
    frame = page.frame_locator("#devmail-html")
    expect(frame.locator("b")).to_have_text("HTML")
    expect(frame.locator("#ran")).to_have_text("script did not run")
    # Its source is still there to read.
    page.get_by_text("HTML source").click()
    expect(page.get_by_text("<b>HTML</b>", exact=False)).to_be_visible()

    expect(page.get_by_text("application/pdf")).to_be_visible()
    with page.expect_download() as attached:
        page.get_by_role("link", name="Appeal.pdf").click()
    assert attached.value.suggested_filename == "Appeal.pdf"
    assert Path(attached.value.path()).read_bytes() == b"%PDF-1.4 letter"

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the raw message (.eml)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".eml")
    assert b"Subject: Urgent appeal" in Path(download.path()).read_bytes()

"""Issue 15's "Done when" walk in Chromium: a new installation's admin follows the links from
the pages, the way a new user would, from the first-run steps to a reply answered in place and
a contact restored from the trash; then the contacts, campaign and replies pages on a phone."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import FilePayload, Page, ViewportSize, expect
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, Role
from campaign.services.replies.intake import record_inbound
from tests.browser.conftest import LiveServer, stored_mail

PHONE: ViewportSize = {"width": 390, "height": 844}
# No role column: the import asks for one value for every row.
ROWS = (
    "given_name,family_name,email,gender,languages\n"
    "Aigerim,Bekova,a.bekova@example.org,f,en\n"
    "Jean,Martin,j.martin@example.org,m,en\n"
    "J.,Martin,ambassade.martin@example.org,m,en\n"
)
BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"


def _reply_to_the_letter_sent_to(live_server: LiveServer, address: str) -> None:
    """The recipient's answer arrives (as the mailbox poller would record it)."""
    with live_server.app.app_context():
        message_id = db.session.scalar(select(Delivery.message_id).where(Delivery.email == address))
        assert message_id, f"no letter was sent to {address}"
        raw = (
            f"From: Aigerim Bekova <{address}>\r\n"
            "To: Campaign <campaign@example.org>\r\n"
            "Subject: Re: About the trial\r\n"
            "Date: Mon, 7 Dec 2026 09:00:00 +0000\r\n"
            "Message-ID: <walk.reply.1@mail.example.org>\r\n"
            f"In-Reply-To: {message_id}\r\n"
            f"References: {message_id}\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="UTF-8"\r\n'
            "\r\n"
            "Thank you for your letter. The ambassador will raise the case.\r\n"
        ).encode()
        record_inbound(raw)
        db.session.commit()
        db.session.remove()


def _go_home(page: Page) -> None:
    """The start page, through the name at the top of every page."""
    page.get_by_role("link", name="Campaign", exact=True).click()
    expect(page.get_by_role("heading", name="Start", exact=True)).to_be_visible()


def _main_menu(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def _fits_a_phone(page: Page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width} px wide"


def test_a_new_installation_from_first_run_to_an_answered_reply_and_a_restored_contact(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    page = signed_in_page(Role.ADMIN)
    home = live_server.url + "/"

    # First run: three steps, none done.
    page.goto("/")
    walk = page.locator("#first-run")
    expect(walk.get_by_role("heading", name="Set up this installation")).to_be_visible()
    expect(walk.locator("li")).to_have_count(3)
    expect(walk.locator("li.is-todo")).to_have_count(3)
    expect(walk.locator("li")).to_contain_text(
        [re.compile("SMTP account"), re.compile("contacts"), re.compile("statement")]
    )

    # 1. An SMTP account (the mail sink), and its connection test.
    walk.get_by_role("link", name=re.compile("SMTP account")).click()
    expect(page.get_by_role("heading", name="New SMTP account")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Office relay")
    page.get_by_label("Server (host name)").fill("localhost")
    page.get_by_label("Port", exact=True).fill(str(live_server.mail_port))
    page.get_by_label("Security", exact=True).select_option("none")
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_text("SMTP account Office relay added.")).to_be_visible()
    page.get_by_role("row").filter(has_text="Office relay").get_by_role(
        "link", name="Test connection"
    ).click()
    page.get_by_label("From address to try").fill("office@example.org")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("The connection works; no message was sent.")).to_be_visible()
    expect(page.locator("#connection-steps li").last).to_contain_text("worked")

    _go_home(page)
    expect(page).to_have_url(home)
    expect(page.locator("#setup-smtp")).to_have_class("is-done")
    expect(page.locator("#setup-smtp")).to_contain_text("done")
    expect(walk.locator("li.is-todo")).to_have_count(2)

    # 2. An import without a role column: one role for all rows, said in the preview.
    page.locator("#setup-contacts").get_by_role("link").click()
    csv: FilePayload = {"name": "embassies.csv", "mimeType": "text/csv", "buffer": ROWS.encode()}
    page.get_by_label("CSV or Excel (.xlsx) file").set_input_files(files=[csv])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="Match the columns of embassies.csv")).to_be_visible()
    role = page.get_by_label("Role for all rows")
    expect(role).to_have_value("unknown")
    role.select_option(label="Ambassador")
    page.get_by_label("Add the contacts to a list (optional)").fill("Embassies")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview of embassies.csv")).to_be_visible()
    expect(page.locator("#for-all-rows")).to_contain_text(
        "Role type: the file has no column for it; every row gets Ambassador."
    )
    expect(page.locator("main")).to_contain_text("Every contact goes into the list “Embassies”.")
    expect(page.locator("table.preview tbody tr")).to_have_count(3)
    expect(page.locator("table.preview tbody tr").first).to_contain_text("Dear Ambassador Bekova,")
    page.get_by_role("button", name="Start the import").click()
    summary = page.get_by_role("status").filter(has_text="Finished")
    expect(summary).to_contain_text("imported 3, updated 0, skipped 0, rejected 0", timeout=20_000)
    expect(summary).to_contain_text("The contacts are in the list “Embassies”.")

    # 3. A statement, written in the editor beside its live letter.
    _go_home(page)
    expect(page.locator("#setup-contacts")).to_have_class("is-done")
    page.locator("#setup-statement").get_by_role("link").click()
    page.get_by_label("Title").fill("Trial letter")
    page.get_by_label("First language (e.g. en, fr, ru, pt-BR)").fill("en")
    page.get_by_label("Subject line").fill("About the trial")
    page.get_by_label("Body (Markdown)").fill(BODY)
    page.get_by_role("button", name="Create statement").click()
    expect(page.get_by_role("heading", name="Trial letter")).to_be_visible()
    page.get_by_label("Reader of the letter shown beside the text").select_option(
        label="Aigerim Bekova"
    )
    live = page.frame_locator("#live-text iframe")
    expect(live.get_by_text("Dear Ambassador Bekova,")).to_be_visible()
    page.locator("#f-text-body").fill(BODY.replace("the trial", "the **unfair** trial"))
    expect(live.locator("strong", has_text="unfair")).to_be_visible()
    page.get_by_role("button", name="Save English text").click()

    # 4. A campaign to the imported list: the confirmation, then the sending followed.
    page.get_by_role("link", name="New campaign from this statement").click()
    page.get_by_label("Name").fill("Trial letter to the embassies")
    page.locator("#f-include").get_by_label("List: Embassies").check()
    expect(page.locator("#audience-count")).to_have_text(
        "3 contacts, 0 suppressed, 3 will be written to"
    )
    page.get_by_label("SMTP account").select_option(label="Office relay")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("link", name="Review and launch: 3 recipients…").click()
    expect(page.locator("#confirm-count")).to_have_text(
        "3 recipients will be written to (3 in the audience, 0 suppressed)."
    )
    expect(page.locator("#confirm-account")).to_have_text("Office relay")
    expect(page.locator("#confirm-languages")).to_have_text("English: 3")
    page.get_by_label("I have read the above: send 3 letters now").check()
    page.get_by_role("button", name="Launch: send to 3 recipients").click()
    expect(page.get_by_text("Campaign launched")).to_be_visible()
    expect(page.locator("#p-status")).to_have_text(re.compile("Sending|Finished"))
    expect(page.locator("#p-status")).to_have_text("Finished", timeout=30_000)
    expect(page.locator('dd[data-figure="sent"]')).to_have_text("3")
    campaign_url = page.url
    assert len(stored_mail(live_server)) == 3

    # 5. A reply arrives; the start page lists it; it is answered in place.
    _reply_to_the_letter_sent_to(live_server, "a.bekova@example.org")
    _go_home(page)
    expect(page.locator("#first-run")).to_have_count(0)
    replies = page.locator("#attention-replies")
    expect(replies.locator(".attention-count")).to_have_text("1")
    replies.get_by_role("link", name=re.compile("Aigerim Bekova")).click()
    expect(page.locator("main")).to_contain_text("The ambassador will raise the case.")
    expect(page.get_by_label("To", exact=True)).to_have_value("a.bekova@example.org")
    expect(page.get_by_label("Subject", exact=True)).to_have_value("Re: About the trial")
    body = page.get_by_label("Message (plain text)")
    body.press("Control+Home")
    body.type("Dear Ambassador, thank you: we will send the names.\n\n")
    page.get_by_role("button", name="Send answer").click()
    expect(page.get_by_text("Answer sent to a.bekova@example.org.")).to_be_visible()
    answer = page.locator("#answer-list li").first
    expect(answer).to_contain_text("Sent")
    expect(answer).to_contain_text("we will send the names")
    replies_url = page.url
    assert len(stored_mail(live_server)) == 4

    # 6. Two records of one person merged; one contact deleted, then restored from the trash.
    _main_menu(page, "Contacts")
    expect(page.locator("#result-count")).to_contain_text("3 contacts")
    page.get_by_role("link", name="Martin, Jean").click()
    page.get_by_role("link", name="Merge with…").click()
    page.get_by_label("Search").fill("ambassade")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="J. Martin").click()
    expect(page.get_by_role("heading", name="Merge two contacts")).to_be_visible()
    page.get_by_role("radio", name="Jean", exact=True).check()
    page.get_by_role("button", name="Merge").click()
    expect(page.locator(".flash")).to_contain_text("merged into Jean Martin")
    _main_menu(page, "Contacts")
    expect(page.locator("#result-count")).to_contain_text("2 contacts")

    page.get_by_role("link", name="Bekova, Aigerim").click()
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Move to the trash").click()
    expect(page.locator(".flash")).to_contain_text("in the trash for 30 days")
    expect(page.locator("#result-count")).to_contain_text("1 contact")
    page.get_by_role("link", name="Trash").click()
    # The merged record waits there too, restorable like any deleted contact.
    expect(page.locator("main tbody tr")).to_have_count(2)
    expect(page.locator("tr", has_text="J. Martin")).to_be_visible()
    row = page.locator("tr", has_text="Aigerim Bekova")
    row.get_by_role("button", name="Restore").click()
    expect(page.locator(".flash")).to_contain_text("Aigerim Bekova is restored.")
    _main_menu(page, "Contacts")
    expect(page.locator("#result-count")).to_contain_text("2 contacts")
    expect(page.get_by_role("link", name="Bekova, Aigerim")).to_be_visible()

    # 7. On a phone, none of the daily pages scrolls sideways.
    page.set_viewport_size(PHONE)
    for url in (f"{live_server.url}/contacts/", campaign_url, f"{live_server.url}/replies/"):
        page.goto(url)
        _fits_a_phone(page)
    page.goto(replies_url)
    _fits_a_phone(page)

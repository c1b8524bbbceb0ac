"""A campaign built, launched and followed in Chromium while the live server's worker sends it."""

from __future__ import annotations

from collections.abc import Callable
from email.utils import parseaddr

from playwright.sync_api import Page, expect

from campaign.extensions import db
from campaign.models import Role, SmtpAccount
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements
from tests.browser.conftest import LiveServer, stored_mail

RECIPIENTS = 30
BODY = (
    "{{ salutation }}\n\nWe write about the trial of our colleague.\n\n{{ closing }}\n\n"
    "Anna Sample\n"
)


def _prepare(live_server: LiveServer) -> None:
    with live_server.app.app_context():
        statements.create_statement(
            "Trial letter", language="en", subject="About the trial", body=BODY
        )
        summit = lists.create_list("Summit")
        ids = [
            create_contact(
                {"given_name": f"Person{i}", "family_name": "Sample", "email": f"p{i}@example.org"}
            ).id
            for i in range(RECIPIENTS)
        ]
        lists.add_contacts(summit, ids)
        # The dev sink behind an account paced at 10 a second: sending takes about three
        # seconds, so the page is open while the letters leave.
        db.session.add(
            SmtpAccount(
                name="Paced sink",
                host="localhost",
                port=live_server.mail_port,
                security="none",
                per_second=10,
            )
        )
        db.session.commit()
        db.session.remove()


def test_a_campaign_is_built_launched_and_followed_to_the_end_without_reloading(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    _prepare(live_server)
    page = signed_in_page(Role.SENDER)
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    expect(page.get_by_role("heading", name="New campaign")).to_be_visible()

    page.get_by_label("Name").fill("Trial letter to the summit")
    page.get_by_label("Statement").select_option(label="Trial letter (draft)")
    page.locator("#f-include").get_by_label("List: Summit").check()
    # The count comes from the server as the box is ticked, without submitting the form.
    expect(page.locator("#audience-count")).to_have_text(
        f"{RECIPIENTS} contacts, 0 suppressed, {RECIPIENTS} will be written to"
    )
    page.get_by_label("SMTP account").select_option(label="Paced sink")
    expect(page.get_by_label("One-click unsubscribe (List-Unsubscribe headers)")).to_be_checked()
    page.get_by_role("button", name="Save draft").click()

    expect(page.get_by_role("heading", name="Before launching")).to_be_visible()
    expect(page.locator("#check-blocked")).to_have_text("0")
    # The campaign page only leads to a confirmation that names who, through what, how fast.
    page.get_by_role("link", name=f"Review and launch: {RECIPIENTS} recipients…").click()
    expect(page.locator("#confirm-account")).to_have_text("Paced sink")
    expect(page.locator("#confirm-pace")).to_have_text("at most 10 letters a second")
    expect(page.locator("#confirm-duration")).to_have_text("less than a minute")
    expect(page.locator("#confirm-languages")).to_have_text(f"English: {RECIPIENTS}")
    launch = page.get_by_role("button", name=f"Launch: send to {RECIPIENTS} recipients")
    # Without the box ticked, the browser does not even send the form.
    launch.click()
    expect(page.locator("#confirm-summary")).to_be_visible()
    page.get_by_label(f"I have read the above: send {RECIPIENTS} letters now").check()
    launch.click()
    expect(page.get_by_text("Campaign launched")).to_be_visible()

    # The page was rendered while sending was under way, so what follows is the polling.
    expect(page.locator("#campaign-progress")).to_have_attribute("data-ended", "false")
    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator("#p-status")).to_have_text("Finished", timeout=30_000)  # its label
    expect(page.locator("#p-bar")).to_have_js_property("value", RECIPIENTS)
    expect(page.locator('dd[data-figure="sent"]')).to_have_text(str(RECIPIENTS))
    expect(page.locator('dd[data-figure="remaining"]')).to_have_text("0")
    expect(page.locator("#pause-button")).to_be_hidden()
    assert page.evaluate("window.stillTheSamePage") is True, "the page reloaded"

    received = stored_mail(live_server)
    assert len(received) == RECIPIENTS
    assert sorted(parseaddr(m.recipients)[1] for m in received) == sorted(
        f"p{i}@example.org" for i in range(RECIPIENTS)
    )

    # The ledger links each recipient to the exact message, checked against its hash.
    page.get_by_role("link", name="Recipients and evidence").click()
    expect(page.get_by_role("link", name=f"Sent ({RECIPIENTS})")).to_be_visible()
    page.get_by_role("link", name="p7@example.org").click()
    expect(page.locator("#evidence-verified")).to_contain_text("Verified")
    expect(page.locator("#evidence-text")).to_contain_text("We write about the trial")

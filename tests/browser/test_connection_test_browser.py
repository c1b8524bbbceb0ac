"""An admin tests the connection of an SMTP account and of a mailbox and reads each step."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import Page, expect

from campaign.devmail import list_messages
from campaign.extensions import db
from campaign.models import Role
from campaign.services.replies import mailboxes
from campaign.services.sending.smtp_accounts import AccountFields, create_account
from tests import servers
from tests.browser.conftest import LiveServer


def test_an_admin_tests_smtp_accounts_and_a_mailbox_step_by_step(
    live_server: LiveServer,
    signed_in_page: Callable[..., Page],
    imap_server: servers.DovecotServer,
) -> None:
    user = f"replies{uuid.uuid4().hex[:8]}"
    imap_server.add_user(user, "mailbox-secret-1")
    with live_server.app.app_context():
        create_account(
            AccountFields(
                name="Old relay", host="127.0.0.1", port=servers.free_port(), security="none"
            )
        )
        mailboxes.add_mailbox(
            "Replies",
            host=imap_server.host,
            port=imap_server.port,
            security="none",
            username=user,
            password="mailbox-secret-1",
        )
        db.session.commit()

    page = signed_in_page(Role.ADMIN)
    page.goto(f"{live_server.url}/smtp-accounts/")
    # The default account is the dev mail sink: it takes the From, and nothing is sent.
    page.get_by_role("row").filter(has_text="CAMPAIGN_MAIL_*").get_by_role(
        "link", name="Test connection"
    ).click()
    page.get_by_label("From address to try").fill("office@example.org")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("The connection works; no message was sent.")).to_be_visible()
    steps = page.locator("#connection-steps li")
    expect(steps.last).to_contain_text("Ask the server to accept mail from office@example.org")
    expect(steps.last).to_contain_text("worked")
    assert list_messages(live_server.devmail_path) == []

    page.goto(f"{live_server.url}/smtp-accounts/")
    page.get_by_role("row").filter(has_text="Old relay").get_by_role(
        "link", name="Test connection"
    ).click()
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("The connection does not work; no message was sent.")).to_be_visible()
    expect(steps.last).to_contain_text("failed")
    expect(steps.last).to_contain_text("connection refused")

    page.goto(f"{live_server.url}/mailboxes/")
    page.get_by_role("row").filter(has_text="Replies").get_by_role(
        "link", name="Test connection"
    ).click()
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("The connection works.")).to_be_visible()
    expect(steps.last).to_contain_text("Open the folder INBOX")

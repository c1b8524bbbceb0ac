"""Two-factor in Chromium: an admin's first sign-in leads to set-up with a QR code, then a
recovery code signs them in when the phone is gone."""

from __future__ import annotations

import pyotp
from playwright.sync_api import ConsoleMessage, Page, expect

from campaign.extensions import db
from campaign.models import Role
from tests.browser.conftest import LiveServer, sign_in_through_form
from tests.conftest import TEST_PASSWORD, make_user


def test_first_sign_in_of_an_admin_sets_up_two_factor_then_a_recovery_code_works(
    page: Page, live_server: LiveServer
) -> None:
    live_server.app.config["TOTP_REQUIRED_ROLES"] = "auto"  # production's default
    with live_server.app.app_context():
        make_user(Role.ADMIN, "admin@example.org")
        db.session.remove()
    refused: list[str] = []

    def _watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", _watch)

    sign_in_through_form(page, "admin@example.org")
    expect(page).to_have_url(f"{live_server.url}/account/two-factor")
    expect(page.get_by_text("Your role requires two-factor authentication")).to_be_visible()
    qr = page.locator("figure.qr-code svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None and box["width"] >= 100  # big enough for a phone's camera
    page.goto("/contacts/")  # nothing else opens before the set-up
    expect(page).to_have_url(f"{live_server.url}/account/two-factor")

    secret = page.locator("code.secret").inner_text()
    page.get_by_label("Your password").fill(TEST_PASSWORD)
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("ol.recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="I have kept them").click()
    expect(page.get_by_role("heading", name="Start")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    sign_in_through_form(page, "admin@example.org")
    expect(page.get_by_role("heading", name="Enter your two-factor code")).to_be_visible()
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Start")).to_be_visible()
    expect(page.get_by_text("9 codes remain")).to_be_visible()
    assert refused == []

"""Two-factor in Chromium: an admin's first sign-in leads to set-up with a QR code; after
signing out, a copy of the session cookie opens nothing; a recovery code signs them in when
the phone is gone; a password change makes the old password useless."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from campaign.extensions import db
from campaign.models import Role
from tests.browser.conftest import LiveServer, sign_in_through_form
from tests.conftest import TEST_PASSWORD, make_user

NEW_PASSWORD = "violet harbour lantern seventeen"


def test_first_sign_in_of_an_admin_sets_up_two_factor_then_a_recovery_code_works(
    page: Page, live_server: LiveServer, browser: Browser
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

    secret = page.locator("code.secret").inner_text().replace(" ", "")  # in groups of 4
    page.get_by_label("Your password").fill(TEST_PASSWORD)
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("ol.recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="I have kept them").click()
    expect(page.get_by_role("heading", name="Start")).to_be_visible()

    copied_cookies = page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    # Someone who copied the session cookie before the sign-out gets nothing with it.
    thief = browser.new_context(base_url=live_server.url)
    thief.add_cookies(copied_cookies)  # type: ignore[arg-type]
    stolen = thief.new_page()
    stolen.goto("/contacts/")
    expect(stolen).to_have_url(re.compile(r"/login\?next="))
    expect(stolen.get_by_role("button", name="Sign in")).to_be_visible()
    thief.close()

    sign_in_through_form(page, "admin@example.org")
    expect(page.get_by_role("heading", name="Enter your two-factor code")).to_be_visible()
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Start")).to_be_visible()
    expect(page.get_by_text("9 codes remain")).to_be_visible()

    page.goto("/account/password")
    page.get_by_label("Current password").fill(TEST_PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    sign_in_through_form(page, "admin@example.org")  # the old password
    expect(page.get_by_text("The email or password is not right.")).to_be_visible()
    sign_in_through_form(page, "admin@example.org", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Enter your two-factor code")).to_be_visible()
    assert refused == []

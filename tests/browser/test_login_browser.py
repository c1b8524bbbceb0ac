"""Signing in and out through the real login form in Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from campaign.extensions import db
from campaign.models import Role
from tests.browser.conftest import LiveServer, sign_in_through_form
from tests.conftest import make_user


def test_wrong_password_is_refused_with_a_message_then_right_one_signs_in_and_out(
    page: Page, live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        make_user(Role.EDITOR, "editor@example.org")
        db.session.remove()

    sign_in_through_form(page, "editor@example.org", "not the right password at all")
    expect(page.get_by_role("alert")).to_have_text("The email or password is not right.")
    expect(page).to_have_url(f"{live_server.url}/login")

    sign_in_through_form(page, "editor@example.org")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Start")).to_be_visible()
    expect(page.get_by_text("editor@example.org (editor)")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_signed_in_page_fixture_reaches_the_start_page(
    signed_in_page: Callable[..., Page],
) -> None:
    page = signed_in_page(Role.VIEWER)
    expect(page.get_by_role("heading", name="Start")).to_be_visible()

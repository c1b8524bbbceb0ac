"""The start page in Chromium: the first-run walk-through, the demo's "what needs you now",
and the admin pages on a 390 px phone (menu behind a button, tables scrolling in their box,
the campaign's status chart whole), with no 404 (the favicon) on any page."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Browser, Page, Response, expect
from sqlalchemy import select

from campaign.demo.loader import load_demo
from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Role
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending.smtp_accounts import AccountFields, create_account
from campaign.services.statements.statements import create_statement
from tests.browser.conftest import LiveServer, sign_in_through_form
from tests.conftest import make_user

PHONE = {"width": 390, "height": 844}


def test_a_new_installation_walks_its_admin_through_three_steps(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    page = signed_in_page(Role.ADMIN)
    page.goto("/")
    walk = page.locator("#first-run")
    expect(walk).to_be_visible()
    expect(walk.locator("li.is-todo")).to_have_count(3)

    walk.get_by_role("link", name="Add an SMTP account").click()
    expect(page).to_have_url(f"{live_server.url}/smtp-accounts/new")
    with live_server.app.app_context():
        create_account(AccountFields(name="Relay", host="smtp.example.org"))
        db.session.commit()
        db.session.remove()
    page.goto("/")
    expect(page.locator("#setup-smtp")).to_have_class("is-done")
    page.locator("#setup-contacts a").click()
    expect(page).to_have_url(f"{live_server.url}/imports/")
    page.go_back()
    page.locator("#setup-statement a").click()
    expect(page).to_have_url(f"{live_server.url}/statements/new")

    with live_server.app.app_context():
        create_contact({"email": "someone@example.org", "family_name": "Someone"})
        create_statement("Letter", language="en", subject="Hello", body="Text")
        db.session.commit()
        db.session.remove()
    page.goto("/")
    expect(page.locator("#first-run")).to_have_count(0)
    expect(page.locator("#nothing-waiting")).to_be_visible()


def _fits_a_phone(page: Page, url: str) -> None:
    page.goto(url)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{url} scrolls sideways: {width} px wide"
    heading = page.locator("main h1").first.bounding_box()
    assert heading is not None and heading["y"] < 300, f"{url}: the heading starts at {heading}"


def test_the_demo_home_and_admin_pages_on_a_phone(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        load_demo(generated=60)
        db.session.commit()
        finished = db.session.scalars(
            select(Campaign).where(Campaign.status == CampaignStatus.FINISHED.value)
        ).first()
        assert finished is not None
        campaign_url = f"/campaigns/{finished.id}"
        db.session.remove()
    page = signed_in_page(Role.ADMIN, "boss@example.org")
    missing: list[str] = []

    def note_missing(response: Response) -> None:
        if response.status == 404:
            missing.append(response.url)

    page.on("response", note_missing)
    page.set_viewport_size(PHONE)

    # The start page: the demo's real items, each a link that opens.
    page.goto("/")
    replies = page.locator("#attention-replies")
    expect(replies.locator("li")).to_have_count(3)
    oldest = replies.locator("li a").first
    oldest_name = oldest.inner_text()
    oldest.click()
    expect(page).to_have_url(re.compile(r"/replies/\d+$"))
    assert oldest_name.split(":")[0] in page.locator("main").inner_text()
    page.goto("/")
    page.locator("#attention-campaigns li a").first.click()
    expect(page.locator("main h1")).to_contain_text("Joint letter")

    # The menu waits behind its button; opened, it lists the pages.
    page.goto("/")
    menu_button = page.get_by_text("Menu", exact=True)
    expect(menu_button).to_be_visible()
    contacts_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts")
    expect(contacts_link).to_be_hidden()
    menu_button.click()
    expect(contacts_link).to_be_visible()
    contacts_link.click()
    expect(page).to_have_url(f"{live_server.url}/contacts/")

    for url in ("/", "/contacts/", campaign_url, "/replies/"):
        _fits_a_phone(page, url)

    # The contacts table scrolls inside its own box rather than widening the page.
    page.goto("/contacts/")
    table = page.locator("main table").first
    assert table.evaluate("t => t.scrollWidth > t.clientWidth")
    # The campaign's status chart keeps its counts on the screen.
    page.goto(campaign_url)
    for cell in page.locator("#p-chart td[data-count-text]").all():
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]

    # A wide screen shows the menu without its button.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/")
    expect(menu_button).to_be_hidden()
    expect(contacts_link).to_be_visible()
    assert not missing, f"404s: {missing}"

    # Tablets too: the table scrolls in its box, the page never sideways.
    for width in (768, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/contacts/")
        scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
        assert scroll_width <= width, f"/contacts/ at {width} px is {scroll_width} px wide"


def test_the_menu_without_javascript(browser: Browser, live_server: LiveServer) -> None:
    """Without JavaScript the menu starts closed behind its button, on a phone as on a wide
    screen, and the button opens it (a plain <details>)."""
    with live_server.app.app_context():
        address = make_user(Role.ADMIN).email
        db.session.remove()
    context = browser.new_context(
        base_url=live_server.url, java_script_enabled=False, viewport=PHONE
    )
    try:
        page = context.new_page()
        sign_in_through_form(page, address)
        for viewport in (PHONE, {"width": 1280, "height": 800}):
            page.set_viewport_size(viewport)
            page.goto("/")
            heading = page.locator("main h1").first.bounding_box()
            assert heading is not None and heading["y"] < 300, f"{viewport}: {heading}"
            nav = page.get_by_role("navigation", name="Main")
            contacts_link = nav.get_by_role("link", name="Contacts")
            expect(contacts_link).to_be_hidden()
            page.get_by_text("Menu", exact=True).click()
            expect(contacts_link).to_be_visible()
    finally:
        context.close()

"""Merge two contacts, delete one to the trash and restore it, change two in bulk (Chromium)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts.contacts import create_contact
from tests.browser.conftest import LiveServer


def test_merge_trash_restore_and_bulk_edit(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        keep = create_contact(
            {"email": "d.namunova@example.org", "given_name": "Dilnoza", "family_name": "Namunova",
             "organisation": "", "position_title": "Ambassador", "tags": "diplomat"}
        )  # fmt: skip
        create_contact(
            {"email": "amb.uz@example.org", "given_name": "D.", "family_name": "Namunova",
             "organisation": "Embassy of Uzbekistan in France", "position_title": "",
             "tags": "uzbekistan"}
        )  # fmt: skip
        create_contact({"email": "press@example.org", "family_name": "Primerova", "tags": "press"})
        db.session.commit()
        keep_id = keep.id
        db.session.remove()
    page = signed_in_page(Role.EDITOR)

    # Merge: the given name from the first record, the organisation from the second.
    page.goto(f"/contacts/{keep_id}")
    page.get_by_role("link", name="Merge with…").click()
    page.get_by_label("Search").fill("embassy")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="D. Namunova").click()
    expect(page.get_by_role("heading", name="Merge two contacts")).to_be_visible()
    page.get_by_role("radio", name="Dilnoza").check()
    expect(page.get_by_role("radio", name="Embassy of Uzbekistan in France")).to_be_checked()
    page.get_by_role("button", name="Merge").click()
    expect(page.locator(".flash")).to_contain_text("merged into Dilnoza Namunova")
    expect(page.locator("main")).to_contain_text("Embassy of Uzbekistan in France")
    expect(page.locator("main")).to_contain_text("diplomat uzbekistan")

    # Delete → trash → restore.
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Move to the trash").click()
    expect(page.locator(".flash")).to_contain_text("in the trash for 30 days")
    page.get_by_role("link", name="Trash").click()
    row = page.locator("tr", has_text="Dilnoza Namunova")
    expect(row).to_contain_text("30")
    row.get_by_role("button", name="Restore").click()
    expect(page.locator(".flash")).to_contain_text("Dilnoza Namunova is restored.")
    page.goto("/contacts/")
    expect(page.locator("#result-count")).to_contain_text("2 contacts")

    # Bulk edit of the ticked contacts, applied by the worker while the page shows progress.
    page.get_by_label("Select Dilnoza Namunova").check()
    page.get_by_label("Select Primerova").check()
    page.get_by_role("button", name="Change the ticked contacts…").click()
    expect(page.locator("main")).to_contain_text("2 contacts selected")
    page.get_by_label("Add tags").fill("summit")
    page.get_by_role("button", name="Review the changes").click()
    expect(page.locator("#bulk-count")).to_contain_text("This changes 2 contacts")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#bulk-result")).to_contain_text("2 of 2 contacts changed", timeout=20_000)
    page.goto("/contacts/?tag=summit")
    expect(page.locator("#result-count")).to_contain_text("2 contacts")

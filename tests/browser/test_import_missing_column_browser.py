"""An import of a file without a role column, with a role chosen for all rows, in Chromium."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact, Role
from tests.browser.conftest import LiveServer

ROWS = (
    "given_name,family_name,email,gender\n"
    "Aigerim,Bekova,a.bekova@example.org,f\n"
    "Jean,Martin,j.martin@example.org,m\n"
)


def test_a_role_chosen_for_all_rows_is_previewed_imported_and_shown(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/imports/")
    page.get_by_label("CSV or Excel (.xlsx) file").set_input_files(
        files=[{"name": "ambassadors.csv", "mimeType": "text/csv", "buffer": ROWS.encode()}]
    )
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", name="Match the columns of ambassadors.csv")).to_be_visible()
    role = page.get_by_label("Role for all rows")
    expect(role).to_have_value("unknown")  # nothing guessed: unknown until chosen
    role.select_option(label="Ambassador")
    page.get_by_role("button", name="Preview").click()

    expect(page.get_by_role("heading", name="Preview of ambassadors.csv")).to_be_visible()
    expect(page.locator("#for-all-rows")).to_contain_text(
        "Role type: the file has no column for it; every row gets Ambassador."
    )
    first = page.locator("table.preview tbody tr").first
    expect(first).to_contain_text("Ambassador")
    expect(first).to_contain_text("for all rows")
    expect(first).to_contain_text("Dear Ambassador Bekova,")
    page.get_by_role("button", name="Start the import").click()

    summary = page.get_by_role("status").filter(has_text="Finished")
    expect(summary).to_contain_text("imported 2, updated 0, skipped 0, rejected 0", timeout=20_000)
    with live_server.app.app_context():
        contact_id = db.session.scalar(
            select(Contact.id).where(Contact.email == "a.bekova@example.org")
        )
        db.session.remove()
    page.goto(f"/contacts/{contact_id}")
    expect(page.locator("dd", has_text="Ambassador").first).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Other role")

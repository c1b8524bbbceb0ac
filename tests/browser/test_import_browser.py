"""Importing a file with bad rows through the wizard in Chromium, with the real worker."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Contact, Role
from tests.browser.conftest import LiveServer

ROWS = (
    "given_name;family_name;email;country;languages\n"
    "Dilnoza;Namunova;amb.uz@example.org;UZ;ru fr\n"
    "Bad;Address;john..doe@example.org;FR;fr\n"
    "Claire;Exemple;c.exemple@example.org;France;fr\n"
    "Jonas;Probe;AMB.UZ@example.org;EU;en\n"
    "Lena;Beispiel;l.beispiel@bücher.de;DE;de\n"
)


def test_an_import_with_bad_rows_shows_line_column_and_reason(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    page = signed_in_page(Role.EDITOR)
    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import contacts")).to_be_visible()
    page.get_by_label("CSV or Excel (.xlsx) file").set_input_files(
        files=[{"name": "partners.csv", "mimeType": "text/csv", "buffer": ROWS.encode("utf-8")}]
    )
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", name="Match the columns of partners.csv")).to_be_visible()
    expect(page.get_by_text("columns separated by semicolon")).to_be_visible()
    expect(page.get_by_label("email", exact=True)).to_have_value("email")
    page.get_by_label("Update the contact").check()
    page.get_by_label("Add the contacts to a list (optional)").fill("Partners")
    page.get_by_role("button", name="Preview").click()

    expect(page.get_by_role("heading", name="Preview of partners.csv")).to_be_visible()
    expect(page.get_by_text("two periods in a row")).to_be_visible()
    page.get_by_role("button", name="Start the import").click()

    # The worker runs the job; the page polls and reloads itself when it is done.
    summary = page.get_by_role("status").filter(has_text="Finished")
    expect(summary).to_contain_text("imported 2, updated 0, skipped 0, rejected 3", timeout=20_000)
    expect(page.locator("progress")).to_have_attribute("value", "100")
    cells = page.locator("table.rejects tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))"
    )
    assert [(line, column) for line, column, _ in cells] == [
        ("3", "email"),
        ("4", "country"),
        ("5", ""),
    ]
    assert "two periods in a row" in cells[0][2]
    assert "not a country code the country table knows" in cells[1][2]
    assert "already on line 2" in cells[2][2]

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the rejected rows (CSV)").click()
    downloaded = download_info.value.path().read_text(encoding="utf-8-sig")
    assert downloaded.splitlines()[1].startswith("3,email,")

    with live_server.app.app_context():
        stored = db.session.scalars(select(Contact.email).order_by(Contact.email)).all()
        assert stored == ["amb.uz@example.org", "l.beispiel@bücher.de"]
        assert db.session.scalar(select(func.count(Contact.id))) == 2
        db.session.remove()

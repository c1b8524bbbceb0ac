"""The contacts table, the segment builder and export, driven through Chromium."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts.contacts import create_contact
from tests.browser.conftest import LiveServer

PEOPLE = [
    {
        "given_name": "Dilnoza",
        "family_name": "Namunova",
        "role_type": "ambassador",
        "organisation": "Embassy of Uzbekistan in France",
        "country": "UZ",
        "languages": "ru fr",
        "tags": "diplomat uzbekistan",
        "email": "amb.uz@example.org",
    },
    {
        "given_name": "Lena",
        "family_name": "Beispiel",
        "role_type": "mep",
        "organisation": "European Parliament",
        "country": "DE",
        "languages": "en de",
        "tags": "eu mep",
        "email": "l.beispiel@example.org",
    },
    {
        "given_name": "Tomasz",
        "family_name": "Przykład",
        "role_type": "mep",
        "organisation": "European Parliament",
        "country": "PL",
        "languages": "en ru",
        "tags": "eu-mep",
        "email": "t.przyklad@example.org",
    },
    {
        "given_name": "Nadia",
        "family_name": "Primerova",
        "role_type": "journalist",
        "organisation": "Exile news outlet (Riga)",
        "country": "LV",
        "languages": "ru en",
        "tags": "press",
        "risk_level": "elevated",
        "email": "n.primerova@example.org",
    },
]


@pytest.fixture
def people(live_server: LiveServer) -> None:
    with live_server.app.app_context():
        for person in PEOPLE:
            create_contact(person)
        db.session.commit()
        db.session.remove()


def _rows(page: Page) -> list[str]:
    return page.locator("table.contacts td.name").all_inner_texts()


def test_filtering_the_contacts_table(signed_in_page: Callable[..., Page], people: None) -> None:
    page = signed_in_page(Role.VIEWER)
    page.get_by_role("link", name="Contacts").click()
    expect(page.get_by_role("heading", name="Contacts")).to_be_visible()
    expect(page.locator("#result-count")).to_contain_text("4 contacts")

    page.get_by_label("Search").fill("parliament")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#result-count")).to_contain_text("2 contacts")
    assert sorted(_rows(page)) == ["Beispiel, Lena", "Przykład, Tomasz"]

    page.get_by_label("Tag").fill("eu")  # a whole tag: "eu-mep" is not "eu"
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#result-count")).to_contain_text("1 contact")
    assert _rows(page) == ["Beispiel, Lena"]

    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Risk").select_option("elevated")
    page.get_by_role("button", name="Filter").click()
    # Waits for the filtered page: read at once, the rows may be those of the page before.
    expect(page.locator("table.contacts td.name")).to_have_text(["Primerova, Nadia"])
    expect(page.locator("#result-count")).to_contain_text("1 contact")


# The live count answers each edit after a 250 ms pause, through the live server; on a
# loaded machine (a CI run of three test workers beside Chromium) Playwright's 5 s default
# was once not enough. A ceiling, not a speed claim.
COUNT_WAIT_MS = 15_000


def test_saving_a_segment_with_its_live_count(
    signed_in_page: Callable[..., Page], people: None
) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/audiences/")
    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Name", exact=True).fill("MEPs outside the press")
    live = page.locator("#live-count")

    page.get_by_label("Field of condition 1, group 1").select_option("role_type")
    page.get_by_label("Value of condition 1, group 1").fill("mep")
    expect(live).to_contain_text("2 contacts match now", timeout=COUNT_WAIT_MS)

    page.get_by_label("Value of condition 1, group 1").fill("journalist")
    expect(live).to_contain_text("1 contact match now", timeout=COUNT_WAIT_MS)

    page.get_by_label("Operator of condition 1, group 1").select_option("is_not")
    expect(live).to_contain_text("3 contacts match now", timeout=COUNT_WAIT_MS)

    page.get_by_label("Field of condition 1, group 1").select_option("country")
    # A country is chosen by its name; a name no table knows is explained.
    page.get_by_label("Value of condition 1, group 1").fill("France")
    expect(live).to_contain_text("country is not France", timeout=COUNT_WAIT_MS)
    page.get_by_label("Value of condition 1, group 1").fill("Narnia")
    expect(live).to_contain_text(
        "not a country code the country table knows", timeout=COUNT_WAIT_MS
    )

    page.get_by_label("Field of condition 1, group 1").select_option("tag")
    page.get_by_label("Operator of condition 1, group 1").select_option("is")
    page.get_by_label("Value of condition 1, group 1").fill("eu")
    expect(live).to_contain_text("1 contact match now", timeout=COUNT_WAIT_MS)
    page.get_by_label("NOT: condition 1 of group 1 must not hold").check()
    expect(live).to_contain_text("3 contacts match now", timeout=COUNT_WAIT_MS)

    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("Segment MEPs outside the press saved.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="MEPs outside the press")
    expect(row.get_by_role("cell").nth(1)).to_have_text("3")
    row.get_by_role("link", name="View contacts").click()
    expect(page.locator("#result-count")).to_contain_text("3 contacts")
    assert "Beispiel, Lena" not in _rows(page)


def test_exporting_the_filtered_table(
    signed_in_page: Callable[..., Page], people: None, tmp_path: Path
) -> None:
    page = signed_in_page(Role.SENDER)
    page.goto("/contacts/?role_type=mep")
    expect(page.locator("#result-count")).to_contain_text("2 contacts")
    page.get_by_label("Export these contacts as").select_option("csv")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert sorted(r["email"] for r in rows) == ["l.beispiel@example.org", "t.przyklad@example.org"]
    assert {r["family_name"] for r in rows} == {"Beispiel", "Przykład"}


def test_editors_see_no_export_button(signed_in_page: Callable[..., Page], people: None) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/contacts/")
    expect(page.get_by_role("heading", name="Contacts", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Export")).to_have_count(0)

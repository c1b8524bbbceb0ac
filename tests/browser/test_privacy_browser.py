"""An administrator answers an access request, then erases the person, then meets a restored
copy's hold, through Chromium (issue 19): the export's progress bar and download, the typed
confirmation of an erasure, the banner and the release of the hold."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from campaign.extensions import db
from campaign.models import Role
from campaign.services.backups.hold import place_restore_hold
from campaign.services.contacts.contacts import create_contact
from tests.browser.conftest import LiveServer

ADDRESS = "olga.petrova@example.org"


def test_an_admin_exports_then_erases_a_person_and_releases_a_restored_copy(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        person = create_contact(
            {"email": ADDRESS, "given_name": "Olga", "family_name": "Petrova",
             "organisation": "Ministry of Justice", "consent_basis": "legitimate interest"}
        )  # fmt: skip
        db.session.commit()
        person_id = person.id
        db.session.remove()
    page = signed_in_page(Role.ADMIN)

    # The access request: the job runs in the live server's worker while the bar shows it.
    page.goto(f"/contacts/{person_id}")
    page.get_by_role("button", name="Export everything stored about this person").click()
    expect(page.get_by_role("heading", name="Access request export")).to_be_visible()
    download_link = page.locator("#export-download")
    expect(download_link).to_be_visible(timeout=20_000)  # the page follows the job by itself
    with page.expect_download() as arrived:
        download_link.click()
    archive = zipfile.ZipFile(io.BytesIO(arrived.value.path().read_bytes()))
    person_json = json.loads(archive.read("person.json"))
    assert json.dumps(person_json, ensure_ascii=False).count("Petrova") >= 1
    assert "README.txt" in archive.namelist()

    # The erasure: shown what is stored, the address typed again, then gone.
    page.goto(f"/contacts/{person_id}")
    page.get_by_role("link", name="Erase this person…").click()
    confirm = page.get_by_label("Type the address again to confirm")
    confirm.fill("someone.else@example.org")
    page.get_by_role("button", name="Erase this person").click()
    expect(page.locator("main")).to_contain_text("type the address exactly as shown above")
    page.get_by_label("Type the address again to confirm").fill(ADDRESS)
    page.get_by_role("button", name="Erase this person").click()
    expect(page.locator(".flash")).to_contain_text("The person was erased.")
    assert page.goto(f"/contacts/{person_id}").status == 404  # type: ignore[union-attr]
    page.goto("/contacts/?q=Petrova")
    expect(page.locator("main")).not_to_contain_text("Olga")

    # A restored copy: every staff page says it is held until an admin confirms.
    with live_server.app.app_context():
        place_restore_hold(
            archive_created_at=datetime.now(UTC) - timedelta(days=2),
            archive_name="campaign-backup.age",
        )
        db.session.commit()
        db.session.remove()
    page.goto("/")
    banner = page.locator("#restore-hold-banner")
    expect(banner).to_contain_text("sends nothing until an administrator confirms")
    banner.get_by_role("link", name="Restore from backup").click()
    page.get_by_label("This copy is the installation that sends from now on").check()
    # The form asks once more in a dialog (data-confirm) before it is sent.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Resume sending on this installation").click()
    expect(page.locator(".flash")).to_contain_text("Sending is no longer held.")
    page.goto("/")
    expect(page.locator("#restore-hold-banner")).to_have_count(0)

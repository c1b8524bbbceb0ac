"""A joint letter end to end in Chromium: an editor opens the statement's sign-on page; an
organisation (in full) and an individual (name withheld) sign it without an account, confirm by
the link in the dev mailbox and are approved; the launched campaign's letters and their PDF
carry that frozen block; a signature approved after the launch lands only in the next version.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from playwright.sync_api import Browser, Page, expect
from pypdf import PdfReader

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements
from tests.browser.conftest import DEFAULT_TIMEOUT_MS, LiveServer

TITLE = "Free the defenders"
SUBJECT = "Release the defenders before the summit"
# No {{ signatories }} in the body: the letter layouts add the block themselves.
BODY = "{{ salutation }}\n\nWe ask you to release the three defenders.\n\n{{ closing }}\n"
RECIPIENTS = ("minister@mfa.example", "ambassador@mfa.example")

ORGANISATION = {
    "name": "Association for Human Rights in Central Asia",
    "acronym": "AHRCA",
    "country": "Uzbekistan",
    "exile_country": "France",
    "email": "office@ahrca.example",
}
# How the letters print the organisation (published in full).
ORGANISATION_LINE = (
    "Association for Human Rights in Central Asia (AHRCA), Uzbekistan, based in exile in France"
)
INDIVIDUAL = {
    "name": "Secret Defender",
    "role": "Lawyer",
    "organisation": "Tashkent Bar",
    "email": "secure@inside.example",
}
WITHHELD = "Name withheld for security reasons"
LATE = {"name": "Late Alliance", "country": "Kyrgyzstan", "email": "late@ngo.example"}

# Sending renders each letter's PDF; WeasyPrint loads its fonts on the first one.
SENDING_TIMEOUT_MS = 60_000


def _prepare(live_server: LiveServer) -> None:
    """A draft statement and a list of two recipients, made as an editor would have earlier."""
    # Links in e-mails point at PUBLIC_URL; here that is the live server, as in a deployment.
    live_server.app.config["PUBLIC_URL"] = live_server.url
    # An http:// address on loopback is a development set-up: launches accept it in debug only.
    live_server.app.debug = True
    with live_server.app.app_context():
        statements.create_statement(TITLE, language="en", subject=SUBJECT, body=BODY)
        ministries = lists.create_list("Ministries")
        lists.add_contacts(
            ministries,
            [
                create_contact({"email": address, "family_name": address.split("@")[0].title()}).id
                for address in RECIPIENTS
            ],
        )
        db.session.commit()
        db.session.remove()


@contextmanager
def _stranger(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A fresh browser context: no cookies, nobody signed in, like a partner's own browser."""
    context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _sign_as_organisation(page: Page, address: str, signer: dict[str, str]) -> None:
    page.goto(address)
    expect(page.get_by_role("heading", name=TITLE)).to_be_visible()
    page.get_by_role("radio", name="an organisation", exact=True).check()
    page.get_by_label("Name (of the organisation").fill(signer["name"])
    if "acronym" in signer:
        page.get_by_label("Acronym (optional)").fill(signer["acronym"])
    if "exile_country" in signer:
        page.get_by_label("Based in exile in").fill(signer["exile_country"])
    page.get_by_label("Country (optional)").fill(signer["country"])
    page.get_by_role("radio", name=re.compile(r"^in full")).check()
    _finish_signing(page, signer["email"])


def _sign_as_withheld_individual(page: Page, address: str, signer: dict[str, str]) -> None:
    page.goto(address)
    expect(page.get_by_role("heading", name=TITLE)).to_be_visible()
    page.get_by_role("radio", name="an individual", exact=True).check()
    page.get_by_label("Name (of the organisation").fill(signer["name"])
    page.get_by_label("Role (optional").fill(signer["role"])
    page.get_by_label("Organisation (optional)").fill(signer["organisation"])
    page.get_by_role("radio", name=re.compile(r"^withheld for security reasons")).check()
    _finish_signing(page, signer["email"])


def _finish_signing(page: Page, email: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("I agree").check()
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.locator("#sent-message")).to_contain_text(email)


def _open_mail(page: Page, subject: str, to: str) -> None:
    """Open the message in the dev mailbox, reloading the list until the worker has sent it."""
    deadline = time.monotonic() + DEFAULT_TIMEOUT_MS / 1000
    while True:
        page.goto("/devmail/")
        expect(page.get_by_role("heading", name="Dev mailbox")).to_be_visible()
        row = (
            page.get_by_role("row")
            .filter(has_text=to)
            .filter(has=page.get_by_role("link", name=subject, exact=True))
        )
        if row.count() == 1:
            break
        assert time.monotonic() < deadline, f"no message {subject!r} to {to} in the dev mailbox"
        page.wait_for_timeout(250)  # the list is server-rendered: look again shortly
    row.get_by_role("link", name=subject, exact=True).click()
    expect(page.get_by_role("heading", name=subject)).to_be_visible()


def _confirm_by_mail(editor: Page, signer: Page, email: str) -> None:
    """Follow the link e-mailed to `email` in the signer's browser and press the button."""
    _open_mail(editor, f"Confirm your signature: {TITLE}", email)
    text = editor.locator("pre.mailbody").first.inner_text()
    links = re.findall(r"https?://\S+/sign/confirm/\S+", text)
    assert len(links) == 1, text
    signer.goto(links[0])
    expect(signer.get_by_role("heading", name="Confirm your signature")).to_be_visible()
    signer.get_by_role("button", name="Confirm my signature").click()
    expect(
        signer.get_by_role("heading", name="Thank you: your signature is confirmed")
    ).to_be_visible()


def _approve(editor: Page, sign_on_page: str, name: str) -> None:
    editor.goto(sign_on_page)
    row = editor.locator("#waiting tbody tr").filter(has_text=name)
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Approve").click()
    expect(editor.get_by_text("Signature approved")).to_be_visible()
    expect(editor.locator("#approved")).to_contain_text(name)


def _letter(page: Page, tmp_path: Path) -> EmailMessage:
    """The open dev-mailbox message as its recipient's mail program would get it (.eml)."""
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the raw message (.eml)").click()
    target = tmp_path / "letter.eml"
    download_info.value.save_as(target)
    letter = message_from_bytes(target.read_bytes(), policy=default_policy)
    assert isinstance(letter, EmailMessage)
    return letter


def _pdf_text(letter: EmailMessage) -> str:
    [pdf] = [p for p in letter.iter_attachments() if p.get_content_type() == "application/pdf"]
    reader = PdfReader(io.BytesIO(pdf.get_content()))
    return " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages)


def test_partners_sign_confirm_and_are_approved_and_the_launch_freezes_the_block(
    browser: Browser,
    signed_in_page: Callable[..., Page],
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    _prepare(live_server)
    # A sender may also edit: one staff member runs the whole letter, as in a small office.
    editor = signed_in_page(Role.SENDER)

    # 1. The editor opens the statement's sign-on page.
    editor.get_by_role("link", name="Statements").first.click()
    editor.get_by_role("link", name=TITLE).click()
    editor.get_by_role("link", name="Sign-on page").click()
    expect(editor.get_by_role("heading", name="Sign-on page")).to_be_visible()
    editor.get_by_role("button", name="Open a sign-on page").click()
    expect(editor.get_by_text("The sign-on page is open.")).to_be_visible()
    sign_on_page = editor.url.split("#")[0]
    address = editor.get_by_label("Copy this address").input_value()
    assert address.startswith(f"{live_server.url}/sign/"), address

    # 2-3. Two partners sign in their own browsers and confirm by the e-mailed link.
    with _stranger(browser, live_server) as organisation:
        _sign_as_organisation(organisation, address, ORGANISATION)
        _confirm_by_mail(editor, organisation, ORGANISATION["email"])
    with _stranger(browser, live_server) as individual:
        _sign_as_withheld_individual(individual, address, INDIVIDUAL)
        _confirm_by_mail(editor, individual, INDIVIDUAL["email"])

    # 4. The editor approves both; the public page then lists them as each chose.
    _approve(editor, sign_on_page, ORGANISATION["name"])
    _approve(editor, sign_on_page, INDIVIDUAL["name"])
    expect(editor.locator("#counts")).to_contain_text("0 awaiting moderation · 2 approved")
    with _stranger(browser, live_server) as visitor:
        visitor.goto(address)
        listed = visitor.locator("#signatory-list")
        expect(listed).to_contain_text(ORGANISATION["name"])
        expect(listed).to_contain_text(WITHHELD)
        expect(listed).not_to_contain_text(INDIVIDUAL["name"])

    # 5. A campaign to the two ministries, with the letter attached as a PDF.
    editor.goto(sign_on_page)
    editor.get_by_role("link", name=f"← {TITLE}").click()
    editor.get_by_role("link", name="New campaign from this statement").click()
    expect(editor.get_by_role("heading", name="New campaign")).to_be_visible()
    editor.get_by_label("Name").fill("Defenders: joint letter")
    # The statement's status is shown by its label ("Draft"), whatever the case.
    expect(editor.locator("#f-statement option:checked")).to_have_text(
        re.compile(rf"{re.escape(TITLE)} \(draft\)", re.IGNORECASE)
    )
    editor.locator("#f-include").get_by_label("List: Ministries").check()
    expect(editor.locator("#audience-count")).to_contain_text("2 will be written to")
    editor.get_by_label("Attach the letter as a PDF").check()
    editor.get_by_role("button", name="Save draft").click()
    expect(editor.get_by_role("heading", name="Before launching")).to_be_visible()
    editor.get_by_role("link", name="Review and launch: 2 recipients…").click()
    editor.get_by_label("I have read the above: send 2 letters now").check()
    editor.get_by_role("button", name="Launch: send to 2 recipients").click()
    expect(editor.get_by_text("Campaign launched")).to_be_visible()
    expect(editor.locator("#p-status")).to_have_text(
        re.compile("^finished$", re.IGNORECASE), timeout=SENDING_TIMEOUT_MS
    )
    campaign_page = editor.url.split("#")[0]
    frozen_note = editor.get_by_text(re.compile(r"version \d+, frozen at launch"))
    frozen = int(re.findall(r"version (\d+)", frozen_note.inner_text())[0])

    # 6. A sent letter: the block in its text and in its PDF, the withheld name nowhere.
    _open_mail(editor, SUBJECT, RECIPIENTS[0])
    shown_text = editor.locator("pre.mailbody").first
    expect(shown_text).to_contain_text(ORGANISATION_LINE)
    expect(shown_text).to_contain_text(WITHHELD)
    expect(shown_text).not_to_contain_text(INDIVIDUAL["name"])
    expect(editor.get_by_text(".pdf (application/pdf")).to_be_visible()
    letter = _letter(editor, tmp_path)
    pdf_text = _pdf_text(letter)
    html = letter.get_body(("html",))
    assert html is not None
    html_text = str(html.get_content())  # type: ignore[attr-defined]
    for shown in (pdf_text, html_text):
        assert ORGANISATION_LINE in shown and WITHHELD in shown, shown
        for private in (INDIVIDUAL["name"], INDIVIDUAL["organisation"], INDIVIDUAL["email"]):
            assert private not in shown

    # 7. A partner who signs after the launch is in the next version, not in what was sent.
    with _stranger(browser, live_server) as late:
        _sign_as_organisation(late, address, LATE)
        _confirm_by_mail(editor, late, LATE["email"])
    _approve(editor, sign_on_page, LATE["name"])

    editor.goto(campaign_page)
    expect(editor.get_by_text(f"version {frozen}, frozen at launch")).to_be_visible()
    editor.get_by_role("link", name=TITLE).click()
    editor.get_by_role("link", name=re.compile(r"^Version history")).click()
    expect(editor.get_by_role("heading", name="Version history")).to_be_visible()
    newest = editor.locator("table.versions tbody tr").first
    expect(newest).to_contain_text(f"signatory added: {LATE['name']}")
    newest_number = int(newest.locator("td").first.inner_text())
    assert newest_number > frozen

    newest.get_by_role("link", name=str(newest_number), exact=True).click()
    expect(editor.get_by_role("heading", name=f"Version {newest_number}:")).to_be_visible()
    expect(editor.locator("ol")).to_contain_text("Late Alliance, Kyrgyzstan")
    editor.go_back()
    editor.get_by_role("link", name=str(frozen), exact=True).click()
    expect(editor.get_by_role("heading", name=f"Version {frozen}:")).to_be_visible()
    expect(editor.locator("ol")).to_contain_text(ORGANISATION["name"])
    expect(editor.locator("ol")).not_to_contain_text(LATE["name"])

    for recipient in RECIPIENTS:
        _open_mail(editor, SUBJECT, recipient)
        expect(editor.locator("pre.mailbody").first).to_contain_text(WITHHELD)
        pdf_text = _pdf_text(_letter(editor, tmp_path))
        assert ORGANISATION_LINE in pdf_text and WITHHELD in pdf_text, pdf_text
        assert LATE["name"] not in pdf_text
        expect(editor.locator("pre.mailbody").first).not_to_contain_text(LATE["name"])

"""The public side in the visitor's language, in Chromium: a partner whose browser is Russian
opens the demo's sign-on page, signs, confirms from the link in the dev mailbox, and reads
every page in Russian; a French recipient's unsubscribe link reads French. Every visible
text node is checked against the catalogue: a node that is an English msgid whose
translation differs is a string left untranslated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from campaign.demo.sign_on import load_demo_sign_on
from campaign.demo.statements import load_joint_letter
from campaign.extensions import db
from campaign.models import Delivery, Role, Signature, SignatureStatus
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.browser.catalogue_check import assert_translated
from tests.browser.conftest import DEFAULT_TIMEOUT_MS, LiveServer

SIGNER = {"name": "Правозащитный центр «Мемориал»", "email": "memorial@example.org"}
FRENCH_RECIPIENT = "marie.durand@example.fr"


@contextmanager
def _browser_in(browser: Browser, live_server: LiveServer, locale: str) -> Iterator[Page]:
    """A stranger's browser set to `locale` (its Accept-Language follows), no cookies."""
    context = browser.new_context(base_url=live_server.url, locale=locale)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _demo_sign_on_address(live_server: LiveServer) -> str:
    live_server.app.config["PUBLIC_URL"] = live_server.url
    # An http:// address on loopback is a development set-up: launches accept it in debug only.
    live_server.app.debug = True
    with live_server.app.app_context():
        load_joint_letter()
        demo = load_demo_sign_on()
        assert demo is not None
        db.session.commit()
        address = demo.address
        db.session.remove()
    return address


def _confirmation_link(mailbox: Page, email: str) -> str:
    """The link e-mailed to `email`, read in the dev mailbox (reloaded until it arrives)."""
    deadline = time.monotonic() + DEFAULT_TIMEOUT_MS / 1000
    while True:
        mailbox.goto("/devmail/")
        row = mailbox.get_by_role("row").filter(has_text=email)
        if row.count() == 1:
            break
        assert time.monotonic() < deadline, f"no message to {email} in the dev mailbox"
        mailbox.wait_for_timeout(250)
    subject = row.get_by_role("link").first
    assert subject.inner_text().startswith("Подтвердите вашу подпись"), subject.inner_text()
    subject.click()
    text = mailbox.locator("pre.mailbody").first.inner_text()
    assert text.startswith("Здравствуйте!"), text
    links = re.findall(r"https?://\S+/sign/confirm/\S+", text)
    assert len(links) == 1, text
    return links[0]


def test_a_partner_with_a_russian_browser_signs_and_confirms_in_russian(
    browser: Browser, signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    address = _demo_sign_on_address(live_server)
    mailbox = signed_in_page(Role.SENDER)

    with _browser_in(browser, live_server, "ru-RU") as signer:
        signer.goto(address)
        expect(signer.get_by_role("heading", name="Подписать это заявление")).to_be_visible()
        expect(signer.locator("#statement-text")).to_contain_text("Центральной Азии")
        expect(signer.locator("#deadline")).to_contain_text("Подписи принимаются до")
        expect(signer.locator("#consent-text")).to_contain_text("Я согласен(на) с тем")
        expect(signer.locator("#signatory-list")).to_contain_text(
            "Имя не раскрывается по соображениям безопасности"
        )
        assert_translated(signer, "ru")

        # A mistake first: the errors are Russian too.
        signer.get_by_role("button", name="Подписать", exact=True).click()
        expect(signer.locator("#form-errors")).to_contain_text("Ваша подпись не отправлена")
        expect(signer.locator("#e-consent")).to_contain_text("Согласие")
        assert_translated(signer, "ru")

        signer.get_by_role("radio", name="организация", exact=True).check()
        signer.get_by_label("Имя или название").fill(SIGNER["name"])
        signer.get_by_label("Страна (необязательно)").fill("Россия")
        signer.get_by_role("radio", name=re.compile(r"^полностью")).check()
        signer.get_by_label("Электронная почта").fill(SIGNER["email"])
        signer.get_by_label("Я согласен(на)", exact=True).check()
        signer.get_by_role("button", name="Подписать", exact=True).click()
        expect(signer.get_by_role("heading", name="Проверьте почту")).to_be_visible()
        expect(signer.locator("#sent-message")).to_contain_text(SIGNER["email"])
        assert_translated(signer, "ru")

        link = _confirmation_link(mailbox, SIGNER["email"])
        signer.goto(link)
        expect(signer.get_by_role("heading", name="Подтвердите подпись")).to_be_visible()
        expect(signer.locator("#appears-as")).to_contain_text(SIGNER["name"])
        assert_translated(signer, "ru")
        signer.get_by_role("button", name="Подтвердить подпись").click()
        expect(
            signer.get_by_role("heading", name="Спасибо: ваша подпись подтверждена")
        ).to_be_visible()
        assert_translated(signer, "ru")

    with live_server.app.app_context():
        signature = db.session.scalars(
            select(Signature).where(Signature.email == SIGNER["email"])
        ).one()
        # Stored in the language the signer read: later e-mails (notices) follow it.
        assert (signature.language, signature.status) == ("ru", SignatureStatus.CONFIRMED)
        db.session.remove()


def _french_unsubscribe_link(live_server: LiveServer) -> str:
    with live_server.app.app_context():
        statement = statements.create_statement(
            "Lettre", language="fr", subject="Objet", body="{{ salutation }}\n\nTexte.\n"
        )
        contact = create_contact(
            {"email": FRENCH_RECIPIENT, "family_name": "Durand", "languages": "fr"}
        )
        recipients = lists.create_list("Destinataires")
        lists.add_contacts(recipients, [contact.id])
        campaign = campaigns.create_campaign(
            statement,
            audience=AudienceSpec(include=(f"list:{recipients.id}",)),
            from_address="Rights Watch <office@rights.example>",
        )
        assert campaigns.launch_campaign(campaign)
        db.session.commit()
        token = db.session.scalars(
            select(Delivery.unsubscribe_token).where(Delivery.email == FRENCH_RECIPIENT)
        ).one()
        db.session.remove()
    return f"/u/{token}"


def test_a_french_recipients_unsubscribe_page_reads_french(
    browser: Browser, live_server: LiveServer
) -> None:
    link = _french_unsubscribe_link(live_server)
    with _browser_in(browser, live_server, "fr-FR") as recipient:
        recipient.goto(link)
        expect(recipient.get_by_role("heading", level=1)).to_contain_text(
            "Ne plus recevoir de lettres de Rights Watch"
        )
        assert_translated(recipient, "fr")
        recipient.get_by_role("button", name="Se désabonner").click()
        expect(recipient.get_by_role("heading", name="Vous êtes désabonné")).to_be_visible()
        assert_translated(recipient, "fr")

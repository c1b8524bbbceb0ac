"""A staff member who works in Russian (or French) meets no English and no codes, in Chromium.

The demo is loaded; an administrator signs in (the browser's language is English), chooses
Russian in the header, and walks contacts, a contact and its form, statements, a statement,
its preview, its sign-on moderation, campaigns, a finished campaign and its dashboard,
replies and one reply, the calendar, cases and countries. Every visible text node is
checked against the catalogue (tests/browser/catalogue_check.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from campaign.demo.loader import load_demo
from campaign.extensions import db
from campaign.models import (
    Campaign,
    CampaignStatus,
    Contact,
    InboundKind,
    InboundMessage,
    Role,
    SignOn,
)
from tests.browser.catalogue_check import assert_translated
from tests.browser.conftest import LiveServer


def _demo_pages(live_server: LiveServer) -> list[str]:
    with live_server.app.app_context():
        load_demo(generated=60)
        db.session.commit()
        ambassador = db.session.scalars(
            select(Contact).where(Contact.role_type == "ambassador").order_by(Contact.id)
        ).first()
        finished = db.session.scalars(
            select(Campaign).where(Campaign.status == CampaignStatus.FINISHED.value)
        ).first()
        reply = db.session.scalars(
            select(InboundMessage).where(InboundMessage.kind == InboundKind.REPLY.value)
        ).first()
        sign_on = db.session.scalars(select(SignOn)).first()
        assert ambassador and finished and reply and sign_on
        statement_id = sign_on.statement_id
        pages = [
            "/",
            "/contacts/",
            f"/contacts/{ambassador.id}",
            f"/contacts/{ambassador.id}/edit",
            "/statements/",
            f"/statements/{statement_id}",
            f"/statements/{statement_id}/preview/?contact={ambassador.id}",
            f"/statements/{statement_id}/sign-on/",
            "/campaigns/",
            f"/campaigns/{finished.id}",
            f"/campaigns/{finished.id}/dashboard",
            f"/campaigns/{finished.id}/deliveries",
            "/replies/",
            f"/replies/{reply.id}",
            "/calendar/",
            "/cases/",
            "/countries/?q=kg",
            "/audiences/",
        ]
        db.session.remove()
    return pages


def _choose_language(page: Page, autonym: str, button: str) -> None:
    page.goto("/")
    page.locator("#interface-language").select_option(label=autonym)
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()


@pytest.mark.parametrize(
    ("language", "autonym", "heading"),
    [("ru", "русский", "Контакты"), ("fr", "français", "Contacts")],
)
def test_a_staff_member_works_through_the_day_in_their_language(
    signed_in_page: Callable[..., Page],
    live_server: LiveServer,
    language: str,
    autonym: str,
    heading: str,
) -> None:
    pages = _demo_pages(live_server)
    page = signed_in_page(Role.ADMIN, "officer@example.org")
    _choose_language(page, autonym, "Change")
    assert page.locator("html").get_attribute("lang") == language
    for address in pages:
        response = page.goto(address)
        assert response is not None and response.status == 200, address
        assert_translated(page, language)
    page.goto("/contacts/")
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)

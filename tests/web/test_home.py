"""The start page: what needs the signed-in person now, the first-run steps, the favicon.

The demo's start page lists its real items (replies, a signature to moderate, the finished
campaign with bounces, days coming) and every link on it opens; a new installation walks
an admin through three steps; each group shows only what the person's role may open; the
page costs the same few queries with 3 replies waiting or 60.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from html import unescape
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from campaign.demo.loader import load_demo
from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    CampaignStatus,
    Case,
    CaseDate,
    ContactImport,
    DeliveryStatus,
    Role,
    User,
)
from campaign.models.contact_import import ImportStatus
from campaign.services.contacts.contacts import create_contact
from campaign.services.schedules.calendar_items import display_zone
from campaign.services.sending import ledger
from campaign.services.sending.smtp_accounts import AccountFields, create_account
from campaign.services.statements.statements import create_statement
from tests.conftest import make_user, sign_in
from tests.factories import CampaignFactory, DeliveryFactory, InboundMessageFactory

Login = Callable[[Role], User]


def _html(client: FlaskClient, url: str = "/") -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.get_data(as_text=True)


def _section(page: str, element_id: str) -> str:
    """The HTML of the element with this id up to its closing tag (sections do not nest)."""
    found = re.search(rf'<(\w+)[^>]*id="{element_id}".*?</\1>', page, re.S)
    return found.group(0) if found else ""


def _hrefs(html: str) -> list[str]:
    return [unescape(href) for href in re.findall(r'href="([^"#]+)"', html)]


def _today() -> date:
    return datetime.now(display_zone()).date()


# --- first run ---------------------------------------------------------------------------


def test_first_run_walks_an_admin_through_three_steps_until_all_are_done(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    login(Role.ADMIN)
    steps = _section(_html(client), "first-run")
    assert steps, "a new installation shows the walk-through"
    links = {key: _section(steps, f"setup-{key}") for key in ("smtp", "contacts", "statement")}
    assert 'href="/smtp-accounts/new"' in links["smtp"]
    assert 'href="/imports/"' in links["contacts"]
    assert 'href="/statements/new"' in links["statement"]
    assert all('class="is-todo"' in html for html in links.values())
    for href in _hrefs(steps):
        assert client.get(href).status_code == 200, href

    create_account(AccountFields(name="Relay", host="smtp.example.org"))
    db.session.commit()
    steps = _section(_html(client), "first-run")
    assert 'class="is-done"' in _section(steps, "setup-smtp")
    assert 'class="is-todo"' in _section(steps, "setup-contacts")

    create_contact({"email": "someone@example.org", "family_name": "Someone"})
    create_statement("Letter", language="en", subject="Hello", body="Text")
    db.session.commit()
    page = _html(client)
    assert 'id="first-run"' not in page, "the walk-through disappears once all is done"
    assert "Nothing needs you now" in page


def test_first_run_tells_others_that_an_admin_sets_things_up(
    client: FlaskClient, login: Login
) -> None:
    login(Role.EDITOR)
    steps = _section(_html(client), "first-run")
    assert "An administrator still has to" in steps and "Add an SMTP account" in steps
    assert "<a " not in steps


# --- the demo: real items, every link opens ------------------------------------------------


def test_demo_home_lists_real_items_and_every_link_opens(app: Flask, client: FlaskClient) -> None:
    load_demo(generated=20)
    db.session.commit()
    admin = make_user(Role.ADMIN, "boss@example.org")
    sign_in(client, admin)
    page = _html(client)

    replies = _section(page, "attention-replies")
    assert replies, "the demo's unhandled replies are listed"
    # The three oldest, each named by its sender (a contact's name and role), linked.
    assert len(re.findall(r'href="/replies/\d+"', replies)) == 3
    assert "Member of the European Parliament" in replies
    signatures = _section(page, "attention-signatures")
    assert re.search(r'href="/statements/\d+/sign-on/"', signatures)
    campaigns = _section(page, "attention-campaigns")
    assert "bounced" in campaigns and re.search(r'href="/campaigns/\d+"', campaigns)
    assert _section(page, "attention-days"), "calendar days in the next 30 days"

    main = page.split('<main id="main">', 1)[1]
    links = _hrefs(main)
    assert len(links) >= 8
    for href in links:
        assert client.get(href).status_code == 200, href


# --- roles, high-risk names, imports ------------------------------------------------------


def test_each_person_sees_the_groups_their_role_opens(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    now = datetime.now(UTC)
    for number in range(5):
        at = now - timedelta(days=10 - number)
        handled = at if number == 0 else None
        InboundMessageFactory(subject=f"Answer {number}", received_at=at, handled_at=handled)
    today = _today()
    case = Case(name="Real Name Kept Secret", pseudonym="Prisoner K.", is_high_risk=True)
    db.session.add(case)
    db.session.flush()
    db.session.add(
        CaseDate(
            case_id=case.id,
            kind="arrest",
            on=today.replace(year=today.year - 4),  # four years: 29 February too
            is_anniversary_marked=True,
        )
    )
    record = ContactImport(
        original_filename="partners.csv",
        stored_path="/nowhere",
        status=ImportStatus.FINISHED.value,
        rejected_count=4,
        rejects_path="/nowhere-rejects.csv",
        finished_at=now - timedelta(days=1),
    )
    db.session.add(record)
    old = ContactImport(
        original_filename="long-ago.csv",
        stored_path="/nowhere",
        status=ImportStatus.FINISHED.value,
        rejected_count=9,
        rejects_path="",  # its rejects file was purged: nothing to handle any more
        finished_at=now - timedelta(days=40),
    )
    db.session.add(old)
    create_contact({"email": "someone@example.org", "family_name": "Someone"})
    db.session.commit()

    login(Role.EDITOR)
    page = _html(client)
    replies = _section(page, "attention-replies")
    # Four waiting (one was handled); the three oldest are named, oldest first.
    assert ">4</span>" in replies
    assert re.findall(r"Answer (\d)", replies) == ["1", "2", "3"]
    assert "and 1 more" in replies
    imports = _section(page, "attention-imports")
    assert f'href="/imports/{record.id}"' in imports and "4 rows rejected" in imports
    assert "long-ago.csv" not in imports
    days = _section(page, "attention-days")
    assert "Prisoner K." in days and "Real Name Kept Secret" not in page
    assert f'href="/cases/{case.id}"' in days

    client.post("/logout")
    viewer = make_user(Role.VIEWER, "viewer@example.org")
    sign_in(client, viewer)
    page = _html(client)
    assert 'id="attention-replies"' not in page  # a viewer cannot open the inbox
    assert 'id="attention-imports"' not in page
    assert 'id="attention-days"' in page


@contextmanager
def _counting_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_page_costs_the_same_queries_whatever_waits(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    login(Role.ADMIN)
    now = datetime.now(UTC)
    for number in range(3):
        InboundMessageFactory(received_at=now - timedelta(hours=number))
    db.session.commit()
    client.get("/")  # warm up (session, first queries)
    with _counting_queries() as few:
        _html(client)
    for number in range(3, 60):
        InboundMessageFactory(received_at=now - timedelta(hours=number))
    db.session.commit()
    with _counting_queries() as many:
        _html(client)
    assert len(many) == len(few)


# --- favicon ----------------------------------------------------------------------------


def test_favicon_is_served_and_linked_on_every_page(client: FlaskClient, login: Login) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert icon.cache_control.max_age and icon.cache_control.max_age >= 3600
    icon.close()
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and b"<svg" in svg.data
    svg.close()
    login_page = _html(client, "/login")
    assert 'rel="icon"' in login_page
    login(Role.VIEWER)
    assert 'href="/favicon.ico"' in _html(client)


# --- the import's result page -------------------------------------------------------------


def test_an_import_result_links_to_the_list_it_filled(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    from campaign.services.contacts.lists import add_contacts, create_list

    press = create_list("Press")
    contact = create_contact({"email": "someone@example.org", "family_name": "Someone"})
    add_contacts(press, [contact.id])
    record = ContactImport(
        original_filename="press.csv",
        stored_path="/nowhere",
        status=ImportStatus.FINISHED.value,
        imported_count=1,
        total_rows=1,
        list_id=press.id,
        finished_at=datetime.now(UTC),
    )
    db.session.add(record)
    db.session.commit()
    login(Role.EDITOR)
    page = _html(client, f"/imports/{record.id}")
    link = re.search(r'<a id="import-list-link" href="([^"]+)"', page)
    assert link, "the result page links to the list the import filled"
    members = client.get(link.group(1), follow_redirects=True).get_data(as_text=True)
    assert "Someone" in members and "Press" in members


# --- after review: one rule for senders, one set of figures, reveals, remaining steps ------


def test_reply_senders_are_named_by_the_inbox_rule(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    now = datetime.now(UTC)
    trashed = create_contact({"email": "gone@example.org", "family_name": "Trashedperson"})
    create_contact({"email": "sender2@example.org", "family_name": "Liveperson"})
    campaign = CampaignFactory(recipients=())
    campaign.status = CampaignStatus.FINISHED.value
    to_trashed = DeliveryFactory(
        campaign=campaign, status=DeliveryStatus.SENT.value, contact_id=trashed.id
    )
    trashed.deleted_at = now
    InboundMessageFactory(
        from_address="sender1@example.org",
        subject="Answer 1",
        received_at=now - timedelta(days=2),
        delivery_id=to_trashed.id,
    )
    InboundMessageFactory(  # no delivery, from the live contact's address
        from_address="sender2@example.org", subject="Answer 2", received_at=now - timedelta(days=1)
    )
    db.session.commit()
    login(Role.EDITOR)
    replies = _section(_html(client), "attention-replies")
    assert "Trashedperson" not in replies, "a trashed contact is not named"
    assert "Liveperson: Answer 2" in replies


def test_campaign_failures_are_the_campaign_pages_figures(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    campaign = CampaignFactory(recipients=())
    campaign.status = CampaignStatus.SENDING.value
    DeliveryFactory(campaign=campaign, email="r1@example.org", status=DeliveryStatus.FAILED.value)
    DeliveryFactory(campaign=campaign, email="r2@example.org", status=DeliveryStatus.SENT.value)
    # Follow-ups that failed: the campaign page's figures (the letter, step 0) leave them out.
    failed = DeliveryStatus.FAILED.value
    DeliveryFactory(campaign=campaign, email="r1@example.org", status=failed, step=1)
    DeliveryFactory(campaign=campaign, email="r2@example.org", status=failed, step=1)
    db.session.commit()
    login(Role.VIEWER)
    campaigns_html = _section(_html(client), "attention-campaigns")
    assert ledger.campaign_figures(campaign.id).failed == 1
    assert "1 failed" in campaigns_html and "3 failed" not in campaigns_html


def test_admins_are_audited_only_for_the_names_the_page_shows(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    today = _today()
    cases = []
    for number in range(5):
        case = Case(name=f"Secret Person {number}", pseudonym=f"P{number}.", is_high_risk=True)
        db.session.add(case)
        db.session.flush()
        on = today + timedelta(days=number + 1)
        db.session.add(
            CaseDate(
                case_id=case.id,
                kind="arrest",
                on=on.replace(year=on.year - 4),
                is_anniversary_marked=True,
            )
        )
        cases.append(case)
    db.session.commit()
    login(Role.ADMIN)
    page = _html(client)
    shown = {case.id for case in cases if case.name in page}
    audited: set[int] = set()
    for event_row in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "case.reveal")
    ):
        detail = event_row.detail or {}
        audited.update(detail.get("case_ids") or [int(event_row.target_id)])
    assert len(shown) < len(cases), "the page names only a few of the anniversaries"
    assert audited == shown


def test_others_are_told_only_the_steps_not_done(client: FlaskClient, login: Login) -> None:
    create_contact({"email": "someone@example.org", "family_name": "Someone"})
    create_statement("Letter", language="en", subject="Hello", body="Text")
    db.session.commit()
    login(Role.EDITOR)
    steps = _section(_html(client), "first-run")
    assert "Add an SMTP account" in steps
    assert "contacts" not in steps.lower() and "statement" not in steps.lower()


def test_signatures_link_names_the_page_it_opens(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    load_demo(generated=5)
    db.session.commit()
    login(Role.EDITOR)
    signatures = _section(_html(client), "attention-signatures")
    assert "Moderate the sign-on page of “" in unescape(signatures)


def test_russian_words_of_the_start_page(app: Flask) -> None:
    from flask_babel import force_locale, gettext, ngettext

    with app.test_request_context("/"), force_locale("ru"):
        assert gettext("Sends and follow-ups in the next 30 days").startswith(
            "Отправки и повторные письма"
        )
        assert ngettext("%(num)d in doubt", "%(num)d in doubt", 2) == "2 под вопросом"
        # The step is a verb like the other two; the imports page keeps its noun title.
        assert gettext("Import your contacts") == "Импортировать контакты"
        assert gettext("Add an SMTP account") == "Добавить учётную запись SMTP"

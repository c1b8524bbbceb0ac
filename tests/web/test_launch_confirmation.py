"""Launches that cannot surprise: the confirmation page, its signed token, double confirms,
an audience that changed meanwhile, scheduled campaigns that say so (decision 0046)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Delivery, Role, SmtpAccount
from campaign.scheduling import schedules
from campaign.services import campaigns, followups, lists, statements
from campaign.services.campaigns import AudienceSpec
from campaign.services.contacts import create_contact
from tests.launching import confirm_launch, confirmation_token

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"
BODY_FR = "{{ salutation }}\n\nNous écrivons au sujet du procès.\n\n{{ closing }}\n\nAnna Sample\n"


@pytest.fixture
def draft(app: Flask) -> Campaign:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY
    )
    statements.set_text(statement, language="fr", subject="Avant le sommet", body=BODY_FR)
    press = lists.create_list("Press")
    people = [
        create_contact(
            {
                "given_name": f"Person{i}",
                "family_name": "Sample",
                "email": f"p{i}@example.org",
                "languages": "fr" if i < 2 else "en",
            }
        )
        for i in range(5)
    ]
    lists.add_contacts(press, [p.id for p in people])
    account = SmtpAccount(name="Paced relay", host="localhost", port=2525, per_minute=2)
    db.session.add(account)
    db.session.flush()
    campaign = campaigns.create_campaign(
        statement,
        name="Summit letter",
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Office <office@example.org>",
        smtp_account=account,
    )
    db.session.commit()
    return campaign


def _text(page: str, element_id: str) -> str:
    found = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id} on the page"
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(2)))).strip()


def _rows(campaign_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id)
        )
        or 0
    )


def test_the_campaign_page_only_leads_to_a_confirmation_that_names_everything(
    client: FlaskClient, login: Any, draft: Campaign
) -> None:
    login(Role.SENDER)
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    # No button that sends: a link to the confirmation.
    assert f'action="/campaigns/{draft.id}/launch"' not in page
    assert _text(page, "launch-link") == "Review and launch: 5 recipients…"

    shown = client.get(f"/campaigns/{draft.id}/launch")
    assert shown.status_code == 200
    confirmation = shown.get_data(as_text=True)
    assert _text(confirmation, "confirm-count").startswith("5 recipients will be written to")
    assert _text(confirmation, "confirm-account") == "Paced relay"
    assert _text(confirmation, "confirm-pace") == "at most 2 letters a minute"
    # Five letters at two a minute: the first at once, four intervals of 30 s, in words.
    assert _text(confirmation, "confirm-duration") == "about 2 minutes"
    assert _text(confirmation, "confirm-languages") == "English: 3 · French: 2"
    assert "letters checked: 0 errors" in _text(confirmation, "confirm-check")
    assert 'name="confirm"' in confirmation and 'name="token"' in confirmation
    assert _rows(draft.id) == 0, "looking sends nothing"

    # The button without the box ticked launches nothing and says why.
    unticked = client.post(
        f"/campaigns/{draft.id}/launch", data={"token": confirmation_token(client, draft.id)}
    )
    assert unticked.status_code == 422
    assert "tick the box" in unticked.get_data(as_text=True)
    assert _rows(draft.id) == 0
    # A forged token neither.
    forged = client.post(f"/campaigns/{draft.id}/launch", data={"token": "forged", "confirm": "1"})
    assert forged.status_code == 400 and _rows(draft.id) == 0


def test_a_launch_confirmed_twice_launches_once(
    client: FlaskClient, login: Any, draft: Campaign
) -> None:
    login(Role.SENDER)
    token = confirmation_token(client, draft.id)
    form = {"token": token, "confirm": "1"}
    first = client.post(f"/campaigns/{draft.id}/launch", data=form, follow_redirects=True)
    assert "Campaign launched" in first.get_data(as_text=True)
    rows = _rows(draft.id)
    assert rows == 5
    # The same form again: a double click, or the second tab.
    second = client.post(f"/campaigns/{draft.id}/launch", data=form, follow_redirects=True)
    assert "already launched" in second.get_data(as_text=True)
    assert _rows(draft.id) == rows
    assert db.session.get(Campaign, draft.id).status == CampaignStatus.SENDING


def test_a_confirmation_left_open_while_the_audience_changed_asks_again(
    client: FlaskClient, login: Any, draft: Campaign
) -> None:
    login(Role.SENDER)
    token = confirmation_token(client, draft.id)
    # Meanwhile a colleague adds two people to the list.
    press = lists.find_list("Press")
    assert press is not None
    newcomers = [
        create_contact({"family_name": f"New{i}", "email": f"new{i}@example.org"}).id
        for i in range(2)
    ]
    lists.add_contacts(press, newcomers)
    db.session.commit()

    stale = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert stale.status_code == 409
    page = stale.get_data(as_text=True)
    assert "Not launched" in _text(page, "confirm-changed")
    assert "5 when the page was shown, 7 now" in _text(page, "confirm-changed")
    assert _text(page, "confirm-count").startswith("7 recipients will be written to")
    assert _rows(draft.id) == 0

    # The same number, other people: still asked again.
    token = confirmation_token(client, draft.id)
    lists.remove_contacts(press, [newcomers[0]])
    lists.add_contacts(
        press, [create_contact({"family_name": "Other", "email": "other@example.org"}).id]
    )
    db.session.commit()
    swapped = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert swapped.status_code == 409
    assert "not the same people" in swapped.get_data(as_text=True)
    assert _rows(draft.id) == 0

    # Confirmed with what is shown now, it goes.
    assert "Campaign launched" in confirm_launch(client, draft.id).get_data(as_text=True)
    assert _rows(draft.id) == 7


def test_a_scheduled_campaign_says_when_and_offers_send_now_apart(
    client: FlaskClient, login: Any, draft: Campaign
) -> None:
    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    schedules.create_send_at(draft, "2027-06-26T09:00", "Asia/Tashkent", now=now)
    followups.add_step(draft, draft.statement, 14, "no_reply")
    db.session.commit()
    login(Role.SENDER)

    expected = "Scheduled for 26 June 2027, 09:00 Asia/Tashkent; follow-up on 10 July"
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert _text(page, "campaign-schedule") == expected
    assert 'id="launch-link"' not in page
    assert _text(page, "send-now-link") == "Send now instead…"
    listing = client.get("/campaigns/").get_data(as_text=True)
    assert expected in html.unescape(listing)
    assert "not launched" not in listing
    confirmation = client.get(f"/campaigns/{draft.id}/launch").get_data(as_text=True)
    assert expected in _text(confirmation, "confirm-schedule")


def test_dates_are_written_in_the_users_language(
    client: FlaskClient, login: Any, draft: Campaign
) -> None:
    schedules.create_send_at(
        draft, "2027-06-26T09:00", "Asia/Tashkent", now=datetime(2026, 12, 7, tzinfo=UTC)
    )
    db.session.commit()
    login(Role.SENDER)
    page = client.get(f"/campaigns/{draft.id}", headers={"Accept-Language": "fr"}).get_data(
        as_text=True
    )
    assert "26 juin 2027, 09:00 Asia/Tashkent" in _text(page, "campaign-schedule")

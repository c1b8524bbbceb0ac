"""Launches that cannot surprise: the confirmation page, its signed token, double confirms,
an audience that changed meanwhile, scheduled campaigns that say so (decision 0046)."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    Role,
    Schedule,
    SmtpAccount,
)
from campaign.scheduling import schedules
from campaign.scheduling.actions import fire_yearly
from campaign.scheduling.tick import tick
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.schedules.calendar_items import calendar_items
from campaign.services.sending import campaigns, followups
from campaign.services.sending import launch as launch_confirmation
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.launching import confirm_launch, confirmation_token
from tests.pages import element_text

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
    assert element_text(page, "launch-link") == "Review and launch: 5 recipients…"

    shown = client.get(f"/campaigns/{draft.id}/launch")
    assert shown.status_code == 200
    confirmation = shown.get_data(as_text=True)
    assert element_text(confirmation, "confirm-count").startswith("5 recipients will be written to")
    assert element_text(confirmation, "confirm-account") == "Paced relay"
    assert element_text(confirmation, "confirm-pace") == "at most 2 letters a minute"
    # Five letters at two a minute: the first at once, four intervals of 30 s, in words.
    assert element_text(confirmation, "confirm-duration") == "about 2 minutes"
    assert element_text(confirmation, "confirm-languages") == "English: 3 · French: 2"
    assert element_text(confirmation, "confirm-check") == "5 letters checked: 0 errors, 0 warnings"
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
    assert "Not launched" in element_text(page, "confirm-changed")
    assert "5 when the page was shown, 7 now" in element_text(page, "confirm-changed")
    assert element_text(page, "confirm-count").startswith("7 recipients will be written to")
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

    # The same people, but a bulk edit changed a recipient's role meanwhile: asked again.
    token = confirmation_token(client, draft.id)
    edited = db.session.get(Contact, newcomers[1])
    assert edited is not None
    edited.role_type = "minister"
    db.session.commit()
    retyped = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert retyped.status_code == 409
    assert "details were edited since" in retyped.get_data(as_text=True)
    assert _rows(draft.id) == 0

    # Confirmed with what is shown now, it goes.
    assert "Campaign launched" in confirm_launch(client, draft.id).get_data(as_text=True)
    assert _rows(draft.id) == 7


def test_a_scheduled_campaign_says_when_and_offers_send_now_apart(
    client: FlaskClient, login: Any, draft: Campaign
) -> None:
    now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    schedules.create_send_at(
        draft, "2027-12-20T09:00", "Asia/Tashkent", now=now, pacing={"mode": "window", "days": 5}
    )
    followups.add_step(draft, draft.statement, 14, "no_reply")
    db.session.commit()
    login(Role.SENDER)

    # The time as the language writes it (babel); the follow-up's year differs, so it is named.
    expected = "Scheduled for 20 December 2027, 9:00 AM Asia/Tashkent; follow-up on 3 January 2028"
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert element_text(page, "campaign-schedule") == expected
    assert 'id="launch-link"' not in page
    assert element_text(page, "send-now-link") == "Send now instead…"
    listing = client.get("/campaigns/").get_data(as_text=True)
    assert expected in " ".join(html.unescape(listing).split())
    assert "not launched" not in listing
    confirmation = client.get(f"/campaigns/{draft.id}/launch").get_data(as_text=True)
    assert expected in element_text(confirmation, "confirm-schedule")
    assert "the scheduled date is cancelled" in element_text(confirmation, "confirm-schedule")

    # "Send now": the send-at goes first (audited), so its 5-day pacing does not spread the
    # letters and the calendar no longer lists the date.
    launched = confirm_launch(client, draft.id).get_data(as_text=True)
    assert "Campaign launched" in launched
    db.session.expire_all()
    firsts = db.session.scalars(
        select(Delivery.next_attempt_at).where(Delivery.campaign_id == draft.id)
    ).all()
    assert len(firsts) == 5
    assert max(firsts) <= datetime.now(UTC)
    assert db.session.get(Campaign, draft.id).send_at is None
    on_calendar = [
        item
        for item in calendar_items(date(2027, 12, 1), date(2028, 1, 31), None)
        if item.campaign_id == draft.id and item.kind != "follow-up"
    ]
    assert on_calendar == []
    assert db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "campaign.unschedule", AuditEvent.target_id == str(draft.id))
    )


def test_send_now_on_a_yearly_campaign_sends_that_years_copy_once(
    app: Flask, client: FlaskClient, login: Any, draft: Campaign
) -> None:
    rule = schedules.create_yearly(draft, 6, 26, "09:00", "Asia/Tashkent")
    db.session.commit()
    due = rule.next_run_at
    assert due is not None
    login(Role.SENDER)
    confirmation = client.get(f"/campaigns/{draft.id}/launch").get_data(as_text=True)
    assert "sends the next yearly copy now" in element_text(confirmation, "confirm-schedule")

    token = confirmation_token(client, draft.id)
    sent = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert sent.status_code == 302
    copy = db.session.scalars(select(Campaign).where(Campaign.template_id == draft.id)).one()
    assert sent.location.endswith(f"/campaigns/{copy.id}")
    assert copy.status == CampaignStatus.SENDING
    assert _rows(copy.id) == 5 and _rows(draft.id) == 0
    # The same form again (a double click) sends nothing more.
    again = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert again.status_code == 409
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 5

    # On the date, the scheduler finds this year's copy made: nobody gets the letter twice.
    db.session.expire_all()
    rule = db.session.get(Schedule, rule.id)
    assert rule is not None and rule.next_run_at is not None and rule.next_run_at > due
    fired = tick(due + timedelta(minutes=1)).lines
    assert [line for line in fired if line.schedule_id == rule.id] == []
    detail, _copy_id = fire_yearly(rule, due, due)
    assert "already made" in str(detail)
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 5
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 2


def test_a_confirmation_names_letter_and_account_changes_and_expires(
    client: FlaskClient, login: Any, draft: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(Role.SENDER)
    # The letter is edited while the page is open.
    token = confirmation_token(client, draft.id)
    statements.set_text(
        draft.statement,
        language="en",
        subject="Changed subject",
        body=BODY.replace("trial", "case"),
    )
    db.session.commit()
    edited = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert edited.status_code == 409
    assert "The letter was edited" in element_text(edited.get_data(as_text=True), "confirm-changed")
    # The SMTP account's pace is changed.
    token = confirmation_token(client, draft.id)
    account = db.session.get(SmtpAccount, draft.smtp_account_id)
    assert account is not None
    account.per_minute = 600
    db.session.commit()
    changed = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert changed.status_code == 409
    assert "SMTP account was changed" in element_text(
        changed.get_data(as_text=True), "confirm-changed"
    )
    # A page shown 13 hours ago launches nothing: it is shown again, saying why.
    token = confirmation_token(client, draft.id)
    later = launch_confirmation._clock() + 13 * 3600
    monkeypatch.setattr(launch_confirmation, "_clock", lambda: later)
    old = client.post(f"/campaigns/{draft.id}/launch", data={"token": token, "confirm": "1"})
    assert old.status_code == 409
    assert "more than 12 hours ago" in element_text(old.get_data(as_text=True), "confirm-changed")
    assert _rows(draft.id) == 0


def test_the_expected_duration_follows_the_count_and_the_pace(app: Flask) -> None:
    with app.test_request_context():
        daily = SmtpAccount(name="Daily", host="h", per_minute=30, per_day=40)
        assert launch_confirmation.expected_pace(daily, 48).duration_text() == "about 1 day"
        unlimited = SmtpAccount(name="Open", host="h")
        text = launch_confirmation.expected_pace(unlimited, 10_000).duration_text()
        assert "few minutes" not in text and "mail server's speed" in text


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
    assert "26 juin 2027, 09:00 Asia/Tashkent" in element_text(page, "campaign-schedule")
    # The parts' separator is the language's own too.
    followups.add_step(draft, draft.statement, 14, "no_reply")
    db.session.commit()
    page = client.get(f"/campaigns/{draft.id}", headers={"Accept-Language": "fr"}).get_data(
        as_text=True
    )
    # (non-breaking space before the semicolon in French; the page helper reads it as a space)
    assert "Asia/Tashkent ; relance" in element_text(page, "campaign-schedule")

"""The campaigns area in the reader's own language: campaign pages and their flashes, the
ledger, the dashboard, schedules and the scheduler's record, the calendar, cases and the
staff reminder e-mails, in Russian and French, never a raw code.

What the scheduler writes (a run's detail, a reminder, why a launch was skipped) is stored
as a message and read in each reader's language: one record, two readers, two languages.
"""

from __future__ import annotations

import mailbox
import re
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import Campaign, Role, Schedule, Suppression, User
from campaign.scheduling.schedules import create_send_at
from campaign.scheduling.tick import tick
from campaign.services import calendar, campaigns, lists, statements
from campaign.services.campaigns import AudienceSpec
from campaign.services.contacts import create_contact
from tests.conftest import make_user, sign_in

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n"
NBSP = "\u00a0"


def _user(role: Role, language: str, email: str | None = None) -> User:
    user = make_user(role, email or f"{role.value}.{language}@example.org")
    user.language = language
    db.session.commit()
    return user


def _page(client: FlaskClient, url: str, method: str = "GET", **kwargs: Any) -> str:
    """The page at `url` (after the redirect of a POST), its entities decoded."""
    response = client.open(url, method=method, follow_redirects=True, **kwargs)
    assert response.status_code in (200, 422), url
    return unescape(response.get_data(as_text=True))


def _text_nodes(html: str) -> set[str]:
    """What a reader sees between tags (scripts, styles and attributes left out)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return {" ".join(node.split()) for node in re.findall(r">([^<]+)<", html) if node.strip()}


def _no_codes(html: str, *codes: str) -> None:
    shown = _text_nodes(html)
    leaked = [code for code in codes if code in shown]
    assert not leaked, f"raw codes shown as text: {leaked}"


@pytest.fixture
def draft(app: Flask) -> Campaign:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY
    )
    press = lists.create_list("Press")
    people = [
        create_contact(
            {"given_name": f"Person{i}", "family_name": "Sample", "email": f"p{i}@example.org"}
        )
        for i in range(3)
    ]
    lists.add_contacts(press, [p.id for p in people])
    db.session.add(
        Suppression(email_key="p1@example.org", email="p1@example.org", reason="unsubscribed")
    )
    campaign = campaigns.create_campaign(
        statement,
        name="Summit letter",
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Office <office@example.org>",
    )
    db.session.commit()
    return campaign


def test_a_russian_sender_launches_pauses_and_reads_the_ledger_in_russian(
    client: FlaskClient, draft: Campaign
) -> None:
    sign_in(client, _user(Role.SENDER, "ru"))
    listing = _page(client, "/campaigns/")
    assert "Кампании" in listing and "Новая кампания" in listing
    assert "Черновик" in listing  # the campaign's status, by its label
    _no_codes(listing, "draft")

    page = _page(client, f"/campaigns/{draft.id}")
    assert "Перед запуском" in page
    assert "Письмо получат 2 получателя (в аудитории: 3, исключено: 1)." in page
    assert "Запустить: отправить 2 получателям" in page

    launched = _page(client, f"/campaigns/{draft.id}/launch", method="POST")
    assert "Кампания запущена: письма отправляются." in launched
    assert "Ход отправки" in launched and "Отправляется" in launched
    _no_codes(launched, "sending", "queued", "suppressed")

    paused = _page(client, f"/campaigns/{draft.id}/pause", method="POST")
    assert "Приостановлено: письма, уже переданные серверу, будут доставлены" in paused
    assert "— приостановлено сотрудником" in paused  # the stored reason, read in Russian
    progress = client.get(f"/campaigns/{draft.id}/progress").get_json()
    assert progress["status"] == "paused" and progress["status_label"] != "paused"
    assert progress["status_reason"] == "приостановлено сотрудником"

    ledger = _page(client, f"/campaigns/{draft.id}/deliveries")
    assert "Получатели: Summit letter" in ledger and "Адрес содержит" in ledger
    assert "В списке исключений" in ledger  # the delivery's reason, not "suppressed"
    _no_codes(ledger, "suppressed", "queued")

    dashboard = _page(client, f"/campaigns/{draft.id}/dashboard")
    assert "Воронка" in dashboard and "Ответили лично" in dashboard


def test_a_french_editor_meets_french_errors_and_flashes(
    client: FlaskClient, draft: Campaign
) -> None:
    sign_in(client, _user(Role.SENDER, "fr"))
    form = {"name": "", "statement_id": "", "from_address": "x"}
    refused = _page(client, "/campaigns/new", method="POST", data=form)
    assert f"Déclaration{NBSP}: choisissez la déclaration à envoyer" in refused

    schedule = _page(client, f"/campaigns/{draft.id}/schedule/")
    assert "Calendrier d’envoi et relances" in schedule and "Aucune relance." in schedule
    assert "Sans réponse" in schedule  # a follow-up condition by its label
    bad = {"statement_id": str(draft.statement_id), "delay_days": "0", "condition": "no_reply"}
    step = _page(client, f"/campaigns/{draft.id}/schedule/steps", method="POST", data=bad)
    assert f"Jours{NBSP}: une relance part au moins 1 jour après la lettre précédente" in step
    good = {**bad, "delay_days": "14"}
    added = _page(client, f"/campaigns/{draft.id}/schedule/steps", method="POST", data=good)
    assert f"Relance 1 ajoutée{NBSP}: 14 jours après l’envoi de la lettre" in added


def test_the_scheduler_record_reads_in_each_readers_language(
    app: Flask, client: FlaskClient, draft: Campaign
) -> None:
    create_send_at(draft, "2030-06-26T09:00", "Europe/Paris", now=datetime(2030, 6, 1, tzinfo=UTC))
    db.session.commit()
    report = tick(datetime(2030, 6, 29, 8, tzinfo=UTC))  # three days down: skipped
    assert report.lines[0].detail == "due 2030-06-26 09:00 Europe/Paris, 3 days late: not sent"

    russian, french = _user(Role.EDITOR, "ru"), _user(Role.EDITOR, "fr")
    sign_in(client, russian)
    record = _page(client, "/schedules/runs")
    assert "Журнал планировщика" in record
    assert "срок 2030-06-26 09:00 Europe/Paris, опоздание на 3 дня: не отправлено" in record
    _no_codes(record, "skipped", "send_at")
    reason = _page(client, f"/campaigns/{draft.id}/schedule/")
    assert "запланированный запуск пропущен: срок 2030-06-26" in reason
    client.post("/logout")

    sign_in(client, french)
    record = _page(client, "/schedules/runs")
    assert "Registre du planificateur" in record
    assert f"prévu le 2030-06-26 09:00 Europe/Paris, 3 jours de retard{NBSP}: non envoyé" in record
    calendar_page = _page(client, "/calendar/")
    assert "1 exécution programmée a été sautée ou a échoué depuis le" in calendar_page


def test_calendar_and_cases_in_french(client: FlaskClient, app: Flask) -> None:
    sign_in(client, _user(Role.EDITOR, "fr"))
    month = _page(client, "/calendar/?month=2030-06")
    assert "Calendrier de plaidoyer" in month and "juin 2030" in month
    assert "lun." in month  # the week starts on Monday, in French
    form = {
        "name": "Sommet UE–Asie centrale",
        "kind": "summit",
        "starts_on": "2030-06-10",
        "ends_on": "2030-06-11",
        "place": "Samarcande",
        "reminder_days": "7",
    }
    added = _page(client, "/calendar/events", method="POST", data=form)
    assert "Événement Sommet UE–Asie centrale ajouté au calendrier." in added
    assert "Sommet UE–Asie centrale (10–11 juin, Samarcande)" in added
    assert f"Rappel{NBSP}: Sommet UE–Asie centrale, 7 jours avant" in added
    _no_codes(added, "summit")

    bad = _page(client, "/calendar/events", method="POST", data={**form, "kind": "x"})
    assert f"Type{NBSP}: «{NBSP}x{NBSP}» ne fait pas partie de" in bad

    case = _page(
        client,
        "/cases/new",
        method="POST",
        data={"name": "Ana Example", "status": "detained", "country": "UZ"},
    )
    assert "Dossier Ana Example ajouté." in case and "Détenu" in case
    _no_codes(case, "detained")


def test_a_reminder_is_mailed_to_each_member_of_staff_in_their_language(app: Flask) -> None:
    _user(Role.EDITOR, "ru", "ru.editor@example.org")
    _user(Role.ADMIN, "fr", "fr.admin@example.org")
    make_user(Role.EDITOR, "en.editor@example.org")  # no language: English
    start = date.today() + timedelta(days=30)
    event = calendar.add_event("EU–Central Asia summit", start, reminder_days=[7])
    db.session.commit()
    schedule = db.session.scalars(select(Schedule).where(Schedule.event_id == event.id)).one()
    assert schedule.next_run_at is not None
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        tick(schedule.next_run_at)
    received = {
        message["Delivered-To"]: str(make_header(decode_header(message["Subject"])))
        for message in mailbox.Maildir(config.devmail_path, create=False)
    }
    assert received["ru.editor@example.org"].startswith(
        "Напоминание: EU–Central Asia summit через 7 дней"
    )
    assert received["fr.admin@example.org"].startswith(
        f"Rappel{NBSP}: EU–Central Asia summit dans 7 jours"
    )
    assert received["en.editor@example.org"].startswith(
        "Reminder: EU–Central Asia summit in 7 days"
    )

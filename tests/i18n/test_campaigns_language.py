"""The campaigns area in the reader's own language: campaign pages and their flashes, the
ledger, the dashboard, schedules and the scheduler's record, the calendar, cases and the
staff reminder e-mails, in Russian and French, never a raw code.

What the scheduler writes (a run's detail, a reminder, why a launch was skipped) is stored
as a message and read in each reader's language: one record, two readers, two languages.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import Campaign, Role, Schedule, Suppression
from campaign.scheduling.schedules import create_send_at
from campaign.scheduling.tick import tick
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.schedules import advocacy_calendar as calendar
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.conftest import make_user, sign_in
from tests.i18n.pages import assert_no_codes, page_text, user_in
from tests.launching import confirmation_token

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"
NBSP = "\u00a0"


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
    sign_in(client, user_in(Role.SENDER, "ru"))
    listing = page_text(client, "/campaigns/")
    assert "Кампании" in listing and "Новая кампания" in listing
    assert "Черновик" in listing  # the campaign's status, by its label
    assert_no_codes(listing, "draft")

    page = page_text(client, f"/campaigns/{draft.id}")
    assert "Перед запуском" in page
    assert "Письмо получат 2 получателя (в аудитории: 3, исключено: 1)." in page
    assert "Проверить и запустить: 2 получателя…" in page

    confirmation = page_text(client, f"/campaigns/{draft.id}/launch")
    assert "Что произойдёт" in confirmation and "Ожидаемая длительность" in confirmation
    assert "Запустить: отправить 2 получателям" in confirmation
    launched = page_text(
        client,
        f"/campaigns/{draft.id}/launch",
        method="POST",
        data={"token": confirmation_token(client, draft.id), "confirm": "1"},
    )
    assert "Кампания запущена: письма отправляются." in launched
    assert "Ход отправки" in launched and "Отправляется" in launched
    assert_no_codes(launched, "sending", "queued", "suppressed")

    paused = page_text(client, f"/campaigns/{draft.id}/pause", method="POST")
    assert "Приостановлено: письма, уже переданные серверу, будут доставлены" in paused
    assert "— приостановлено сотрудником" in paused  # the stored reason, read in Russian
    progress = client.get(f"/campaigns/{draft.id}/progress").get_json()
    assert progress["status"] == "paused" and progress["status_label"] != "paused"
    assert progress["status_reason"] == "приостановлено сотрудником"

    ledger = page_text(client, f"/campaigns/{draft.id}/deliveries")
    assert "Получатели: Summit letter" in ledger and "Адрес содержит" in ledger
    assert "В списке исключений" in ledger  # the delivery's reason, not "suppressed"
    assert_no_codes(ledger, "suppressed", "queued")

    dashboard = page_text(client, f"/campaigns/{draft.id}/dashboard")
    assert "Воронка" in dashboard and "Ответили лично" in dashboard


def test_a_french_editor_meets_french_errors_and_flashes(
    client: FlaskClient, draft: Campaign
) -> None:
    sign_in(client, user_in(Role.SENDER, "fr"))
    form = {"name": "", "statement_id": "", "from_address": "x"}
    refused = page_text(client, "/campaigns/new", method="POST", data=form)
    assert f"Déclaration{NBSP}: choisissez la déclaration à envoyer" in refused

    schedule = page_text(client, f"/campaigns/{draft.id}/schedule/")
    assert "Calendrier d’envoi et relances" in schedule and "Aucune relance." in schedule
    assert "Sans réponse" in schedule  # a follow-up condition by its label
    bad = {"statement_id": str(draft.statement_id), "delay_days": "0", "condition": "no_reply"}
    step = page_text(client, f"/campaigns/{draft.id}/schedule/steps", method="POST", data=bad)
    assert f"Jours{NBSP}: une relance part au moins 1 jour après la lettre précédente" in step
    good = {**bad, "delay_days": "14"}
    added = page_text(client, f"/campaigns/{draft.id}/schedule/steps", method="POST", data=good)
    assert f"Relance 1 ajoutée{NBSP}: 14 jours après l’envoi de la lettre" in added


def test_the_scheduler_record_reads_in_each_readers_language(
    app: Flask, client: FlaskClient, draft: Campaign
) -> None:
    create_send_at(draft, "2030-06-26T09:00", "Europe/Paris", now=datetime(2030, 6, 1, tzinfo=UTC))
    db.session.commit()
    report = tick(datetime(2030, 6, 29, 8, tzinfo=UTC))  # three days down: skipped
    assert report.lines[0].detail == "due 2030-06-26 09:00 Europe/Paris, 3 days late: not sent"

    russian, french = user_in(Role.EDITOR, "ru"), user_in(Role.EDITOR, "fr")
    sign_in(client, russian)
    record = page_text(client, "/schedules/runs")
    assert "Журнал планировщика" in record
    assert "срок 2030-06-26 09:00 Europe/Paris, опоздание на 3 дня: не отправлено" in record
    assert_no_codes(record, "skipped", "send_at")
    reason = page_text(client, f"/campaigns/{draft.id}/schedule/")
    assert "запланированный запуск пропущен: срок 2030-06-26" in reason
    client.post("/logout")

    sign_in(client, french)
    record = page_text(client, "/schedules/runs")
    assert "Registre du planificateur" in record
    assert f"prévu le 2030-06-26 09:00 Europe/Paris, 3 jours de retard{NBSP}: non envoyé" in record
    calendar_page = page_text(client, "/calendar/")
    assert "1 exécution programmée a été sautée ou a échoué depuis le" in calendar_page


def test_calendar_and_cases_in_french(client: FlaskClient, app: Flask) -> None:
    sign_in(client, user_in(Role.EDITOR, "fr"))
    month = page_text(client, "/calendar/?month=2030-06")
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
    added = page_text(client, "/calendar/events", method="POST", data=form)
    assert "Événement Sommet UE–Asie centrale ajouté au calendrier." in added
    assert "Sommet UE–Asie centrale (10–11 juin, Samarcande)" in added
    assert f"Rappel{NBSP}: Sommet UE–Asie centrale, 7 jours avant" in added
    assert_no_codes(added, "summit")

    bad = page_text(client, "/calendar/events", method="POST", data={**form, "kind": "x"})
    assert f"Type{NBSP}: «{NBSP}x{NBSP}» ne fait pas partie de" in bad

    case = page_text(
        client,
        "/cases/new",
        method="POST",
        data={"name": "Ana Example", "status": "detained", "country": "UZ"},
    )
    assert "Dossier Ana Example ajouté." in case and "Détenu" in case
    assert_no_codes(case, "detained")


def test_a_reminder_is_mailed_to_each_member_of_staff_in_their_language(app: Flask) -> None:
    user_in(Role.EDITOR, "ru", "ru.editor@example.org")
    user_in(Role.ADMIN, "fr", "fr.admin@example.org")
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

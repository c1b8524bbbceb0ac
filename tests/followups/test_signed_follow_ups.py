"""Follow-ups as their readers see them: signed like the first letter, and in its thread.

Letters go through a real SMTP server; what is asserted is what a mail client shows: the
Subject ("Re: " + the subject of the first letter that person got, in their language) and
the signatures under the text.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import Campaign, CampaignStep, Contact, Delivery, FollowUpCondition
from campaign.models.schedule import SignatoriesFrom
from campaign.services.sending import batches as sending
from campaign.services.sending import followups
from campaign.services.sending.followups import FollowUpError
from campaign.services.statements import statements
from tests.factories import CampaignFactory
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_statement_files import FROM, READERS

FIRST_BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n"
FIRST_BODY_FR = "{{ salutation }}\n\nLibérez les défenseurs.\n\n{{ closing }}\n"
REMINDER_BODY = "{{ salutation }}\n\nWe wrote to you last month.\n\n{{ closing }}\n"
REMINDER_BODY_FR = "{{ salutation }}\n\nNous vous avons écrit.\n\n{{ closing }}\n"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall is tested here; a loaded CI machine can take > 1 s
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _send_all(campaign_id: int) -> None:
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id)
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    while sending.send_batch(campaign_id, worker="test", commit=db.session.commit).claimed:
        pass


def _first_statement(subject_en: str, subject_fr: str) -> Any:
    statement = statements.create_statement(
        "Joint letter", language="en", subject=subject_en, body=FIRST_BODY
    )
    statements.set_text(statement, language="fr", subject=subject_fr, body=FIRST_BODY_FR)
    statements.add_signatory(statement, {"name": "Rights Watch Europe", "kind": "organisation"})
    return statement


def _reminder(body: str = REMINDER_BODY, body_fr: str = REMINDER_BODY_FR) -> Any:
    statement = statements.create_statement(
        "Reminder", language="en", subject="Reminder subject nobody should see", body=body
    )
    statements.set_text(statement, language="fr", subject="Rappel", body=body_fr)
    statements.add_signatory(statement, {"name": "Reminder Only Network", "kind": "organisation"})
    return statement


def _launched(statement: Any) -> Campaign:
    """Sent to an English and a French reader (Anna and Bernard)."""
    campaign = CampaignFactory(
        statement=statement, recipients=READERS, from_address=FROM, launched=True, commit=True
    )
    _send_all(campaign.id)
    return campaign


def _follow_up(campaign: Campaign, step: CampaignStep) -> dict[str, EmailMessage]:
    """Fire the step when due, send it, and return what each recipient received."""
    schedule = followups.schedule_of(step)
    assert schedule is not None and schedule.next_run_at is not None
    due = schedule.next_run_at
    followups.fire_follow_up(schedule, due, due)
    db.session.commit()
    _send_all(campaign.id)
    return _received(campaign, step.position)


def _received(campaign: Campaign, position: int) -> dict[str, EmailMessage]:
    server: FaultSmtpServer = _received.server  # type: ignore[attr-defined]
    db.session.expire_all()
    rows = db.session.scalars(
        select(Delivery).where(Delivery.campaign_id == campaign.id, Delivery.step == position)
    ).all()
    found = {}
    for row in rows:
        assert row.status == "sent", row.last_reply
        raw = server.by_message_id()[row.message_id][-1].raw
        message = message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        found[row.email.partition("@")[0]] = message
    return found


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


@pytest.fixture(autouse=True)
def _server(fault_smtp: FaultSmtpServer) -> None:
    _received.server = fault_smtp  # type: ignore[attr-defined]


def test_a_follow_up_is_signed_like_the_first_letter_and_answers_its_subject(app: Flask) -> None:
    first_statement = _first_statement("Release the defenders", "Libérez les défenseurs")
    campaign = _launched(first_statement)
    first = _received(campaign, 0)
    assert "Rights Watch Europe" in _text(first["anna"])
    # After the launch the statement's signatories change: the letter sent had the old list.
    statements.add_signatory(first_statement, {"name": "Signed Too Late", "kind": "organisation"})
    step = followups.add_step(campaign, _reminder(), 7, FollowUpCondition.NO_REPLY)
    db.session.commit()

    received = _follow_up(campaign, step)
    assert received["anna"]["Subject"] == "Re: Release the defenders"
    assert received["bernard"]["Subject"] == "Re: Libérez les défenseurs"
    for name in ("anna", "bernard"):
        text, html = _text(received[name]), _html(received[name])
        assert "Rights Watch Europe" in text and "Rights Watch Europe" in html
        assert "Signed Too Late" not in text
        assert "Reminder Only Network" not in text
        assert received[name]["In-Reply-To"] == first[name]["Message-ID"]
    assert "Nous vous avons écrit" in _text(received["bernard"])


def test_the_subject_is_the_one_that_person_received_never_re_re(app: Flask) -> None:
    campaign = _launched(_first_statement("Re: the case of {{ contact.family_name }}", "Le cas"))
    first = _received(campaign, 0)
    assert first["anna"]["Subject"] == "Re: the case of Anna"
    # The contact's name changed since: the follow-up answers the subject she got.
    db.session.execute(
        update(Contact).where(Contact.email == "anna@example.net").values(family_name="Other")
    )
    db.session.commit()
    step = followups.add_step(campaign, _reminder(), 7, FollowUpCondition.NO_REPLY)
    db.session.commit()
    received = _follow_up(campaign, step)
    assert received["anna"]["Subject"] == "Re: the case of Anna"
    assert received["bernard"]["Subject"] == "Re: Le cas"


def test_a_step_subject_and_signatories_from_the_follow_up_statement(app: Flask) -> None:
    campaign = _launched(_first_statement("Release the defenders", "Libérez les défenseurs"))
    reminder = _reminder(
        body="{{ salutation }}\n\nA reminder.\n\n{{ closing }}\n\n{{ signatories }}\n"
    )
    step = followups.add_step(
        campaign,
        reminder,
        7,
        FollowUpCondition.NO_REPLY,
        subject="Second request: {{ statement.title }} for {{ contact.family_name }}",
        signatories_from=SignatoriesFrom.STEP_STATEMENT,
    )
    db.session.commit()
    received = _follow_up(campaign, step)
    assert received["anna"]["Subject"] == "Second request: Reminder for Anna"
    assert received["bernard"]["Subject"] == "Second request: Reminder for Bernard"
    text = _text(received["anna"])
    assert "Reminder Only Network" in text
    assert "Rights Watch Europe" not in text


def test_a_step_without_signatories(app: Flask) -> None:
    campaign = _launched(_first_statement("Release the defenders", "Libérez les défenseurs"))
    step = followups.add_step(
        campaign,
        _reminder(),
        7,
        FollowUpCondition.NO_REPLY,
        subject="Re: Re: Release the defenders",
        signatories_from="none",
    )
    db.session.commit()
    assert step.subject == "Re: Release the defenders"
    received = _follow_up(campaign, step)
    text = _text(received["anna"])
    assert "Rights Watch Europe" not in text and "Reminder Only Network" not in text
    assert received["anna"]["Subject"] == "Re: Release the defenders"


def test_bad_step_subjects_and_signatory_choices_are_refused_by_field(app: Flask) -> None:
    campaign = _launched(_first_statement("Release the defenders", "Libérez les défenseurs"))
    reminder = _reminder()
    db.session.commit()
    bad = (
        ({"subject": "Line one\nLine two"}, "subject", "one line"),
        ({"subject": "x" * 999}, "subject", "998"),
        ({"subject": "Re: {{ contact.family_name "}, "subject", "Subject"),
        ({"subject": "{{ contact.notes_secret() }}"}, "subject", "Subject"),
        ({"signatories_from": "everyone"}, "signatories_from", "everyone"),
    )
    for options, field, words in bad:
        with pytest.raises(FollowUpError, match=words) as error:
            followups.add_step(campaign, reminder, 7, FollowUpCondition.NO_REPLY, **options)
        assert error.value.field == field
        db.session.rollback()
    assert followups.steps_of(campaign) == []


def test_the_command_line_sets_and_changes_the_subject_and_signatures(app: Flask) -> None:
    campaign = _launched(_first_statement("Release the defenders", "Libérez les défenseurs"))
    reminder = _reminder()
    db.session.commit()
    runner = app.test_cli_runner()
    added = runner.invoke(
        args=[
            "add-step",
            str(campaign.id),
            "--statement",
            str(reminder.id),
            "--days",
            "7",
            "--subject",
            "Re: Re: Our letter",
            "--signatories",
            "none",
        ]
    )
    assert added.exit_code == 0, added.output
    step = followups.steps_of(campaign)[0]
    assert (step.subject, step.signatories_from) == ("Re: Our letter", "none")
    edited = runner.invoke(
        args=["edit-step", str(campaign.id), "1", "--subject", "", "--signatories", "first_letter"]
    )
    assert edited.exit_code == 0, edited.output
    db.session.expire_all()
    step = followups.steps_of(campaign)[0]
    assert (step.subject, step.signatories_from) == ("", "first_letter")
    refused = runner.invoke(args=["edit-step", str(campaign.id), "1", "--subject", "Line\nbreak"])
    assert refused.exit_code != 0 and "one line" in refused.output

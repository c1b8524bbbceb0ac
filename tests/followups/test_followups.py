"""Follow-up steps end to end: launch and send through a real SMTP server, answer through the
real inbound path, fire the step, send it and read what the recipients' mail clients see.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from email.utils import format_datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    FollowUpCondition,
)
from campaign.services.replies.intake import record_inbound
from campaign.services.sending import batches as sending
from campaign.services.sending import followups
from campaign.services.sending.followups import FollowUpError
from campaign.services.statements import statements
from tests.factories import CampaignFactory, StatementFactory
from tests.fault_smtp import FaultSmtpServer

BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n"
PEOPLE = ("replier", "holiday", "bouncer", "silent")


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
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


def _letters(campaign_id: int, step: int) -> dict[str, Delivery]:
    db.session.expire_all()
    return {
        row.email.partition("@")[0]: row
        for row in db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.step == step)
        )
    }


def _sent_campaign(domain: str = "example.net", **options: Any) -> Campaign:
    campaign = CampaignFactory(
        statement=StatementFactory(title="Joint letter", subject="Joint letter", body=BODY),
        recipients=[{"email": f"{n}@{domain}", "family_name": n.title()} for n in PEOPLE],
        from_address="Human Rights Office <office@example.org>",
        launched=True,
        commit=True,
        **options,
    )
    _send_all(campaign.id)
    return campaign


def _answer(letter: Delivery, *, auto: bool = False) -> None:
    """Mail from the recipient answering `letter`, through the inbound path staff use."""
    auto_header = "Auto-Submitted: auto-replied\r\n" if auto else ""
    raw = (
        f"From: {letter.email}\r\nTo: office@example.org\r\n"
        f"Subject: {'Automatic reply' if auto else 'Re'}: Joint letter\r\n"
        f"Date: {format_datetime(datetime.now(UTC) + timedelta(minutes=1))}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.net>\r\n"
        f"In-Reply-To: {letter.message_id}\r\nReferences: {letter.message_id}\r\n"
        f"{auto_header}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + ("I am out of the office until Monday.\r\n" if auto else "We will raise it.\r\n")
    ).encode()
    record_inbound(raw)
    db.session.commit()


def _fire(step: Any) -> str:
    schedule = followups.schedule_of(step)
    assert schedule is not None and schedule.next_run_at is not None
    # Fired when due: N days after the launch, when the letters (sent then) are N days old.
    due = schedule.next_run_at
    detail, _ = followups.fire_follow_up(schedule, due, due)
    db.session.commit()
    return detail


def test_a_follow_up_skips_repliers_keeps_auto_repliers_and_threads_under_the_letter(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign = _sent_campaign()
    first = _letters(campaign.id, 0)
    assert all(row.status == DeliveryStatus.SENT for row in first.values())
    _answer(first["replier"])
    _answer(first["holiday"], auto=True)
    # The server refused this address for good (status bounced, its sent_at kept).
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == first["bouncer"].id)
        .values(status=DeliveryStatus.BOUNCED.value)
    )
    db.session.commit()

    step = followups.add_step(
        campaign,
        StatementFactory(
            title="Follow-up: joint letter", subject="Follow-up: joint letter", body=BODY
        ),
        14,
        FollowUpCondition.NO_REPLY_NO_BOUNCE,
    )
    db.session.commit()
    schedule = followups.schedule_of(step)
    assert schedule is not None and campaign.launched_at is not None
    assert schedule.next_run_at == campaign.launched_at + timedelta(days=14)
    summary = followups.step_summary(step)
    assert summary.startswith(f"On {schedule.next_run_at.day} {schedule.next_run_at:%B}, 2 ")
    assert "‘Follow-up: joint letter’" in summary

    assert _fire(step) == "follow-up 1: 2 letters queued"
    assert sorted(_letters(campaign.id, 1)) == ["holiday", "silent"]
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.SENDING  # type: ignore[union-attr]

    _send_all(campaign.id)
    second = _letters(campaign.id, 1)
    assert {row.status for row in second.values()} == {DeliveryStatus.SENT.value}
    for name in ("holiday", "silent"):
        received = fault_smtp.by_message_id()[second[name].message_id]
        message = message_from_bytes(received[0].raw, policy=default_policy)
        # The first letter's subject, so that mail clients keep one conversation.
        assert message["Subject"] == "Re: Joint letter"
        assert message["In-Reply-To"] == first[name].message_id
        assert message["References"] == first[name].message_id


def test_a_second_step_references_both_letters_and_stops_for_a_reply_to_the_first_follow_up(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign = _sent_campaign()
    step1 = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        7,
        FollowUpCondition.NO_REPLY,
    )
    step2 = followups.add_step(
        campaign,
        StatementFactory(title="Last call", subject="Last call", body=BODY),
        7,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    # The second step's date is unknown until the first has gone out.
    assert followups.schedule_of(step2).next_run_at is None  # type: ignore[union-attr]
    assert "7 days after follow-up 1 goes out" in followups.step_summary(step2)
    _fire(step1)
    _send_all(campaign.id)
    assert followups.schedule_of(step2).next_run_at is not None  # type: ignore[union-attr]
    first, reminder = _letters(campaign.id, 0), _letters(campaign.id, 1)
    _answer(reminder["replier"])  # answering the follow-up stops the next one

    assert _fire(step2) == "follow-up 2: 3 letters queued"
    _send_all(campaign.id)
    last = _letters(campaign.id, 2)
    assert "replier" not in last
    received = fault_smtp.by_message_id()[last["silent"].message_id][0]
    message = message_from_bytes(received.raw, policy=default_policy)
    assert message["In-Reply-To"] == first["silent"].message_id
    assert message["References"].split() == [
        first["silent"].message_id,
        reminder["silent"].message_id,
    ]


def test_firing_twice_adds_nobody_twice(app: Flask) -> None:
    campaign = _sent_campaign()
    step = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        3,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    schedule = followups.schedule_of(step)
    assert schedule is not None and schedule.next_run_at is not None
    due = schedule.next_run_at
    followups.fire_follow_up(schedule, due, due)
    again, _ = followups.fire_follow_up(schedule, due, due)
    db.session.commit()
    assert again == "follow-up 1: 0 letters queued"
    assert len(_letters(campaign.id, 1)) == len(PEOPLE)


def test_suppressed_people_get_no_follow_up(app: Flask) -> None:
    from campaign.models import SuppressionReason
    from campaign.services.contacts.suppressions import suppress_address

    campaign = _sent_campaign()
    suppress_address("silent@example.net", SuppressionReason.UNSUBSCRIBED)
    step = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        3,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    assert _fire(step) == "follow-up 1: 3 letters queued"
    # Everyone else, who has not replied either, gets the follow-up: only "silent" is left out.
    assert sorted(_letters(campaign.id, 1)) == ["bouncer", "holiday", "replier"]


def test_bad_steps_say_what_is_wrong(app: Flask) -> None:
    campaign = _sent_campaign()
    statement = StatementFactory(title="Reminder", subject="Reminder", body=BODY)
    for days in (0, -3):
        with pytest.raises(FollowUpError, match="at least 1 day") as error:
            followups.add_step(campaign, statement, days, FollowUpCondition.NO_REPLY)
        assert error.value.field == "delay_days"
    with pytest.raises(FollowUpError, match="needs open tracking"):
        followups.add_step(campaign, statement, 5, FollowUpCondition.OPENED_NO_REPLY)
    doomed = StatementFactory(title="Doomed", subject="Doomed", body=BODY)
    statements.delete_statement(doomed)
    db.session.commit()
    with pytest.raises(FollowUpError, match="may have been deleted"):
        followups.add_step(campaign, doomed, 5, FollowUpCondition.NO_REPLY)

    # A statement deleted after the step was added: the fire fails and says so.
    step = followups.add_step(campaign, statement, 5, FollowUpCondition.NO_REPLY)
    db.session.commit()
    statements.delete_statement(statement)
    db.session.commit()
    assert "a statement that has been deleted" in followups.step_summary(step)
    with pytest.raises(FollowUpError, match="its statement was deleted"):
        _fire(step)


def test_the_tick_fires_a_step_when_it_is_due_and_records_a_deleted_statement_as_failed(
    app: Flask,
) -> None:
    from campaign.models import RunOutcome
    from campaign.scheduling.tick import tick

    campaign = _sent_campaign()
    statement = StatementFactory(title="Reminder", subject="Reminder", body=BODY)
    step = followups.add_step(campaign, statement, 14, FollowUpCondition.NO_REPLY)
    other = _sent_campaign("example.com")
    doomed = StatementFactory(title="Doomed", subject="Doomed", body=BODY)
    broken = followups.add_step(other, doomed, 14, FollowUpCondition.NO_REPLY)
    db.session.commit()
    statements.delete_statement(doomed)
    db.session.commit()
    due = followups.schedule_of(step).next_run_at  # type: ignore[union-attr]
    assert due is not None

    assert tick(due - timedelta(minutes=1)).lines == []
    assert _letters(campaign.id, 1) == {}
    lines = {line.schedule_id: line for line in tick(due + timedelta(minutes=1)).lines}
    fired = lines[followups.schedule_of(step).id]  # type: ignore[union-attr]
    assert (fired.outcome, fired.detail) == (
        RunOutcome.FIRED.value,
        "follow-up 1: 4 letters queued",
    )
    assert len(_letters(campaign.id, 1)) == len(PEOPLE)
    failed = lines[followups.schedule_of(broken).id]  # type: ignore[union-attr]
    assert failed.outcome == RunOutcome.FAILED.value
    assert "its statement was deleted" in failed.detail
    assert tick(due + timedelta(minutes=2)).lines == []  # nothing fires twice


def test_a_reply_that_arrives_while_the_follow_up_waits_stops_it(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign = _sent_campaign()
    step = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        7,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    _fire(step)  # four follow-ups written to the ledger; a daily limit could hold them a day
    first = _letters(campaign.id, 0)
    _answer(first["replier"])  # the answer comes in before the worker reaches the follow-up
    _answer(first["holiday"], auto=True)  # an out-of-office does not count as an answer

    _send_all(campaign.id)
    follow_ups = _letters(campaign.id, 1)
    assert follow_ups["replier"].status == DeliveryStatus.CANCELLED
    assert follow_ups["replier"].reason == "replied"
    assert follow_ups["holiday"].status == DeliveryStatus.SENT
    received = fault_smtp.by_message_id()
    assert follow_ups["replier"].message_id not in received
    assert follow_ups["holiday"].message_id in received

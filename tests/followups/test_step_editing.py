"""Changing follow-up steps after they were added: edit, delete, and re-arm one whose fire was
skipped or failed, driven through `campaign tick --now` as an operator would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStep,
    Delivery,
    DeliveryStatus,
    FollowUpCondition,
    Schedule,
    ScheduleKind,
    Statement,
)
from campaign.services.sending import followups
from campaign.services.sending.followups import FollowUpError
from campaign.services.statements import statements
from tests.factories import CampaignFactory, ContactListFactory, StatementFactory

BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n"
PEOPLE = ("ana", "ben", "chloe")


def _sent_campaign(days_ago: int) -> Campaign:
    """A campaign launched `days_ago` days ago whose letters all went out then."""
    launched = datetime.now(UTC) - timedelta(days=days_ago)
    campaign = CampaignFactory(
        statement=StatementFactory(title="Joint letter", subject="Joint letter", body=BODY),
        name="Defenders",
        contact_list=ContactListFactory(
            name="Ministries",
            contacts=[{"email": f"{n}@example.net", "family_name": n.title()} for n in PEOPLE],
        ),
        from_address="Office <office@example.org>",
        launched=launched,
    )
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id)
        .values(status=DeliveryStatus.SENT.value, sent_at=launched)
    )
    db.session.commit()
    return campaign


def _letters(campaign: Campaign, step: int) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.campaign_id == campaign.id, Delivery.step == step)
        )
        or 0
    )


def _tick(app: Flask, now: datetime) -> list[str]:
    result = app.test_cli_runner().invoke(args=["tick", "--now", now.isoformat()])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result.output.splitlines()


def _due(step: CampaignStep) -> datetime | None:
    schedule = followups.schedule_of(step)
    assert schedule is not None
    return schedule.next_run_at


def test_editing_days_and_condition_changes_the_summary_and_the_next_run(app: Flask) -> None:
    campaign = _sent_campaign(days_ago=2)
    first = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        14,
        FollowUpCondition.NO_REPLY,
    )
    second = followups.add_step(
        campaign,
        StatementFactory(title="Last call", subject="Last call", body=BODY),
        7,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    assert campaign.launched_at is not None
    assert _due(first) == campaign.launched_at + timedelta(days=14)

    other = StatementFactory(title="Second reminder", subject="Second reminder", body=BODY)
    followups.update_step(first, other, 10, FollowUpCondition.NO_REPLY_NO_BOUNCE)
    db.session.commit()
    due = campaign.launched_at + timedelta(days=10)
    assert _due(first) == due
    assert followups.step_summary(first) == (
        f"On {due.day} {due:%B}, 3 recipients who have not replied and whose letter did not "
        "bounce will receive ‘Second reminder’"
    )
    # The next step still waits for this one; its own edit shows in words.
    followups.update_step(second, db.session.get(Statement, second.statement_id), 5, "no_reply")
    db.session.commit()
    assert _due(second) is None
    assert followups.step_summary(second).startswith("5 days after follow-up 1 goes out")
    edits = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.step_edit").order_by(AuditEvent.id)
    ).all()
    assert [event.detail["delay_days"] for event in edits] == [10, 5]


def test_bad_edits_are_refused_with_the_field_and_change_nothing(app: Flask) -> None:
    campaign = _sent_campaign(days_ago=2)
    statement = StatementFactory(title="Reminder", subject="Reminder", body=BODY)
    step = followups.add_step(campaign, statement, 14, FollowUpCondition.NO_REPLY)
    doomed = StatementFactory(title="Doomed", subject="Doomed", body=BODY)
    db.session.commit()
    statements.delete_statement(doomed)
    db.session.commit()
    for args, field, words in (
        ((statement, 0, "no_reply"), "delay_days", "at least 1 day"),
        ((doomed, 5, "no_reply"), "statement", "may have been deleted"),
        ((statement, 5, "opened_no_reply"), "condition", "needs open tracking"),
    ):
        with pytest.raises(FollowUpError, match=words) as error:
            followups.update_step(step, *args)
        assert error.value.field == field
        db.session.rollback()
    db.session.refresh(step)
    assert (step.delay_days, step.condition) == (14, "no_reply")


def test_a_step_that_has_gone_out_cannot_be_edited_or_deleted(app: Flask) -> None:
    campaign = _sent_campaign(days_ago=20)
    statement = StatementFactory(title="Reminder", subject="Reminder", body=BODY)
    step = followups.add_step(campaign, statement, 14, FollowUpCondition.NO_REPLY)
    db.session.commit()
    due = _due(step)
    assert due is not None
    # Due six days ago, beyond the grace period: move the clock to the due time instead.
    assert _tick(app, due + timedelta(minutes=1))[-1] == "1 fired, 0 skipped"
    assert _letters(campaign, 1) == 3

    with pytest.raises(FollowUpError, match=r"already gone out \(3 letters"):
        followups.update_step(step, statement, 20, FollowUpCondition.NO_REPLY)
    db.session.rollback()
    with pytest.raises(FollowUpError, match="cannot be deleted"):
        followups.remove_step(step)
    db.session.rollback()
    assert db.session.get(CampaignStep, step.id) is not None
    assert db.session.get(CampaignStep, step.id).delay_days == 14  # type: ignore[union-attr]
    assert not followups.may_rearm(step)


def test_deleting_an_unfired_step_removes_its_schedule_and_moves_the_next_one_up(
    app: Flask,
) -> None:
    campaign = _sent_campaign(days_ago=2)
    first = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        14,
        FollowUpCondition.NO_REPLY,
    )
    second = followups.add_step(
        campaign,
        StatementFactory(title="Last call", subject="Last call", body=BODY),
        7,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    first_schedule = followups.schedule_of(first)
    assert first_schedule is not None
    first_schedule_id = first_schedule.id

    followups.remove_step(first)
    db.session.commit()
    assert db.session.get(Schedule, first_schedule_id) is None
    assert [step.id for step in followups.steps_of(campaign)] == [second.id]
    assert second.position == 1
    schedule = followups.schedule_of(second)
    assert schedule is not None and campaign.launched_at is not None
    assert schedule.name == "Defenders: follow-up 1"
    # Now the first follow-up, it is dated from the letter itself.
    assert schedule.next_run_at == campaign.launched_at + timedelta(days=7)
    assert followups.step_summary(second).endswith("will receive ‘Last call’")

    due = schedule.next_run_at
    assert _tick(app, due + timedelta(minutes=1))[-1] == "1 fired, 0 skipped"
    assert _letters(campaign, 1) == 3 and _letters(campaign, 2) == 0


def test_a_step_due_while_the_scheduler_was_down_goes_at_the_next_tick(app: Flask) -> None:
    campaign = _sent_campaign(days_ago=30)
    step = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        14,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    now = datetime.now(UTC)
    # Due 16 days ago: unlike a launch timed for a summit, a late follow-up still serves.
    lines = _tick(app, now)
    assert lines[0].startswith("fired\tfollow_up\tDefenders: follow-up 1")
    assert lines[-1] == "1 fired, 0 skipped"
    assert _letters(campaign, 1) == 3
    assert not followups.may_rearm(step)
    assert _tick(app, now + timedelta(minutes=1)) == ["0 fired, 0 skipped"]
    again = app.test_cli_runner().invoke(args=["rearm-step", str(campaign.id), "1"])
    assert again.exit_code == 2 and "already gone out" in again.output


def test_a_failed_step_is_fixed_by_editing_then_sent_with_re_arm(app: Flask) -> None:
    campaign = _sent_campaign(days_ago=2)
    doomed = StatementFactory(title="Doomed", subject="Doomed", body=BODY)
    step = followups.add_step(campaign, doomed, 1, FollowUpCondition.NO_REPLY)
    db.session.commit()
    statements.delete_statement(doomed)
    db.session.commit()
    due = _due(step)
    assert due is not None
    failed = _tick(app, due + timedelta(minutes=1))
    assert failed[0].startswith("failed") and "its statement was deleted" in failed[0]

    followups.update_step(
        step,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        1,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    # Same days, same due time: that fire is on record as failed, so it waits for a re-arm.
    assert _due(step) is None and followups.may_rearm(step)
    followups.rearm_step(step, now=due + timedelta(minutes=5))
    db.session.commit()
    with pytest.raises(FollowUpError, match="not stuck"):
        followups.rearm_step(step, now=due + timedelta(minutes=6))
    db.session.rollback()
    assert _tick(app, due + timedelta(minutes=6))[-1] == "1 fired, 0 skipped"
    assert _letters(campaign, 1) == 3


def test_cli_edit_step_and_remove_step(app: Flask) -> None:
    campaign = _sent_campaign(days_ago=2)
    step = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder", body=BODY),
        14,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    runner = app.test_cli_runner()
    edited = runner.invoke(args=["edit-step", str(campaign.id), "1", "--days", "10"])
    assert edited.exit_code == 0, edited.output
    assert edited.output.startswith("follow-up 1: On ")
    assert "recipients who have not replied will receive ‘Reminder’" in edited.output
    refused = runner.invoke(args=["edit-step", str(campaign.id), "1", "--days", "0"])
    assert refused.exit_code == 2 and "at least 1 day" in refused.output
    missing = runner.invoke(args=["remove-step", str(campaign.id), "4"])
    assert missing.exit_code == 2 and "has no follow-up 4" in missing.output

    removed = runner.invoke(args=["remove-step", str(campaign.id), "1"])
    assert removed.exit_code == 0, removed.output
    db.session.expire_all()
    assert db.session.get(CampaignStep, step.id) is None
    assert (
        db.session.scalars(
            select(Schedule).where(Schedule.kind == ScheduleKind.FOLLOW_UP.value)
        ).all()
        == []
    )

"""Retention (decision 0088): each kind loses exactly what is older than its period, the daily
system schedule records what it removed, 0 keeps forever, and the admin page sets periods."""

from __future__ import annotations

import json
import os
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    ContactImport,
    Delivery,
    DeliveryStatus,
    InboundMessage,
    InboundNote,
    InstallationSetting,
    ReplyAnswer,
    Role,
    Schedule,
    ScheduleRun,
    TrackingEvent,
)
from campaign.models.calendar import CaseStatus
from campaign.models.contact_import import ImportStatus
from campaign.models.inbound import InboundKind
from campaign.models.reply_answer import AnswerStatus
from campaign.models.schedule import RunOutcome, ScheduleKind
from campaign.scheduling.registry import ensure_system_schedules
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.services.privacy import retention
from campaign.services.schedules.cases import link_case
from tests.conftest import TEST_PASSWORD, make_user
from tests.factories import CampaignFactory, CaseFactory, DeliveryFactory, InboundMessageFactory
from tests.pages import csrf_token, element_text, text_of

# Pinned so the periods (730, 365 … days) fall the same way whatever day the suite runs.
NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)


def _days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def _audit(action: str, at: datetime, target_id: str = "") -> int:
    table = AuditEvent.__table__
    result = db.session.execute(
        insert(table)
        .values(action=action, at=at, target_type="x", target_id=target_id, detail={})
        .returning(table.c.id)
    )
    return int(result.scalar_one())


def _stored_at(days: int, **fields: Any) -> InboundMessage:
    message: InboundMessage = InboundMessageFactory(created_at=_days_ago(days), **fields)
    return message


def _tracking(delivery: Delivery, days: int, key: str) -> None:
    db.session.add(
        TrackingEvent(
            campaign_id=delivery.campaign_id,
            delivery_id=delivery.id,
            kind="open",
            occurred_at=_days_ago(days),
            hit_key=key,
            ip_prefix="192.0.2.0",
            user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        )
    )


def _import_with_rejects(app: Flask, name: str, finished_days: int) -> tuple[ContactImport, Path]:
    folder = Path(app.instance_path) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    rejects = folder / f"{name}-rejects.csv"
    rejects.write_text("line,column,reason\n2,email,not an address\n", encoding="utf-8")
    record = ContactImport(
        original_filename=f"{name}.csv",
        stored_path=str(folder / f"{name}.csv"),
        status=ImportStatus.FINISHED.value,
        rejects_path=str(rejects),
        rejected_count=1,
        finished_at=_days_ago(finished_days),
    )
    db.session.add(record)
    return record, rejects


def _old_file(path: Path, days: int) -> Path:
    path.write_text("left behind", encoding="utf-8")
    moment = _days_ago(days).timestamp()
    os.utime(path, (moment, moment))
    return path


def _retention_runs() -> list[ScheduleRun]:
    return list(
        db.session.scalars(
            select(ScheduleRun)
            .join(Schedule, Schedule.id == ScheduleRun.schedule_id)
            .where(Schedule.kind == ScheduleKind.RETENTION.value)
            .order_by(ScheduleRun.id)
        )
    )


def test_the_daily_run_removes_exactly_what_is_past_each_period_and_says_so(
    app: Flask, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    campaign = CampaignFactory(commit=True)
    old_letter = DeliveryFactory(
        campaign_id=campaign.id,
        status=DeliveryStatus.SENT.value,
        sent_at=_days_ago(800),
        message_sha256="a" * 64,
        message_blob=zlib.compress(b"Subject: old\r\n\r\nold letter"),
    )
    new_letter = DeliveryFactory(
        campaign_id=campaign.id,
        status=DeliveryStatus.SENT.value,
        sent_at=_days_ago(10),
        message_sha256="b" * 64,
        message_blob=zlib.compress(b"Subject: new\r\n\r\nnew letter"),
    )
    # A letter about a person still detained: the replies to it outlive the period.
    case_campaign = CampaignFactory(name="Free them", commit=True)
    link_case(case_campaign, CaseFactory(status=CaseStatus.DETAINED.value))
    case_letter = DeliveryFactory(campaign_id=case_campaign.id, status=DeliveryStatus.SENT.value)

    handled = {"handled_at": _days_ago(790)}
    gone = [
        _stored_at(800, **handled).id,
        _stored_at(800, kind=InboundKind.BOUNCE.value).id,  # bounces are never "handled"
    ]
    kept = [
        _stored_at(800).id,  # nobody has handled it yet
        _stored_at(800, delivery=case_letter, **handled).id,
        _stored_at(700, **handled).id,  # younger than 730 days
    ]
    _tracking(new_letter, 400, "old-hit")
    _tracking(new_letter, 300, "new-hit")
    old_entries = [
        _audit("contact.update", _days_ago(800)),
        _audit("contact.update", _days_ago(800)),
    ]
    acknowledged = _audit("schedule_runs.acknowledge", _days_ago(800))  # state: newest kept
    new_entry = _audit("contact.update", _days_ago(100))
    old_import, old_rejects = _import_with_rejects(app, "old", finished_days=8)
    _new_import, new_rejects = _import_with_rejects(app, "new", finished_days=2)
    stray = _old_file(Path(app.instance_path) / "uploads" / "stray.csv", days=10)
    db.session.commit()
    letters_before = _count(Delivery)

    # The worker's tick makes the system schedule; it fires at 03:30 Paris time.
    ensure_system_schedules(NOW, db.session.commit)
    schedule = db.session.scalars(
        select(Schedule).where(Schedule.kind == ScheduleKind.RETENTION.value)
    ).one()
    assert schedule.next_run_at == datetime(2027, 3, 2, 2, 30, tzinfo=UTC)
    assert tick(NOW).lines == []
    fixed_clock(schedule.next_run_at)
    report = tick(schedule.next_run_at)

    assert [line.outcome for line in report.lines] == [RunOutcome.FIRED.value]
    [run] = _retention_runs()
    assert read(run.detail) == (
        "Removed 2 received messages, "
        "the network address, browser and time of day of 1 tracking event, 2 audit entries, "
        "the stored copy of 1 sent message, 2 import files."
    )
    db.session.expire_all()
    remaining = set(db.session.scalars(select(InboundMessage.id)))
    assert remaining == set(kept) and not remaining & set(gone)
    # Tracking events stay (campaigns' figures hold), the old one without who and how.
    events = {event.hit_key: event for event in db.session.scalars(select(TrackingEvent))}
    assert set(events) == {"old-hit", "new-hit"}
    assert (events["old-hit"].ip_prefix, events["old-hit"].user_agent) == ("", "")
    assert events["old-hit"].occurred_at == datetime.combine(
        _days_ago(400).date(), datetime.min.time(), UTC
    )
    assert events["new-hit"].ip_prefix == "192.0.2.0"
    entries = set(db.session.scalars(select(AuditEvent.id)))
    assert acknowledged in entries and new_entry in entries
    assert not entries & set(old_entries)
    # The ledger keeps every row and the fingerprint; only the old copy went.
    assert _count(Delivery) == letters_before
    old_row = db.session.get(Delivery, old_letter.id)
    assert old_row is not None and old_row.message_blob is None
    assert old_row.message_sha256 == "a" * 64
    new_row = db.session.get(Delivery, new_letter.id)
    assert new_row is not None and new_row.message_blob is not None
    assert not old_rejects.exists() and not stray.exists() and new_rejects.exists()
    assert db.session.get(ContactImport, old_import.id).rejects_path == ""  # type: ignore[union-attr]
    # One audit entry says what went, in numbers.
    [record] = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == retention.AUDIT_ACTION)
    ).all()
    assert record.detail["removed"] == {
        "inbound": 2,
        "tracking": 1,
        "audit": 2,
        "evidence": 1,
        "import_files": 2,
    }
    # The next day: the schedule ran once, moved on, and finds nothing more.
    db.session.expire_all()
    moved = db.session.get(Schedule, schedule.id)
    assert moved is not None and moved.next_run_at == datetime(2027, 3, 3, 2, 30, tzinfo=UTC)
    fixed_clock(moved.next_run_at)
    tick(moved.next_run_at)
    assert read(_retention_runs()[-1].detail) == "Nothing was older than its retention period."


def test_zero_keeps_a_kind_forever_and_a_period_is_read_back(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    letter = DeliveryFactory(campaign_id=campaign.id, status=DeliveryStatus.SENT.value)
    _stored_at(5000, handled_at=_days_ago(5000))
    _tracking(letter, 5000, "ancient")
    retention.save_periods(
        {"inbound": "0", "tracking": "0", "audit": "0", "evidence": "0", "import_files": "0"},
        None,
    )
    db.session.commit()
    assert retention.retention_periods() == dict.fromkeys(retention.KINDS, 0)

    report = retention.apply_retention(NOW)
    assert report.total == 0
    assert _count(InboundMessage) == 1 and _count(TrackingEvent) == 1
    assert str(retention.report_text(report)) == "Nothing was older than its retention period."


def test_a_backlog_is_removed_in_batches_and_the_rest_left_for_the_next_run(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(retention, "MAX_PER_RUN", 4)
    campaign = CampaignFactory(commit=True)
    letter = DeliveryFactory(campaign_id=campaign.id, status=DeliveryStatus.SENT.value)
    for number in range(5):
        _tracking(letter, 400, f"hit-{number}")
    db.session.commit()

    first = retention.apply_retention(NOW)
    assert first.removed["tracking"] == 4 and first.unfinished == {"tracking"}
    assert str(retention.report_text(first)) == (
        "Removed the network address, browser and time of day of 4 tracking events. "
        "More is due for removal; the next daily run carries on."
    )
    second = retention.apply_retention(NOW)
    assert second.removed["tracking"] == 1 and not second.unfinished
    assert _count(TrackingEvent) == 5
    assert set(db.session.scalars(select(TrackingEvent.ip_prefix))) == {""}


# (field, what was typed, the words the admin reads)
BAD_PERIODS = [
    ("tracking", "", "Tracking events: enter a number of days (0 keeps it forever)."),
    ("inbound", "two years", "“two years” is not a whole number of days"),
    ("evidence", "-5", "“-5” is not a whole number of days"),
    ("evidence", "١٢", "is not a whole number of days"),  # Arabic-Indic digits
    ("audit", "30", "Audit log entries: 30 days is outside 90 to 3650"),
    ("inbound", "1", "1 days is outside 30 to 3650"),
    ("evidence", "29", "29 days is outside 30 to 3650"),
    ("import_files", "99999", "99999 days is outside 1 to 3650"),
]


def test_periods_are_checked_and_explained(app: Flask) -> None:
    # One app for the whole table: the check reads no database.
    for field, value, words in BAD_PERIODS:
        form = {kind: str(days) for kind, days in retention.DEFAULT_DAYS.items()}
        form[field] = value
        with pytest.raises(retention.RetentionError) as refused:
            retention.check_periods(form)
        assert list(refused.value.errors) == [field], value
        assert words in refused.value.errors[field], value


# --- the page ----------------------------------------------------------------------------------


def test_only_admins_reach_the_retention_page(app: Flask, client: FlaskClient, login: Any) -> None:
    login(Role.EDITOR)
    assert client.get("/privacy/retention/").status_code == 403
    assert client.post("/privacy/retention/", data={"audit": "90"}).status_code == 403
    assert db.session.get(InstallationSetting, retention.SETTING) is None


@pytest.mark.parametrize("csrf_enabled", [True])
def test_an_admin_sets_the_periods_and_reads_mistakes_in_words(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.ADMIN)
    client.post(
        "/login",
        data={
            "email": user.email,
            "password": TEST_PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    page = text_of(client.get("/privacy/retention/"))
    assert element_text(page, "retention-audit").startswith("Audit log entries")
    assert "730 days" in element_text(page, "retention-inbound")
    assert "Not run yet" in page

    # Without the form's token nothing is saved.
    refused = client.post("/privacy/retention/", data={"audit": "365"})
    assert refused.status_code == 400
    token = csrf_token(client, "/privacy/retention/")
    form = {"csrf_token": token, **{kind: "30" for kind in retention.KINDS}}
    wrong = client.post("/privacy/retention/", data=form)
    assert wrong.status_code == 422
    page = text_of(wrong)
    assert "Audit log entries: 30 days is outside 90 to 3650" in page
    assert db.session.get(InstallationSetting, retention.SETTING) is None

    form["audit"] = "365"
    saved = client.post("/privacy/retention/", data=form)
    assert saved.status_code == 302
    db.session.expire_all()
    assert retention.retention_periods() == {
        "inbound": 30,
        "tracking": 30,
        "audit": 365,
        "evidence": 30,
        "import_files": 30,
    }
    row = db.session.get(InstallationSetting, retention.SETTING)
    assert row is not None and json.loads(row.value)["audit"] == 365
    assert 'value="365"' in text_of(client.get("/privacy/retention/"))


def test_copies_a_pending_follow_up_needs_are_kept(app: Flask) -> None:
    from campaign.services.sending import followups
    from campaign.services.statements import statements
    from tests.factories import BODY

    campaign = CampaignFactory(commit=True)
    reminder = statements.create_statement("Reminder", language="en", subject="R", body=BODY)
    step = followups.add_step(campaign, reminder, 14, "no_reply")
    letter = DeliveryFactory(
        campaign_id=campaign.id,
        status=DeliveryStatus.SENT.value,
        sent_at=_days_ago(800),
        message_blob=zlib.compress(b"Subject: first\r\n\r\nfirst letter"),
    )
    schedule = followups.schedule_of(step)
    assert schedule is not None
    schedule.next_run_at = NOW + timedelta(days=3)
    db.session.commit()

    assert retention.apply_retention(NOW).removed["evidence"] == 0
    schedule.next_run_at = None  # the follow-up has gone out
    db.session.commit()
    assert retention.apply_retention(NOW).removed["evidence"] == 1
    db.session.refresh(letter)
    assert letter.message_blob is None


# --- review findings (decision 0088, "After review") -------------------------------------------


def _answer(message: InboundMessage, status: str, days: int, number: int) -> ReplyAnswer:
    answer = ReplyAnswer(
        inbound_id=message.id,
        to_address="official@example.gov",
        message_id=f"<answer-{number}@example.org>",
        status=status,
        created_at=_days_ago(days),
        sent_at=_days_ago(days) if status == AnswerStatus.SENT.value else None,
    )
    db.session.add(answer)
    return answer


def test_a_reply_is_as_old_as_the_newest_answer_or_note_written_to_it(app: Flask) -> None:
    handled = {"handled_at": _days_ago(790)}
    answered_yesterday = _stored_at(800, **handled)
    _answer(answered_yesterday, AnswerStatus.SENT.value, 1, 1)
    noted_yesterday = _stored_at(800, **handled)
    db.session.add(
        InboundNote(inbound_id=noted_yesterday.id, text="call back", created_at=_days_ago(1))
    )
    # An answer that may have gone out (the connection broke after DATA) is its own record.
    in_doubt = _stored_at(800, **handled)
    _answer(in_doubt, AnswerStatus.IN_DOUBT.value, 799, 2)
    all_old = _stored_at(800, **handled)
    _answer(all_old, AnswerStatus.SENT.value, 799, 3)
    db.session.add(InboundNote(inbound_id=all_old.id, text="old note", created_at=_days_ago(799)))
    db.session.commit()

    report = retention.apply_retention(NOW)

    assert report.removed["inbound"] == 1
    remaining = set(db.session.scalars(select(InboundMessage.id)))
    assert remaining == {answered_yesterday.id, noted_yesterday.id, in_doubt.id}
    assert _count(ReplyAnswer) == 2 and _count(InboundNote) == 1


def test_campaign_figures_stay_when_tracking_and_bounces_pass_their_period(app: Flask) -> None:
    from campaign.services.replies.dashboard import funnel
    from campaign.tracking.stats import tracking_counts

    campaign = CampaignFactory(commit=True)
    letters = [
        DeliveryFactory(
            campaign_id=campaign.id, status=DeliveryStatus.SENT.value, sent_at=_days_ago(800)
        )
        for _ in range(3)
    ]
    for number in range(3):
        _tracking(letters[0], 800, f"open-{number}")
    db.session.add_all(
        TrackingEvent(
            campaign_id=campaign.id,
            delivery_id=letters[1].id,
            kind="click",
            occurred_at=_days_ago(800),
            hit_key=f"click-{number}",
            ip_prefix="198.51.100.0",
            user_agent="Mozilla/5.0",
        )
        for number in range(2)
    )
    soft = _stored_at(800, delivery=letters[1], kind=InboundKind.BOUNCE.value, bounce_kind="soft")
    auto = _stored_at(800, delivery=letters[2], kind=InboundKind.AUTO_REPLY.value)
    db.session.commit()
    counts_before, funnel_before = tracking_counts(campaign.id), funnel(campaign.id)

    report = retention.apply_retention(NOW)
    db.session.expire_all()

    assert report.removed["tracking"] == 5 and report.removed["inbound"] == 2
    assert tracking_counts(campaign.id) == counts_before
    assert funnel(campaign.id) == funnel_before
    # What stays of a bounce or an auto-reply names nobody and says nothing.
    for stub in (db.session.get(InboundMessage, soft.id), db.session.get(InboundMessage, auto.id)):
        assert stub is not None
        assert (stub.from_address, stub.subject, stub.text, stub.raw_blob) == ("", "", "", None)
    assert db.session.get(InboundMessage, soft.id).bounce_kind == "soft"  # type: ignore[union-attr]
    # Stubs are not counted again the next night.
    assert retention.apply_retention(NOW).total == 0


def test_a_reply_marked_unhandled_while_the_run_reads_is_kept_and_not_counted(
    app: Flask,
) -> None:
    from sqlalchemy import event, update
    from sqlalchemy.sql import Delete

    first = _stored_at(800, handled_at=_days_ago(790)).id
    second = _stored_at(800, handled_at=_days_ago(790)).id
    db.session.commit()

    def reopened(state: Any) -> None:  # someone marks the second unhandled meanwhile
        if isinstance(state.statement, Delete) and not state.session.info.get("reopened"):
            state.session.info["reopened"] = True
            state.session.execute(
                update(InboundMessage).where(InboundMessage.id == second).values(handled_at=None)
            )

    event.listen(db.session, "do_orm_execute", reopened)
    try:
        report = retention.apply_retention(NOW)
    finally:
        event.remove(db.session, "do_orm_execute", reopened)

    assert report.removed["inbound"] == 1
    assert set(db.session.scalars(select(InboundMessage.id))) == {second}
    assert first != second


def test_one_kind_failing_leaves_the_others_applied_and_says_which(
    app: Flask, fixed_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_clock(NOW)
    _stored_at(800, handled_at=_days_ago(790))
    # A rejects file that cannot be removed (here: a name the system refuses), and one that can.
    stuck = ContactImport(
        original_filename="stuck.csv",
        stored_path="/nowhere/stuck.csv",
        status=ImportStatus.FINISHED.value,
        rejects_path="/tmp/" + "x" * 300,
        finished_at=_days_ago(30),
    )
    db.session.add(stuck)
    _old_import, old_rejects = _import_with_rejects(app, "old", finished_days=30)
    _audit("contact.update", _days_ago(800))
    db.session.commit()

    def broken(cutoff: datetime) -> tuple[int, bool]:
        from sqlalchemy.exc import OperationalError

        db.session.execute(insert(AuditEvent.__table__).values(action="half", at=NOW, detail={}))
        raise OperationalError("DELETE", {}, Exception("disk I/O error"))

    monkeypatch.setitem(retention._REMOVERS, "audit", broken)
    ensure_system_schedules(NOW, db.session.commit)
    schedule = retention.retention_schedule()
    assert schedule is not None and schedule.next_run_at is not None
    fixed_clock(schedule.next_run_at)
    report = tick(schedule.next_run_at)

    assert [line.outcome for line in report.lines] == [RunOutcome.FAILED.value]
    detail = read(_retention_runs()[-1].detail)
    assert detail.startswith("Removed 1 received message, 1 import file.")
    assert "Audit log entries could not be applied (OperationalError)" in detail
    db.session.expire_all()
    assert _count(InboundMessage) == 0 and not old_rejects.exists()
    # The failed kind's half-done writes were undone; the stuck file stays on its record.
    assert db.session.scalar(select(func.count()).where(AuditEvent.action == "half")) == 0
    assert db.session.get(ContactImport, stuck.id).rejects_path.endswith("x")  # type: ignore[union-attr]


def test_two_ticks_at_once_make_one_system_schedule(app: Flask) -> None:
    # Another tick has claimed the making and not committed its schedule yet: this one waits.
    db.session.add(InstallationSetting(name="system_schedule:retention", value=""))
    db.session.commit()
    assert retention.ensure_daily_schedule("retention", "Retention", "03:30", NOW) is None
    assert retention.retention_schedule() is None
    # Its schedule committed: found, not made again.
    made = Schedule(kind="retention", name="Retention", timezone="UTC", rule={"time": "03:30"})
    db.session.add(made)
    db.session.flush()
    db.session.get(InstallationSetting, "system_schedule:retention").value = str(made.id)  # type: ignore[union-attr]
    db.session.commit()
    assert retention.ensure_daily_schedule("retention", "Retention", "03:30", NOW) is made
    # Deleted since (by hand): made once more.
    db.session.delete(made)
    db.session.commit()
    assert _count(Schedule) == 0
    again = retention.ensure_daily_schedule("retention", "Retention", "03:30", NOW)
    assert again is not None and again.next_run_at is not None
    assert _count(Schedule) == 1


def test_the_daily_runs_follow_a_new_organisation_time_zone(app: Flask) -> None:
    ensure_system_schedules(NOW, db.session.commit)
    schedule = retention.retention_schedule()
    assert schedule is not None and schedule.next_run_at == datetime(2027, 3, 2, 2, 30, tzinfo=UTC)
    app.config["TIMEZONE"] = "Asia/Tbilisi"  # the office moved
    ensure_system_schedules(NOW, db.session.commit)
    db.session.expire_all()
    moved = retention.retention_schedule()
    assert moved is not None and moved.timezone == "Asia/Tbilisi"
    assert moved.next_run_at == datetime(2027, 3, 1, 23, 30, tzinfo=UTC)  # 03:30 in Tbilisi


def test_unsent_follow_up_letters_keep_the_copies_they_quote(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    letter = DeliveryFactory(
        campaign_id=campaign.id,
        status=DeliveryStatus.SENT.value,
        sent_at=_days_ago(800),
        message_blob=zlib.compress(b"Subject: first\r\n\r\nfirst letter"),
    )
    follow_up = DeliveryFactory(
        campaign_id=campaign.id,
        contact_id=letter.contact_id,
        step=1,
        status=DeliveryStatus.QUEUED.value,
    )
    db.session.commit()
    assert retention.apply_retention(NOW).removed["evidence"] == 0
    follow_up.status = DeliveryStatus.SENT.value
    db.session.commit()
    assert retention.apply_retention(NOW).removed["evidence"] == 1


def test_saving_unchanged_periods_records_nothing(app: Flask) -> None:
    form = {kind: str(days) for kind, days in retention.DEFAULT_DAYS.items()}
    retention.save_periods(form, None)
    db.session.commit()
    changed = select(func.count()).where(AuditEvent.action == retention.SETTINGS_AUDIT_ACTION)
    assert db.session.scalar(changed) == 0
    form["tracking"] = "100"
    retention.save_periods(form, None)
    assert db.session.scalar(changed) == 1

"""The sending engine end to end in-process: ledger claims, SMTP outcomes, pause, reconcile.

A real aiosmtpd server that injects faults (tests/fault_smtp.py), the real Redis, and the
`app` fixture's SQLite and PostgreSQL. What is checked is what staff and recipients see:
the ledger's statuses and reasons, and what arrived, how often, with which Message-ID.
"""

from __future__ import annotations

import threading
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from rq.serializers import JSONSerializer
from sqlalchemy import select, text, update

from campaign.extensions import db
from campaign.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    Suppression,
)
from campaign.queue import get_queue, get_redis
from campaign.scheduling.stored_text import read
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from tests.factories import CampaignFactory
from tests.fault_smtp import FaultSmtpServer

BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n"
PUBLIC_URL = "https://campaign.example.org"
# No test here waits for a timeout but the stall test, which sets its own 1 s: a loaded
# 3-worker run took longer than 1 s to answer (a row "deferred" with no fault injected).
MAIL_TIMEOUT = 10
STALL = 3.0  # seconds a stalling server waits: three times the stall test's 1 s MAIL_TIMEOUT


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return sending_overrides(app_overrides, fault_smtp)


def sending_overrides(base: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    """The app's settings for sending into `fault_smtp` (other send test modules use it too)."""
    return {
        **base,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": MAIL_TIMEOUT,
        "PUBLIC_URL": PUBLIC_URL,
        # The test's own queue and rate-limit keys in the shared test Redis.
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _launch(count: int = 3, *, body: str = BODY, **options: Any) -> tuple[Campaign, list[Delivery]]:
    campaign = CampaignFactory(
        statement__body=body,
        recipients=[f"person{n}@example.net" for n in range(count)],
        from_address="Human Rights Office <office@example.org>",
        launched=True,
        commit=True,
        **options,
    )
    return campaign, _rows(campaign.id)


def _rows(campaign_id: int) -> list[Delivery]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)
        )
    )


def _send(campaign_id: int) -> sending.BatchResult:
    return sending.send_batch(campaign_id, worker="test-worker", commit=db.session.commit)


def _make_due(campaign_id: int) -> None:
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id)
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()


def _status(campaign_id: int) -> Campaign:
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    return campaign


def _by_status(rows: list[Delivery]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


# --- the happy path --------------------------------------------------------------------------


def test_a_campaign_is_sent_by_the_job_with_its_ledger_and_evidence(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    from workers import jobs
    from workers.context import set_app

    set_app(app)
    campaign, rows = _launch(3)
    jobs.send_batch(campaign.id)

    rows = _rows(campaign.id)
    assert _by_status(rows) == {"sent": 3}
    assert _status(campaign.id).status == CampaignStatus.FINISHED
    received = fault_smtp.by_message_id()
    for row in rows:
        (message,) = received[row.message_id]
        assert message.rcpt_tos == (row.email,)
        assert message.mail_from == "office@example.org"
        # The evidence is exactly what the server received.
        assert row.message_blob is not None
        assert zlib.decompress(row.message_blob) == message.raw
        parsed = message_from_bytes(message.raw, policy=default_policy)
        assert parsed["List-Unsubscribe"] == f"<{PUBLIC_URL}/u/{row.unsubscribe_token}>"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["To"].addresses[0].addr_spec == row.email
        assert row.attempts == 1 and row.sent_at is not None and row.last_code == 250
        assert row.language == "en"
    assert fault_smtp.sessions == 1, "one batch, one SMTP connection"


def test_without_list_unsubscribe_no_such_header_is_sent(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = _launch(1, has_list_unsubscribe=False, reply_to="desk@example.org")
    _send(campaign.id)
    (message,) = fault_smtp.messages
    parsed = message_from_bytes(message.raw, policy=default_policy)
    assert "List-Unsubscribe" not in parsed and "List-Unsubscribe-Post" not in parsed
    assert parsed["Reply-To"] == "desk@example.org"


def test_an_address_suppressed_after_the_launch_is_not_written_to(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(2)
    db.session.add(Suppression(email_key=rows[0].email, email=rows[0].email, reason="unsubscribed"))
    db.session.commit()
    _send(campaign.id)
    assert [r.status for r in _rows(campaign.id)] == ["suppressed", "sent"]
    assert [m.rcpt_tos for m in fault_smtp.messages] == [(rows[1].email,)]


def test_a_letter_that_cannot_be_built_fails_with_the_reason_in_words(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(1)
    # Edited after the launch: a copy address no message can carry.
    db.session.execute(
        update(Contact).where(Contact.id == rows[0].contact_id).values(cc_emails="not-an-address")
    )
    db.session.commit()
    _send(campaign.id)
    (row,) = _rows(campaign.id)
    assert (row.status, row.reason) == ("failed", "letter_error")
    assert "not-an-address" in row.last_reply
    assert fault_smtp.messages == []
    assert _status(campaign.id).status == CampaignStatus.FINISHED


# --- F4, F5: temporary refusals are retried, one copy in the end --------------------------------


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [
        (421, "4.3.2 Service shutting down", "mail"),
        (451, "4.3.0 Local error, try again", "rcpt"),
        (452, "4.5.3 Too many recipients", "rcpt"),
        (552, "5.2.2 Mailbox full", "rcpt"),
    ],
)
def test_a_temporary_refusal_is_deferred_then_sent_once(
    app: Flask, fault_smtp: FaultSmtpServer, code: int, text: str, stage: str
) -> None:
    campaign, rows = _launch(2)
    fault_smtp.fail(code, text, stage=stage, match=rows[0].email if stage == "rcpt" else None)
    first = _send(campaign.id)
    assert (first.deferred, first.sent) == (1, 1)
    deferred = _rows(campaign.id)[0]
    assert deferred.status == "deferred" and deferred.last_code == code
    assert deferred.next_attempt_at is not None
    assert deferred.next_attempt_at > datetime.now(UTC) + timedelta(seconds=30)
    assert _status(campaign.id).status == CampaignStatus.SENDING, "a deferred row keeps it going"
    assert _send(campaign.id).claimed == 0, "not before its time"

    _make_due(campaign.id)
    _send(campaign.id)
    row = _rows(campaign.id)[0]
    assert row.status == "sent" and row.attempts == 2
    assert len(fault_smtp.by_message_id()[row.message_id]) == 1
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_a_row_past_its_give_up_time_fails_as_expired(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = _launch(1)
    campaign.launched_at = datetime.now(UTC) - timedelta(hours=campaign.give_up_hours + 1)
    db.session.commit()
    fault_smtp.fail(451, "4.7.1 Greylisted", stage="rcpt")
    _send(campaign.id)
    (row,) = _rows(campaign.id)
    assert (row.status, row.reason) == ("failed", "expired")
    assert "gave up" in row.last_reply and "451 4.7.1 Greylisted" in row.last_reply
    assert _status(campaign.id).status == CampaignStatus.FINISHED


# --- F6, F7: permanent refusals ----------------------------------------------------------------


def test_a_hard_bounce_is_recorded_once_suppressed_and_never_retried(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(2)
    fault_smtp.fail(550, "5.1.1 No such user here", stage="rcpt", match=rows[0].email)
    result = _send(campaign.id)
    assert (result.bounced, result.sent) == (1, 1)
    bounced = _rows(campaign.id)[0]
    assert (bounced.status, bounced.reason) == ("bounced", "hard_bounce")
    assert bounced.last_reply == "550 5.1.1 No such user here"
    entry = db.session.scalar(select(Suppression).where(Suppression.email_key == bounced.email))
    assert entry is not None and entry.reason == "hard_bounce" and entry.campaign_id == campaign.id
    _make_due(campaign.id)
    assert _send(campaign.id).claimed == 0
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_a_policy_refusal_fails_the_row_but_keeps_the_address(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(2)
    fault_smtp.fail(554, "5.7.1 Message refused by policy", stage="data", match=rows[0].email)
    _send(campaign.id)
    failed = _rows(campaign.id)[0]
    assert (failed.status, failed.reason, failed.last_code) == ("failed", "rejected", 554)
    assert db.session.scalar(select(Suppression.id)) is None


def test_a_sender_the_server_refuses_pauses_the_campaign_and_fails_nobody(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = _launch(3)
    fault_smtp.fail(550, "5.7.1 Sender address not allowed", stage="mail", times=None)
    result = _send(campaign.id)
    assert (result.sent, result.failed, result.released) == (0, 0, 3)
    paused = _status(campaign.id)
    assert paused.status == CampaignStatus.PAUSED
    assert "refused the sender (550 5.7.1 Sender address not allowed)" in paused.status_reason
    assert _by_status(_rows(campaign.id)) == {"queued": 3}
    assert db.session.scalar(select(Suppression.id)) is None


def test_a_wrong_password_pauses_the_campaign_and_fails_nobody(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    fault_smtp.require_auth("office", "right-password")
    app.config.update(MAIL_USERNAME="office", MAIL_PASSWORD="wrong-password")
    campaign, _ = _launch(3)
    result = _send(campaign.id)
    assert result.sent == 0 and result.released == 3
    paused = _status(campaign.id)
    assert paused.status == CampaignStatus.PAUSED
    assert "refused the login (535" in read(paused.status_reason)
    assert "check the account's user name and password" in read(paused.status_reason)
    assert "wrong-password" not in paused.status_reason
    rows = _rows(campaign.id)
    assert _by_status(rows) == {"queued": 3}
    assert all(r.attempts == 0 and r.claimed_by == "" for r in rows)
    assert fault_smtp.messages == []


def test_an_account_password_that_cannot_be_read_pauses_the_campaign(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    from campaign.models import SmtpAccount
    from campaign.services.sending import smtp_accounts

    account = smtp_accounts.create_account(
        smtp_accounts.AccountFields(
            name="Relay",
            host=fault_smtp.host,
            port=fault_smtp.port,
            security="none",
            username="office",
            password="the-password",
        )
    )
    db.session.commit()
    campaign, _ = _launch(2, smtp_account=account)
    # As after CAMPAIGN_SECRET_KEY was changed: the stored ciphertext no longer decrypts.
    stored = db.session.get(SmtpAccount, account.id)
    assert stored is not None
    stored.password_encrypted = stored.password_encrypted[:-8] + "AAAAAAA="
    db.session.commit()

    result = _send(campaign.id)
    assert result.sent == 0
    paused = _status(campaign.id)
    assert paused.status == CampaignStatus.PAUSED
    assert "password of the SMTP account 'Relay' cannot be read" in paused.status_reason
    assert _by_status(_rows(campaign.id)) == {"queued": 2}
    assert fault_smtp.messages == []


def test_errors_in_a_row_past_the_threshold_pause_the_campaign(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    app.config["SEND_ERROR_THRESHOLD"] = 3
    campaign, _ = _launch(5)
    fault_smtp.fail(451, "4.3.0 Disk full", stage="mail", times=None)
    result = _send(campaign.id)
    assert result.deferred == 3 and result.released == 2
    paused = _status(campaign.id)
    assert paused.status == CampaignStatus.PAUSED
    assert "3 messages in a row failed" in read(paused.status_reason)
    assert "451 4.3.0 Disk full" in read(paused.status_reason)
    assert _by_status(_rows(campaign.id)) == {"deferred": 3, "queued": 2}


def test_failures_in_a_row_add_up_across_small_batches(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    app.config.update(SEND_ERROR_THRESHOLD=3, SEND_BATCH_SIZE=2)
    campaign, _ = _launch(5)
    fault_smtp.fail(451, "4.3.0 Disk full", stage="mail", times=None)
    assert _send(campaign.id).deferred == 2
    assert _status(campaign.id).status == CampaignStatus.SENDING
    _send(campaign.id)
    assert _status(campaign.id).status == CampaignStatus.PAUSED
    assert _by_status(_rows(campaign.id)) == {"deferred": 3, "queued": 2}


# --- F8, F9: lost connections and stalls --------------------------------------------------------


def test_a_drop_before_data_is_retried_and_arrives_once(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(2)
    fault_smtp.drop(stage="before_data", match=rows[0].email)
    _send(campaign.id)
    assert [r.status for r in _rows(campaign.id)] == ["deferred", "sent"]
    _make_due(campaign.id)
    _send(campaign.id)
    row = _rows(campaign.id)[0]
    assert row.status == "sent" and row.possible_duplicates == 0
    assert len(fault_smtp.by_message_id()[row.message_id]) == 1


def test_a_drop_after_the_final_dot_is_in_doubt_and_resent_with_the_same_message_id(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(2)
    fault_smtp.drop(stage="after_dot", match=rows[0].email)
    _send(campaign.id)
    doubtful = _rows(campaign.id)[0]
    assert doubtful.status == "in_doubt" and doubtful.possible_duplicates == 1
    assert _status(campaign.id).status == CampaignStatus.SENDING
    _make_due(campaign.id)
    _send(campaign.id)
    row = _rows(campaign.id)[0]
    assert row.status == "sent" and row.possible_duplicates == 1
    copies = fault_smtp.by_message_id()[row.message_id]
    assert len(copies) == 2, "both copies carry the row's one Message-ID"
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_drops_after_the_final_dot_stop_being_retried_at_the_give_up_time(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    # A relay that always drops one recipient's message after the dot: each retry may
    # deliver another copy, so like any temporary failure it ends at the give-up time. The
    # row ends in doubt (possibly delivered), not failed: the last try may have arrived.
    campaign, rows = _launch(2)
    fault_smtp.drop(stage="after_dot", times=None, match=rows[0].email)
    campaign.launched_at = datetime.now(UTC) - timedelta(hours=campaign.give_up_hours + 1)
    db.session.commit()
    _send(campaign.id)
    row = _rows(campaign.id)[0]
    assert (row.status, row.reason) == ("in_doubt", "expired")
    assert row.possible_duplicates == 1 and row.next_attempt_at is None
    assert "gave up" in row.last_reply and "lost after the message was sent" in row.last_reply
    assert _status(campaign.id).status == CampaignStatus.FINISHED
    assert len(fault_smtp.by_message_id()[row.message_id]) == 1


def test_a_stalling_server_ends_the_attempt_and_the_row_can_be_retried(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = _launch(1)
    app.config["MAIL_TIMEOUT"] = 1
    fault_smtp.stall(STALL, stage="rcpt")
    _send(campaign.id)
    (row,) = _rows(campaign.id)
    assert row.status == "deferred" and "timed out" in row.last_reply
    _make_due(campaign.id)
    _send(campaign.id)
    assert _rows(campaign.id)[0].status == "sent"


# --- pause, resume, cancel ---------------------------------------------------------------------


def _change_status_after(
    sends: int, change: Callable[[int], None], monkeypatch: pytest.MonkeyPatch, campaign_id: int
) -> None:
    """Staff act (in another session) after `sends` messages of the running batch."""
    from campaign import smtp

    original = smtp.SmtpConnection.send
    count = {"n": 0}

    def send(self: smtp.SmtpConnection, *args: Any, **kwargs: Any) -> smtp.SendOutcome:
        outcome = original(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == sends:
            change(campaign_id)
        return outcome

    monkeypatch.setattr(smtp.SmtpConnection, "send", send)
    monkeypatch.setattr(sending, "RECHECK_MESSAGES", 1)


def _in_other_session(action: Callable[[Campaign], object]) -> Callable[[int], None]:
    def run(campaign_id: int) -> None:
        session = db.session.session_factory()  # type: ignore[attr-defined]
        try:
            campaign = session.get(Campaign, campaign_id)
            if action is campaigns.cancel_campaign:
                # The service works on the app's session; do what it does, in SQL.
                session.execute(
                    update(Delivery)
                    .where(
                        Delivery.campaign_id == campaign_id,
                        Delivery.status.in_(["queued", "deferred", "in_doubt"]),
                    )
                    .values(status="cancelled", reason="cancelled")
                )
                campaign.status = CampaignStatus.CANCELLED.value
            else:
                campaign.status = CampaignStatus.PAUSED.value
                campaign.status_reason = "paused by staff"
            session.commit()
        finally:
            session.close()

    return run


def test_pause_stops_the_batch_and_resume_carries_on(
    app: Flask, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, _ = _launch(5)
    _change_status_after(2, _in_other_session(campaigns.pause_campaign), monkeypatch, campaign.id)
    result = _send(campaign.id)
    assert (result.sent, result.released) == (2, 3)
    assert "paused" in result.stopped
    assert _by_status(_rows(campaign.id)) == {"sent": 2, "queued": 3}
    assert _send(campaign.id).claimed == 0, "a paused campaign is not claimed from"

    monkeypatch.undo()
    assert campaigns.resume_campaign(_status(campaign.id))
    db.session.commit()
    _send(campaign.id)
    assert _by_status(_rows(campaign.id)) == {"sent": 5}
    assert len(fault_smtp.messages) == 5
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_cancel_stops_the_batch_and_marks_the_rest_cancelled(
    app: Flask, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, _ = _launch(4)
    _change_status_after(1, _in_other_session(campaigns.cancel_campaign), monkeypatch, campaign.id)
    _send(campaign.id)
    rows = _rows(campaign.id)
    assert _by_status(rows) == {"sent": 1, "cancelled": 3}
    assert all(r.reason == "cancelled" for r in rows if r.status == "cancelled")
    assert len(fault_smtp.messages) == 1


def test_rows_handed_back_after_a_cancel_end_cancelled_not_queued(
    app: Flask, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Staff cancel while the batch waits for a free SMTP connection: the batch then hands
    # its rows back as queued, after the cancel marked the campaign's other rows cancelled.
    campaign, _ = _launch(3)
    cancel = _in_other_session(campaigns.cancel_campaign)

    def no_slot(self: Any, timeout: float, poll: float = 0.25) -> bool:
        cancel(campaign.id)
        return False

    monkeypatch.setattr(sending.ConnectionSemaphore, "acquire", no_slot)
    assert _send(campaign.id).released == 3
    sending.reconcile(commit=db.session.commit)

    assert _status(campaign.id).status == CampaignStatus.CANCELLED
    assert _by_status(_rows(campaign.id)) == {"cancelled": 3}, "no row waits for ever"
    assert fault_smtp.messages == []


# --- claims and the reconciler -------------------------------------------------------------------


def test_a_claim_takes_no_more_than_its_batch_whatever_plan_the_database_picks(
    app: Flask,
) -> None:
    campaign, _ = _launch(6)
    if db.engine.dialect.name == "postgresql":
        # The plan PostgreSQL chose in CI once table statistics grew: a nested loop that
        # re-runs the candidate subquery for every row, so one claim took the whole campaign.
        for setting in ("hashjoin", "hashagg", "mergejoin", "material", "sort"):
            db.session.execute(text(f"SET LOCAL enable_{setting} = off"))
    assert (
        sending.claim_deliveries(campaign.id, "only-two", 2)
        == [row.id for row in _rows(campaign.id)][:2]
    )


def test_two_concurrent_claims_never_share_a_row(app: Flask) -> None:
    campaign, _ = _launch(12)
    barrier = threading.Barrier(2)
    claimed: dict[str, list[int]] = {}

    def claim(name: str) -> None:
        with app.app_context():
            barrier.wait()
            claimed[name] = sending.claim_deliveries(campaign.id, name, 5)
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(claimed["one"]) == 5 and len(claimed["two"]) == 5
    assert not set(claimed["one"]) & set(claimed["two"])
    rows = _rows(campaign.id)
    assert _by_status(rows) == {"sending": 10, "queued": 2}
    assert all(r.lease_until is not None for r in rows if r.status == "sending")


def test_a_stale_lease_is_taken_back_once_by_the_reconciler(app: Flask) -> None:
    campaign, _ = _launch(4)
    held = sending.claim_deliveries(campaign.id, "lost-worker:1", 3)
    db.session.commit()
    db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(held))
        .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    get_queue().empty()

    report = sending.reconcile(commit=db.session.commit)
    assert (report.requeued, report.in_doubt) == (3, 1)
    rows = _rows(campaign.id)
    # The first row the lost batch held may have been on its way: in doubt, same Message-ID.
    assert rows[0].status == "in_doubt" and rows[0].possible_duplicates == 1
    assert [r.status for r in rows[1:3]] == ["queued", "queued"]
    assert all(r.last_reply == sending.LOST_NOTE for r in rows[1:3])
    assert all(r.lease_until is None for r in rows)
    assert report.enqueued == {campaign.id: 1}
    assert get_queue().count == 1

    again = sending.reconcile(commit=db.session.commit)
    assert (again.requeued, again.enqueued, again.finished) == (0, {}, [])
    assert get_queue().count == 1
    assert _rows(campaign.id)[0].possible_duplicates == 1


def test_a_flushed_redis_loses_nothing_and_resends_nothing(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    from workers.context import set_app

    set_app(app)
    app.config["SEND_BATCH_SIZE"] = 2
    campaign, _ = _launch(5)
    _send(campaign.id)
    get_redis().flushall()  # every queued job is gone
    assert get_queue().count == 0

    report = sending.reconcile(commit=db.session.commit)
    assert report.enqueued == {campaign.id: 2}
    # The worker `campaign worker --simple` runs: RQ's own SimpleWorker could wait out its
    # 60 s command listener on exit (workers/__main__.py, _PromptUnsubscribe).
    from workers.__main__ import CampaignSimpleWorker

    worker = CampaignSimpleWorker([get_queue()], connection=get_redis(), serializer=JSONSerializer)
    worker.work(burst=True, logging_level="WARNING")

    rows = _rows(campaign.id)
    assert _by_status(rows) == {"sent": 5}
    assert all(len(fault_smtp.by_message_id()[r.message_id]) == 1 for r in rows)
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_a_job_chains_the_next_batch_while_rows_are_due(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    from workers import jobs
    from workers.context import set_app

    set_app(app)
    app.config["SEND_BATCH_SIZE"] = 2
    campaign, _ = _launch(3)
    queue = get_queue()
    queue.empty()  # as if the launch's jobs were lost: the chain alone must finish it
    jobs.send_batch(campaign.id)
    assert queue.count == 1
    jobs.send_batch(campaign.id)
    assert queue.count == 1, "the last batch chains nothing more"
    assert _by_status(_rows(campaign.id)) == {"sent": 3}
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_the_batch_is_small_enough_for_a_slow_account(app: Flask) -> None:
    from campaign.services.sending.smtp_accounts import default_settings

    app.config.update(MAIL_RATE_PER_MINUTE=30, SEND_LEASE_SECONDS=600)
    # 30 a minute is one every 2 s: half a 600 s lease holds 150 messages.
    assert sending.batch_size(default_settings()) == 150
    app.config.update(MAIL_RATE_PER_MINUTE=0)
    assert sending.batch_size(default_settings()) == app.config["SEND_BATCH_SIZE"]


def test_the_reconciler_runs_on_one_worker_per_interval(app: Flask) -> None:
    from workers.ticker import run_if_due

    runs: list[str] = []
    app.config["RECONCILE_SECONDS"] = 60
    assert run_if_due(app, lambda: runs.append("first worker"))
    assert not run_if_due(app, lambda: runs.append("second worker"))
    assert runs == ["first worker"]


def test_copies_go_to_each_listed_address_except_a_suppressed_one(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    # The batch reads the copy addresses' suppressions once for all its letters (0072).
    campaign, rows = _launch(2)
    for row in rows:
        db.session.execute(
            update(Contact)
            .where(Contact.id == row.contact_id)
            .values(cc_emails="desk@example.net secretariat@example.net")
        )
    db.session.add(
        Suppression(
            email_key="secretariat@example.net",
            email="secretariat@example.net",
            reason="unsubscribed",
        )
    )
    db.session.commit()
    assert _send(campaign.id).sent == 2
    received = {message.rcpt_tos[0]: message for message in fault_smtp.messages}
    assert sorted(received) == sorted(row.email for row in rows)
    for message in received.values():
        assert message.rcpt_tos[1:] == ("desk@example.net",)
        letter = message_from_bytes(message.raw, policy=default_policy)
        assert letter["Cc"] == "desk@example.net"


def test_an_address_that_bounced_gets_no_copies_later_in_the_same_batch(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(3)
    # The first person's address is also the others' copy address; it hard-bounces.
    for row in rows[1:]:
        db.session.execute(
            update(Contact).where(Contact.id == row.contact_id).values(cc_emails=rows[0].email)
        )
    db.session.commit()
    fault_smtp.fail(550, "5.1.1 no such user", stage="rcpt", times=1, match="person0@")
    result = _send(campaign.id)
    assert (result.bounced, result.sent) == (1, 2)
    assert db.session.scalar(
        select(Suppression.email_key).where(Suppression.email_key == rows[0].email)
    )
    assert [message.rcpt_tos for message in fault_smtp.messages] == [
        (rows[1].email,),
        (rows[2].email,),
    ]

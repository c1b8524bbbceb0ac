"""The ledger never says less than the truth: possibly delivered stays said, tries are counted.

In-process against the real SMTP fault server, the real Redis and both databases. What is
checked is what staff read: the ledger's rows, `campaign status`, the campaign page and the
dashboard; and what the server received.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Delivery, Role, Suppression
from campaign.queue import get_queue, get_redis
from campaign.services.replies import dashboard
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns, ledger
from tests.conftest import make_user, sign_in
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_sending import PUBLIC_URL, _launch, _make_due, _rows, _send, _status


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "PUBLIC_URL": PUBLIC_URL,
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _in_doubt_first(fault_smtp: FaultSmtpServer, count: int = 3) -> Campaign:
    """A campaign whose first letter reached the server but whose answer was lost."""
    campaign, rows = _launch(count)
    fault_smtp.drop(stage="after_dot", match=rows[0].email)
    _send(campaign.id)
    assert _rows(campaign.id)[0].status == "in_doubt"
    return campaign


def _lost_claim(campaign_id: int, rows: int) -> list[int]:
    """A worker claimed `rows` rows and died: its lease has run out."""
    held = sending.claim_deliveries(campaign_id, "lost-worker:1", rows)
    db.session.commit()
    db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(held))
        .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    return held


# --- cancel does not erase "possibly delivered" ----------------------------------------------


def test_cancel_keeps_a_row_in_doubt_and_every_count_says_possibly_delivered(
    app: Flask, fault_smtp: FaultSmtpServer, client: FlaskClient, login: Any
) -> None:
    campaign = _in_doubt_first(fault_smtp, 3)
    # The other two were sent; staff cancel while the first waits for its retry.
    assert campaigns.cancel_campaign(_status(campaign.id))
    db.session.commit()
    sending.reconcile(commit=db.session.commit)

    rows = _rows(campaign.id)
    assert (rows[0].status, rows[0].reason) == ("in_doubt", "cancelled")
    assert rows[0].possible_duplicates == 1 and rows[0].next_attempt_at is None
    counts = campaigns.status_counts(campaign.id)
    assert (counts["in_doubt"], counts["cancelled"], counts["sent"]) == (1, 0, 2)
    progress = ledger.campaign_progress(_status(campaign.id))
    assert (progress.in_doubt, progress.remaining) == (1, 0), "done, and possibly delivered"
    funnel = {stage.key: stage.count for stage in dashboard.funnel(campaign.id).stages}
    assert (funnel["sent"], funnel["in_doubt"]) == (2, 1)

    output = app.test_cli_runner().invoke(args=["status", str(campaign.id)]).output
    assert "in_doubt 1" in output.splitlines() and "cancelled 0" in output.splitlines()

    login(Role.VIEWER)
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "In doubt (possibly delivered)" in page
    assert '<dd data-figure="in_doubt">1</dd>' in page
    board = client.get(f"/campaigns/{campaign.id}/dashboard").get_data(as_text=True)
    assert 'data-count="in_doubt">1<' in board


def test_a_lost_worker_then_a_cancel_keeps_the_row_in_flight_in_doubt(app: Flask) -> None:
    campaign, _ = _launch(4)
    held = _lost_claim(campaign.id, 3)
    assert campaigns.cancel_campaign(_status(campaign.id))
    db.session.commit()
    report = sending.reconcile(commit=db.session.commit)

    rows = {row.id: row for row in _rows(campaign.id)}
    in_flight = rows[held[0]]
    assert (in_flight.status, in_flight.reason) == ("in_doubt", "cancelled")
    assert in_flight.possible_duplicates == 1 and in_flight.attempts == 1
    assert [rows[i].status for i in held[1:]] == ["cancelled", "cancelled"]
    assert report.in_doubt == 1
    assert campaigns.status_counts(campaign.id)["cancelled"] == 3
    # Nothing more happens on the next run: in doubt is final in a cancelled campaign.
    sending.reconcile(commit=db.session.commit)
    assert _rows(campaign.id)[0].status == "in_doubt"


def test_a_row_in_doubt_stays_in_doubt_when_it_is_later_suppressed_or_refused(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(2)
    fault_smtp.drop(stage="after_dot", match=rows[0].email)
    fault_smtp.drop(stage="after_dot", match=rows[1].email)
    _send(campaign.id)
    db.session.add(Suppression(email_key=rows[0].email, email=rows[0].email, reason="unsubscribed"))
    db.session.commit()
    fault_smtp.fail(554, "5.7.1 Policy refusal", stage="data", match=rows[1].email)
    _make_due(campaign.id)
    _send(campaign.id)

    first, second = _rows(campaign.id)
    assert (first.status, first.reason) == ("in_doubt", "suppressed")
    assert (second.status, second.reason) == ("in_doubt", "rejected")
    assert second.attempts == 2
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_a_pause_hands_back_a_row_in_doubt_as_in_doubt(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(1)
    fault_smtp.drop(stage="after_dot", match=rows[0].email)
    _send(campaign.id)
    _make_due(campaign.id)
    held = sending.claim_deliveries(campaign.id, "pausing:1", 5)
    db.session.commit()
    assert held == [rows[0].id]
    sending._release("pausing:1", status="queued", note="", next_attempt_at=None)
    db.session.commit()
    assert _rows(campaign.id)[0].status == "in_doubt"


# --- attempts count every transaction ------------------------------------------------------------


def test_a_row_resent_after_a_lost_worker_counts_both_tries(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = _launch(2)
    held = _lost_claim(campaign.id, 2)
    get_queue().empty()
    sending.reconcile(commit=db.session.commit)
    _make_due(campaign.id)
    _send(campaign.id)
    rows = {row.id: row for row in _rows(campaign.id)}
    assert (rows[held[0]].status, rows[held[0]].attempts) == ("sent", 2)
    assert rows[held[0]].possible_duplicates == 1
    assert (rows[held[1]].status, rows[held[1]].attempts) == ("sent", 1)


# --- pause and cancel stop every worker within one message ---------------------------------------


def test_a_pause_stops_the_running_batch_before_its_next_letter(
    app: Flask, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign import smtp

    campaign, _ = _launch(12)
    original = smtp.SmtpConnection.send
    sent = {"n": 0}

    def pause_elsewhere() -> None:
        # Staff press "Pause" in another request (its own thread, session and commit).
        with app.app_context():
            assert campaigns.pause_campaign(db.session.get(Campaign, campaign.id))
            db.session.commit()
            db.session.remove()

    def send(self: smtp.SmtpConnection, *args: Any, **kwargs: Any) -> smtp.SendOutcome:
        outcome = original(self, *args, **kwargs)
        sent["n"] += 1
        if sent["n"] == 2:
            thread = threading.Thread(target=pause_elsewhere)
            thread.start()
            thread.join(timeout=30)
        return outcome

    monkeypatch.setattr(smtp.SmtpConnection, "send", send)
    result = _send(campaign.id)
    assert result.sent == 2 and len(fault_smtp.messages) == 2
    counts = campaigns.status_counts(campaign.id)
    assert (counts["sent"], counts["queued"]) == (2, 10)

    monkeypatch.undo()
    assert campaigns.resume_campaign(_status(campaign.id))
    db.session.commit()
    assert not get_redis().exists(campaigns.stop_flag_key(campaign.id))
    _send(campaign.id)
    assert campaigns.status_counts(campaign.id)["sent"] == 12


def test_a_cancel_stops_the_running_batch_before_its_next_letter(
    app: Flask, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign import smtp

    campaign, _ = _launch(12)
    original = smtp.SmtpConnection.send

    def cancel_elsewhere() -> None:
        with app.app_context():
            assert campaigns.cancel_campaign(db.session.get(Campaign, campaign.id))
            db.session.commit()
            db.session.remove()

    def send(self: smtp.SmtpConnection, *args: Any, **kwargs: Any) -> smtp.SendOutcome:
        outcome = original(self, *args, **kwargs)
        if len(fault_smtp.messages) == 1:
            thread = threading.Thread(target=cancel_elsewhere)
            thread.start()
            thread.join(timeout=30)
        return outcome

    monkeypatch.setattr(smtp.SmtpConnection, "send", send)
    _send(campaign.id)
    assert len(fault_smtp.messages) == 1
    counts = campaigns.status_counts(campaign.id)
    assert (counts["sent"], counts["cancelled"]) == (1, 11)


# --- campaign retry --------------------------------------------------------------------------


def test_campaign_retry_tries_deferred_and_in_doubt_rows_now_and_is_audited(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = _launch(3)
    fault_smtp.drop(stage="after_dot", match=rows[0].email)
    fault_smtp.fail(451, "4.3.0 Try again later", stage="rcpt", match=rows[1].email)
    _send(campaign.id)
    assert [r.status for r in _rows(campaign.id)] == ["in_doubt", "deferred", "sent"]
    get_queue().empty()

    output = app.test_cli_runner().invoke(args=["retry", str(campaign.id)]).output
    assert "2 deferred or in-doubt letters" in output
    assert get_queue().count == 1, "a send job is queued at once"
    assert sending.has_due_rows(campaign.id)
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.retry")
    ).one()
    assert event.target_id == str(campaign.id)

    _send(campaign.id)
    first, second, _third = _rows(campaign.id)
    assert (first.status, first.possible_duplicates, first.attempts) == ("sent", 1, 2)
    assert second.status == "sent"
    assert {m.message_id for m in fault_smtp.by_message_id()[first.message_id]} == {
        first.message_id
    }
    assert _status(campaign.id).status == CampaignStatus.FINISHED


def test_campaign_retry_of_a_paused_campaign_says_to_resume_first(app: Flask) -> None:
    campaign, _ = _launch(1)
    assert campaigns.pause_campaign(_status(campaign.id))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["retry", str(campaign.id)])
    assert result.exit_code == 2
    assert "resume it first" in result.output


def test_the_retry_button_is_for_senders(
    app: Flask, fault_smtp: FaultSmtpServer, client: FlaskClient, login: Any
) -> None:
    campaign, rows = _launch(2)
    fault_smtp.fail(451, "4.3.0 Try again later", stage="rcpt", match=rows[0].email)
    _send(campaign.id)
    editor = app.test_client()
    sign_in(editor, make_user(Role.EDITOR))
    assert editor.post(f"/campaigns/{campaign.id}/retry").status_code == 403
    login(Role.SENDER)
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'id="retry-button"' in page
    answer = client.post(f"/campaigns/{campaign.id}/retry", follow_redirects=True)
    assert "1 deferred or in-doubt letter is tried again now." in answer.get_data(as_text=True)
    assert sending.has_due_rows(campaign.id)

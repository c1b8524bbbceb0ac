"""The pre-send check as a job (decision 0071): started from the draft page, one a campaign,
its progress shown, its result stored and reused by the page and the launch until something
it depends on changes; a dead job is shown stopped and can be started again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Contact, PresendRun, Role
from campaign.queue import get_queue
from campaign.services.sending import campaigns, presend_runs
from campaign.services.statements import presend, salutation_rules, statements
from campaign.services.statements.salutation_rules import current_rule_set
from tests.api.helpers import bearer, new_key
from tests.factories import CampaignFactory
from tests.pages import element_text
from workers import context, jobs

# The statement names no signer: each letter has an error, found by every check.
RECIPIENTS = [
    {"given_name": "Anna", "family_name": "Lind", "email": "anna@example.org"},
    {"given_name": "Boris", "family_name": "Orlov", "email": "boris@example.org"},
    {"given_name": "Chloé", "family_name": "Martin", "email": "chloe@example.org"},
]
BODY = "{{ salutation }}\n\nWe write about the trial of {{ contact.full_name }}'s colleague.\n"


@pytest.fixture
def draft(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Campaign:
    """A draft to three recipients, with a request's limit of two letters: a job's work."""
    monkeypatch.setattr(presend_runs, "INLINE_LIMIT", 2)
    made: Any = CampaignFactory(recipients=RECIPIENTS, statement__body=BODY, commit=True)
    return db.session.get_one(Campaign, made.id)


def _queued() -> list[Any]:
    return [job for job in get_queue().jobs if job.func_name == presend_runs.JOB]


def _run_queued_jobs(app: Flask) -> int:
    """Run the queued checks as a worker would."""
    context.set_app(app)
    waiting = _queued()
    for job in waiting:
        job.delete()
        jobs.check_letters(*job.args)
    db.session.expire_all()
    return len(waiting)


def _fresh_check(campaign: Campaign) -> presend.PresendReport:
    return presend.check_audience(
        campaign.statement, campaigns.recipients_query(campaign), rules=current_rule_set()
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_page_starts_one_job_shows_its_progress_then_its_result(
    app: Flask, client: FlaskClient, login: Any, draft: Campaign
) -> None:
    login(Role.SENDER)
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert 'id="start-check"' in page and 'id="check-summary"' not in page
    assert 'id="launch-after-check"' in page and 'id="launch-link"' not in page
    # The confirmation does not check three letters in the request: back to the page.
    refused = client.get(f"/campaigns/{draft.id}/launch", follow_redirects=True)
    assert "the pre-send check of the 3 letters has not run" in refused.get_data(as_text=True)
    # Two people press the button: one job.
    for _ in range(2):
        assert client.post(f"/campaigns/{draft.id}/check").status_code == 302
    assert len(_queued()) == 1
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    # Without JavaScript the page says how far it is; a reload shows more.
    assert "0% done" in element_text(page, "check-running")
    assert "0 of 3 letters read" in element_text(page, "check-progress-text")
    assert client.get(f"/campaigns/{draft.id}/check").get_json()["is_running"] is True

    assert _run_queued_jobs(app) == 1
    polled = client.get(f"/campaigns/{draft.id}/check").get_json()
    assert polled["is_running"] is False and polled["percent"] == 100
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert element_text(page, "check-checked") == "3"
    assert element_text(page, "check-blocked") == "3"
    assert "Checked" in element_text(page, "check-age")
    # The stored result says what a check in the request says.
    stored = presend_runs.current_report(draft, campaigns.recipients_query(draft))
    fresh = _fresh_check(draft)
    assert stored is not None
    assert [(p.contact_id, p.problem.code, p.problem.message) for p in stored.problems] == [
        (p.contact_id, p.problem.code, p.problem.message) for p in fresh.problems
    ]
    assert (stored.errors, stored.warnings, stored.codes) == (
        fresh.errors,
        fresh.warnings,
        fresh.codes,
    )


def test_a_result_holds_until_what_it_depends_on_changes(app: Flask, draft: Campaign) -> None:
    recipients = campaigns.recipients_query(draft)
    presend_runs.run_here(draft, recipients)
    db.session.commit()
    assert presend_runs.current_report(draft, recipients) is not None
    # A recipient's edit.
    contact = db.session.scalars(select(Contact).where(Contact.given_name == "Anna")).one()
    contact.family_name = "Lindqvist"
    db.session.commit()
    assert presend_runs.current_report(draft, recipients) is None
    presend_runs.run_here(draft, recipients)
    db.session.commit()
    assert presend_runs.current_report(draft, recipients) is not None
    # A salutation rule.
    salutation_rules.create_rule({"language": "de", "role": "*", "text": "Guten Tag,"})
    db.session.commit()
    assert presend_runs.current_report(draft, recipients) is None
    presend_runs.run_here(draft, recipients)
    db.session.commit()
    # A new version of the statement.
    statements.record_version(draft.statement, "edited", actor=None)
    db.session.commit()
    assert presend_runs.current_report(draft, recipients) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_launch_reuses_the_result_and_in_a_request_never_checks_many_letters(
    app: Flask, draft: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.test_request_context(), pytest.raises(campaigns.PresendNeeded, match="has not run"):
        campaigns.check_and_launch(draft)
    db.session.rollback()
    presend_runs.start(draft, campaigns.recipients_query(draft))
    db.session.commit()
    _run_queued_jobs(app)
    checks: list[int] = []
    real = presend.check_audience

    def counted(*args: Any, **kwargs: Any) -> presend.PresendReport:
        checks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(presend, "check_audience", counted)
    draft = db.session.get_one(Campaign, draft.id)
    with app.test_request_context():
        with pytest.raises(campaigns.PresendRefused, match="errors for 3 contacts"):
            campaigns.check_and_launch(draft)
        db.session.rollback()
        with pytest.raises(campaigns.PresendRefused, match="say why"):
            campaigns.check_and_launch(draft, override=True)
        db.session.rollback()
        assert campaigns.check_and_launch(draft, override=True, override_reason="press deadline")
    db.session.commit()
    assert checks == []  # the stored result, not a second reading of every letter
    assert draft.status == CampaignStatus.SENDING.value and draft.is_presend_overridden
    audit = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.presend_override")
    ).one()
    assert audit.detail["contacts_with_errors"] == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_dead_job_is_shown_stopped_and_a_new_start_supersedes_it(
    app: Flask, client: FlaskClient, login: Any, draft: Campaign
) -> None:
    login(Role.EDITOR)
    client.post(f"/campaigns/{draft.id}/check")
    (old,) = _queued()
    # Its worker was killed: nothing has moved for longer than STALE_AFTER.
    then = datetime.now(UTC) - presend_runs.STALE_AFTER - timedelta(minutes=1)
    db.session.execute(update(PresendRun).values(queued_at=then))
    db.session.commit()
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert "stopped answering" in element_text(page, "check-stopped")
    assert 'id="start-check"' in page
    client.post(f"/campaigns/{draft.id}/check")
    new = [job for job in _queued() if job.id != old.id]
    assert len(new) == 1
    # The old job, delivered late, finds its run superseded and does nothing.
    context.set_app(app)
    old.delete()
    jobs.check_letters(*old.args)
    db.session.expire_all()
    run = db.session.scalars(select(PresendRun)).one()
    assert run.status == "queued" and run.result is None
    assert _run_queued_jobs(app) == 1
    assert presend_runs.current_report(draft, campaigns.recipients_query(draft)) is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_api_answers_202_with_progress_then_the_stored_result(
    app: Flask, client: FlaskClient, draft: Campaign
) -> None:
    headers = bearer(new_key(Role.EDITOR, ["campaigns:read"])[0])
    started = client.post(f"/api/v1/campaigns/{draft.id}/check", headers=headers)
    assert started.status_code == 202, started.get_data(as_text=True)
    assert started.get_json()["presend"] is None
    assert started.get_json()["progress"] == {
        "status": "queued",
        "checked": 0,
        "total": 3,
        "percent": 0,
    }
    status_url = started.headers["Location"]
    assert status_url.endswith(f"/api/v1/campaigns/{draft.id}/check")
    # Asked again while it runs: the same job.
    assert client.post(f"/api/v1/campaigns/{draft.id}/check", headers=headers).status_code == 202
    assert _run_queued_jobs(app) == 1
    done = client.get(status_url, headers=headers)
    assert done.status_code == 200
    assert done.get_json()["progress"] is None
    assert done.get_json()["presend"]["checked"] == 3
    assert done.get_json()["presend"]["contacts_with_errors"] == 3
    assert done.get_json()["needs_override"] is True

"""The pre-send check as a job (decision 0071): started from the draft page, one a campaign,
its progress shown, its result stored and reused by the page and the launch until something
it depends on changes; a dead job is shown stopped and can be started again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale, lazy_ngettext
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from campaign import queue
from campaign.extensions import db
from campaign.letters.letter import render_letter
from campaign.models import AuditEvent, Campaign, CampaignStatus, Contact, PresendRun, Role
from campaign.queue import get_queue
from campaign.services.contacts import lists
from campaign.services.sending import campaigns, presend_runs
from campaign.services.statements import presend, salutation_rules, statements
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.web.sending import campaigns as web_campaigns
from tests.api.helpers import bearer, new_key
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory
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
    # No worker has taken it: the page says it waits for one, not "running, 0%".
    assert "is the worker running?" in element_text(page, "check-progress-text")
    assert element_text(page, "check-waiting")
    polled = client.get(f"/campaigns/{draft.id}/check").get_json()
    assert polled["is_running"] is True and polled["is_waiting"] is True
    # Taken by a worker, one letter read: without JavaScript a reload shows how far it is.
    db.session.execute(
        update(PresendRun).values(status="running", checked=1, heartbeat_at=datetime.now(UTC))
    )
    db.session.commit()
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert "33% done" in element_text(page, "check-running")
    assert "1 letter of 3 read" in element_text(page, "check-progress-text")
    db.session.execute(update(PresendRun).values(status="queued", checked=0))
    db.session.commit()

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
    reader = bearer(new_key(Role.EDITOR, ["campaigns:read"])[0])
    # Nothing checked yet: not launchable, and the answer says the check has not started.
    before = client.get(f"/api/v1/campaigns/{draft.id}/check", headers=reader).get_json()
    assert before["presend"] is None and before["launchable"] is False
    assert before["needs_override"] is False
    assert before["progress"]["status"] == "not_started"
    # Starting a job needs the write scope.
    assert client.post(f"/api/v1/campaigns/{draft.id}/check", headers=reader).status_code == 403
    assert _queued() == []
    headers = bearer(new_key(Role.EDITOR, ["campaigns:read", "campaigns:write"])[0])
    started = client.post(f"/api/v1/campaigns/{draft.id}/check", headers=headers)
    assert started.status_code == 202, started.get_data(as_text=True)
    assert started.get_json()["presend"] is None
    assert started.get_json()["launchable"] is False
    assert started.get_json()["progress"] == {
        "status": "queued",
        "checked": 0,
        "total": 3,
        "percent": 0,
        "reason": "",
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


def test_a_changed_membership_makes_the_stored_result_stale(app: Flask) -> None:
    """Two audiences of the same size and sums of ids: the result of one is not the
    other's (a launch would go without override past failing letters)."""
    people = [
        ContactFactory(
            given_name=name,
            family_name="Lind",
            email=f"{name}@example.org",
            organisation="BAD" if name in ("b", "c") else "Good",
            languages="en",
        )
        for name in ("a", "b", "c", "d", "e")
    ]
    db.session.commit()
    good, bad = [people[0], people[3], people[4]], [people[1], people[2], people[4]]
    assert sum(p.id for p in good) == sum(p.id for p in bad)
    the_list = ContactListFactory(contacts=good)
    made: Any = CampaignFactory(
        contact_list=the_list,
        statement__body=(
            "{{ salutation }}\n\n{% if contact.organisation == 'BAD' %}{{ contact.x.y }}"
            "{% endif %}We write.\n\n{{ closing }}\n\n{{ signatories }}\n"
        ),
        statement__signatories=[{"kind": "organisation", "name": "Org"}],
        commit=True,
    )
    draft = db.session.get_one(Campaign, made.id)
    assert presend_runs.run_here(draft, campaigns.recipients_query(draft)).has_errors is False
    db.session.commit()
    lists.remove_contacts(the_list, [people[0].id, people[3].id])
    lists.add_contacts(the_list, [people[1].id, people[2].id])
    db.session.commit()
    assert presend_runs.current_report(draft, campaigns.recipients_query(draft)) is None
    with app.test_request_context(), pytest.raises(campaigns.PresendRefused):
        campaigns.check_and_launch(draft)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_too_slow_for_a_request_is_remembered_and_the_page_offers_the_job(
    app: Flask, client: FlaskClient, login: Any, draft: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's time bound holds from the first letter on, and a visit after one that
    gave up renders nothing: it shows the button at once."""
    monkeypatch.setattr(presend_runs, "INLINE_LIMIT", 1000)
    monkeypatch.setattr(presend_runs, "INLINE_SECONDS", 0.0)
    read: list[int] = []
    real = render_letter

    def counted(*args: Any, **kwargs: Any) -> Any:
        read.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(presend, "render_letter", counted)
    login(Role.EDITOR)
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert 'id="start-check"' in page and 'id="check-summary"' not in page
    assert read == []  # past the bound before the first letter: none was made
    monkeypatch.setattr(presend_runs, "INLINE_SECONDS", 60.0)
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert 'id="start-check"' in page and read == []
    # The letters change: a request tries again.
    contact = db.session.scalars(select(Contact).where(Contact.given_name == "Anna")).one()
    contact.family_name = "Lindqvist"
    db.session.commit()
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert 'id="check-summary"' in page and len(read) == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_stored_messages_are_read_in_the_readers_language(app: Flask) -> None:
    """Checked by an English reader, read by a French and a Russian one."""
    made: Any = CampaignFactory(
        recipients=[
            {
                "given_name": "Anna",
                "family_name": "Lind",
                "email": "a@example.org",
                "role_type": "minister",
            },
            {
                "given_name": "Boris",
                "family_name": "Orlov",
                "email": "b@example.org",
                "role_type": "official",
            },
            {
                "given_name": "Chloé",
                "family_name": "Martin",
                "email": "c@example.org",
                "role_type": "other",
            },
        ],
        statement__body=BODY,
        commit=True,
    )
    draft = db.session.get_one(Campaign, made.id)
    recipients = campaigns.recipients_query(draft)
    with app.test_request_context(), force_locale("en"):
        presend_runs.run_here(draft, recipients)
    db.session.commit()
    for language, words in (("fr", "le rôle du contact"), ("ru", "роль контакта")):
        with app.test_request_context(), force_locale(language):
            stored = presend_runs.current_report(draft, recipients)
            assert stored is not None
            (role,) = [p for p in stored.problems if p.problem.code == "role_other"]
            assert words in role.problem.message.casefold(), role.problem.message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failure_is_told_in_words_and_the_details_stay_in_the_log(
    app: Flask, client: FlaskClient, login: Any, draft: Campaign
) -> None:
    login(Role.EDITOR)
    client.post(f"/campaigns/{draft.id}/check")
    (job,) = _queued()
    key = job.args[1]
    presend_runs.mark_failed(
        draft.id, key, OperationalError("SELECT secret FROM users", {}, Exception("locked"))
    )
    db.session.commit()
    shown = element_text(
        client.get(f"/campaigns/{draft.id}").get_data(as_text=True), "check-stopped"
    )
    assert "OperationalError" in shown and "SELECT" not in shown and "secret" not in shown
    # A job out of time says the template is too slow, with the figures.
    presend_runs.mark_failed(draft.id, key, JobTimeoutException("606"), timed_out=True)
    db.session.commit()
    shown = element_text(
        client.get(f"/campaigns/{draft.id}").get_data(as_text=True), "check-stopped"
    )
    limit = presend_runs.SECONDS_PER_LETTER
    assert f"after {presend_runs.job_timeout(3)} seconds" in shown
    assert f"more than {limit} seconds a letter" in shown


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_queue_that_does_not_answer_leaves_no_running_check(
    app: Flask, client: FlaskClient, login: Any, draft: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(Role.EDITOR)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(queue, "get_queue", down)
    answer = client.post(f"/campaigns/{draft.id}/check", follow_redirects=True)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "could not be queued" in page
    assert 'id="check-running"' not in page and 'id="start-check"' in page
    run = db.session.scalars(select(PresendRun)).one()
    assert run.status == "failed"
    headers = bearer(new_key(Role.EDITOR, ["campaigns:read", "campaigns:write"])[0])
    api = client.post(f"/api/v1/campaigns/{draft.id}/check", headers=headers)
    assert api.status_code == 503 and "could not be queued" in api.get_json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_slow_job_beats_on_time_and_its_timeout_follows_the_letters(
    app: Flask, draft: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow letters: the heartbeat is written every BEAT_SECONDS, not every CHUNK letters."""
    monkeypatch.setattr(presend_runs, "BEAT_SECONDS", 0.0)
    presend_runs.start(draft, campaigns.recipients_query(draft))
    db.session.commit()
    (job,) = _queued()
    assert job.timeout >= presend_runs.SECONDS_PER_LETTER * 3
    assert presend_runs.claim(draft.id, job.args[1])
    db.session.commit()
    beats: list[tuple[int, Any]] = []

    def commit() -> None:
        run = db.session.scalars(select(PresendRun)).one()
        beats.append((run.checked, run.heartbeat_at))
        db.session.commit()

    assert presend_runs.run_job(draft.id, job.args[1], campaigns.recipients_query, commit=commit)
    assert [checked for checked, _ in beats] == [0, 1, 2, 3, 3]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_words_of_the_check(app: Flask) -> None:
    """A result finished "in the future" (clocks apart) is "just now"; the Russian refusal
    for 21 letters speaks of letters, not of one."""
    with app.test_request_context():
        now = datetime.now(UTC)
        run = PresendRun(finished_at=now + timedelta(seconds=5), result={})
        found = presend_runs.CheckState(run, 3, None, now)
        assert web_campaigns.result_age(found) == "just now"
        with force_locale("ru"):
            needed = lazy_ngettext(
                "the pre-send check of the %(num)d letter has not run since it last changed; "
                "start it on the campaign's page and launch when it has finished",
                "the pre-send check of the %(num)d letters has not run since they last changed; "
                "start it on the campaign's page and launch when it has finished",
                21,
            )
            assert "его" not in str(needed)

"""The campaign commands: create, send, pause, resume, cancel, status, worker, SMTP accounts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select, update

from campaign.config import PROJECT_ROOT
from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    Contact,
    Delivery,
    DeliveryStatus,
    SmtpAccount,
)
from campaign.queue import get_queue
from campaign.services.contacts import lists, segments, suppressions
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import smtp_accounts
from campaign.services.statements import statements

BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\n\nAnna Sample\n"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    # A queue of its own: the worker test must not pick up jobs other tests left in Redis.
    return {**app_overrides, "QUEUE_NAME": f"cli-{tmp_path.name}"}


def _setup() -> dict[str, Any]:
    statement = statements.create_statement("Joint letter", language="en", subject="S", body=BODY)
    people = []
    for given, family in (("Ana", "Lima"), ("Ben", "Okafor"), ("Chen", "Wu"), ("Dana", "Ivanova")):
        people.append(
            create_contact(
                {
                    "email": f"{given.lower()}@example.org",
                    "given_name": given,
                    "family_name": family,
                    "languages": "en",
                }
            )
        )
    press = lists.create_list("Press")
    lists.add_contacts(press, [p.id for p in people])
    embassies = lists.create_list("Embassies")
    lists.add_contacts(embassies, [people[3].id])
    segments.save_segment("English", {"field": "language", "op": "is", "value": "en"})
    db.session.commit()
    return {"statement": statement.id, "press": press, "people": people}


def _run(runner: FlaskCliRunner, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(args=list(args), input=stdin)


def _last_number(output: str) -> int:
    return int(re.findall(r"\d+", output.strip().splitlines()[-1])[-1])


def _create(runner: FlaskCliRunner, statement_id: int, *extra: str) -> int:
    result = _run(runner, "create-campaign", "--statement", str(statement_id), *extra)
    assert result.exit_code == 0, result.output
    return _last_number(result.stdout)


def test_create_campaign_prints_its_id_last_and_stores_the_options(app: Flask) -> None:
    setup = _setup()
    smtp_accounts.create_account(smtp_accounts.AccountFields(name="Relay", host="relay.example"))
    db.session.commit()
    runner = app.test_cli_runner()
    result = _run(
        runner,
        "create-campaign",
        "--statement", str(setup["statement"]),
        "--list", "press",
        "--segment", "English",
        "--exclude-list", "Embassies",
        "--smtp", "relay",
        "--from", "Rights Watch <office@rights.example>",
        "--reply-to", "replies@rights.example",
        "--name", "Spring appeal",
        "--no-unsubscribe",
        "--attach-pdf",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("created campaign ")
    campaign = db.session.get(Campaign, _last_number(result.stdout))
    assert campaign is not None
    assert campaign.name == "Spring appeal" and campaign.status == "draft"
    assert campaign.from_address == "Rights Watch <office@rights.example>"
    assert campaign.reply_to == "replies@rights.example"
    assert campaign.smtp_account is not None and campaign.smtp_account.name == "Relay"
    assert not campaign.has_list_unsubscribe and campaign.is_pdf_attached
    assert len(campaign.audience["include"]) == 2 and len(campaign.audience["exclude"]) == 1
    assert "3 recipients" in result.output  # four in Press, one of them excluded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--statement", "999", "--list", "Press"], "there is no statement 999"),
        (["--list", "Nobody"], "there is no list called 'Nobody'"),
        (["--segment", "Nobody"], "there is no segment called 'Nobody'"),
        (["--list", "Press", "--exclude-list", "Gone"], "there is no list called 'Gone'"),
        (["--list", "Press", "--smtp", "Missing"], "no SMTP account called 'Missing'"),
        (["--list", "Press", "--from", "not-an-address"], "From: 'not-an-address' is not an"),
        ([], "--list NAME or --segment NAME"),
    ],
)
def test_create_campaign_refuses_what_does_not_exist(
    app: Flask, args: list[str], message: str
) -> None:
    setup = _setup()
    if "--statement" not in args:
        args = ["--statement", str(setup["statement"]), *args]
    result = _run(app.test_cli_runner(), "create-campaign", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_send_queues_the_work_and_a_second_send_changes_nothing(app: Flask) -> None:
    setup = _setup()
    suppressions.suppress_address("ben@example.org", "unsubscribed")
    db.session.commit()
    runner = app.test_cli_runner()
    campaign_id = _create(runner, setup["statement"], "--list", "Press")
    result = _run(runner, "send", str(campaign_id))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == (
        f"campaign {campaign_id} launched: 3 recipients queued, 1 suppressed"
    )
    assert "checking letters: 3/3" in result.output
    assert get_queue().count >= 1  # the workers' share; nothing was sent by the command
    again = _run(runner, "send", str(campaign_id))
    assert again.exit_code == 0 and "already launched" in again.stdout
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 4


def test_send_refuses_letters_with_errors_unless_overridden(app: Flask) -> None:
    setup = _setup()
    nobody = Contact(email="", email_key="-", given_name="No", family_name="Mail", languages="en")
    db.session.add(nobody)
    db.session.flush()
    lists.add_contacts(setup["press"], [nobody.id])
    db.session.commit()
    runner = app.test_cli_runner()
    campaign_id = _create(runner, setup["statement"], "--list", "Press")
    refused = _run(runner, "send", str(campaign_id))
    assert refused.exit_code == 2, refused.output
    assert "No email address" in refused.output and "launch with the override" in refused.output
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert db.session.get(Campaign, campaign_id).status == "draft"

    forced = _run(runner, "send", str(campaign_id), "--override", "--reason", "no address yet")
    assert forced.exit_code == 0, forced.output
    assert db.session.get(Campaign, campaign_id).is_presend_overridden
    launch = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.launch")
    ).one()
    assert launch.detail["override"] is True


def test_send_explains_an_empty_audience_and_an_unknown_campaign(app: Flask) -> None:
    setup = _setup()
    lists.create_list("Empty")
    db.session.commit()
    runner = app.test_cli_runner()
    campaign_id = _create(runner, setup["statement"], "--list", "Empty")
    empty = _run(runner, "send", str(campaign_id))
    assert empty.exit_code == 2 and "hold no contacts" in empty.output
    for command in ("send", "pause", "resume", "cancel", "status"):
        missing = _run(runner, command, "4242")
        assert missing.exit_code == 2 and "there is no campaign 4242" in missing.output


def test_pause_resume_cancel_and_status(app: Flask) -> None:
    setup = _setup()
    runner = app.test_cli_runner()
    campaign_id = _create(runner, setup["statement"], "--list", "Press")
    assert "nothing to pause" in _run(runner, "pause", str(campaign_id)).output
    assert _run(runner, "send", str(campaign_id)).exit_code == 0
    # The engine is not part of this test: two letters are marked sent by hand.
    first_two = select(Delivery.id).order_by(Delivery.id).limit(2).scalar_subquery()
    db.session.execute(
        update(Delivery).where(Delivery.id.in_(first_two)).values(status=DeliveryStatus.SENT)
    )
    db.session.commit()

    assert _run(runner, "pause", str(campaign_id)).stdout == f"campaign {campaign_id} paused\n"
    status = _run(runner, "status", str(campaign_id))
    assert status.exit_code == 0
    lines = status.stdout.splitlines()
    assert lines[0] == f"campaign {campaign_id} paused"
    assert "sent 2" in lines and "queued 2" in lines and "bounced 0" in lines
    assert {line.split()[0] for line in lines[1:]} == {s.value for s in DeliveryStatus}
    assert "reason: paused by staff" in status.output

    resumed = _run(runner, "resume", str(campaign_id))
    assert resumed.stdout == f"campaign {campaign_id} resumed: sending again\n"
    assert _run(runner, "cancel", str(campaign_id)).stdout == f"campaign {campaign_id} cancelled\n"
    final = _run(runner, "status", str(campaign_id)).stdout.splitlines()
    assert final[0] == f"campaign {campaign_id} cancelled"
    assert "sent 2" in final and "cancelled 2" in final and "queued 0" in final
    assert "nothing to resume" in _run(runner, "resume", str(campaign_id)).output


def test_add_smtp_account_reads_the_password_from_stdin(app: Flask) -> None:
    runner = app.test_cli_runner()
    secret = "s3cret-from-a-pipe"
    result = _run(
        runner,
        "add-smtp-account", "M365",
        "--host", "smtp.office365.com",
        "--port", "587",
        "--security", "starttls",
        "--user", "office@rights.example",
        "--password-stdin",
        "--per-minute", "30",
        stdin=secret + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    account = smtp_accounts.find_account("m365")
    assert account is not None and account.per_minute == 30
    assert secret not in account.password_encrypted
    assert smtp_accounts.settings_for(account).password == secret

    duplicate = _run(runner, "add-smtp-account", "m365", "--host", "x.example")
    assert duplicate.exit_code == 2 and "exists already" in duplicate.output
    no_password = _run(
        runner, "add-smtp-account", "Other", "--host", "x.example", "--password-stdin", stdin=""
    )
    assert no_password.exit_code == 2 and "held no password" in no_password.output
    bad_port = _run(runner, "add-smtp-account", "Other", "--host", "x.example", "--port", "0")
    assert bad_port.exit_code == 2 and "Port: 0" in bad_port.output
    assert db.session.scalar(select(func.count()).select_from(SmtpAccount)) == 1


def test_campaign_worker_burst_sends_the_queued_letters(app: Flask, fault_smtp: Any) -> None:
    setup = _setup()
    runner = app.test_cli_runner()
    campaign_id = _create(runner, setup["statement"], "--list", "Press")
    assert _run(runner, "send", str(campaign_id)).exit_code == 0

    config = app.config
    settings = {
        "CAMPAIGN_SECRET_KEY": config["SECRET_KEY"],
        "CAMPAIGN_INSTANCE_PATH": config["INSTANCE_PATH"],
        "CAMPAIGN_DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "CAMPAIGN_REDIS_URL": config["REDIS_URL"],
        "CAMPAIGN_QUEUE_NAME": config["QUEUE_NAME"],
        "CAMPAIGN_MAIL_SERVER": "127.0.0.1",
        "CAMPAIGN_MAIL_PORT": str(fault_smtp.port),
        # A worker configured as the web app is: without it, it pauses the campaign (0037).
        "CAMPAIGN_PUBLIC_URL": config["PUBLIC_URL"],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(settings)
    finished = subprocess.run(
        [sys.executable, "-c", "from campaign.cli import main; main()", "worker", "--burst"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert sorted(fault_smtp.by_recipient()) == [
        "ana@example.org",
        "ben@example.org",
        "chen@example.org",
        "dana@example.org",
    ]
    db.session.expire_all()
    status = _run(runner, "status", str(campaign_id)).stdout.splitlines()
    assert status[0] == f"campaign {campaign_id} finished"
    assert "sent 4" in status and "queued 0" in status


def test_send_prints_what_the_confirmation_page_names_and_takes_yes(app: Flask) -> None:
    setup = _setup()
    smtp_accounts.create_account(
        smtp_accounts.AccountFields(name="Relay", host="relay.example", per_minute=60)
    )
    db.session.commit()
    runner = app.test_cli_runner()
    campaign_id = _create(runner, setup["statement"], "--list", "Press", "--smtp", "Relay")
    result = _run(runner, "send", str(campaign_id), "--yes")
    assert result.exit_code == 0, result.output
    assert (
        "4 recipients · SMTP account: Relay · pace: at most 60 letters a minute · "
        "expected duration: less than a minute" in result.stderr
    )
    assert "languages: English: 4" in result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith(f"campaign {campaign_id} launched")


def test_send_on_a_yearly_campaign_sends_that_years_copy_once(app: Flask) -> None:
    from campaign.models import Schedule
    from campaign.scheduling.schedules import create_yearly

    setup = _setup()
    runner = app.test_cli_runner()
    campaign_id = _create(runner, setup["statement"], "--list", "Press")
    template = db.session.get(Campaign, campaign_id)
    assert template is not None
    rule = create_yearly(template, 6, 26, "09:00", "UTC")
    db.session.commit()
    due = rule.next_run_at
    assert due is not None

    result = _run(runner, "send", str(campaign_id), "--yes")
    assert result.exit_code == 0, result.output
    # The summary names the schedule, and what sending now does with it.
    assert f"Sent every year; next on 26 June {due.year}" in result.stderr
    assert "goes now, in place of that date's" in result.stderr
    copy = db.session.scalars(select(Campaign).where(Campaign.template_id == campaign_id)).one()
    assert result.stdout.strip().splitlines()[-1].startswith(f"campaign {copy.id} launched")
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 4

    # On the date the scheduler sends nothing more: nobody gets the letter twice.
    ticked = _run(runner, "tick", "--now", (due + timedelta(minutes=1)).isoformat())
    assert ticked.exit_code == 0, ticked.output
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 4
    moved = db.session.get(Schedule, rule.id)
    assert moved is not None and moved.next_run_at is not None and moved.next_run_at > due

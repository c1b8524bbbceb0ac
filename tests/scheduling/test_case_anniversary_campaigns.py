"""A yearly campaign on the anniversary of a case date: made with `campaign yearly --case-date`,
listed by `campaign schedules`, fired by `campaign tick --now`, its copy merging the case."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import Campaign, Case, CaseDate, Delivery, Schedule, ScheduleKind
from campaign.scheduling.schedules import create_yearly
from campaign.services.schedules import cases
from campaign.services.sending import batches as sending
from tests.factories import CampaignFactory, ContactFactory
from tests.fault_smtp import FaultSmtpServer

# The sandbox trims the line break after a block tag: "\n\n" after each endfor leaves one.
BODY = (
    "{{ salutation }}\n\nOn this anniversary we write about:\n\n"
    "{% for case in cases %}- {{ case.name }}"
    "{% for d in case.dates %}, {{ d.kind }} on {{ d.on_text }}{% endfor %}\n\n{% endfor %}"
    "\n\n{{ closing }}\n\nAnna Sample\n"
)
REAL_NAME = "Real Secret Name"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _campaign() -> Campaign:
    return CampaignFactory(
        name="Free the journalist",
        statement__title="Anniversary letter",
        statement__subject="Free him",
        statement__body=BODY,
        recipients=[ContactFactory(email="minister@example.net", family_name="Minister")],
        from_address="Office <office@example.org>",
        commit=True,
    )


def _case_date(on: date) -> CaseDate:
    case = cases.create_case(REAL_NAME, "Journalist B", is_high_risk=True, country="UZ")
    case_date = cases.add_case_date(case, "arrest", on, "Art. 244-1", "RFE/RL")
    db.session.commit()
    return case_date


def _text(raw: bytes) -> str:
    message = message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def _send_all(campaign_id: int) -> None:
    # Letters of a simulated launch are dated then; send them now.
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id)
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    while sending.send_batch(campaign_id, worker="test", commit=db.session.commit).claimed:
        pass


def test_an_anniversary_campaign_fires_on_the_day_and_its_copy_merges_the_case(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    template = _campaign()
    case_date = _case_date(date(2021, 3, 12))
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["yearly", str(template.id), "--case-date", str(case_date.id), "--tz", "UTC"]
    )
    assert made.exit_code == 0, made.output
    assert made.output.startswith(
        "schedule 1: a copy of 'Free the journalist' every year on the anniversary of the "
        "arrest of Journalist B, first at "
    )
    schedule = db.session.get(Schedule, 1)
    assert schedule is not None and schedule.case_date_id == case_date.id
    assert schedule.next_run_at is not None
    year = schedule.next_run_at.year
    assert schedule.next_run_at == datetime(year, 3, 12, 9, tzinfo=UTC)

    listing = runner.invoke(args=["schedules"]).output
    assert (
        "yearly_campaign\tFree the journalist on the anniversary of the arrest of Journalist B"
        in listing
    )
    assert REAL_NAME not in listing
    # The template itself has no case linked: the anniversary brings it to each copy.
    assert cases.linked_cases(template) == []

    assert runner.invoke(args=["tick", "--now", f"{year}-03-12T08:59Z"]).output == (
        "0 fired, 0 skipped\n"
    )
    fired = runner.invoke(args=["tick", "--now", f"{year}-03-12T09:01Z"])
    assert fired.exit_code == 0, fired.output
    assert fired.output.startswith("fired\tyearly_campaign\tFree the journalist on the")
    assert fired.output.endswith("1 fired, 0 skipped\n")
    db.session.expire_all()
    copy = db.session.scalar(select(Campaign).where(Campaign.template_id == template.id))
    assert copy is not None and copy.name == f"Free the journalist {year}"
    assert [case.id for case in cases.linked_cases(copy)] == [case_date.case_id]
    next_run = db.session.get(Schedule, 1).next_run_at  # type: ignore[union-attr]
    assert next_run == datetime(year + 1, 3, 12, 9, tzinfo=UTC)

    _send_all(copy.id)
    [received] = fault_smtp.messages
    assert "- Journalist B, arrest on 12 March 2021" in _text(received.raw).splitlines()
    assert REAL_NAME.encode() not in received.raw


def test_a_29_february_case_date_fires_on_28_february_in_2027_and_says_so(app: Flask) -> None:
    template = _campaign()
    case_date = _case_date(date(2024, 2, 29))
    schedule = create_yearly(
        template, 0, 0, "09:00", "UTC", now=datetime(2026, 6, 1, tzinfo=UTC), case_date=case_date
    )
    db.session.commit()
    assert schedule.next_run_at == datetime(2027, 2, 28, 9, tzinfo=UTC)
    assert schedule.rule == {"month": 2, "day": 29, "time": "09:00"}
    assert schedule.name.endswith("— fires on 28 February in years without 29 February")

    runner = app.test_cli_runner()
    fired = runner.invoke(args=["tick", "--now", "2027-02-28T09:00Z"])
    assert fired.output.startswith("fired\tyearly_campaign\t"), fired.output
    assert "due 2027-02-28 09:00 UTC" in fired.output
    db.session.expire_all()
    # The next one is the real day again in the leap year.
    after = db.session.get(Schedule, schedule.id)
    assert after is not None and after.next_run_at == datetime(2028, 2, 29, 9, tzinfo=UTC)


def test_yearly_refuses_a_missing_case_date_and_asks_for_one_date_only(app: Flask) -> None:
    template = _campaign()
    case_date = _case_date(date(2021, 3, 12))
    runner = app.test_cli_runner()
    for args, words in (
        (["--case-date", "999"], "there is no case date 999"),
        (["--case-date", str(case_date.id), "--date", "06-26"], "either --date MM-DD or"),
        ([], "either --date MM-DD or"),
    ):
        refused = runner.invoke(args=["yearly", str(template.id), *args, "--tz", "UTC"])
        assert refused.exit_code == 2, refused.output
        assert words in refused.output
    assert (
        db.session.scalars(
            select(Schedule).where(Schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value)
        ).all()
        == []
    )


def test_a_deleted_case_takes_its_anniversary_campaign_with_it(app: Flask) -> None:
    template = _campaign()
    case_date = _case_date(date(2021, 3, 12))
    create_yearly(template, 0, 0, "09:00", "UTC", case_date=case_date)
    db.session.commit()
    case = db.session.get(Case, case_date.case_id)
    db.session.delete(case)
    db.session.commit()
    assert db.session.scalars(select(Schedule)).all() == []

"""`campaign sign-on STATEMENT_ID`, and the demo's joint letter with its open sign-on page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Signature, SignOn, SignOnInvitation, Statement
from campaign.services.sign_on import pages as sign_on
from campaign.services.sign_on.pages import reminder_of
from campaign.services.statements import statements


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "PUBLIC_URL": "https://campaign.example.org"}


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def test_sign_on_prints_the_address_whether_it_accepts_and_the_counts(app: Flask) -> None:
    statement = statements.create_statement("Joint letter", language="en", subject="S", body="B")
    db.session.commit()

    missing = run(app, "sign-on", "999")
    assert missing.exit_code == 1 and "there is no statement 999" in missing.output
    without = run(app, "sign-on", str(statement.id))
    assert without.exit_code == 1 and "has no sign-on page" in without.output

    page = sign_on.open_sign_on(statement)
    for number, status in enumerate(("approved", "approved", "confirmed", "unconfirmed")):
        db.session.add(
            Signature(
                sign_on_id=page.id,
                kind="organisation",
                name=f"NGO {number}",
                publish_as="full",
                email=f"ngo{number}@example.org",
                email_key=f"ngo{number}@example.org",
                name_key=f"ngo {number}",
                status=status,
            )
        )
    db.session.commit()
    result = run(app, "sign-on", str(statement.id))
    assert result.exit_code == 0, result.output
    assert f"address:    https://campaign.example.org/sign/{page.token}" in result.output
    assert "accepting:  yes" in result.output
    assert "signatures: unconfirmed 1, confirmed 1, approved 2, rejected 0, merged 0" in (
        result.output
    )
    assert "reminder:   none" in result.output

    page.deadline = datetime.now(UTC) - timedelta(hours=1)
    db.session.commit()
    closed = run(app, "sign-on", str(statement.id))
    assert "accepting:  no: The deadline to sign this statement has passed" in closed.output


def test_the_demo_has_a_joint_letter_with_an_open_sign_on_page(app: Flask) -> None:
    result = run(app, "load-demo")
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    page = db.session.scalars(select(SignOn)).one()
    statement = db.session.get(Statement, page.statement_id)
    assert statement is not None and statement.languages == ["en", "fr", "ru"]
    address = f"https://campaign.example.org/sign/{page.token}"
    assert address in result.output

    assert sign_on.accepting(page)
    assert page.deadline is not None
    assert timedelta(days=20) < page.deadline - datetime.now(UTC) < timedelta(days=22)
    counts = sign_on.signature_counts(page)
    assert (counts["approved"], counts["confirmed"], counts["unconfirmed"]) == (3, 1, 1)
    shown = sign_on.public_signatories(page)
    assert sum(1 for s in shown if s.is_withheld) == 1
    assert "Committee for Prisoners of Conscience" not in [s.name for s in shown]
    assert len(db.session.scalars(select(SignOnInvitation)).all()) == 4
    reminder = reminder_of(page)
    assert reminder is not None and reminder.is_enabled and reminder.next_run_at is not None
    zone = ZoneInfo(reminder.timezone)
    local_deadline, local_reminder = (
        t.astimezone(zone) for t in (page.deadline, reminder.next_run_at)
    )
    assert local_reminder.time() == local_deadline.time()
    assert (local_deadline.date() - local_reminder.date()).days == 7

    shown_cli = run(app, "sign-on", str(statement.id))
    assert address in shown_cli.output and "invitations: 4 (4 e-mailed, 0 reminded)" in (
        shown_cli.output
    )

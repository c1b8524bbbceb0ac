"""Staff reminder e-mails are built like every other notice (campaign.mail.build_notice).

They used to be a bare EmailMessage() sent with bare LF line ends, which some SMTP servers
read as one overlong line; here they are read as an SMTP server receives them.
"""

from __future__ import annotations

from datetime import date, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.mail import send_message
from campaign.models import Role, Schedule
from campaign.scheduling.tick import tick
from campaign.services.schedules import advocacy_calendar as calendar
from campaign.services.sending import notices
from tests.conftest import make_user
from tests.fault_smtp import FaultSmtpServer


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {**app_overrides, "MAIL_SERVER": fault_smtp.host, "MAIL_PORT": fault_smtp.port}


def _only_crlf(raw: bytes) -> bool:
    return b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")


def test_a_reminder_arrives_with_crlf_and_the_headers_of_every_notice(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    make_user(Role.EDITOR, "editor@example.org")
    french = make_user(Role.ADMIN, "admin@example.org")
    french.language = "fr"
    start = date.today() + timedelta(days=30)
    event = calendar.add_event("Human-rights dialogue", start, reminder_days=[7])
    db.session.commit()
    schedule = db.session.scalars(select(Schedule).where(Schedule.event_id == event.id)).one()
    assert schedule.next_run_at is not None
    assert tick(schedule.next_run_at).summary == "1 fired, 0 skipped"
    reminders = {m.rcpt_tos[0]: m for m in fault_smtp.messages}
    assert set(reminders) == {"editor@example.org", "admin@example.org"}

    sender = str(app.config["MAIL_DEFAULT_SENDER"])
    notice = notices.build_message("signer@example.net", "Confirm", "Please confirm.\n")
    send_message(notice, sender=sender, recipients=["signer@example.net"])
    [received_notice] = [m for m in fault_smtp.messages if m.rcpt_tos == ("signer@example.net",)]
    expected = message_from_bytes(received_notice.raw, policy=default_policy)

    for address, received in reminders.items():
        assert _only_crlf(received.raw), address
        reminder = message_from_bytes(received.raw, policy=default_policy)
        assert sorted(reminder.keys()) == sorted(expected.keys()), address
        assert reminder["Auto-Submitted"] == "auto-generated"
        assert reminder["From"] == expected["From"]
        assert reminder.get_content_type() == "text/plain"
        assert reminder.get_param("format") == expected.get_param("format") == "flowed"
        assert "Human-rights dialogue" in str(reminder["Subject"])
        assert "Human-rights dialogue" in reminder.get_content()
    # Each in the reader's interface language, and saying so.
    languages = {
        address: message_from_bytes(m.raw, policy=default_policy)["Content-Language"]
        for address, m in reminders.items()
    }
    assert languages == {"editor@example.org": "en", "admin@example.org": "fr"}
    assert _only_crlf(received_notice.raw)

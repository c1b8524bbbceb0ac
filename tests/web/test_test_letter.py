"""A test letter: the letter one contact would get, sent to staff through the campaign's SMTP
account (a real aiosmtpd server), marked [Test], kept out of the ledger, audited."""

from __future__ import annotations

import email
import email.policy
import html
from email.message import EmailMessage
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Delivery, Role, SmtpAccount
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.schedules import cases
from campaign.services.sending import campaigns, letter_tests
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.conftest import make_user
from tests.fault_smtp import FaultSmtpServer

BODY = (
    "{{ salutation }}\n\nWe write about the trial.\n\n"
    "{% for case in cases %}- {{ case.name }}\n{% endfor %}\n{{ closing }}\n\nAnna Sample\n"
)


def test_a_test_letter_reaches_the_chosen_staff_as_the_contact_would_read_it(
    app: Flask, client: FlaskClient, login: Any, fault_smtp: FaultSmtpServer
) -> None:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY
    )
    press = lists.create_list("Press")
    reader = create_contact(
        {
            "given_name": "Aigerim",
            "family_name": "Bekova",
            "email": "aigerim@example.org",
            "salutation_override": "Dear Ambassador Bekova,",
            "cc_emails": "secretariat@example.org",
        }
    )
    other = create_contact({"family_name": "Other", "email": "other@example.org"})
    outsider = create_contact({"family_name": "Outsider", "email": "outsider@example.org"})
    lists.add_contacts(press, [reader.id, other.id])
    relay = SmtpAccount(
        name="Office relay", host=fault_smtp.host, port=fault_smtp.port, security="none"
    )
    db.session.add(relay)
    db.session.flush()
    campaign = campaigns.create_campaign(
        statement,
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Office <office@example.org>",
        smtp_account=relay,
    )
    cases.link_case(campaign, cases.create_case("Journalist B", country="UZ"))
    db.session.commit()
    colleague = make_user(Role.VIEWER, "colleague@example.org")
    me = login(Role.EDITOR)

    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert f'href="/campaigns/{campaign.id}/test-letter"' in page
    form = client.get(f"/campaigns/{campaign.id}/test-letter").get_data(as_text=True)
    assert "Aigerim Bekova &lt;aigerim@example.org&gt;" in form

    # Nobody chosen: refused, nothing sent.
    refused = client.post(
        f"/campaigns/{campaign.id}/test-letter", data={"contact_id": str(reader.id)}
    )
    assert refused.status_code == 422
    assert "choose yourself or at least one colleague" in refused.get_data(as_text=True)
    assert fault_smtp.messages == []
    # A contact outside the campaign's audience: refused, nothing sent.
    outside = client.post(
        f"/campaigns/{campaign.id}/test-letter",
        data={"contact_id": str(outsider.id), "user_ids": [str(me.id)]},
    )
    assert outside.status_code == 422
    assert "among the campaign's recipients" in html.unescape(outside.get_data(as_text=True))
    assert fault_smtp.messages == []

    sent = client.post(
        f"/campaigns/{campaign.id}/test-letter",
        data={"contact_id": str(reader.id), "user_ids": [str(me.id), str(colleague.id)]},
        follow_redirects=True,
    )
    assert "Test letter" in sent.get_data(as_text=True)

    received_by = {m.rcpt_tos: m for m in fault_smtp.messages}
    assert sorted(received_by) == [("colleague@example.org",), ("editor@example.org",)]
    received = received_by[("editor@example.org",)]
    assert received.mail_from == "office@example.org"
    message = email.message_from_bytes(received.raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "[Test] Ahead of the summit"
    assert "List-Unsubscribe" not in message
    # Addressed to the colleague alone: a reply-all must not write to the official.
    assert message["To"] == "editor@example.org"
    assert "Cc" not in message
    assert "aigerim@example.org" in message["X-Test-For"]
    assert b"secretariat@example.org" not in received.raw
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Dear Ambassador Bekova," in text.get_content()
    # As the campaign sends it: with its cases.
    assert "- Journalist B" in text.get_content()

    # Not a delivery: no ledger row, nothing counted; the audit log keeps it.
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.test_letter")
    ).one()
    assert event.detail["contact_id"] == reader.id
    assert event.detail["sent_to"] == ["colleague@example.org", "editor@example.org"]

    # At most TESTS_PER_HOUR tests an hour per person.
    for _ in range(letter_tests.TESTS_PER_HOUR - 1):
        client.post(
            f"/campaigns/{campaign.id}/test-letter",
            data={"contact_id": str(reader.id), "user_ids": [str(me.id)]},
        )
    received_before = len(fault_smtp.messages)
    limited = client.post(
        f"/campaigns/{campaign.id}/test-letter",
        data={"contact_id": str(reader.id), "user_ids": [str(me.id)]},
    )
    assert limited.status_code == 422
    assert "in the last hour" in limited.get_data(as_text=True)
    assert len(fault_smtp.messages) == received_before


def test_a_test_letter_refused_partway_is_audited_and_counted(
    app: Flask, client: FlaskClient, login: Any, fault_smtp: FaultSmtpServer
) -> None:
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    press = lists.create_list("Press")
    reader = create_contact({"family_name": "Bekova", "email": "aigerim@example.org"})
    lists.add_contacts(press, [reader.id])
    relay = SmtpAccount(name="Relay", host=fault_smtp.host, port=fault_smtp.port, security="none")
    db.session.add(relay)
    db.session.flush()
    campaign = campaigns.create_campaign(
        statement,
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Office <office@example.org>",
        smtp_account=relay,
    )
    db.session.commit()
    colleague = make_user(Role.VIEWER, "colleague@example.org")
    me = login(Role.EDITOR)
    fault_smtp.fail(550, "5.1.1 No such user", stage="rcpt", match="editor@")
    refused = client.post(
        f"/campaigns/{campaign.id}/test-letter",
        data={"contact_id": str(reader.id), "user_ids": [str(me.id), str(colleague.id)]},
    )
    assert refused.status_code == 422
    assert "did not take the test for editor@example.org" in refused.get_data(as_text=True)
    # The colleague's copy left: the audit log says so, and the failure.
    assert [m.rcpt_tos for m in fault_smtp.messages] == [("colleague@example.org",)]
    db.session.expire_all()
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.test_letter")
    ).one()
    assert event.detail["sent_to"] == ["colleague@example.org"]
    assert "editor@example.org" in event.detail["failed"]

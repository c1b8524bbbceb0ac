"""`{% for case in cases %}` in a statement: the campaign's linked cases, letter-safe names."""

from __future__ import annotations

import uuid
from datetime import date
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.letters.letter import render_letter
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.schedules import cases
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.fault_smtp import FaultSmtpServer

BODY = (
    "{{ salutation }}\n\nWe write about:\n\n"
    "{% for case in cases %}- {{ case.name }} ({{ case.country_name }}), {{ case.status }}"
    "{% for d in case.dates %}, {{ d.kind }} on {{ d.on_text }}{% endfor %}\n"
    "{% endfor %}\n{{ closing }}\n"
)


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _text(raw: bytes) -> str:
    message = message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_letter_names_a_high_risk_case_by_its_pseudonym_only(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    statement = statements.create_statement(
        "Free the journalists", language="en", subject="Free them", body=BODY
    )
    contact_list = lists.create_list("Ministry")
    contact = create_contact({"email": "minister@example.net", "family_name": "Minister"})
    lists.add_contacts(contact_list, [contact.id])
    campaign = campaigns.create_campaign(
        statement, name="Journalists", audience=AudienceSpec((f"list:{contact_list.id}",))
    )
    hidden = cases.create_case(
        "Real Secret Name", "Journalist B", is_high_risk=True, country="UZ", status="detained"
    )
    cases.add_case_date(hidden, "arrest", date(2021, 3, 12), "Art. 244-1", "RFE/RL")
    cases.link_case(campaign, hidden)
    assert campaigns.launch_campaign(campaign)
    db.session.commit()

    while sending.send_batch(campaign.id, worker="test", commit=db.session.commit).claimed:
        pass

    [received] = fault_smtp.messages
    text = _text(received.raw)
    assert "- Journalist B (Uzbekistan), detained, arrest on 12 March 2021" in text
    assert b"Real Secret Name" not in received.raw


def test_outside_a_campaign_there_are_no_cases(app: Flask) -> None:
    # A preview or `campaign render` knows no campaign: the loop is simply empty.
    statement = statements.create_statement("Preview", language="en", subject="S", body=BODY)
    contact = create_contact({"email": "a@example.net", "family_name": "A"})
    db.session.commit()
    letter = render_letter(statements.letter_source(statement), contact)
    assert not [p for p in letter.problems if p.severity == "error"]
    assert "We write about:" in letter.text_body and "- " not in letter.text_body

"""The freeze: a launch sends the approved signatories of that moment, in every letter and
its PDF (the withheld one as the signer chose); a later approval goes to the next version."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.letters.flowed import unflow
from campaign.models import (
    Campaign,
    Delivery,
    DeliveryStatus,
    Signature,
    SignatureStatus,
    SignOn,
    Statement,
    StatementVersion,
)
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.sign_on import pages as sign_on
from campaign.services.statements import statements
from tests.fault_smtp import FaultSmtpServer

WITHHELD = "Name withheld for security reasons"
BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n\n{{ signatories }}\n"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def approve(page: SignOn, statement: Statement, email: str, **values: str) -> Signature:
    """A confirmed signature an editor approves: it becomes a signatory (a new version)."""
    signature = Signature(
        sign_on_id=page.id,
        email=email,
        email_key=sign_on.email_key(email),
        name_key=sign_on.name_key(values["name"]),
        status=SignatureStatus.APPROVED.value,
        **values,
    )
    db.session.add(signature)
    db.session.flush()
    signatory = statements.add_signatory(statement, sign_on.as_signatory_values(signature))
    signature.signatory_id = signatory.id
    db.session.commit()
    return signature


def launch_and_send(statement: Statement, audience: str) -> Campaign:
    campaign = campaigns.create_campaign(
        statement,
        audience=AudienceSpec((audience,)),
        from_address="Human Rights Office <office@example.org>",
        is_pdf_attached=True,
    )
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id)
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    while sending.send_batch(campaign.id, worker="test", commit=db.session.commit).claimed:
        pass
    db.session.expire_all()
    statuses = db.session.scalars(
        select(Delivery.status).where(Delivery.campaign_id == campaign.id)
    ).all()
    assert statuses and set(statuses) == {DeliveryStatus.SENT.value}
    return campaign


def letters_of(server: FaultSmtpServer, campaign: Campaign) -> list[EmailMessage]:
    ids = set(
        db.session.scalars(select(Delivery.message_id).where(Delivery.campaign_id == campaign.id))
    )
    return [
        message_from_bytes(m.raw, policy=default_policy)  # type: ignore[misc]
        for m in server.messages
        if m.message_id in ids
    ]


def parts(letter: EmailMessage) -> tuple[str, str, str]:
    """The letter's text part, HTML part and PDF attachment's text."""
    text = letter.get_body(("plain",))
    html = letter.get_body(("html",))
    assert text is not None and html is not None
    [pdf] = [p for p in letter.iter_attachments() if p.get_content_type() == "application/pdf"]
    reader = PdfReader(io.BytesIO(pdf.get_content()))
    pdf_text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    # The text part read as a mail client does: format=flowed, wrapped at 72.
    plain = unflow(str(text.get_content()))
    return plain, str(html.get_content()), pdf_text


def test_a_launch_freezes_the_approved_signatories_into_every_letter_and_pdf(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    statement = statements.create_statement(
        "Free the defenders", language="en", subject="Free the defenders", body=BODY
    )
    page = sign_on.open_sign_on(statement)
    approve(
        page,
        statement,
        "office@ahrca.example",
        kind="organisation",
        name="Association for Human Rights in Central Asia",
        acronym="AHRCA",
        country="Uzbekistan",
        exile_country="France",
        publish_as="full",
    )
    approve(
        page,
        statement,
        "secure@inside.example",
        kind="individual",
        name="Secret Defender",
        role="Lawyer",
        organisation="Tashkent Bar",
        publish_as="withheld",
    )
    contact_list = lists.create_list("Recipients")
    lists.add_contacts(
        contact_list,
        [
            create_contact({"email": f"{who}@mfa.example", "family_name": who.title()}).id
            for who in ("minister", "ambassador")
        ],
    )
    audience = f"list:{contact_list.id}"
    first = launch_and_send(statement, audience)

    named = (
        "Association for Human Rights in Central Asia (AHRCA), Uzbekistan, based in exile in France"
    )
    letters = letters_of(fault_smtp, first)
    assert len(letters) == 2
    for letter in letters:
        text, html, pdf_text = parts(letter)
        for shown in (text, html, pdf_text):
            assert named in shown and WITHHELD in shown
            assert "Secret Defender" not in shown and "Tashkent Bar" not in shown

    # Approved after the launch: in the statement's next version, not in what was sent.
    approve(
        page,
        statement,
        "late@ngo.example",
        kind="organisation",
        name="Late Alliance",
        country="Kyrgyzstan",
        publish_as="full",
    )
    frozen = db.session.get(StatementVersion, first.statement_version_id)
    latest = statements.latest_version(statement)
    assert frozen is not None and latest is not None and latest.number > frozen.number
    assert [s["name"] for s in frozen.snapshot["signatories"]] == [
        "Association for Human Rights in Central Asia",
        "Secret Defender",
    ]
    assert "Late Alliance" in [s["name"] for s in latest.snapshot["signatories"]]
    for letter in letters_of(fault_smtp, first):
        assert all("Late Alliance" not in shown for shown in parts(letter))

    # A new campaign sends the new version: all three.
    second = launch_and_send(statement, audience)
    assert second.statement_version_id == latest.id
    later_letters = letters_of(fault_smtp, second)
    assert len(later_letters) == 2
    for letter in later_letters:
        for shown in parts(letter):
            assert named in shown and WITHHELD in shown and "Late Alliance, Kyrgyzstan" in shown

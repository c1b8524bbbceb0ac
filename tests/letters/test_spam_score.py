"""Generated letters pass SpamAssassin's structural rules, as a receiving server would score them.

The letters are made the way production makes them: the demo's trilingual joint letter (en,
fr, ru; five signatories) is launched to three recipients, once without and once with the
letter PDF, then followed up; the real SMTP sink receives them. SpamAssassin 4 (Debian's
package, local rules only: no network tests, no Bayes) scores every message, and the test
fails on any rule that points at a fault in how the message is built: MIME_*, MISSING_*,
MPART_*, INVALID_*, TVD_* and HTML_IMAGE_ONLY_* (tracking is off, so no pixel excuses one).
Rules about content or reputation (HTML_MESSAGE, NO_RELAYS, ...) are not ours to fail on.
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from campaign.demo.statements import load_joint_letter
from campaign.extensions import db
from campaign.models import Campaign, Delivery, DeliveryStatus, FollowUpCondition
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import batches as sending
from campaign.services.sending import followups
from campaign.services.statements import statements
from tests.factories import CampaignFactory
from tests.fault_smtp import FaultSmtpServer
from tests.servers import service_missing

STRUCTURAL = re.compile(r"^(MIME_|MISSING_|MPART_|INVALID_|TVD_|HTML_IMAGE_ONLY_)")

RECIPIENTS = [
    {
        "email": "envoy@example.net",
        "given_name": "Anna",
        "family_name": "Lindqvist",
        "gender": "f",
        "role_type": "ambassador",
        "languages": "en",
    },
    {
        "email": "rapporteur@example.net",
        "given_name": "Jean",
        "family_name": "Dupont",
        "gender": "m",
        "role_type": "un_sr",
        "languages": "fr",
    },
    {
        "email": "delegation@example.net",
        "given_name": "Ирина",
        "family_name": "Петрова",
        "gender": "f",
        "role_type": "ambassador",
        "languages": "ru",
    },
]


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the score is about the messages, which are the same on either database."""
    target = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 5,
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture(scope="module")
def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        service_missing("SpamAssassin", "install Debian's spamassassin package (.ci/run does)")
    return found


def _send_all(campaign_id: int) -> None:
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id)
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    while sending.send_batch(campaign_id, worker="test", commit=db.session.commit).claimed:
        pass


def _launched(statement: Any, contact_list: Any, *, pdf: bool) -> Campaign:
    campaign = CampaignFactory(
        statement=statement,
        contact_list=contact_list,
        name=f"Joint letter ({'with' if pdf else 'without'} PDF)",
        from_address="Human Rights Office <office@example.org>",
        is_pdf_attached=pdf,
        launched=True,
        commit=True,
    )
    _send_all(campaign.id)
    return campaign


def _follow_up(campaign: Campaign) -> None:
    text = resources.files("campaign.demo.data").joinpath("torture_day_follow_up.md")
    parsed = statements.parse_markdown_file(text.read_text("utf-8"))
    statement = statements.create_statement(
        parsed.title, language="en", subject=parsed.subject, body=parsed.body
    )
    step = followups.add_step(campaign, statement, 14, FollowUpCondition.NO_REPLY_NO_BOUNCE)
    db.session.commit()
    schedule = followups.schedule_of(step)
    assert schedule is not None and schedule.next_run_at is not None
    followups.fire_follow_up(schedule, schedule.next_run_at, schedule.next_run_at)
    db.session.commit()
    _send_all(campaign.id)


def _as_received(raw: bytes) -> bytes:
    """The message as the recipient's server stores it: with its Received line on top."""
    stamp = format_datetime(datetime.now(UTC))
    received = (
        "Received: from campaign.example.org\r\n"
        f"\tby mx.example.net with ESMTPS id {uuid.uuid4().hex[:12]}; {stamp}\r\n"
    )
    # Unix mailboxes store lines with LF ends; SpamAssassin misreads CRLF in an mbox.
    return (received.encode() + raw).replace(b"\r\n", b"\n")


def _scores(spamassassin: str, messages: list[bytes], home: Path) -> dict[str, list[str]]:
    """Rules hit per Message-ID, from one SpamAssassin run over an mbox of `messages`."""
    source = home / "letters.mbox"
    box = mailbox.mbox(source)
    for raw in messages:
        box.add(mailbox.mboxMessage(_as_received(raw)))
    box.flush()
    box.close()
    prefs = home / "user_prefs"
    prefs.write_text("use_bayes 0\n")
    result = subprocess.run(
        [spamassassin, "--local", "--mbox", "--prefspath", str(prefs)],
        input=source.read_bytes(),
        capture_output=True,
        env={**os.environ, "HOME": str(home)},
        timeout=300,
        check=True,
    )
    scored = home / "scored.mbox"
    scored.write_bytes(result.stdout)
    rules: dict[str, list[str]] = {}
    box = mailbox.mbox(scored)
    for message in box:
        status = " ".join(str(message["X-Spam-Status"]).split())
        # "tests=A,B,\n\tC autolearn=no": the list is folded after its commas.
        hits = re.search(r"tests=(.*?)\s+autolearn=", status)
        assert hits is not None, status
        listed = hits.group(1).replace(" ", "").split(",")
        rules[str(message["Message-ID"]).strip()] = [rule for rule in listed if rule]
    box.close()
    return rules


def test_letters_in_three_languages_with_and_without_pdf_and_a_follow_up_hit_no_structural_rule(
    app: Flask, fault_smtp: FaultSmtpServer, spamassassin: str, tmp_path: Path
) -> None:
    statement = load_joint_letter()
    contact_list = lists.create_list("Delegations")
    lists.add_contacts(contact_list, [create_contact(fields).id for fields in RECIPIENTS])
    db.session.commit()
    plain = _launched(statement, contact_list, pdf=False)
    with_pdf = _launched(statement, contact_list, pdf=True)
    _follow_up(plain)

    ledger = list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id.in_([plain.id, with_pdf.id]))
        )
    )
    assert len(ledger) == 9  # 3 letters, 3 with the PDF, 3 follow-ups
    assert {row.status for row in ledger} == {DeliveryStatus.SENT.value}
    received = fault_smtp.by_message_id()
    messages = [received[row.message_id][0].raw for row in ledger]

    # The set really spans what the docstring says: three languages, PDFs, a follow-up.
    parsed = [message_from_bytes(raw, policy=default_policy) for raw in messages]
    assert {str(m["Content-Language"]) for m in parsed} >= {"en", "fr", "ru"}
    assert (
        sum(any(p.get_content_type() == "application/pdf" for p in m.walk()) for m in parsed) == 3
    )
    assert sum(bool(m["In-Reply-To"]) for m in parsed) == 3

    rules = _scores(spamassassin, messages, tmp_path)
    assert len(rules) == 9
    structural = {
        message_id: [rule for rule in hits if STRUCTURAL.match(rule)]
        for message_id, hits in rules.items()
    }
    assert {mid: hits for mid, hits in structural.items() if hits} == {}


def test_the_scorer_sees_a_message_built_wrongly(spamassassin: str, tmp_path: Path) -> None:
    """Guards the test above: with the rules loaded, a badly built message does hit them."""
    broken = (
        b"From: office@example.org\r\nTo: envoy@example.net\r\nSubject: Letter\r\n"
        b"Message-ID: <broken@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Dear Ambassador,</p>\r\n"
    )
    rules = _scores(spamassassin, [broken], tmp_path)
    assert {"MISSING_DATE", "MIME_HTML_ONLY"} <= set(rules["<broken@example.org>"])

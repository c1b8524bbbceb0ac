"""Statement files attached to letters: per letter language, through a real SMTP server, with
the size the server announces (EHLO SIZE) checked before the launch."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import Delivery
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import CampaignError
from campaign.services.statements import files as statement_files
from campaign.services.statements import statements
from campaign.services.statements.statements import StatementError
from tests.factories import CampaignFactory, StatementFactory
from tests.fault_smtp import FaultSmtpServer
from tests.servers import free_port

BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n"
BODY_FR = "{{ salutation }}\n\nLibérez les défenseurs.\n\n{{ closing }}\n"
# The statement in English and French, and one reader of each: each letter's language
# decides which files it carries (`StatementFactory(**BILINGUAL)`, `recipients=READERS`).
BILINGUAL: dict[str, Any] = {
    "subject": "Release the defenders",
    "body": BODY,
    "translations": {"fr": ("Libérez les défenseurs", BODY_FR)},
}
READERS = (
    {"email": "anna@example.net", "family_name": "Anna", "languages": "en"},
    {"email": "bernard@example.net", "family_name": "Bernard", "languages": "fr"},
)
FROM = "Human Rights Office <office@example.org>"


def _pdf(size: int, mark: str) -> io.BytesIO:
    head = f"%PDF-1.4\n% {mark}\n".encode()
    return io.BytesIO(head + b"0" * max(0, size - len(head)))


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


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@pytest.fixture
def small_server() -> Iterator[tuple[str, int]]:
    """A real aiosmtpd that announces SIZE 1048576 (1 MB) in its EHLO."""
    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port, data_size_limit=1048576)
    controller.start()
    yield "127.0.0.1", port
    controller.stop()


def _send_all(campaign_id: int) -> None:
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id)
        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()
    while sending.send_batch(campaign_id, worker="test", commit=db.session.commit).claimed:
        pass


def _attached(message: EmailMessage) -> dict[str, bytes]:
    return {
        str(part.get_filename()): part.get_payload(decode=True)  # type: ignore[misc]
        for part in message.iter_attachments()
    }


def test_each_letter_carries_the_files_of_its_language_and_those_for_every_language(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    statement = StatementFactory(**BILINGUAL)
    everyone = statements.add_attachment(statement, "signed.pdf", _pdf(2000, "signed"))
    annex_fr = statements.add_attachment(statement, "annexe.pdf", _pdf(3000, "fr"), language="fr")
    annex_en = statements.add_attachment(statement, "annex.pdf", _pdf(3000, "en"), language="en")
    statements.add_attachment(statement, "not-chosen.pdf", _pdf(1000, "no"))
    campaign = CampaignFactory(statement=statement, recipients=READERS, from_address=FROM)
    statement_files.choose_files(campaign, [str(everyone.id), annex_fr.id, annex_en.id])
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    # Changed after the launch: the letters keep the language the campaign froze.
    statement_files.set_file_language(annex_en, "")
    db.session.commit()
    _send_all(campaign.id)

    received = {}
    for row in db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id)):
        assert row.status == "sent", row.last_reply
        raw = fault_smtp.by_message_id()[row.message_id][-1].raw
        message = message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        received[row.email.partition("@")[0]] = _attached(message)
    assert sorted(received["bernard"]) == ["annexe.pdf", "signed.pdf"]
    assert sorted(received["anna"]) == ["annex.pdf", "signed.pdf"]
    assert b"% fr" in received["bernard"]["annexe.pdf"]
    assert b"% en" in received["anna"]["annex.pdf"]


def test_a_twelve_megabyte_letter_is_warned_about(app: Flask) -> None:
    statement = StatementFactory(**BILINGUAL)
    big = statements.add_attachment(statement, "report.pdf", _pdf(9 * 1024 * 1024, "big"))
    campaign = CampaignFactory(statement=statement, recipients=READERS, from_address=FROM)
    statement_files.choose_files(campaign, [big.id])
    check = campaigns.check_campaign(campaign)
    assert not check.errors
    warning = " ".join(str(w) for w in check.warnings)
    assert re.search(r"weighs about 12\.\d MB once encoded", warning)
    assert "report.pdf (9.0 MB)" in warning


def test_a_server_size_of_one_megabyte_refuses_the_launch_naming_files_and_limit(
    app: Flask, small_server: tuple[str, int]
) -> None:
    app.config.update(MAIL_SERVER=small_server[0], MAIL_PORT=small_server[1])
    statement = StatementFactory(**BILINGUAL)
    annex = statements.add_attachment(
        statement, "annexe.pdf", _pdf(900 * 1024, "fr"), language="fr"
    )
    small = statements.add_attachment(statement, "note.pdf", _pdf(40 * 1024, "en"), language="en")
    campaign = CampaignFactory(statement=statement, recipients=READERS, from_address=FROM)
    statement_files.choose_files(campaign, [annex.id, small.id])
    check = campaigns.check_campaign(campaign)
    error = " ".join(str(e) for e in check.errors)
    assert "annexe.pdf (0.9 MB)" in error
    assert "at most 1.0 MB per message (EHLO SIZE 1048576)" in error
    assert "French" in error
    with pytest.raises(CampaignError, match="EHLO SIZE 1048576"):
        campaigns.launch_campaign(campaign)
    db.session.rollback()
    assert db.session.scalars(select(Delivery)).all() == []


def test_an_unreachable_server_is_a_warning_not_an_error(app: Flask) -> None:
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())
    statement = StatementFactory(**BILINGUAL)
    annex = statements.add_attachment(statement, "annexe.pdf", _pdf(5000, "x"))
    campaign = CampaignFactory(statement=statement, recipients=READERS, from_address=FROM)
    statement_files.choose_files(campaign, [annex.id])
    check = campaigns.check_campaign(campaign)
    assert not [e for e in check.errors if "Files" in str(e)]
    assert any("could not be asked for its size limit" in str(w) for w in check.warnings)


def test_bad_languages_choices_and_removals_are_refused(app: Flask) -> None:
    statement = StatementFactory(**BILINGUAL)
    with pytest.raises(StatementError, match="no text in de") as error:
        statements.add_attachment(statement, "annex.pdf", _pdf(100, "de"), language="de")
    assert error.value.field == "language"
    annex = statements.add_attachment(statement, "annex.pdf", _pdf(100, "x"))
    other = statements.add_attachment(
        statements.create_statement("Other", language="en", subject="S", body=BODY),
        "other.pdf",
        _pdf(100, "y"),
    )
    campaign = CampaignFactory(statement=statement, recipients=READERS, from_address=FROM)
    with pytest.raises(CampaignError, match="not a file of the campaign's statement"):
        statement_files.choose_files(campaign, [other.id])
    with pytest.raises(CampaignError, match="not a file"):
        statement_files.choose_files(campaign, ["abc"])
    statement_files.choose_files(campaign, [annex.id])
    db.session.commit()
    with pytest.raises(StatementError, match=r"campaign #\d+ .* attaches it"):
        statements.remove_attachment(annex)
    db.session.rollback()
    assert statements.attachments_of(statement)[0].id == annex.id

"""Tracking tests: campaigns sent through the fault SMTP server, then opened and clicked."""

from __future__ import annotations

import logging
import uuid
import zlib
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, Delivery
from campaign.services.sending import batches as sending
from campaign.tracking import buffer
from tests.factories import CampaignFactory
from tests.fault_smtp import FaultSmtpServer

PUBLIC_URL = "https://campaign.example.org"
REPORT_URL = "https://example.org/report?year=2024&lang=en"
BODY = (
    "{{ salutation }}\n\n"
    f"Read [our report]({REPORT_URL}) and [the appeal](http://example.net/appeal).\n\n"
    "Write to [the office](mailto:office@example.org), or "
    f"[stop these letters]({PUBLIC_URL}/u/some-token).\n\n"
    "{{ closing }}\n"
)


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "PUBLIC_URL": PUBLIC_URL,
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def send_campaign(
    count: int = 2,
    *,
    opens: bool = False,
    clicks: bool = False,
    body: str = BODY,
    worker_config: dict[str, Any] | None = None,
) -> tuple[Campaign, list[Delivery]]:
    """Launch a campaign to `count` new contacts and send it all; return it and its rows.

    `worker_config` changes the configuration between the launch and the sending, as a
    worker started with other settings than the web app would see it.
    """
    campaign = CampaignFactory(
        statement__body=body,
        recipients=[f"p{n}-{uuid.uuid4().hex[:6]}@example.net" for n in range(count)],
        from_address="Human Rights Office <office@example.org>",
        is_open_tracking=opens,
        is_click_tracking=clicks,
        launched=True,
        commit=True,
    )
    if worker_config:
        current_app.config.update(worker_config)
    result = sending.send_batch(campaign.id, worker="test", commit=db.session.commit)
    assert result.sent == count, result
    db.session.expire_all()
    rows = list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign.id).order_by(Delivery.id)
        )
    )
    return campaign, rows


def sent_message(fault_smtp: FaultSmtpServer, row: Delivery) -> EmailMessage:
    """The message the server received for `row`, checked to be the stored evidence."""
    (received,) = fault_smtp.by_message_id()[row.message_id]
    assert row.message_blob is not None and zlib.decompress(row.message_blob) == received.raw
    message = message_from_bytes(received.raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None and body.get_content_subtype() == subtype
    return str(body.get_content())


class CountedLost(buffer.RareWarning):
    """A HitQueue's lost-hits warning that also keeps every count noted (`noted`), for a
    test to compare with the hits missing from Redis."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("tests.tracking.lost"), "%(count)d lost (%(error)s)")
        self.noted: list[int] = []

    def note(self, count: int = 1, **details: object) -> None:
        self.noted.append(count)
        super().note(count, **details)
